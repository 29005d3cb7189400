"""D0 parity logger (DESIGN section 9, seed 004): dataset / probe / baseline evidence for a dose sweep.

For every ``data_p<dose>.npz`` under a dataset root: SHA-256, size, array shapes and dtypes, statistics of the
diffraction values as stored (``raw``), of ``diff / (diff.max() + 1e-12)`` (``normalized``) and of per-``scan_index``
averages (``grouped``), and the probe summary. An optional baseline ``params.dill`` (a pickle: loading it runs code, so
only trusted files; ``dill`` is imported only then) adds a parameter excerpt and metrics as ``[train, test]`` pairs.
Outputs: ``dose_parity_log.json``, ``dose_parity_log.md`` and ``probe_stats.csv``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ptychopinn._config import Config
from ptychopinn._io import sha256_file, to_plain, write_text_atomic  # sha256_file: public helper named by seed 004
from ptychopinn.data.contract import open_npz
from ptychopinn.errors import ConfigError, DataError, DependencyError
from ptychopinn.telemetry.recorder import git_info
from ptychopinn.telemetry.stats import array_stats, probe_stats

JSON_NAME, MD_NAME, CSV_NAME = "dose_parity_log.json", "dose_parity_log.md", "probe_stats.csv"
#: default ``--dataset-root`` (seed 004)
DEFAULT_DATASET_ROOT = "photon_grid_study_20250826_152459"
SCHEMA = "d0_parity_log"
SCHEMA_VERSION = "1.0"

#: keys of :func:`summarize_array`, in order
ARRAY_STAT_KEYS = ("min", "max", "mean", "std", "median", "p01", "p10", "p90", "p99", "nonzero_fraction")
#: percentiles of probe amplitude and phase: (key, q)
PROBE_PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p01", 1.0), ("p05", 5.0), ("p50", 50.0), ("p95", 95.0), ("p99", 99.0))
#: keys of each probe component block, in order
PROBE_STAT_KEYS = ("min", "max", "mean", "std", *(k for k, _ in PROBE_PERCENTILES))
#: metrics copied from params.dill as [train, test] pairs
METRIC_KEYS = ("mae", "ms_ssim", "psnr", "mse", "frc50")
#: scalar parameters copied into the baseline excerpt (missing ones are recorded as null)
EXCERPT_KEYS = ("N", "gridsize", "nimgs_train", "nimgs_test", "batch_size", "nepochs", "nphotons",
                "default_probe_scale", "probe.trainable", "probe.mask", "intensity_scale.trainable",
                "timestamp", "label")
PROBE_FLAG_KEYS = ("probe.trainable", "probe.mask")
DIFF_KEYS = ("diff3d", "diffraction")
NORM_EPS = 1e-12

_DOSE_RE = re.compile(r"^data_p(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\.npz$")
_CHUNK = 1 << 22  # elements per chunk for the mean / std passes


@dataclass(frozen=True)
class ParityLogConfig(Config):
    """Inputs of one parity-log run."""

    dataset_root: str = DEFAULT_DATASET_ROOT
    output: str = "."
    baseline_params: str | None = None
    scenario_id: str | None = None
    limit_datasets: tuple[str, ...] | None = None


def parse_photon_dose(filename: str | os.PathLike) -> float | None:
    """Photon dose encoded in a ``data_p<dose>.npz`` name (``data_p1e5.npz`` -> 1e5), else None."""
    m = _DOSE_RE.match(Path(filename).name)
    return float(m.group(1)) if m else None


def summarize_array(arr: Any, *, chunk_elems: int = _CHUNK) -> dict[str, float]:
    """:data:`ARRAY_STAT_KEYS` of all values of a real array: min, max, mean, std (population,
    float64 over chunks of ``chunk_elems``), percentiles (numpy's linear interpolation), nonzero fraction."""
    a = np.asarray(arr)
    a = a.astype(np.uint8) if a.dtype == bool else a
    if a.dtype.kind not in "iuf" or a.size == 0:
        raise DataError(f"needs a non-empty real numeric array; got dtype {a.dtype}, shape {a.shape}")
    st = array_stats(a.reshape(-1), chunk_elems=max(1, int(chunk_elems)))
    q = dict(zip(("p01", "p10", "median", "p90", "p99"), np.percentile(a, [1.0, 10.0, 50.0, 90.0, 99.0])))
    out = {k: float(st[k]) if k in st else float(q[k]) for k in ARRAY_STAT_KEYS[:-1]}
    out["nonzero_fraction"] = np.count_nonzero(a) / a.size
    return out


def summarize_grouped(diff3d: Any, scan_index: Any, where: str = "summarize_grouped: scan_index") -> dict[str, Any]:
    """:func:`summarize_array` of the per-scan averages of frame means (frames sharing a
    ``scan_index`` averaged), plus ``n_unique_scans``, ``n_patterns``, ``patterns_per_scan_min/max/mean``.
    ``scan_index``: integers, or floats that are all finite whole numbers (errors start with ``where``)."""
    d = np.asarray(diff3d)
    si = np.asarray(scan_index).reshape(-1)
    if si.dtype.kind not in "iu":
        if si.dtype.kind != "f" or not (np.all(np.isfinite(si)) and np.all(si == np.round(si))):
            raise DataError(f"{where} must hold integers; got dtype {si.dtype}")
        si = si.astype(np.int64)
    m = d.shape[0]
    if si.size != m:
        raise DataError(f"{where} has {si.size} entries for {m} frames")
    frame_means = d.reshape(m, -1).mean(axis=1, dtype=np.float64)
    uniq, inv = np.unique(si, return_inverse=True)
    inv = inv.reshape(-1)
    counts = np.bincount(inv, minlength=uniq.size)
    sums = np.bincount(inv, weights=frame_means, minlength=uniq.size)
    return {**summarize_array(sums / counts), "n_unique_scans": int(uniq.size), "n_patterns": int(m),
            "patterns_per_scan_min": int(counts.min()), "patterns_per_scan_max": int(counts.max()),
            "patterns_per_scan_mean": float(counts.mean())}


def summarize_probe(probe_array: Any) -> dict[str, Any]:
    """``shape``, ``dtype``, ``l2_norm`` and the ``amplitude`` / ``phase`` blocks (:data:`PROBE_STAT_KEYS`)
    of the probe summary :func:`~ptychopinn.telemetry.stats.probe_stats`."""
    p = np.asarray(probe_array)
    if p.dtype.kind not in "iufc" or p.size == 0:
        raise DataError(f"summarize_probe: needs a non-empty numeric array; got dtype {p.dtype}, shape {p.shape}")
    s = probe_stats(p, PROBE_PERCENTILES)
    return {"shape": list(p.shape), "dtype": str(p.dtype), "l2_norm": s["amplitude"].pop("l2_norm"),
            "amplitude": s["amplitude"], "phase": s["phase"]}


def load_params(path: str | os.PathLike) -> dict[str, Any]:
    """A baseline ``params.dill`` unpickled with dill (runs code from the file: trusted files only)
    as plain Python types; DependencyError without dill, DataError naming the file if unreadable."""
    try:
        import dill  # optional dependency, imported only when needed
    except ImportError:
        raise DependencyError(f"{path}: reading params.dill needs the optional dependency 'dill' "
                              "(pip install dill)") from None
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: params file not found")
    try:
        with open(p, "rb") as fh:
            obj = dill.load(fh)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad input file
        msg = " ".join(str(exc).split())[:200]
        raise DataError(f"{p}: cannot unpickle params file ({exc.__class__.__name__}: {msg})") from None
    params = obj if isinstance(obj, Mapping) else getattr(obj, "__dict__", None)
    if not isinstance(params, Mapping):
        raise DataError(f"{p}: expected a dict of parameters; got {type(obj).__name__}")
    return to_plain(params, max_list=64)


def _as_float(v: Any) -> float | None:
    while isinstance(v, list) and len(v) == 1:
        v = v[0]
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        return None
    try:
        return float(v)
    except ValueError:
        return None


def _as_pair(v: Any) -> Any:
    """A metric as ``[train, test]``; values that are not a pair are copied unchanged."""
    if isinstance(v, Mapping) and "train" in v and "test" in v:
        v = [v["train"], v["test"]]
    if isinstance(v, list) and len(v) == 2:
        return [_as_float(x) if _as_float(x) is not None else x for x in v]
    return v


def params_excerpt(params: Mapping[str, Any]) -> dict[str, Any]:
    """The seed's excerpt of a (plain) params dict: scalars, loss weights, intensity scale, metrics."""
    out: dict[str, Any] = {k: params.get(k) for k in EXCERPT_KEYS}
    out["loss_weights"] = {k: params[k] for k in sorted(params) if k.endswith("_weight")}
    out["intensity_scale_value"] = _as_float(params.get("intensity_scale", params.get("intensity_scale_value")))
    out["metrics"] = {k: _as_pair(params.get(k)) for k in METRIC_KEYS}
    out["metrics_pair_order"] = ["train", "test"]
    return out


def git_sha(cwd: str | os.PathLike | None = None) -> str:
    """``git rev-parse HEAD`` in ``cwd`` (default: the current directory), or ``"unknown"``."""
    return git_info(os.getcwd() if cwd is None else cwd)["commit_hash"]


def parse_limit(text: str | None) -> tuple[str, ...] | None:
    """``"a.npz, b.npz"`` -> ``("a.npz", "b.npz")`` (order kept, duplicates dropped); None stays None."""
    if text is None:
        return None
    return tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))


def discover_datasets(root: str | os.PathLike, limit: Sequence[str] | None = None) -> list[Path]:
    """Dataset files under ``root`` sorted by (photon dose, name): every ``data_p<dose>.npz``, or
    exactly the ``limit`` names (relative to ``root``; a missing one is a DataError)."""
    root = Path(root)
    files = [root / n for n in limit] if limit is not None else [  # root / an absolute name is that name
        p for p in root.glob("data_p*.npz") if p.is_file() and parse_photon_dose(p) is not None]
    missing = next((p for p in files if not p.is_file()), None)
    if missing is not None:
        raise DataError(f"{missing}: dataset listed in --limit-datasets not found")
    doses = {p: parse_photon_dose(p) for p in files}
    return sorted(doses, key=lambda p: (doses[p] is None, doses[p] or 0.0, p.name))


def _frames_first(p: str, key: str, diff: np.ndarray, m: int | None) -> np.ndarray:
    """View of ``diff`` with frames on axis 0 (accepts the legacy (N, N, M) layout)."""
    if diff.ndim < 2:
        raise DataError(f"{p}: key '{key}' must have a frame axis and pixel axes; got shape {diff.shape}")
    if m is None or diff.shape[0] == m:
        return diff
    if diff.shape[-1] == m:
        return np.moveaxis(diff, -1, 0)
    raise DataError(f"{p}: key 'scan_index' has {m} entries but '{key}' has shape {diff.shape}")


def summarize_dataset(path: str | os.PathLike, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The parity entry of one NPZ (see the module docstring); errors name the file and key."""
    path = Path(path)
    p = str(path)
    z = open_npz(path)  # DataError "<path>: file not found" for a missing file
    shapes = {k: {"shape": [int(s) for s in a.shape], "dtype": str(a.dtype)} for k, a in z.items()}
    dkey = next((k for k in DIFF_KEYS if k in z), None)
    if dkey is None:
        raise DataError(f"{p}: key 'diff3d' missing (also looked for 'diffraction')")
    if "probeGuess" not in z:
        raise DataError(f"{p}: key 'probeGuess' missing")
    diff, probe = z[dkey], z["probeGuess"]
    if diff.dtype.kind not in "iuf":
        raise DataError(f"{p}: key '{dkey}' has unsupported dtype {diff.dtype} (needs real numbers)")
    if diff.size == 0:
        raise DataError(f"{p}: key '{dkey}' is empty")
    if probe.dtype.kind not in "iufc" or probe.size == 0:
        raise DataError(f"{p}: key 'probeGuess' has unsupported dtype {probe.dtype} or is empty")
    si = z["scan_index"].reshape(-1) if "scan_index" in z else None
    frames = _frames_first(p, dkey, diff, None if si is None else si.size)
    grouped = summarize_grouped(frames, np.zeros(len(frames), np.int64) if si is None else si, f"{p}: key 'scan_index'")
    dmax = float(diff.max())
    dose = parse_photon_dose(path)
    return {
        "filename": path.name, "path": p, "photon_dose": dose,
        "photon_dose_label": _DOSE_RE.match(path.name).group(1) if dose is not None else None,
        "sha256": sha256_file(path), "size_bytes": int(path.stat().st_size), "arrays": shapes, "diffraction_key": dkey,
        "n_patterns": int(frames.shape[0]),
        "stage_stats": {"raw_diffraction": summarize_array(diff), "normalized_diffraction": {
            **summarize_array(diff / (dmax + NORM_EPS)), "divisor": dmax + NORM_EPS}, "grouped_intensity": grouped},
        "grouped_counts": {"scan_index_source": "default_zeros" if si is None else "scan_index", **{
            k: grouped[k] for k in ("n_patterns", "n_unique_scans", "patterns_per_scan_min", "patterns_per_scan_max")}},
        "probe": {**summarize_probe(probe), "flags": {k: (params.get(k) if params is not None else None)
                                                       for k in PROBE_FLAG_KEYS}},
    }


def build_parity_log(config: ParityLogConfig, datasets: Iterable[str | os.PathLike] | None = None) -> dict[str, Any]:
    """Assemble the whole parity log (nothing is written); ``datasets`` defaults to discovery.
    ConfigError when no dataset is found, DataError / DependencyError for bad inputs."""
    files = list(datasets) if datasets is not None else discover_datasets(config.dataset_root, config.limit_datasets)
    if not files:
        raise ConfigError(f"{config.dataset_root}: no dataset found (no data_p*.npz files)")
    params = load_params(config.baseline_params) if config.baseline_params else None
    baseline = None if params is None else {"params_file": str(config.baseline_params),
                                            "sha256": sha256_file(config.baseline_params),
                                            "excerpt": params_excerpt(params)}
    entries = [summarize_dataset(f, params) for f in files]
    return {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION,
        "metadata": {
            "scenario_id": config.scenario_id,
            "dataset_root": str(config.dataset_root),
            "baseline_params": None if config.baseline_params is None else str(config.baseline_params),
            "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "git_sha": git_sha(),
            "limit_datasets": None if config.limit_datasets is None else list(config.limit_datasets),
            "tool": "ptychopinn parity-log",
        },
        "definitions": {
            "raw_diffraction": "statistics of the diffraction array values as stored",
            "normalized_diffraction": "statistics of diff / (diff.max() + 1e-12)",
            "grouped_intensity": ("mean of each frame's stored values, averaged per scan_index "
                                  "(np.bincount); statistics over those per-scan averages"),
            "percentiles": "numpy linear interpolation; std is the population std (ddof=0)",
            "probe_phase": "np.angle, radians in [-pi, pi]",
            "metrics": "[train, test] pairs copied from params.dill",
            "non_finite": "NaN / Inf values are written as null",
        },
        "datasets": entries, "baseline": baseline,
    }


def _fmt(v: Any) -> str:
    if v is None or isinstance(v, (bool, float)):
        return "n/a" if v is None else str(v) if isinstance(v, bool) else f"{v:.6g}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, dict):
        return ", ".join(f"{k}={_fmt(x)}" for k, x in v.items())
    return str(v).replace("|", "\\|").replace("\n", " ")


def _table(title: str | None, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = [] if title is None else [title, ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_fmt(c) for c in r) + " |" for r in rows]
    return lines + [""]


def render_markdown(log: Mapping[str, Any]) -> str:
    """Human-readable digest quoting the JSON values."""
    md, ds = log["metadata"], log["datasets"]
    out = [
        f"# D0 dose parity log: {md.get('scenario_id') or 'unnamed scenario'}", "", "## Problem statement", "",
        "Maintainers need evidence that the dose-sweep datasets, the probe and the baseline run used",
        "for D0 parity are the ones the reference results were produced from. This digest quotes",
        f"`{JSON_NAME}`: per-dataset checksums and array layouts, diffraction statistics at three",
        "stages (raw as stored; normalised by `max + 1e-12`; per-`scan_index` averages of frame means),",
        "probe amplitude/phase percentiles and the baseline parameters and metrics. Compare these",
        "values against another run's log to locate a divergence.", "",
    ]
    out += _table("## Metadata", ["field", "value"], [(k, md.get(k)) for k in (
        "scenario_id", "dataset_root", "baseline_params", "timestamp", "git_sha", "limit_datasets")])
    diffs = [e["arrays"][e["diffraction_key"]] for e in ds]
    out += _table("## Datasets", ["file", "photon dose", "patterns", "diff shape", "diff dtype", "size (bytes)",
                                  "SHA-256"],
                  [(e["filename"], e["photon_dose_label"] or e["photon_dose"], e["n_patterns"], str(tuple(d["shape"])),
                    d["dtype"], e["size_bytes"], f"`{e['sha256']}`") for e, d in zip(ds, diffs)])
    out += _table("### Arrays", ["file", "key", "shape", "dtype"],
                  [(e["filename"], k, str(tuple(a["shape"])), a["dtype"]) for e in ds for k, a in e["arrays"].items()])
    for stage in ("raw_diffraction", "normalized_diffraction", "grouped_intensity"):
        keys = (*ARRAY_STAT_KEYS, *(["n_unique_scans"] if stage == "grouped_intensity" else []))
        out += _table(f"## Stage: {stage}", ["file", *keys],
                      [(e["filename"], *(e["stage_stats"][stage][k] for k in keys)) for e in ds])
    out += _table("## Probe", ["file", "component", *PROBE_STAT_KEYS, "l2_norm"],
                  [(e["filename"], c, *(e["probe"][c][k] for k in PROBE_STAT_KEYS), e["probe"]["l2_norm"])
                   for e in ds for c in ("amplitude", "phase")])
    flags = ds[0]["probe"]["flags"] if ds else {}
    out += [f"Probe flags (from params): {_fmt(flags)}", ""]
    b = log.get("baseline")
    out += ["## Baseline parameters", ""]
    if not b:
        out += ["No `--baseline-params` given.", ""]
    else:
        ex = b["excerpt"]
        out += [f"File: `{b['params_file']}` (SHA-256 `{b['sha256']}`)", ""]
        out += _table(None, ["parameter", "value"], [*((k, ex.get(k)) for k in EXCERPT_KEYS),
                                                     *ex["loss_weights"].items(),
                                                     ("intensity_scale_value", ex["intensity_scale_value"])])
        metrics = {k: ex["metrics"].get(k) for k in METRIC_KEYS}
        out += _table("### Metrics (train, test)", ["metric", "train", "test"], [
            (k, v[0], v[1]) if isinstance(v, list) and len(v) == 2 else (k, v, None) for k, v in metrics.items()])
    out += ["## Definitions", ""]
    out += [f"- **{k}**: {v}" for k, v in log.get("definitions", {}).items()] + [""]
    return "\n".join(out)


def render_probe_csv(log: Mapping[str, Any]) -> str:
    """One row per dataset and probe component (amplitude, phase)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["filename", "photon_dose", "component", *PROBE_STAT_KEYS, "l2_norm"])
    for e in log["datasets"]:
        for c in ("amplitude", "phase"):
            s = e["probe"][c]
            w.writerow([e["filename"], "" if e["photon_dose"] is None else repr(e["photon_dose"]), c,
                        *(repr(float(s[k])) for k in PROBE_STAT_KEYS), repr(float(e["probe"]["l2_norm"]))])
    return buf.getvalue()


def write_parity_log(log: Mapping[str, Any], output_dir: str | os.PathLike) -> dict[str, Path]:
    """Render all three outputs first (the JSON strict: non-finite floats become null), then write
    each atomically into ``output_dir``."""
    texts = {JSON_NAME: json.dumps(to_plain(log), indent=2, allow_nan=False) + "\n",
             MD_NAME: render_markdown(log), CSV_NAME: render_probe_csv(log)}
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: --output exists and is not a directory")
    return {name: write_text_atomic(out / name, text) for name, text in texts.items()}
