"""Compare reconstructions against the ground truth and write the comparison outputs.

``compare(data, {"PtychoPINN": "recon/reconstruction.npz", "PtyChi": "ptychi_reconstruction.npz"},
"cmp")`` writes into ``cmp/``: ``comparison_metrics.csv`` (model, metric, amplitude, phase),
``frc_curves.csv`` (model, component, frequency, frc), ``reconstructions_aligned.npz``,
``comparison_plot.png`` and ``comparison.json`` (alignment factors, data ranges, settings).
Every input is read and checked before anything is written; every file is written atomically.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ptychopinn._config import Config, opt
from ptychopinn.data.contract import as_dataset
from ptychopinn.data.reconstruction import (  # noqa: F401 - Reconstruction re-exported (evaluation.Reconstruction)
    Reconstruction,
    load_reconstruction,
)
from ptychopinn.errors import ConfigError, DataError
from ptychopinn.evaluation import align as _al
from ptychopinn.evaluation.metrics import (
    FRC_WINDOWS,
    PSNR_CONVENTIONS,
    FRCResult,
    component_metrics,
    metric_names,
)

#: canonical arm labels (others are accepted)
CANONICAL_LABELS: tuple[str, ...] = ("PtychoPINN", "Baseline", "PtyChi")
GROUND_TRUTH_LABEL = "ground_truth"
_LABEL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.+-]{0,63}$")

OUTPUT_FILES: tuple[str, ...] = (
    "comparison_metrics.csv", "frc_curves.csv", "reconstructions_aligned.npz",
    "comparison_plot.png", "comparison.json",
)


@dataclass(frozen=True)
class CompareConfig(Config):
    """Settings of a comparison (see docs/evaluation.md).

    ``rim=None``: automatic (0 if no arm is shifted, else ceil(largest |shift|) + 2, one rim for
    all arms so that every arm is scored on the same pixels).
    """

    psnr_convention: str = opt("range", "PSNR peak: ground-truth data range or the legacy 255",
                               choices=PSNR_CONVENTIONS)
    phase_plane: bool = opt(False, "remove a phase plane, not only a constant offset")
    scale_amplitude: bool = opt(True, "do not rescale the amplitude", flag="--no-amplitude-scale")
    register: bool = opt(True, "no sub-pixel registration", flag="--no-register")
    register_on: str = opt("auto", "signal used for registration (auto: amplitude, complex if the amplitude is "
                                   "flat)", choices=_al.REGISTER_ON)
    upsample_factor: int = opt(100, "registration upsampling", check="positive")
    rim: int | None = opt(None, "pixels dropped at each edge after shifting (default: none = auto)",
                          check="non_negative")
    ms_ssim_sigma: float = opt(1.5, "Gaussian sigma of the MS-SSIM window", check="positive")
    frc_window: str = opt("hann", "window applied before the FRC", choices=FRC_WINDOWS)
    plot: bool = opt(True, "skip comparison_plot.png", flag="--no-plot")

    def __post_init__(self) -> None:
        if self.psnr_convention not in PSNR_CONVENTIONS:
            raise ConfigError(f"psnr_convention must be one of {PSNR_CONVENTIONS}; got {self.psnr_convention!r}")
        if self.register_on not in _al.REGISTER_ON:
            raise ConfigError(f"register_on must be one of {_al.REGISTER_ON}; got {self.register_on!r}")
        if self.frc_window not in FRC_WINDOWS:
            raise ConfigError(f"frc_window must be one of {FRC_WINDOWS}; got {self.frc_window!r}")
        if self.rim is not None and int(self.rim) < 0:
            raise ConfigError(f"rim must be >= 0; got {self.rim}")
        if int(self.upsample_factor) < 1:
            raise ConfigError(f"upsample_factor must be >= 1; got {self.upsample_factor}")
        if not float(self.ms_ssim_sigma) > 0:
            raise ConfigError(f"ms_ssim_sigma must be > 0; got {self.ms_ssim_sigma}")


@dataclass(frozen=True)
class ComparisonResult:
    """Metrics[label][component][metric], FRC results[label][component], the alignments and the
    JSON summary written to ``comparison.json``; ``files`` are the paths written (if any)."""

    metrics: dict[str, dict[str, dict[str, float]]]
    frc: dict[str, dict[str, FRCResult]]
    alignments: dict[str, _al.Alignment]
    summary: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# labels (the arms are read by ptychopinn.data.reconstruction.load_reconstruction)
# ---------------------------------------------------------------------------------------------
def _check_label(label: str) -> str:
    if not isinstance(label, str) or not _LABEL_RE.match(label) or label == GROUND_TRUTH_LABEL:
        raise ConfigError(
            f"invalid model label {label!r}: use letters, digits and _.+- starting with a letter "
            f"(not '{GROUND_TRUTH_LABEL}'), e.g. {', '.join(CANONICAL_LABELS)}"
        )
    return label


# ---------------------------------------------------------------------------------------------
# computing
# ---------------------------------------------------------------------------------------------
def compute_comparison(
    data: Any, recons: Mapping[str, Any], config: CompareConfig | None = None,
) -> ComparisonResult:
    """Align every arm to the ground truth on one common region and compute all metrics
    (nothing is written). ``data``: dataset path or PtychoDataset with ``objectGuess``."""
    cfg = config or CompareConfig()
    if not recons:
        raise ConfigError("no reconstructions to compare")
    ds = as_dataset(data, require_object=True)
    arms = [load_reconstruction(src, _check_label(lab)) for lab, src in recons.items()]
    gt_full = np.asarray(ds.object, dtype=np.complex128)
    scan = _al.scanned_region(ds.ycoords, ds.xcoords, gt_full.shape)
    boxes = {a.label: _al.canvas_box(a.origin, a.object.shape) for a in arms}
    try:
        common = _al.intersect_boxes(scan, *boxes.values())
    except ValueError:
        raise DataError(
            f"{ds.source}: the scanned region {scan} (y0, y1, x0, x1) does not overlap every "
            f"reconstruction canvas ({', '.join(f'{k}: {v}' for k, v in boxes.items())}); check 'origin'"
        ) from None
    gt = _al.crop_canvas(gt_full, (0, 0), common)
    crops = {a.label: _al.crop_canvas(a.object, a.origin, common) for a in arms}
    for a in arms:
        if not np.all(np.isfinite(crops[a.label])):
            raise DataError(f"{a.source}: reconstruction '{a.label}' has NaN or Inf values inside the "
                            f"scored region {common} (y0, y1, x0, x1)")
    if not np.all(np.isfinite(gt)):
        raise DataError(f"{ds.source}: key 'objectGuess': NaN or Inf values inside the scored region {common}")
    h, w = gt.shape
    if min(h, w) < 8:
        raise DataError(f"{ds.source}: the common scanned region {common} is only {h}x{w} px; too small to score")

    # pass 1: shifts (a canvas origin's fractional part is a known shift when not registering)
    shifts: dict[str, tuple[float, float]] = {}
    modes: dict[str, str] = {}
    for a in arms:
        ref, mov, modes[a.label] = _al.registration_signal(gt, crops[a.label], cfg.register_on)
        if cfg.register:
            shifts[a.label] = _al.estimate_shift(ref, mov, upsample_factor=int(cfg.upsample_factor))
        else:
            frac = [float(o) - round(float(o)) for o in a.origin]
            shifts[a.label] = (frac[0], frac[1])
    rim = _al.auto_rim(list(shifts.values())) if cfg.rim is None else int(cfg.rim)
    if 2 * rim >= min(h, w) - 8:
        raise DataError(
            f"{ds.source}: rim of {rim} px (shifts {shifts}) leaves too little of the {h}x{w} common region"
        )

    # pass 2: align and score
    metrics: dict[str, dict[str, dict[str, float]]] = {}
    frcs: dict[str, dict[str, FRCResult]] = {}
    alignments: dict[str, _al.Alignment] = {}
    models: dict[str, Any] = {}
    kw = {"psnr_convention": cfg.psnr_convention, "ms_ssim_sigma": float(cfg.ms_ssim_sigma),
          "frc_window": cfg.frc_window}
    for a in arms:
        al = _al.align(gt, crops[a.label], box=common, shift=shifts[a.label], rim=rim,
                       register_on=modes[a.label], phase_plane=cfg.phase_plane,
                       scale_amplitude=cfg.scale_amplitude)
        alignments[a.label] = al
        m_amp, f_amp, i_amp = component_metrics(al.gt_amplitude, al.recon_amplitude, phase=False, **kw)
        m_ph, f_ph, i_ph = component_metrics(al.gt_phase, al.recon_phase, phase=True, **kw)
        metrics[a.label] = {"amplitude": m_amp, "phase": m_ph}
        frcs[a.label] = {"amplitude": f_amp, "phase": f_ph}
        models[a.label] = {
            "source": a.source, "origin_yx": list(a.origin), "canvas_shape": list(a.object.shape),
            "canvas_box_y0_y1_x0_x1": list(boxes[a.label]), "alignment": al.to_dict(),
            "amplitude": i_amp, "phase": i_ph,
            "metrics": {"amplitude": m_amp, "phase": m_ph},
        }
    final_box = _al.shrink_box(common, rim)
    summary = {
        "dataset": ds.source,
        "ground_truth_shape": list(gt_full.shape),
        "scanned_region_y0_y1_x0_x1": list(scan),
        "common_box_y0_y1_x0_x1": list(common),
        "rim": rim,
        "scored_box_y0_y1_x0_x1": list(final_box),
        "scored_shape": [final_box[1] - final_box[0], final_box[3] - final_box[2]],
        "config": cfg.to_dict(),
        "conventions": {
            "shift": "(dy, dx) px applied to the reconstruction (Fourier shift) to register it on the ground truth",
            "phase_offset": "rad added to the reconstruction phase; phase_plane (gy, gx) rad/px about the region centre",
            "amplitude_scale": "least-squares factor multiplying the reconstruction amplitude",
            "psnr_peak": "ground-truth data range" if cfg.psnr_convention == "range" else "255 (legacy convention)",
            "frc": "frequency in cycles/pixel; *_resolution in pixels (1/frequency)",
        },
        "models": models,
    }
    return ComparisonResult(metrics=metrics, frc=frcs, alignments=alignments, summary=summary)


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------
def _fmt(v: float) -> str:
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return repr(v)


def metrics_csv_text(result: ComparisonResult, psnr_convention: str = "range") -> str:
    """The tidy metrics table: model, metric, amplitude, phase."""
    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\n")
    wr.writerow(["model", "metric", "amplitude", "phase"])
    for label, comp in result.metrics.items():
        for name in metric_names(psnr_convention):
            wr.writerow([label, name, _fmt(comp["amplitude"][name]), _fmt(comp["phase"][name])])
    return buf.getvalue()


def frc_csv_text(result: ComparisonResult) -> str:
    """FRC curves: model, component, frequency (cycles/pixel), frc."""
    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\n")
    wr.writerow(["model", "component", "frequency", "frc"])
    for label, comp in result.frc.items():
        for name in ("amplitude", "phase"):
            fr = comp[name]
            for f, c in zip(fr.frequency, fr.frc):
                wr.writerow([label, name, _fmt(f), _fmt(c)])
    return buf.getvalue()


def aligned_arrays(result: ComparisonResult) -> dict[str, np.ndarray]:
    """Arrays of ``reconstructions_aligned.npz``: ``<label>_amplitude``, ``<label>_phase``,
    ``<label>_complex`` for every arm and ``ground_truth_*``, plus ``crop_box`` (y0, y1, x0, x1)."""
    out: dict[str, np.ndarray] = {}
    first = next(iter(result.alignments.values()))
    out[f"{GROUND_TRUTH_LABEL}_amplitude"] = first.gt_amplitude.astype(np.float32)
    out[f"{GROUND_TRUTH_LABEL}_phase"] = first.gt_phase.astype(np.float32)
    out[f"{GROUND_TRUTH_LABEL}_complex"] = first.ground_truth.astype(np.complex64)
    for label, al in result.alignments.items():
        out[f"{label}_amplitude"] = al.recon_amplitude.astype(np.float32)
        out[f"{label}_phase"] = al.recon_phase.astype(np.float32)
        out[f"{label}_complex"] = al.recon.astype(np.complex64)
    out["crop_box"] = np.asarray(first.crop_box, dtype=np.int64)
    return out


def save_comparison_plot(result: ComparisonResult, path: str | os.PathLike) -> Path:
    """Figure: rows amplitude / phase; columns ground truth then every arm, with SSIM, PSNR and
    FRC50 in each panel's title. Colour limits are shared per row: the 1-99 % percentiles of the
    ground truth (of all arms when the ground truth is flat). Phases are already aligned (offset
    removed) and shown as they were scored."""
    from ptychopinn._plot import (
        metrics_title,
        new_figure,
        robust_range,
        row_height,
        save_figure,
        show_image,
    )

    arrays = aligned_arrays(result)
    labels = [GROUND_TRUTH_LABEL] + list(result.alignments)
    row = row_height(arrays[f"{GROUND_TRUTH_LABEL}_amplitude"].shape, 3.0)
    fig, axes = new_figure(2, len(labels), panel=(3.0, row), heights=[row, row])
    for row, comp in enumerate(("amplitude", "phase")):
        lo, hi = robust_range(arrays[f"{GROUND_TRUTH_LABEL}_{comp}"])
        if hi - lo < 1e-6 * max(abs(lo), abs(hi), 1.0):
            lo, hi = robust_range(np.concatenate([arrays[f"{lab}_{comp}"].ravel() for lab in labels]))
        for col, lab in enumerate(labels):
            if lab == GROUND_TRUTH_LABEL:
                title = f"Ground truth {comp}"
            else:
                title = metrics_title(f"{lab} {comp}", result.metrics[lab][comp])
            show_image(axes[row, col], arrays[f"{lab}_{comp}"], comp, title=title, vrange=(lo, hi),
                       colorbar=col == len(labels) - 1, remove_offset=False)
    return save_figure(fig, path)


def write_comparison(result: ComparisonResult, out_dir: str | os.PathLike, config: CompareConfig) -> dict[str, Path]:
    """Write the comparison files into ``out_dir`` (each atomically)."""
    from ptychopinn._io import save_npz_atomic, write_json_atomic, write_text_atomic

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: output path exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    files["comparison_metrics.csv"] = write_text_atomic(
        out / "comparison_metrics.csv", metrics_csv_text(result, config.psnr_convention))
    files["frc_curves.csv"] = write_text_atomic(out / "frc_curves.csv", frc_csv_text(result))
    files["reconstructions_aligned.npz"] = save_npz_atomic(
        out / "reconstructions_aligned.npz", **aligned_arrays(result))
    if config.plot:
        files["comparison_plot.png"] = save_comparison_plot(result, out / "comparison_plot.png")
    summary = dict(result.summary)
    summary["files"] = sorted(list(files) + ["comparison.json"])
    files["comparison.json"] = write_json_atomic(out / "comparison.json", _jsonable(summary))
    return files


def _jsonable(o: Any) -> Any:
    """Replace non-finite floats by strings ("nan", "inf") so the JSON is standard."""
    from ptychopinn._io import to_plain

    return to_plain(o, nonfinite="string")


def compare(
    data: Any, recons: Mapping[str, Any], out_dir: str | os.PathLike,
    config: CompareConfig | None = None, **overrides: Any,
) -> ComparisonResult:
    """Align every reconstruction to the ground truth, score it and write the comparison files.

    ``data``: dataset NPZ path or PtychoDataset (its ``objectGuess`` is the ground truth and its
    ``xcoords``/``ycoords`` define the scanned region). ``recons``: label -> path / array /
    object (see :func:`load_reconstruction`). ``overrides`` replace fields of ``config``
    (e.g. ``psnr_convention="legacy255"``, ``phase_plane=True``).
    """
    cfg = config or CompareConfig()
    if overrides:
        cfg = CompareConfig.from_dict({**cfg.to_dict(), **overrides})
    result = compute_comparison(data, recons, cfg)
    files = write_comparison(result, out_dir, cfg)
    return replace(result, files=files)
