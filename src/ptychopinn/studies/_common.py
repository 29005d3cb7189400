"""Job bodies and figure helpers shared by the studies (dose response, dose x overlap).

Figures use a matplotlib ``Figure`` with the Agg canvas (never ``matplotlib.use``); every image
panel has a colour bar. Every output written here is a function of the job parameters and input
files only (no wall times, no absolute paths), so two runs of a study give byte-identical files.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ptychopinn._config import Config, opt
from ptychopinn._device import check_device_name
from ptychopinn._io import save_npz_atomic, write_json_atomic
from ptychopinn.data.grouping import DEFAULT_NEIGHBOR_COUNT
from ptychopinn.errors import ConfigError, ResumeMismatchError
from ptychopinn.model.config import NORMS
from ptychopinn.training.config import PROTOCOLS

#: the presets every study offers (``PRESETS`` of each study module; --preset lists them in this order)
PRESET_NAMES = ("quick", "full", "seed")


def from_preset(presets: dict[str, Any], name: str, overrides: dict[str, Any]) -> Any:
    """``presets[name]`` with the ``overrides`` (field -> value) that are not None: a field left
    None keeps the preset's value. Checked as :meth:`Config.from_dict` checks (unknown fields named)."""
    if name not in presets:
        raise ConfigError(f"unknown preset {name!r} (known: {', '.join(presets)})")
    base = presets[name]
    return type(base).from_dict({**base.to_dict(), **{k: v for k, v in overrides.items() if v is not None}})


@dataclasses.dataclass(frozen=True)
class StudyTraining(Config):
    """How every study trains its PINN arms (the fields the studies share; each study's config
    extends it). ``metadata["help"]`` is the option's help text (``ptychopinn study``)."""

    gridsize: int = opt(2, "gridsize")
    neighbor_count: int = opt(DEFAULT_NEIGHBOR_COUNT, "K nearest neighbours for grouping (K >= gridsize^2)")
    n_filters_scale: int = opt(2, "network width multiplier")
    norm: str = opt("none", "normalisation layers of the PINN (unet): 'group' = GroupNorm, which kept every "
                             "seed from freezing where 'none' froze (docs/studies.md)", choices=NORMS)
    epochs: int = opt(50, "training epochs (maximum; early stopping may end sooner)")
    batch_size: int = opt(16, "batch size")
    patience: int = opt(6, "early-stopping patience in epochs (0 = off)")
    seed: int = opt(0, "training seed")
    device: str = opt("auto", "device of training, inference and pty-chi: auto, cpu, cuda or cuda:K")
    protocol: str = opt("modern", "training protocol: 'modern' = today's defaults (early stopping, validation "
                                   "split, cosine schedule); 'seed' = the seeds' training (fixed epochs, no "
                                   "hold-out, last-epoch weights, trainable intensity scale, plateau schedule)",
                         choices=tuple(PROTOCOLS))

    def __post_init__(self) -> None:
        check_device_name(self.device, "device")
        if self.neighbor_count < self.gridsize ** 2:
            raise ConfigError(f"neighbor_count K={self.neighbor_count} must be >= C={self.gridsize ** 2}")
        from ptychopinn.training.config import protocol_overrides

        fixed = protocol_overrides(self.protocol)["training"]  # ConfigError on an unknown name
        if "patience" in fixed:  # the protocol's early stopping is what the arms run (and what is recorded)
            object.__setattr__(self, "patience", fixed["patience"])

#: the parts of a training bundle that are not byte-reproducible: config.json and history.json
#: record wall times and paths; safetensors writes its metadata map in arbitrary order (the
#: tensors themselves are covered by ``weights_digest`` in the job's ``losses.json``)
BUNDLE_VOLATILE = ("config.json", "history.json", "model.safetensors")


def weights_digest(path: Path) -> str:
    """SHA-256 over the tensors of a safetensors file (sorted names, dtype, shape, bytes)."""
    import hashlib

    import torch
    from safetensors.torch import load_file

    h = hashlib.sha256()
    for k, v in sorted(load_file(str(path)).items()):
        h.update(f"{k}|{v.dtype}|{tuple(v.shape)}|".encode())
        h.update(v.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def noise_seed(seed: int, dose: float) -> int:
    """A noise-stream seed derived from (seed, dose): doses share a trajectory, not their noise."""
    tag = round(math.log10(float(dose)) * 1000)
    ss = np.random.SeedSequence([int(seed), tag, 7])
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def resolved_configs(model: dict[str, Any], training: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every field of the model and training configs (library defaults filled in), so that a job's
    manifest entry changes, and the job reruns, when a default changes."""
    from ptychopinn.model.config import ModelConfig
    from ptychopinn.training.config import TrainConfig

    # ModelConfig.from_dict reads a dict without 'arch' as a legacy bundle ('classic'); a study's
    # model dict is not a bundle: fill today's default network (the unet) unless the study names one
    model = {"arch": ModelConfig().arch, **model}
    return ModelConfig.from_dict(model).to_dict(), TrainConfig.from_dict(training).to_dict()


def save_dataset(ds: Any, path: Path) -> Path:
    """Save a simulated dataset without its wall-time field (reproducible bytes)."""
    ds.metadata.pop("seconds", None)
    return ds.save(path)


def load_rel(root: Path, rel: str) -> Any:
    """Load a dataset under the study root, recording its path relative to the root."""
    from ptychopinn.data.contract import load_dataset

    ds = load_dataset(root / rel)
    ds.source = rel
    return ds


def train_bundle(out: Path, root: Path, p: dict[str, Any], progress: bool) -> None:
    """Train one model on ``p['train']`` into ``out`` (the bundle; the resume checkpoint is dropped).
    A checkpoint already in ``out`` (a run killed mid-training, kept by the runner) is continued when
    its settings and data match (the trainer's bit-identical resume), else training starts afresh."""
    from ptychopinn.model.config import ModelConfig
    from ptychopinn.training.config import TrainConfig
    from ptychopinn.training.trainer import train

    ds = load_rel(root, p["train"])
    mcfg = ModelConfig.from_dict(p["model"])
    resume = (out / "checkpoint.pt").is_file()
    tcfg = TrainConfig.from_dict({**p["training"], "overwrite": True, "resume": resume})
    try:
        res = train(ds, out, mcfg, tcfg, progress=progress)
    except ResumeMismatchError:  # the checkpoint was trained with other settings or data
        res = train(ds, out, mcfg, dataclasses.replace(tcfg, resume=False), progress=progress)
    (out / "checkpoint.pt").unlink(missing_ok=True)
    hist = [{k: h.get(k) for k in ("epoch", "train_loss", "val_loss", "lr")} for h in res.history]
    write_json_atomic(out / "losses.json", {"history": hist, "epochs_run": res.epochs_run,
                                            "best_epoch": res.best_epoch, "best_val_loss": res.best_val_loss,
                                            "weights_digest": weights_digest(out / "model.safetensors")})


def infer_bundle(out: Path, root: Path, p: dict[str, Any], progress: bool) -> None:
    """Reconstruct ``p['data']`` with the bundle ``p['bundle']`` (grouping seed ``p['seed']``,
    default 0); writes ``reconstruction.npz`` (object, amplitude, phase, origin, counts; no timings)."""
    from ptychopinn.inference.reconstruct import reconstruct

    ds = load_rel(root, p["data"])
    rec = reconstruct(root / p["bundle"], ds, device=p.get("device", "auto"), progress=False,
                    seed=int(p.get("seed", 0)))
    save_npz_atomic(out / "reconstruction.npz", object=rec.object.astype(np.complex64),
                    amplitude=rec.amplitude, phase=rec.phase, origin=rec.origin.astype(np.float64),
                    counts=rec.counts)


def run_iterative(out: Path, root: Path, p: dict[str, Any], progress: bool) -> None:
    """pty-chi on ``p['data']``; writes ``reconstruction.npz`` (object, origin) and ``loss_history.json``."""
    from ptychopinn.iterative.ptychi_runner import PtychiConfig, run_ptychi

    ds = load_rel(root, p["data"])
    res = run_ptychi(ds, PtychiConfig.from_dict(p["ptychi"]), progress=progress)
    save_npz_atomic(out / "reconstruction.npz", object=np.asarray(res.object, np.complex64),
                    origin=np.asarray(res.origin, np.float64))
    write_json_atomic(out / "loss_history.json", {"algorithm": res.config.algorithm,
                                                  "loss_history": [float(v) for v in res.loss_history]})


def compare_arms(out: Path, root: Path, p: dict[str, Any], progress: bool) -> None:
    """Align and score the reconstructions ``p['arms']`` ({label: reconstruction.npz under the root,
    or absolute}; ``p['sources']`` optionally names them in comparison.json) against the
    ground truth of ``p['data']``; writes the comparison files of :func:`evaluation.compare.compare`."""
    from ptychopinn.evaluation.compare import CompareConfig, Reconstruction, compare

    ds = load_rel(root, p["data"])
    recons = {}
    for label, rel in p["arms"].items():
        with np.load(root / rel) as z:
            recons[label] = Reconstruction(label=label, object=z["object"], origin=tuple(z["origin"].tolist()),
                                           source=p.get("sources", {}).get(label, rel))
    compare(ds, recons, out, CompareConfig.from_dict(p.get("compare", {})))


# ---------------------------------------------------------------------------------------------
# reading study outputs
# ---------------------------------------------------------------------------------------------
def read_metrics_csv(path: Path) -> dict[str, dict[str, tuple[float, float]]]:
    """comparison_metrics.csv -> {model: {metric: (amplitude, phase)}}."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            out.setdefault(row["model"], {})[row["metric"]] = (float(row["amplitude"]), float(row["phase"]))
    return out


def read_frc_csv(path: Path) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """frc_curves.csv -> {(model, component): (frequency, frc)}."""
    acc: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            acc.setdefault((row["model"], row["component"]), []).append((float(row["frequency"]), float(row["frc"])))
    return {k: (np.array([a for a, _ in v]), np.array([b for _, b in v])) for k, v in acc.items()}


def fmt(v: float, spec: str = ".3f") -> str:
    return "nan" if v is None or not math.isfinite(float(v)) else format(float(v), spec)


def loss_flags(histories: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per run: initial and final train loss and whether the final one is below the initial one."""
    out = {}
    for name, hist in histories.items():
        tl = [h["train_loss"] for h in hist]
        first, last = (tl[0], tl[-1]) if tl else (float("nan"), float("nan"))
        ok = bool(tl) and all(math.isfinite(v) for v in (first, last)) and last < first
        out[name] = {"initial_train_loss": first, "final_train_loss": last, "converged": ok}
    return out


def arm_convergence(bundle: Path) -> dict[str, Any]:
    """:func:`ptychopinn.training.diagnostics.convergence` of the run in ``bundle`` (its history.json)."""
    from ptychopinn.training.diagnostics import convergence

    return convergence(read_json(Path(bundle) / "history.json"))


def convergence_rule() -> str:
    """The convergence rule of :func:`arm_convergence`, as the summaries state it."""
    import inspect

    from ptychopinn.training.diagnostics import convergence

    d = {k: v.default for k, v in inspect.signature(convergence).parameters.items() if k != "history"}
    return (f"An arm is called converged when it ran at least {d['window'] + 1} epochs, its last {d['window']} "
            f"epochs brought less than {100 * d['loss_tol']:g} % of its loss's total fall (validation loss when "
            f"held out, else training loss) and, for PINN arms, its Poisson deviance-to-floor ratio moved less than "
            f"{100 * d['deviance_tol']:g} % over them; the ratio itself is reported (1 = at the Poisson noise floor).")


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------
def new_figure(figsize: tuple[float, float]) -> Any:
    from ptychopinn._plot import blank_figure

    return blank_figure(figsize)


def save_figure(fig: Any, path: Path, dpi: int = 100) -> Path:
    from ptychopinn._plot import save_figure as save

    return save(fig, path, dpi=dpi)


def image_panels(fig: Any) -> int:
    """Number of axes holding an image (colour bars excluded)."""
    return sum(1 for ax in fig.axes if ax.images)


def central_crop(a: np.ndarray, size: int) -> np.ndarray:
    h, w = a.shape
    s0, s1 = min(size, h), min(size, w)
    y0, x0 = (h - s0) // 2, (w - s1) // 2
    return a[y0:y0 + s0, x0:x0 + s1]


def spacing_histogram(ax: Any, spacings: np.ndarray, threshold: float, title: str) -> None:
    d = np.asarray(spacings, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size:
        ax.hist(d, bins=min(30, max(5, d.size // 3)), color="tab:blue", alpha=0.8)
    ax.axvline(threshold, color="tab:red", ls="--", label=f"S = {threshold:.1f} px")
    ax.set_xlabel("nearest group-centre spacing (px)")
    ax.set_ylabel("groups")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    import io

    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\n")
    wr.writerow(header)
    for r in rows:
        wr.writerow([repr(float(v)) if isinstance(v, (float, np.floating)) else v for v in r])
    from ptychopinn._io import write_text_atomic

    return write_text_atomic(path, buf.getvalue())


def read_json(path: str | os.PathLike) -> Any:
    """A JSON file a study job wrote; a missing or corrupt one is a DataError naming it."""
    from ptychopinn._io import read_json as _read_json

    return _read_json(path, "study file")
