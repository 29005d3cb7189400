"""Statistics for pipeline telemetry (``parity_telemetry.json``, schema 1.0).

Arrays (numpy or torch, any device; complex -> ``abs``) are summarised in float64, chunk by chunk along the first axis:
``min / max / mean / std`` (population) over the finite elements, with ``nan_count``, ``finite_count`` and
``total_count``; a statistic with no finite element is ``None``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: elements per chunk of the float64 passes (2 MiB of float64)
CHUNK_ELEMS = 1 << 18
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


def _to_numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if _is_torch(x) else np.asarray(x)


def _chunks_float64(x: Any, chunk_elems: int = CHUNK_ELEMS):
    """Float64 copies of consecutive first-axis chunks of ``x`` (abs for complex); a CPU tensor
    with a numpy dtype is read through a numpy view, others are moved chunk by chunk."""
    if _is_torch(x):
        x = x.detach()
        if x.device.type == "cpu":
            with contextlib.suppress(TypeError, RuntimeError):  # no numpy equivalent (bfloat16): moved chunk by chunk
                x = x.numpy()
    else:
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
    """Stage statistics of arrays fed one after another along the first axis (e.g. a training
    loop's batches) without keeping them; mean and variance merged with Chan et al.'s update."""

    def __init__(self, chunk_elems: int = CHUNK_ELEMS) -> None:
        self.chunk_elems = int(chunk_elems)
        self._n = self._nan = self._total = self._rows = 0  # finite, NaN, all elements; first-axis rows
        self._mean, self._m2, self._lo, self._hi = 0.0, 0.0, math.inf, -math.inf
        self._tail: list[int] | None = None  # shape after the first axis (None: ragged)
        self._dtype: str | None = None

    def update(self, x: Any) -> StatsAccumulator:
        shape = [int(v) for v in tuple(x.shape)]
        if self._dtype is None:
            self._dtype, self._tail = _dtype_name(x), shape[1:]
        elif shape[1:] != self._tail:
            self._tail = None
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
        self._lo, self._hi = min(self._lo, float(v.min())), max(self._hi, float(v.max()))
        delta, tot = cm - self._mean, self._n + nf
        self._mean += delta * nf / tot
        self._m2 += cm2 + delta * delta * self._n * nf / tot
        self._n = tot

    def stats(self) -> dict[str, Any]:
        """The stage ``stats`` block (plus ``component: abs`` for complex input)."""
        n = self._n  # without a finite element: min / max stay infinite, mean / std are None
        mean, std = (self._mean, math.sqrt(max(self._m2 / n, 0.0))) if n else (None, None)
        out: dict[str, Any] = {
            "shape": [self._rows] if self._tail is None else [self._rows, *self._tail],
            "dtype": self._dtype or "float64", "min": finite_or_none(self._lo), "max": finite_or_none(self._hi),
            "mean": finite_or_none(mean), "std": finite_or_none(std),
            "nan_count": self._nan, "finite_count": n, "total_count": self._total}
        if "complex" in out["dtype"]:
            out["component"] = "abs"
        return out


def array_stats(x: Any, *, chunk_elems: int = CHUNK_ELEMS) -> dict[str, Any]:
    """Stage statistics of one array or tensor."""
    st = StatsAccumulator(chunk_elems).update(x).stats()
    st["shape"] = [int(v) for v in tuple(x.shape)]
    return st


def gathered_stats(source: Any, index: Any, scale: float = 1.0, *, rows_per_chunk: int = 256,
                   chunk_elems: int = CHUNK_ELEMS) -> dict[str, Any]:
    """Statistics of ``source[index] * scale`` (e.g. ``X[groups]``) without building it, gathered
    ``rows_per_chunk`` index rows at a time (numpy, or torch with a torch index)."""
    acc = StatsAccumulator(chunk_elems)
    for a in range(0, int(index.shape[0]), max(1, int(rows_per_chunk))):
        part = source[index[a:a + rows_per_chunk]]
        acc.update(part * scale if scale != 1.0 else part)
    st = acc.stats()
    st["shape"] = [int(v) for v in tuple(index.shape)] + [int(v) for v in tuple(source.shape[1:])]
    return st


def component_stats(x: Any) -> dict[str, Any]:
    """``{min, max, mean, std, nan_count}`` of a real array (the inference amplitude/phase blocks)."""
    s = array_stats(x)
    return {k: s[k] for k in ("min", "max", "mean", "std", "nan_count")}


def probe_stats(probe: Any, percentiles: Sequence[tuple[str, float]] = ()) -> dict[str, Any]:
    """The probe summary (telemetry and parity log), in float64 (complex128) throughout.

    ``amplitude`` (of ``|P|``) and ``phase`` (``angle(P)``, radians): min, max, mean, std (population)
    and the named ``percentiles`` (key, q); ``amplitude.l2_norm`` = sqrt(energy), ``energy`` = sum |P|^2."""
    p = _to_numpy(probe).astype(np.complex128)
    amp = np.abs(p)

    def block(a: np.ndarray) -> dict[str, float]:
        out = {"min": float(a.min()), "max": float(a.max()), "mean": float(a.mean()), "std": float(a.std())}
        if percentiles:
            out.update((k, float(v)) for (k, _), v in zip(percentiles, np.percentile(a, [q for _, q in percentiles])))
        return out

    energy = float(np.sum(amp * amp))
    return {"amplitude": {**block(amp), "l2_norm": math.sqrt(energy)}, "phase": block(np.angle(p)), "energy": energy}


def mask_stats(mask: Any) -> dict[str, Any]:
    """``{nonzero_count, total_count, coverage_fraction}`` of a probe mask."""
    m = _to_numpy(mask)
    nz, tot = int(np.count_nonzero(m)), int(m.size)
    return {"nonzero_count": nz, "total_count": tot, "coverage_fraction": nz / tot if tot else None}


def _ratio(num: float | None, den: float | None) -> float | None:
    return None if num is None or den is None or den == 0 else finite_or_none(num / den)


def stage_ratios(stages: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """The ratios of stage means, :data:`RATIO_STAGES` (``None`` when a stage is missing)."""
    means = {str(st.get("name")): finite_or_none((st.get("stats") or {}).get("mean")) for st in stages}
    return {k: _ratio(means.get(num), means.get(den)) for k, (num, den) in RATIO_STAGES.items()}


def expected_ratios(intensity_scale_used: float | None) -> dict[str, float | None]:
    """Each ratio's value in a consistent pipeline: 1, except normalisation (``1/s``) and the
    count-scale labels (``s``), ``s`` the intensity scale used (``None`` when unknown)."""
    s = intensity_scale_used if intensity_scale_used and intensity_scale_used > 0 else None
    return {"raw_to_grouped": 1.0, "grouped_to_normalized": (1.0 / s) if s else None,
            "normalized_to_container": 1.0, "container_to_labels": s, "prediction_to_truth": 1.0}


def symmetry_check(ratios: Mapping[str, float | None], intensity_scale_used: float | None = None,
                   tolerance: float = SYMMETRY_TOLERANCE) -> tuple[float | None, dict[str, Any]]:
    """``(full_chain_product, symmetry_check)`` from the stage ratios.

    Each ratio is divided by its expected value (without a known scale the two scale ratios are
    used as one product); ``actual`` is the product of these quotients, 1 for a consistent chain.
    ``violated``: ``actual`` or any single quotient off 1 by more than ``tolerance``;
    ``primary_deviation_source``: the numerator stage of the quotient furthest from 1 in log terms."""
    avail = {k: v for k, v in ratios.items() if v is not None and v > 0}
    product = math.prod(avail.values()) if avail else None
    exp = expected_ratios(intensity_scale_used)
    quot = {k: v / exp[k] for k, v in avail.items() if exp.get(k) is not None}
    if exp["grouped_to_normalized"] is None and "grouped_to_normalized" in avail and "container_to_labels" in avail:
        quot["grouped_to_normalized"] = avail["grouped_to_normalized"] * avail["container_to_labels"]
    actual = math.prod(quot.values()) if quot else None
    worst = max(quot, key=lambda k: abs(math.log(quot[k])), default=None)
    source = RATIO_STAGES[worst][0] if worst is not None and abs(math.log(quot[worst])) > 1e-9 else None
    violated = (any(abs(q - 1.0) > tolerance for q in quot.values())
                or (actual is not None and abs(actual - 1.0) > tolerance))
    return finite_or_none(product), {
        "expected": 1.0, "actual": finite_or_none(actual), "tolerance": float(tolerance), "violated": bool(violated),
        "primary_deviation_source": source, "deviations": {k: finite_or_none(v) for k, v in quot.items()},
        "expected_ratios": exp}


def comparison_stats(truth: Any, pred: Any, *, scaling: bool = True) -> dict[str, Any]:
    """Metrics of a reconstruction component against the ground truth over the finite pixels:
    ``mae``, ``rmse``, ``max_abs``, ``pearson_r``, ``bias_summary`` of ``truth - pred`` and, with
    ``scaling``, ``scaling_analysis``. MAE, MSE, Pearson r and the least-squares amplitude scale
    are :mod:`ptychopinn.evaluation`'s."""
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
        "mae": mae(t, p), "rmse": math.sqrt(mse(t, p)), "max_abs": float(np.max(np.abs(bias))),
        "pearson_r": finite_or_none(pearson_r(t, p)) if t.size >= 2 else None,
        "bias_summary": {"mean": float(bias.mean()), "median": float(np.median(bias)),
                         "p05": float(np.percentile(bias, 5)), "p95": float(np.percentile(bias, 95))},
    }
    if scaling:
        a = amplitude_scale(t, p) if float(np.dot(p, p)) > 0 else None
        out["scaling_analysis"] = {"truth_to_pred_ratio_mean": _ratio(float(t.mean()), float(p.mean())),
                                   "least_squares_scalar": a,
                                   "rescaled_mae": mae(t, a * p) if a is not None else None}
    return out
