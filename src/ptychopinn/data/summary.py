"""One-screen summary of a dataset (used by ``ptychopinn validate``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ptychopinn.data.contract import PtychoDataset
from ptychopinn.data.grouping import mean_nn_step, probe_diameter_estimate
from ptychopinn.physics.scan import disc_overlap


def summarize(ds: PtychoDataset) -> dict[str, Any]:
    """Patterns, N, measured photons/pattern, object size, scan extent, mean NN step, overlap."""
    pos = ds.positions_yx
    step = mean_nn_step(pos)
    diam = probe_diameter_estimate(ds.probe)
    return {
        "file": ds.source,
        "patterns": ds.n_patterns,
        "N": ds.N,
        "photons_per_pattern": ds.photons_per_pattern(),
        "object_shape": None if ds.object is None else list(ds.object.shape),
        "scan_extent_y": [float(pos[:, 0].min()), float(pos[:, 0].max())],
        "scan_extent_x": [float(pos[:, 1].min()), float(pos[:, 1].max())],
        "mean_nn_step_px": step,
        "probe_diameter_px": diam,
        "estimated_overlap": float(disc_overlap(step, diam)) if np.isfinite(step) else float("nan"),
        "has_ground_truth_patches": ds.ground_truth_patches is not None,
        "masked_pixels": 0 if ds.mask is None else int(ds.mask.sum()),
        "masked_fraction": ds.masked_fraction,
        "patterns_dropped": int(ds.metadata.get("load_notes", {}).get("patterns_without_position_dropped", 0)),
        "load_notes": ds.metadata.get("load_notes", {}),
        "geometry": ds.metadata.get("geometry") or {},
    }


def format_summary(s: dict[str, Any]) -> str:
    obj = "none" if s["object_shape"] is None else f"{s['object_shape'][0]}x{s['object_shape'][1]}"
    lines = [
        f"file:               {s['file']}",
        f"patterns:           {s['patterns']} of {s['N']}x{s['N']}",
        f"photons/pattern:    {s['photons_per_pattern']:.4g} (measured: mean sum diff3d^2)",
        f"object:             {obj}",
        f"scan extent:        y {s['scan_extent_y'][0]:.1f}..{s['scan_extent_y'][1]:.1f}, "
        f"x {s['scan_extent_x'][0]:.1f}..{s['scan_extent_x'][1]:.1f} px",
        f"mean NN step:       {s['mean_nn_step_px']:.2f} px (probe diameter ~{s['probe_diameter_px']:.1f} px "
        f"at 10% of peak)",
        f"estimated overlap:  {100 * s['estimated_overlap']:.0f} % (disc overlap at the mean step)",
    ]
    lines.append("detector mask:      " + (f"{s['masked_pixels']} bad pixel(s), {100 * s['masked_fraction']:.2f} % "
                                           "masked (excluded from the losses and pty-chi)"
                                           if s.get("masked_pixels") else "none (every pixel used)"))
    if s.get("patterns_dropped"):
        lines.append(f"dropped:            {s['patterns_dropped']} pattern(s) without a scan position "
                     "(paired by scan index)")
    g = s.get("geometry") or {}
    if g.get("object_pixel_m"):
        e, z, px = g.get("energy_eV", float("nan")), g.get("distance_m", float("nan")), g["object_pixel_m"]
        lines.append(f"geometry:           {e:.6g} eV, distance {z:.4g} m, "
                     f"object pixel {px[1] * 1e9:.4g} x {px[0] * 1e9:.4g} nm (x, y)")
    if s["load_notes"]:
        lines.append(f"normalised on load: {', '.join(f'{k}={v}' for k, v in s['load_notes'].items())}")
    return "\n".join(lines)
