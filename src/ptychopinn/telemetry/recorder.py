"""Pipeline telemetry recorder: ``parity_telemetry.json`` (schema 1.0, DESIGN section 9, seed 003; docs/parity.md).

Each ``simulate`` / ``train`` / ``infer`` / ``compare`` invocation opens the one file (:meth:`TelemetryRecorder.open`),
adds its blocks and its provenance (time, git state, versions) and calls :meth:`TelemetryRecorder.write`, which
recomputes the stage ratios and the symmetry check, checks the document against ``parity_telemetry.schema.json``
(:func:`validate_telemetry`, the one type check of every block) and writes it atomically. Unrecorded blocks are null.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import subprocess
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata as _md
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ptychopinn._io import read_json, sha256_file, to_plain, write_json_atomic
from ptychopinn.errors import ConfigError, DataError
from ptychopinn.telemetry import stats as _st

SCHEMA_VERSION = "1.0"
SCHEMA_FILE = "parity_telemetry.schema.json"
#: pipeline label of a new file when none is given (``--pipeline``)
DEFAULT_PIPELINE = "ptychopinn"
#: required intensity stages, in pipeline order (seed 003 section 2.5)
REQUIRED_STAGES: tuple[str, ...] = ("raw_diffraction", "grouped_diffraction", "grouped_X_full", "container_X",
                                    "training_labels_Y_amp", "inference_prediction")
#: canonical order of every stage name the recorder accepts (required + optional)
STAGE_ORDER: tuple[str, ...] = (
    "raw_diffraction", "grouped_diffraction", "pre_normalization_diffraction", "grouped_X_full", "container_X",
    "training_labels_Y_amp", "training_labels_Y_I", "scaler_output", "inference_prediction", "ground_truth_amplitude")
#: blocks set with :meth:`TelemetryRecorder.set_block`
BLOCKS: tuple[str, ...] = ("training", "inference", "comparison")
#: keys of the training block (seed 003 section 2.8), the argument order of :func:`training_block`
TRAINING_KEYS: tuple[str, ...] = (
    "epochs_completed", "early_stopped", "early_stop_epoch", "final_loss", "final_val_loss", "nan_detected",
    "first_nan_epoch", "history_artifact", "checkpoint_artifact")

DATASET_DERIVED_FORMULA = "sqrt(mean_patterns sum_xy X^2) / (N/2)  (X: measured amplitudes, count units)"
FALLBACK_FORMULA = "sqrt(nphotons) / (N/2)"
SPEC_REFERENCE = "DESIGN.md section 2 (intensity scale); seed 003 section 2.7"
_MODE_ALIASES = {"dataset_derived": "dataset_derived", "data": "dataset_derived",
                 "fallback": "fallback", "closed_form": "fallback"}


def utc_timestamp() -> str:
    """Current UTC time as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _git(args: Sequence[str], cwd: Path) -> str | None:
    try:
        r = subprocess.run(["git", *args], check=False, cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def git_info(repo_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """``{commit_hash, branch, dirty}`` of the git checkout holding ``repo_dir`` (default: the
    installed ptychopinn sources); ``'unknown'`` / ``None`` outside a checkout."""
    d = Path(repo_dir) if repo_dir is not None else Path(__file__).resolve().parent
    sha = _git(["rev-parse", "HEAD"], d) if d.is_dir() else None
    if not sha or not all(c in "0123456789abcdef" for c in sha):
        return {"commit_hash": "unknown", "branch": None, "dirty": None}
    status = _git(["status", "--porcelain", "--untracked-files=no"], d)
    return {"commit_hash": sha, "branch": _git(["rev-parse", "--abbrev-ref", "HEAD"], d) or None,
            "dirty": None if status is None else bool(status)}


def environment_versions() -> dict[str, str | None]:
    """Python, torch, numpy and ptychopinn versions (from package metadata; torch is not imported)."""
    from ptychopinn import __version__

    def version(dist: str) -> str | None:
        try:
            return _md.version(dist)
        except _md.PackageNotFoundError:
            return None

    return {"python_version": platform.python_version(), "torch_version": version("torch"),
            "numpy_version": np.__version__, "ptychopinn_version": version("ptychopinn") or __version__}


def _opt_float(v: Any, what: str) -> float | None:
    try:
        return None if v is None else _st.finite_or_none(float(v))
    except (TypeError, ValueError):
        raise ConfigError(f"telemetry: {what} must be a number; got {v!r}") from None


def training_block(*values: Any) -> dict[str, Any]:
    """The training block from values in :data:`TRAINING_KEYS` order (missing trailing ones: ``None``)."""
    return dict(zip(TRAINING_KEYS, (*values, *(None,) * (len(TRAINING_KEYS) - len(values)))))


def load_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``parity_telemetry.json`` shipped with the package."""
    return json.loads(resources.files("ptychopinn.telemetry").joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))


def validate_telemetry(doc: Any, where: str = "telemetry") -> str | None:
    """Check ``doc`` against the schema: ``None`` when checked, a note when ``jsonschema`` is not
    installed (check skipped); :class:`DataError` naming ``where`` and the first failing key."""
    try:
        import jsonschema
    except ImportError:
        return "jsonschema is not installed; telemetry not validated against the schema"
    errors = sorted(jsonschema.Draft202012Validator(load_schema()).iter_errors(doc),
                    key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        key, msg = "/".join(map(str, errors[0].absolute_path)) or "<root>", errors[0].message
        msg = msg if len(msg) <= 160 else msg[:157] + "..."
        raise DataError(f"{where}: key '{key}': {msg} (schema {SCHEMA_VERSION}; {len(errors)} error(s))")
    return None


def empty_document(pipeline: str = DEFAULT_PIPELINE, scenario: str | None = None) -> dict[str, Any]:
    """A schema-1.0 document with every block present and nothing recorded."""
    return {
        "schema_version": SCHEMA_VERSION, "timestamp": utc_timestamp(), "pipeline": pipeline, "scenario": scenario,
        "provenance": {
            "commit_hash": "unknown", "branch": None, "dirty": None, "environment": environment_versions(),
            "seeds": {"object_seed": None, "sim_seed": None, "training_seed": None},
            "dataset_source": {"type": None, "path": None, "checksum": None, "provenance_chain": None},
            "invocations": []},
        "configuration": {}, "probe": None, "intensity_stages": [], "stage_ratios": {}, "full_chain_product": None,
        "symmetry_check": {"expected": 1.0, "actual": None, "tolerance": _st.SYMMETRY_TOLERANCE,
                           "violated": False, "primary_deviation_source": None},
        "intensity_scale": None, "training": None, "inference": None, "comparison": None}


def used_scale(block: Mapping[str, Any] | None) -> float | None:
    """The intensity scale that was used, from an ``intensity_scale`` block (``None`` if unknown)."""
    block = block or {}
    sub = block.get(block.get("used_mode") or "")
    found = (block.get("used_value"), sub.get("computed_scale") if isinstance(sub, Mapping) else None,
             block.get("recorded_in_bundle"))
    v = next((x for x in found if x is not None), None)
    return float(v) if isinstance(v, (int, float)) and v > 0 else None


def finalize_document(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``doc`` with stages in canonical order, fresh ``stage_ratios``,
    ``full_chain_product``, ``symmetry_check`` and timestamp."""
    out = copy.deepcopy(dict(doc))
    rank = {n: i for i, n in enumerate(STAGE_ORDER)}  # stable sort: unknown names keep their order, last
    out["intensity_stages"] = sorted(out.get("intensity_stages") or [],
                                     key=lambda s: rank.get(str(s.get("name")), len(STAGE_ORDER)))
    ratios = _st.stage_ratios(out["intensity_stages"])
    tol = (out.get("symmetry_check") or {}).get("tolerance", _st.SYMMETRY_TOLERANCE)
    out["full_chain_product"], out["symmetry_check"] = _st.symmetry_check(
        ratios, used_scale(out.get("intensity_scale")), float(tol))
    out.update(stage_ratios=ratios, timestamp=utc_timestamp())
    return to_plain(out)


def read_document(path: str | os.PathLike, validate: bool = True) -> dict[str, Any]:
    """A telemetry file as a dict; :class:`DataError` (one line) when it is unreadable, not a JSON
    object, not schema 1.0 or (with ``validate``) fails the schema (``parity-diff``'s reader)."""
    doc = read_json(Path(path), "telemetry file", error=DataError, expect=dict)
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise DataError(f"{path}: key 'schema_version': expected '{SCHEMA_VERSION}'; got {doc.get('schema_version')!r}")
    if validate:
        validate_telemetry(doc, where=str(path))
    return doc


class TelemetryRecorder:
    """Builds (or extends) one ``parity_telemetry.json``; ``pipeline`` / ``scenario`` labels are kept
    from an existing file when ``None``; ``command`` is recorded in ``provenance.invocations``."""

    def __init__(self, path: str | os.PathLike, pipeline: str | None = None, scenario: str | None = None,
                 command: str | None = None) -> None:
        self.path = Path(path)
        if pipeline is not None and not (isinstance(pipeline, str) and pipeline.strip()):
            raise ConfigError(f"telemetry: pipeline name must be a non-empty string; got {pipeline!r}")
        self.pipeline, self.scenario, self.command = pipeline, scenario, command
        self.validation_note: str | None = None
        self._doc = empty_document(pipeline or DEFAULT_PIPELINE, scenario)

    @classmethod
    def open(cls, path: str | os.PathLike, pipeline: str | None = None, scenario: str | None = None,
             command: str | None = None) -> TelemetryRecorder:
        """A recorder that extends ``path`` when it exists (see :meth:`load_existing`)."""
        rec = cls(path, pipeline, scenario, command)
        rec.load_existing()
        return rec

    def load_existing(self) -> bool:
        """Continue from ``path`` if it exists (earlier blocks kept until replaced); returns whether
        it did. :class:`DataError` for a file that is not a schema-1.0 JSON object."""
        if not self.path.exists():
            return False
        self._doc = {**empty_document(self.pipeline or DEFAULT_PIPELINE, self.scenario),
                     **read_document(self.path, validate=False)}
        self._doc.update({k: v for k, v in (("pipeline", self.pipeline), ("scenario", self.scenario)) if v is not None})
        return True

    def set_provenance(self, dataset_path: str | os.PathLike | None = None, seeds: Mapping[str, Any] | None = None,
                       dataset_type: str | None = None, provenance_chain: str | None = None,
                       repo_dir: str | os.PathLike | None = None) -> None:
        """Record git state, versions, seeds (merged into earlier ones), the dataset source (with
        the SHA-256 of ``dataset_path``; type ``npz_file`` by default) and this invocation."""
        prov, git = self._doc.setdefault("provenance", {}), git_info(repo_dir)
        prov.update(git, environment=environment_versions())
        merged = prov["seeds"] = {"object_seed": None, "sim_seed": None, "training_seed": None,
                                  **(prov.get("seeds") or {})}
        merged.update({str(k): None if v is None else int(v) for k, v in (seeds or {}).items()
                       if v is not None or k not in merged})
        src = prov["dataset_source"] = {"type": None, "path": None, "checksum": None, "provenance_chain": None,
                                        **(prov.get("dataset_source") or {})}
        if dataset_path is not None:
            src.update(path=os.fspath(dataset_path), checksum=sha256_file(dataset_path))
        src["type"] = dataset_type or src["type"] or ("npz_file" if dataset_path is not None else None)
        if provenance_chain is not None:
            src["provenance_chain"] = provenance_chain
        prov["invocations"] = [*(prov.get("invocations") or []), {
            "command": self.command, "timestamp": utc_timestamp(), "commit_hash": git["commit_hash"],
            "dirty": git["dirty"]}]

    def set_configuration(self, config: Mapping[str, Any]) -> None:
        """Merge ``config`` (the seed's keys, e.g. N, gridsize, loss_weights; others are kept) into
        the configuration block."""
        self._doc["configuration"] = {**(self._doc.get("configuration") or {}), **to_plain(config)}

    def record_probe(self, pre: Any, post: Any | None = None, method: str = "none", factor: float | None = 1.0,
                     source_type: str = "idealized", path: str | os.PathLike | None = None, *,
                     probe_scale: float | None = None, probe_big: bool | None = None,
                     probe_mask: bool | None = None, mask: Any | None = None) -> None:
        """The probe block: :func:`~ptychopinn.telemetry.stats.probe_stats` before (``pre``) and after
        (``post``, default ``pre``) the normalisation ``method`` with ``factor`` (post = factor * pre);
        ``source_type``: ``idealized`` | ``custom`` | ``npz_loaded``; ``path`` is checksummed."""
        self._doc["probe"] = {
            "source": {"type": str(source_type), "path": None if path is None else os.fspath(path),
                       "checksum": sha256_file(path) if path is not None and Path(path).is_file() else None},
            "shape": [int(s) for s in _st._to_numpy(pre).shape],
            "dtype": _st._dtype_name(pre),
            "pre_normalization": _st.probe_stats(pre),
            "normalization": {
                "method": str(method), "probe_scale": _opt_float(probe_scale, "probe_scale"),
                "probe_big": None if probe_big is None else bool(probe_big),
                "probe_mask": None if probe_mask is None else bool(probe_mask),
                "mask_stats": _st.mask_stats(mask) if mask is not None else None,
                "computed_norm_factor": _opt_float(factor, "probe normalisation factor"),
            },
            "post_normalization": _st.probe_stats(pre if post is None else post),
        }

    def record_stage(self, name: str, array: Any | None, source: str | None, count: int | None = None,
                     gridsize: int | None = None, group_limit: int | None = None, *,
                     stats: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Record (or replace) the intensity stage ``name`` from ``array`` (numpy or torch) or from
        precomputed ``stats``; ``count`` defaults to the first axis. Returns the entry."""
        if (array is None) == (stats is None):
            raise ConfigError(f"telemetry: stage '{name}': give exactly one of array / stats")
        if name not in STAGE_ORDER:
            raise ConfigError(f"telemetry: unknown stage '{name}'; expected one of {', '.join(STAGE_ORDER)}")
        st = _st.array_stats(array) if array is not None else dict(stats)  # type: ignore[arg-type]
        if count is None and st.get("shape"):
            count = st["shape"][0]
        entry = {"name": name, "source": source, "stats": to_plain(st), "metadata": {
            k: None if v is None else int(v) for k, v in (("count", count), ("gridsize", gridsize),
                                                          ("group_limit", group_limit))}}
        stages = [s for s in (self._doc.get("intensity_stages") or []) if s.get("name") != name]
        self._doc["intensity_stages"] = [*stages, entry]  # in canonical order at write
        return entry

    def set_intensity_scale(self, dataset_derived: float | None, closed_form: float | None, used_mode: str,
                            recorded_in_bundle: float | None = None, model_exp_log_scale: float | None = None,
                            batch_mean_sum_intensity: float | None = None, nphotons: float | None = None) -> None:
        """The intensity-scale block (seed 003 section 2.7). ``used_mode``: ``dataset_derived`` |
        ``fallback`` (aliases ``data`` | ``closed_form``); ``recorded_in_bundle``: the bundle's
        value, ``model_exp_log_scale``: the model's exp(log_s). ``batch_mean_sum_intensity`` and
        ``nphotons`` left ``None`` keep an earlier block's values (``infer`` has no training data)."""
        mode = _MODE_ALIASES.get(str(used_mode))
        if mode is None:
            raise ConfigError(f"telemetry: intensity scale used_mode must be one of {sorted(_MODE_ALIASES)}; "
                              f"got {used_mode!r}")
        old = self._doc.get("intensity_scale") or {}
        if batch_mean_sum_intensity is None:
            batch_mean_sum_intensity = (old.get("dataset_derived") or {}).get("batch_mean_sum_intensity")
        if nphotons is None:
            nphotons = (old.get("fallback") or {}).get("nphotons")
        dd, cf, b, m, bm, nph = (_opt_float(v, "intensity scale value") for v in (
            dataset_derived, closed_form, recorded_in_bundle, model_exp_log_scale, batch_mean_sum_intensity, nphotons))
        self._doc["intensity_scale"] = {
            "dataset_derived": {"formula": DATASET_DERIVED_FORMULA, "batch_mean_sum_intensity": bm,
                                "computed_scale": dd, "spec_reference": SPEC_REFERENCE},
            "fallback": {"formula": FALLBACK_FORMULA, "computed_scale": cf, "nphotons": nph},
            "used_mode": mode,
            "used_value": dd if mode == "dataset_derived" else cf,
            "recorded_in_bundle": b, "model_exp_log_scale": m,
            "delta_bundle_vs_model": (b - m) if b is not None and m is not None else None,
            "ratio_bundle_vs_model": (b / m) if b is not None and m else None,
        }

    def set_intensity_scale_from(self, scale: Any, model_exp_log_scale: float | None = None,
                                 batch_mean_sum_intensity: float | None = None,
                                 recorded_in_bundle: float | None = None) -> None:
        """:meth:`set_intensity_scale` from a ``ptychopinn.model.scaling.IntensityScale`` or a mapping
        with its keys (data_derived, closed_form, used, value, nphotons_metadata); ``recorded_in_bundle``
        defaults to its ``value``."""
        get = scale.get if isinstance(scale, Mapping) else (lambda k, d=None: getattr(scale, k, d))
        self.set_intensity_scale(
            get("data_derived"), get("closed_form"), get("used", "data"),
            recorded_in_bundle if recorded_in_bundle is not None else get("value"),
            model_exp_log_scale, batch_mean_sum_intensity, get("nphotons_metadata"))

    def set_block(self, name: str, block: Mapping[str, Any] | None) -> None:
        """Set the ``training`` / ``inference`` / ``comparison`` block (replacing an earlier one)."""
        if name not in BLOCKS:
            raise ConfigError(f"telemetry: unknown block '{name}'; expected one of {', '.join(BLOCKS)}")
        self._doc[name] = to_plain(block)  # its type is the schema's to check, at write

    def record_inference(self, amplitude: Any, phase: Any, group_limit: int | None = None,
                         artifacts: Mapping[str, Any] | None = None,
                         dataset_path: str | os.PathLike | None = None) -> None:
        """The inference block from the stitched amplitude and phase (H, W); with ``dataset_path``
        also the inference data's path and SHA-256 (``dataset``)."""
        block: dict[str, Any] = {
            "group_limit": group_limit, "stitched_shape": [int(s) for s in _st._to_numpy(amplitude).shape],
            "amplitude": _st.component_stats(amplitude), "phase": _st.component_stats(phase),
            "artifacts": dict(artifacts or {})}
        if dataset_path is not None:
            block["dataset"] = {"path": os.fspath(dataset_path), "checksum": sha256_file(dataset_path)}
        self.set_block("inference", block)

    def record_comparison(self, truth_amplitude: Any, pred_amplitude: Any, truth_phase: Any | None = None,
                          pred_phase: Any | None = None, ground_truth_source: str = "simulated_object",
                          crop_metadata: Mapping[str, Any] | None = None) -> None:
        """The comparison block from aligned ground-truth and predicted amplitude (and phase)."""
        block: dict[str, Any] = {"ground_truth_source": ground_truth_source,
                                 "crop_metadata": None if crop_metadata is None else dict(crop_metadata),
                                 "amplitude": _st.comparison_stats(truth_amplitude, pred_amplitude)}
        if truth_phase is not None and pred_phase is not None:
            block["phase"] = _st.comparison_stats(truth_phase, pred_phase, scaling=False)
        self.set_block("comparison", block)

    def write(self) -> Path:
        """Finalise, check against the schema (a warning, :attr:`validation_note`, when
        ``jsonschema`` is missing) and write atomically."""
        doc = finalize_document(self._doc)
        self.validation_note = validate_telemetry(doc, where=str(self.path))
        if self.validation_note:
            warnings.warn(f"{self.path}: {self.validation_note}", stacklevel=2)
        write_json_atomic(self.path, doc)
        self._doc = doc
        return self.path
