"""Compare two ``parity_telemetry.json`` files stage by stage (``ptychopinn parity-diff``).

Stages are compared in :data:`DIFF_ORDER`, then the optional stages present in either file. Each quantity by
``rel(a, b) = |a - b| / max(|a|, |b|, floor)`` (0 when a == b), ``floor`` being 1e-6 x the stage's largest magnitude,
pi for probe phases, 1 for Pearson r and 0 for counts. A stage diverges when a quantity exceeds its tolerance
(:data:`DEFAULT_TOLERANCES`) or is ``null`` in one file only; the first divergent stage is where the runs part.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ptychopinn.errors import ConfigError
from ptychopinn.telemetry.recorder import STAGE_ORDER
from ptychopinn.telemetry.recorder import read_document as load_telemetry  # noqa: F401 - checked by the schema
from ptychopinn.telemetry.stats import finite_or_none

#: comparison order (pipeline order; the intensity scale is computed after normalisation)
DIFF_ORDER: tuple[str, ...] = (
    "probe", "raw_diffraction", "grouped_diffraction", "grouped_X_full", "intensity_scale", "container_X",
    "training_labels_Y_amp", "inference_prediction", "comparison")
#: default relative tolerances (seed 003 section 5.3): probe, raw diffraction, intensity scale 1 %; others 5 %
DEFAULT_TOLERANCES: dict[str, float] = {
    name: 0.01 if name in ("probe", "raw_diffraction", "intensity_scale") else 0.05 for name in DIFF_ORDER}
#: tolerance of optional stages (pre_normalization_diffraction, training_labels_Y_I, ...)
OPTIONAL_STAGE_TOLERANCE = 0.05
#: relative floor of the denominator (x the largest magnitude in the stage)
REL_FLOOR = 1e-6

OK, DIVERGED, MISSING, ABSENT = "ok", "DIVERGED", "missing", "absent"
_STAT_KEYS = ("mean", "std", "min", "max")
_DOC_BLOCKS = ("probe", "intensity_scale", "comparison")  # compared blocks that are not intensity stages
_SCALE_KEYS = (("used_value", ("used_value",)), ("dataset_derived", ("dataset_derived", "computed_scale")),
               ("fallback", ("fallback", "computed_scale")), ("recorded_in_bundle", ("recorded_in_bundle",)),
               ("model_exp_log_scale", ("model_exp_log_scale",)))


@dataclass(frozen=True)
class RowDiff:
    """One compared quantity."""
    quantity: str
    a: float | None
    b: float | None
    rel: float | None
    status: str


@dataclass(frozen=True)
class StageDiff:
    """The comparison of one stage (``status``: ok | DIVERGED | missing | absent)."""
    name: str
    tolerance: float
    status: str
    rows: tuple[RowDiff, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class ParityDiff:
    """The result of :func:`diff_telemetry`."""
    stages: tuple[StageDiff, ...]
    first_divergent: str | None
    missing: tuple[str, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def ok(self, require_all: bool = False) -> bool:
        """No stage diverged (and, with ``require_all``, none is missing from one file)."""
        return self.first_divergent is None and not (require_all and self.missing)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _get(d: Any, keys: Sequence[str]) -> Any:
    for k in keys:
        if not isinstance(d, Mapping):
            return None
        d = d.get(k)
    return d


def rel_diff(a: float | None, b: float | None, floor: float = 0.0) -> float | None:
    """|a - b| / max(|a|, |b|, floor); 0 for a == b; ``None`` when either is missing."""
    if a is None or b is None:
        return None
    if a == b:
        return 0.0
    den = max(abs(a), abs(b), floor)
    return abs(a - b) / den if den > 0 else math.inf


def _rows(pairs: Sequence[tuple[str, Any, Any, float | None]], tol: float) -> tuple[RowDiff, ...]:
    """``pairs``: (quantity, a, b, floor or None for the relative group floor)."""
    vals = [abs(x) for _, a, b, _ in pairs for x in (finite_or_none(a), finite_or_none(b)) if x is not None]
    group_floor = REL_FLOOR * max(vals) if vals else 0.0
    out = []
    for q, a, b, floor in pairs:
        fa, fb = finite_or_none(a), finite_or_none(b)
        r = rel_diff(fa, fb, group_floor if floor is None else floor)
        ok = (fa is None and fb is None) or (r is not None and r <= tol)
        out.append(RowDiff(q, fa, fb, r, OK if ok else DIVERGED))
    return tuple(out)


def _nonfinite(s: Mapping[str, Any]) -> float | None:
    t, f = finite_or_none(s.get("total_count")), finite_or_none(s.get("finite_count"))
    return None if t is None or f is None else t - f


def _recorded(row: tuple[str, Any, Any, float | None]) -> bool:
    return finite_or_none(row[1]) is not None or finite_or_none(row[2]) is not None


def _block(doc: Mapping[str, Any], name: str) -> Any:
    """A document block, or the ``stats`` of the intensity stage ``name`` (``None`` if not recorded)."""
    if name in _DOC_BLOCKS:
        return doc.get(name)
    entry = next((st for st in doc.get("intensity_stages") or [] if isinstance(st, Mapping) and st.get("name") == name),
                 None)
    return None if entry is None else (entry.get("stats") or {})


def _groups(name: str, a: Any, b: Any) -> tuple[list[list[tuple[str, Any, Any, float | None]]], list[str]]:
    """The compared quantities of one stage, in groups sharing a relative floor, and its notes."""
    def pair(q: str, path: Sequence[str], floor: float | None = None) -> tuple[str, Any, Any, float | None]:
        return (q, _get(a, path), _get(b, path), floor)

    def note(what: str, path: Sequence[str]) -> list[str]:
        va, vb = _get(a, path), _get(b, path)
        return [] if va == vb else [f"{what} A {va} vs B {vb}"]

    if name == "probe":
        groups = []
        for part in ("pre_normalization", "post_normalization"):
            short = part.split("_")[0]
            groups.append([pair(f"{short}.amplitude.{k}", (part, "amplitude", k)) for k in _STAT_KEYS]
                          + [pair(f"{short}.energy", (part, "energy"))])
            groups.append([pair(f"{short}.phase.{k}", (part, "phase", k), math.pi) for k in ("mean", "std")])
        return groups, note("shape", ("shape",)) + note("normalisation", ("normalization", "method"))
    if name == "comparison":
        groups = [[pair(f"{part}.mae", (part, "mae"))] for part in ("amplitude", "phase")]
        groups += [[pair(f"{part}.pearson_r", (part, "pearson_r"), 1.0)] for part in ("amplitude", "phase")]
        return [g for g in groups if _recorded(g[0])], note("ground truth", ("ground_truth_source",))
    if name == "intensity_scale":
        rows = [pair(q, path) for q, path in _SCALE_KEYS]
        return [[r for r in rows if _recorded(r)]], note("used_mode", ("used_mode",))
    return ([[pair(k, (k,)) for k in _STAT_KEYS], [("nonfinite_count", _nonfinite(a), _nonfinite(b), 0.0)]],
            note("shape", ("shape",)))


def _diff_stage(a: Mapping[str, Any], b: Mapping[str, Any], name: str, tol: float) -> StageDiff:
    ba, bb = _block(a, name), _block(b, name)
    pa, pb = (bool(x) if name in _DOC_BLOCKS else x is not None for x in (ba, bb))
    if not (pa or pb):
        return StageDiff(name, tol, ABSENT)
    if not (pa and pb):
        return StageDiff(name, tol, MISSING, note=f"recorded only in {'A' if pa else 'B'}")
    groups, notes = _groups(name, ba, bb)
    rows = tuple(r for g in groups for r in _rows(g, tol))
    return StageDiff(name, tol, DIVERGED if any(r.status == DIVERGED for r in rows) else OK, rows, "; ".join(notes))


def parse_tolerances(items: Sequence[str] | None) -> dict[str, float]:
    """``['grouped_X_full=0.02', 'probe=1%']`` -> ``{stage: fraction}``; :class:`ConfigError` if bad."""
    out: dict[str, float] = {}
    known = set(DIFF_ORDER) | set(STAGE_ORDER)
    for item in items or ():
        name, sep, val = item.partition("=")
        name = name.strip()
        if not sep or name not in known:
            raise ConfigError(f"--tol '{item}': expected STAGE=FRACTION with STAGE one of {', '.join(DIFF_ORDER)}")
        try:
            v = float(val.strip()[:-1]) / 100.0 if val.strip().endswith("%") else float(val)
        except ValueError:
            raise ConfigError(f"--tol '{item}': '{val}' is not a number") from None
        if not (v >= 0 and math.isfinite(v)):
            raise ConfigError(f"--tol '{item}': tolerance must be a finite number >= 0")
        out[name] = v
    return out


def diff_telemetry(a: Mapping[str, Any], b: Mapping[str, Any],
                   tolerances: Mapping[str, float] | None = None) -> ParityDiff:
    """Compare two telemetry documents stage by stage (see the module docstring)."""
    tols = {**DEFAULT_TOLERANCES, **(tolerances or {})}
    extra = [s for s in STAGE_ORDER if s not in DIFF_ORDER and (_block(a, s) is not None or _block(b, s) is not None)]
    stages = [_diff_stage(a, b, name, float(tols.get(name, OPTIONAL_STAGE_TOLERANCE)))
              for name in (*DIFF_ORDER, *extra)]
    first = next((s.name for s in stages if s.status == DIVERGED), None)
    missing = tuple(s.name for s in stages if s.status == MISSING)
    notes: list[str] = []
    ca, cb = (_get(d, ("provenance", "dataset_source", "checksum")) for d in (a, b))
    if ca and cb:
        notes.append("same input dataset (SHA-256 match)" if ca == cb
                     else "different input datasets (SHA-256 differ): two-track comparison")
    for label, doc in (("A", a), ("B", b)):
        sym = doc.get("symmetry_check") or {}
        if sym.get("actual") is not None:
            notes.append(f"symmetry {label}: actual {sym['actual']:.6g} (tolerance {sym.get('tolerance')}) "
                         + (f"VIOLATED, largest deviation at {sym.get('primary_deviation_source')}"
                            if sym.get("violated") else "ok"))
    return ParityDiff(tuple(stages), first, missing, tuple(notes))


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.6g}"


def _fmt_rel(r: float | None) -> str:
    return "-" if r is None else "inf" if math.isinf(r) else f"{100.0 * r:.3g} %"


def render_diff(result: ParityDiff, label_a: str = "A", label_b: str = "B") -> str:
    """Plain-text report: one table per stage, then the verdict."""
    lines = [f"parity-diff  A = {label_a}", f"             B = {label_b}", ""]
    for st in result.stages:
        head = f"[{st.name}]  tolerance {100.0 * st.tolerance:g} %  status {st.status}"
        lines.append(head + (f"  ({st.note})" if st.note else ""))
        if st.rows:
            table = [("quantity", "A", "B", "rel.diff", "tol", "status")]
            table += [(r.quantity, _fmt(r.a), _fmt(r.b), _fmt_rel(r.rel), f"{100.0 * st.tolerance:g} %", r.status)
                      for r in st.rows]
            widths = [max(len(row[i]) for row in table) for i in range(6)]
            for row in table:
                lines.append("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                              for i, (c, w) in enumerate(zip(row, widths))).rstrip())
        lines.append("")
    lines += [f"note: {n}" for n in result.notes]
    if result.missing:
        lines.append("missing in one file (not compared): " + ", ".join(result.missing))
    lines.append(f"FIRST DIVERGENT STAGE: {result.first_divergent}" if result.first_divergent
                 else "all compared stages within tolerance")
    return "\n".join(lines) + "\n"
