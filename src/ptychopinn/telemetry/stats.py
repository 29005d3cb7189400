"""Statistics for pipeline telemetry (``parity_telemetry.json``, schema 1.0).

Array statistics are accumulated in float64 over chunks of the first axis (no full-size copy),
for numpy arrays and torch tensors alike (torch is never imported here: tensors are handled
through their methods). Complex inputs are summarised by their modulus ``abs(x)``.
``min / max / mean / std`` are taken over the *finite* elements (population std); the counts
``nan_count`` and ``finite_count`` (and ``total_count``) say how many elements were left out.
A statistic with no finite element is ``None`` (JSON ``null``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: elements per chunk of the float64 passes (2 MiB of float64; cache-friendly, small peak memory)
CHUNK_ELEMS = 1 << 18

#: keys of an intensity-stage ``stats`` block, in order
STAGE_STAT_KEYS = ("shape", "dtype", "min", "max", "mean", "std", "nan_count", "finite_count", "total_count")

#: the chain ratios of ``stage_ratios``: key -> (numerator stage, denominator stage)
RATIO_STAGES: dict[str, tuple[str, str]] = {
    "raw_to_grouped": ("grouped_diffraction", "raw_diffraction"),
    "grouped_to_normalized": ("grouped_X_full", "grouped_diffraction"),
    "normalized_to_container": ("container_X", "grouped_X_full"),
    "container_to_labels": ("training_labels_Y_amp", "container_X"),
    "prediction_to_truth": ("inference_prediction", "ground_truth_amplitude"),
}
#: default tolerance of the symmetry check (|actual - 1|)
SYMMETRY_TOLERANCE = 0.05


def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "detach")


def _dtype_name(x: Any) -> str:
    return str(x.dtype).replace("torch.", "")


def _chunks_float64(x: Any, chunk_elems: int = CHUNK_ELEMS):
    """Yield float64 numpy copies of consecutive first-axis chunks of ``x`` (abs for complex).
    A tensor with a numpy view (CPU, numpy dtype) is read through it; others are moved per chunk."""
    if _is_torch(x):
        x = x.detach()
        try:
            x = x.numpy() if x.device.type == "cpu" else x  # a view, no copy
        except (TypeError, RuntimeError):  # dtypes without a numpy equivalent (bfloat16)
            pass
    if not _is_torch(x):
        x = np.asarray(x)
        if x.dtype.kind not in "biufc":
            raise TypeError(f"cannot summarise an array of dtype {x.dtype}")
    x = x.reshape(1) if x.ndim == 0 else x
    step = max(1, chunk_elems // max(int(np.prod(tuple(x.shape[1:]))), 1))
    for a in range(0, int(x.shape[0]), step):
        c = x[a:a + step]
        if _is_torch(c):
            c = c.cpu()
            c = (c.abs() if c.is_complex() else c).double().numpy()
        c = np.abs(c) if c.dtype.kind == "c" else c
        yield np.asarray(c, dtype=np.float64).reshape(-1)


def finite_or_none(v: Any) -> float | None:
    """``float(v)`` for a finite real number, else ``None`` (also for ``None``, bools and non-numbers)."""
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


class StatsAccumulator:
    """Running stage statistics over arrays/tensors fed one after another along the first axis
    (e.g. the batches a training loop builds), without keeping them.

    ``update(x)`` adds ``x`` (numpy or torch, any device; complex -> abs); ``stats()`` returns the
    block of :func:`array_stats` for the concatenation of everything added. Mean and variance
    are merged in float64 with Chan et al.'s pairwise update."""

    def __init__(self, chunk_elems: int = CHUNK_ELEMS) -> None:
        self.chunk_elems = int(chunk_elems)
        self._n = self._nan = self._total = self._rows = 0  # finite, NaN, all elements; first-axis rows
        self._mean, self._m2, self._lo, self._hi = 0.0, 0.0, math.inf, -math.inf
        self._tail: list[int] | None = None  # shape after the first axis (None: ragged)
        self._dtype: str | None = None
        self._complex = False

    def update(self, x: Any) -> StatsAccumulator:
        shape = [int(v) for v in tuple(x.shape)]
        if self._dtype is None:
            self._dtype = _dtype_name(x) if hasattr(x, "dtype") else str(np.asarray(x).dtype)
            self._tail = shape[1:]
            self._complex = bool(x.is_complex()) if _is_torch(x) else np.asarray(x).dtype.kind == "c"
        elif shape[1:] != self._tail:
            self._tail = None  # ragged: the shape is reported as the first axis only
        self._rows += shape[0] if shape else 1
        for c in _chunks_float64(x, self.chunk_elems):
            self._add(c)
        return self

    def _add(self, c: np.ndarray) -> None:
        self._total += c.size
        fin = np.isfinite(c)
        nf = int(np.count_nonzero(fin))
        if nf < c.size:
            self._nan += int(np.count_nonzero(np.isnan(c)))
        if nf == 0:
            return
        v = c if nf == c.size else c[fin]
        cm = float(v.mean())
        d = v - cm
        cm2 = float(np.einsum("i,i->", d, d))
        self._lo = min(self._lo, float(v.min()))
        self._hi = max(self._hi, float(v.max()))
        delta = cm - self._mean
        tot = self._n + nf
        self._mean += delta * nf / tot
        self._m2 += cm2 + delta * delta * self._n * nf / tot
        self._n = tot

    def stats(self) -> dict[str, Any]:
        """The stage ``stats`` block (keys :data:`STAGE_STAT_KEYS`, plus ``component`` for complex)."""
        n = self._n
        shape = [self._rows] if self._tail is None else [self._rows, *self._tail]
        out: dict[str, Any] = {
            "shape": shape,
            "dtype": self._dtype or "float64",
            "min": finite_or_none(self._lo) if n else None,
            "max": finite_or_none(self._hi) if n else None,
            "mean": finite_or_none(self._mean) if n else None,
            "std": finite_or_none(math.sqrt(max(self._m2 / n, 0.0))) if n else None,
            "nan_count": self._nan,
            "finite_count": n,
            "total_count": self._total,
        }
        if self._complex:
            out["component"] = "abs"
        return out


def array_stats(x: Any, *, chunk_elems: int = CHUNK_ELEMS) -> dict[str, Any]:
    """Stage statistics of an array or tensor (keys :data:`STAGE_STAT_KEYS`).

    Computed in float64 chunk by chunk over the first axis, over the finite elements (population
    std); complex values are summarised by ``abs``."""
    acc = StatsAccumulator(chunk_elems)
    acc.update(x)
    st = acc.stats()
    st["shape"] = [int(v) for v in tuple(x.shape)]
    return st


def gathered_stats(source: Any, index: Any, scale: float = 1.0, *, rows_per_chunk: int = 256,
                   chunk_elems: int = CHUNK_ELEMS) -> dict[str, Any]:
    """Statistics of ``source[index] * scale`` without building it (e.g. the grouped patterns
    ``X[groups]``, shape index.shape + source.shape[1:]): gathered ``rows_per_chunk`` index rows
    at a time. Works for numpy arrays and torch tensors (index of the same kind)."""
    acc = StatsAccumulator(chunk_elems)
    n = int(index.shape[0])
    for a in range(0, n, max(1, int(rows_per_chunk))):
        part = source[index[a:a + rows_per_chunk]]
        acc.update(part * scale if scale != 1.0 else part)
    st = acc.stats()
    st["shape"] = [int(v) for v in tuple(index.shape)] + [int(v) for v in tuple(source.shape[1:])]
    return st


def component_stats(x: Any) -> dict[str, Any]:
    """``{min, max, mean, std, nan_count}`` of a real array (the inference amplitude/phase blocks)."""
    s = array_stats(x)
    return {k: s[k] for k in ("min", "max", "mean", "std", "nan_count")}


def _to_numpy(x: Any) -> np.ndarray:
    if _is_torch(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def probe_stats(probe: Any) -> dict[str, Any]:
    """Amplitude / phase statistics and energy of a probe.

    ``amplitude``: min, max, mean, std, l2_norm (= sqrt(sum |P|^2)) of ``|P|``; ``phase``: min, max,
    mean, std of ``angle(P)`` in radians (-pi, pi]; ``energy``: sum |P|^2. float64 throughout."""
    p = _to_numpy(probe).astype(np.complex128)
    amp = np.abs(p)
    ph = np.angle(p)
    energy = float(np.sum(amp * amp))
    return {
        "amplitude": {
            "min": float(amp.min()), "max": float(amp.max()), "mean": float(amp.mean()),
            "std": float(amp.std()), "l2_norm": math.sqrt(energy),
        },
        "phase": {"min": float(ph.min()), "max": float(ph.max()), "mean": float(ph.mean()), "std": float(ph.std())},
        "energy": energy,
    }


def mask_stats(mask: Any) -> dict[str, Any]:
    """``{nonzero_count, total_count, coverage_fraction}`` of a probe mask."""
    m = _to_numpy(mask)
    nz = int(np.count_nonzero(m))
    tot = int(m.size)
    return {"nonzero_count": nz, "total_count": tot, "coverage_fraction": nz / tot if tot else None}


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return finite_or_none(num / den)


def stage_ratios(stages: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """The ratios of consecutive stage means, :data:`RATIO_STAGES` (``None`` when a stage is missing)."""
    means = {str(st.get("name")): (st.get("stats") or {}).get("mean") for st in stages}
    means = {k: float(m) if isinstance(m, (int, float)) else None for k, m in means.items()}
    return {k: _ratio(means.get(num), means.get(den)) for k, (num, den) in RATIO_STAGES.items()}


def expected_ratios(intensity_scale_used: float | None) -> dict[str, float | None]:
    """Expected value of each ratio when the pipeline is consistent.

    Grouping, the container and the prediction keep the scale (1); normalisation multiplies by
    ``r = 1/s`` and the training labels (count-scale amplitudes) by ``s``, where ``s`` is the
    intensity scale that was used (``None`` when unknown)."""
    s = intensity_scale_used if intensity_scale_used and intensity_scale_used > 0 else None
    return {
        "raw_to_grouped": 1.0,
        "grouped_to_normalized": (1.0 / s) if s else None,
        "normalized_to_container": 1.0,
        "container_to_labels": s,
        "prediction_to_truth": 1.0,
    }


def symmetry_check(
    ratios: Mapping[str, float | None],
    intensity_scale_used: float | None = None,
    tolerance: float = SYMMETRY_TOLERANCE,
) -> tuple[float | None, dict[str, Any]]:
    """``(full_chain_product, symmetry_check)`` from the stage ratios.

    ``full_chain_product`` is the product of every available ratio. The check divides each ratio
    by its expected value (:func:`expected_ratios`) and multiplies the quotients: ``actual`` is 1
    for a consistent chain (normalisation undone by the intensity scale). Without a known scale
    the two scale ratios are only used together (their product must be 1; the deviation is then
    attributed to ``grouped_X_full``). ``violated``: ``|actual - 1| > tolerance`` or any single
    quotient off by more than ``tolerance`` (a double normalisation compensated further down is
    still caught);
    ``primary_deviation_source`` is the stage (the numerator of a ratio) whose quotient is
    furthest from 1 in log terms (``None`` when every quotient is 1 within 1e-9); ``deviations``
    lists every quotient."""
    avail = {k: v for k, v in ratios.items() if v is not None and v > 0}
    product = math.prod(avail.values()) if avail else None
    exp = expected_ratios(intensity_scale_used)
    quot: dict[str, float] = {}
    for k, v in avail.items():
        e = exp.get(k)
        if e is not None:
            quot[k] = v / e
    if exp["grouped_to_normalized"] is None and "grouped_to_normalized" in avail and "container_to_labels" in avail:
        quot["grouped_to_normalized"] = avail["grouped_to_normalized"] * avail["container_to_labels"]
    actual = math.prod(quot.values()) if quot else None
    source = None
    if quot:
        worst = max(quot, key=lambda k: abs(math.log(quot[k])))
        if abs(math.log(quot[worst])) > 1e-9:
            source = RATIO_STAGES[worst][0]
    check = {
        "expected": 1.0,
        "actual": finite_or_none(actual),
        "tolerance": float(tolerance),
        "violated": bool(any(abs(q - 1.0) > tolerance for q in quot.values())
                         or (actual is not None and abs(actual - 1.0) > tolerance)),
        "primary_deviation_source": source,
        "deviations": {k: finite_or_none(v) for k, v in quot.items()},
        "expected_ratios": exp,
    }
    return finite_or_none(product), check


def comparison_stats(truth: Any, pred: Any, *, scaling: bool = True) -> dict[str, Any]:
    """Comparison metrics of a reconstruction component against the ground truth (same shape).

    ``mae``, ``rmse``, ``max_abs`` of ``pred - truth``; ``pearson_r``; ``bias_summary`` of
    ``truth - pred`` (mean, median, p05, p95); with ``scaling``, ``scaling_analysis``:
    ``truth_to_pred_ratio_mean`` (mean(truth)/mean(pred)), ``least_squares_scalar``
    (argmin_a ||truth - a pred||) and ``rescaled_mae`` (MAE of ``a * pred``). Non-finite pixels are
    left out. MAE, RMSE, Pearson r and the least-squares scalar are those of :mod:`ptychopinn.evaluation`."""
    from ptychopinn.evaluation.align import amplitude_scale
    from ptychopinn.evaluation.metrics import mae, mse, pearson_r

    t = _to_numpy(truth).astype(np.float64).reshape(-1)
    p = _to_numpy(pred).astype(np.float64).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"truth and prediction differ in size: {t.size} vs {p.size}")
    ok = np.isfinite(t) & np.isfinite(p)
    t, p = t[ok], p[ok]
    if t.size == 0:
        raise ValueError("no finite pixel to compare")
    bias = t - p
    out: dict[str, Any] = {
        "mae": mae(t, p),
        "rmse": math.sqrt(mse(t, p)),
        "max_abs": float(np.max(np.abs(bias))),
        "pearson_r": finite_or_none(pearson_r(t, p)) if t.size >= 2 else None,
        "bias_summary": {
            "mean": float(bias.mean()), "median": float(np.median(bias)),
            "p05": float(np.percentile(bias, 5)), "p95": float(np.percentile(bias, 95)),
        },
    }
    if scaling:
        a = amplitude_scale(t, p) if float(np.dot(p, p)) > 0 else None
        out["scaling_analysis"] = {
            "truth_to_pred_ratio_mean": _ratio(float(t.mean()), float(p.mean())),
            "least_squares_scalar": a,
            "rescaled_mae": float(np.mean(np.abs(a * p - t))) if a is not None else None,
        }
    return out


def summary_stats(x: Any, percentiles: Sequence[tuple[str, float]], *, chunk_elems: int = CHUNK_ELEMS,
                  nonzero: bool = False) -> dict[str, float]:
    """``min, max, mean, std`` (this module's engine) plus the named percentiles (numpy's linear
    interpolation) of every value of a real array, and ``nonzero_fraction`` on request."""
    from ptychopinn.errors import DataError

    a = np.asarray(x)
    if a.dtype == bool:
        a = a.astype(np.uint8)
    if a.dtype.kind not in "iuf" or a.size == 0:
        raise DataError(f"needs a non-empty real numeric array; got dtype {a.dtype}, shape {a.shape}")
    st = array_stats(a.reshape(-1), chunk_elems=chunk_elems)
    out = {k: float(st[k]) for k in ("min", "max", "mean", "std")}
    out.update({k: float(v) for (k, _), v in zip(percentiles, np.percentile(a, [q for _, q in percentiles]))})
    if nonzero:
        out["nonzero_fraction"] = np.count_nonzero(a) / a.size
    return out
