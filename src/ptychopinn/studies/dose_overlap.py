"""Dose x overlap study (seed 002): PINN, supervised baseline and pty-chi LSQML on dense and sparse
views of a real object and probe, at several doses, with a spatial train/test split.

Object and probe come from a reconstruction NPZ (``--object-from``, ``--probe-from``). The object is
cropped to its scanned region (the file's ``xcoords``/``ycoords`` plus ``crop_margin``, when present),
resampled by ``N / probe size`` (so that the probe keeps its physical size when N differs from the
file's probe), then cut in two along ``split_axis`` (first half: training, second: test). Each half
is mirror-tiled ``tile`` x ``tile`` times on its own (room for positions; no content crosses the cut)
and gets its own jittered-raster scan of ``n_images / 2`` positions (seeds ``sim_seed`` and
``sim_seed + 1``, shared by every dose; the Poisson noise differs per dose). The leakage, the highest
normalised cross-correlation of a probe-sized test patch with the training object, is measured and
recorded in ``split.json`` (see :func:`leakage`); every factor is in ``run_manifest.json``.

Views: from each split, one K-nearest-neighbour group per anchor (gridsize 2, K = ``neighbor_count``,
seed ``grouping_seed``) are the candidates; visited in a random order (seed ``subsample_seed``), a
group is accepted when its centre lies at least S = (1 - f) N from every accepted centre (f = 0.7
dense, 0.2 sparse). A view is the patterns of its accepted groups. Its acceptance rate, measured
minimum centre spacing and the three overlap metrics are written to ``views/<dose>/views.json``
(collected in ``metrics_bundle.json``) with spacing histograms; a view whose training split keeps
fewer than ``min_view_groups`` groups is skipped, with the reason, in ``skip_summary.json``.

Per dose: PINN gridsize 1 (trained on the whole training half), PINN gridsize 2 on each view's
training set, the supervised baseline (whole training half) and pty-chi on each view's test set;
one comparison per (dose, view) with labels ``PtychoPINN`` (gridsize 2 on the view),
``PtychoPINN_gs1``, ``Baseline`` and ``PtyChi``. With ``test_on="view"`` (the seed's design) every
arm is scored on the view's test set; with ``test_on="full"`` on the whole test half, with one
pty-chi run per dose. A missing pty-chi install skips the PtyChi arm (recorded in skip_summary.json).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ptychopinn._io import sha256_file, write_json_atomic, write_text_atomic
from ptychopinn.errors import ConfigError
from ptychopinn.studies import _common as C
from ptychopinn.studies.photon_grid import dose_label
from ptychopinn.studies.runner import Job, StudyResult, publish, run_study

VIEWS = {"dense": 0.7, "sparse": 0.2}
#: view filters of :func:`select_jobs`: the two views and 'full' (the gridsize-1 arms on the whole half)
VIEW_FILTERS = (*VIEWS, "full")
SPLIT_AXES = ("y", "x")
TEST_ON = ("view", "full")
SUMMARY_FILES = ("run_manifest.json", "training_manifest.json", "skip_summary.json", "metrics_bundle.json",
                 "metrics.csv", "summary.md")
LABELS = {"pinn_gs2": "PtychoPINN", "pinn_gs1": "PtychoPINN_gs1", "baseline": "Baseline", "ptychi": "PtyChi"}
_MOD = "ptychopinn.studies.dose_overlap"


@dataclass(frozen=True)
class DoseOverlapConfig(C.StudyTraining):
    """Every size and seed of the study (doses in photons per pattern; from :class:`StudyTraining`,
    how the arms train)."""

    object_from: str = C.opt("", "NPZ with objectGuess (e.g. Run1084_recon3_postPC.npz)")
    probe_from: str = C.opt("", "NPZ with probeGuess")
    doses: tuple[float, ...] = C.opt((1e3, 1e4, 1e5), "photons per pattern", check="doses")
    N: int | None = C.opt(None, "pattern size (unset: the probe file's size)")
    tile: int = C.opt(4, "mirror-tile each half of the cut object T x T times (within the half)")
    crop_margin: int | None = C.opt(None, "crop the object to its scan positions +- this (unset: N/4)")
    n_images: int = C.opt(5000, "scan positions (before the split)")
    sim_seed: int = C.opt(42, "simulation seed")
    grouping_seed: int = C.opt(123, "grouping seed")
    subsample_seed: int = C.opt(456, "view subsampling seed")
    split_axis: str = C.opt("y", "axis along which the object is cut into training and test halves",
                            choices=SPLIT_AXES)
    f_dense: float = C.opt(0.7, "overlap fraction of the dense view")
    f_sparse: float = C.opt(0.2, "overlap fraction of the sparse view")
    min_view_groups: int = C.opt(16, "skip a view that keeps fewer groups")
    ptychi_epochs: int = C.opt(100, "pty-chi LSQML epochs")
    ptychi_batch_size: int = C.opt(32, "pty-chi batch size")
    ms_ssim_sigma: float = C.opt(1.0, "MS-SSIM sigma")
    test_on: str = C.opt("view", "score every arm on each view's test set ('view', as in the seed) or on the "
                                 "whole test half ('full', one pty-chi run per dose)", choices=TEST_ON)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "doses", tuple(float(d) for d in self.doses))
        if not self.doses or any(not d > 0 for d in self.doses) or len(set(self.doses)) != len(self.doses):
            raise ConfigError(f"--doses must be distinct positive numbers; got {list(self.doses)}")
        if self.gridsize < 2:
            raise ConfigError("the overlap views need gridsize >= 2")
        if not 0 <= self.f_sparse < self.f_dense < 1:
            raise ConfigError("need 0 <= f_sparse < f_dense < 1")
        if self.tile < 1:
            raise ConfigError("tile must be >= 1")
        if self.split_axis not in SPLIT_AXES:
            raise ConfigError("split axis must be 'y' or 'x'")
        if self.test_on not in TEST_ON:
            raise ConfigError(f"test_on must be 'view' or 'full'; got {self.test_on!r}")


PRESETS: dict[str, DoseOverlapConfig] = {
    # the seed's doses, views and seeds; N from the probe file (64 for Run1084)
    "full": DoseOverlapConfig(),
    # seed 002's geometry (N = 128: S = 38.4 / 102.4 px; the 64-px probe file resampled x2, recorded)
    # and the seeds' training (--protocol seed); positions are jittered rasters inside each half of
    # the cut object, not the base dataset's (those span the cut: a leak-free split cannot keep them)
    "seed": DoseOverlapConfig(N=128, protocol="seed"),
    # tiny: N = 32, two doses, a few seconds per job on a 2-core CPU (tests and CI); tile 6 gives
    # each 26 x 54 px half about the full preset's scan density
    "quick": DoseOverlapConfig(doses=(1e3, 1e5), N=32, tile=6, n_images=360, min_view_groups=4, epochs=2,
                               n_filters_scale=1, patience=0, ptychi_epochs=5),
}


def preset_config(preset: str = "full", **overrides: Any) -> DoseOverlapConfig:
    """The study's settings: ``PRESETS[preset]`` with the ``overrides`` that are not None (e.g.
    ``preset_config("quick", object_from="obj.npz", probe_from="probe.npz")``)."""
    return C.from_preset(PRESETS, preset, overrides)


def spacing(f: float, n: int) -> float:
    """Minimum group-centre spacing S = (1 - f) N of a view with overlap fraction f."""
    return (1.0 - f) * n


def probe_size(path: str) -> int:
    from ptychopinn.data.contract import load_probe

    return int(load_probe(path).shape[0])


def build_jobs(cfg: DoseOverlapConfig) -> list[Job]:
    if not cfg.object_from or not cfg.probe_from:
        raise ConfigError("--object-from and --probe-from are required")
    for opt, p in (("--object-from", cfg.object_from), ("--probe-from", cfg.probe_from)):
        if not Path(p).is_file():
            raise ConfigError(f"{opt} {p}: file not found")
    obj_path, probe_path = str(Path(cfg.object_from).resolve()), str(Path(cfg.probe_from).resolve())
    from ptychopinn.data.contract import load_object

    load_object(obj_path)  # bad input fails here, before any job runs
    n = cfg.N or probe_size(probe_path)
    base = {"object_from": obj_path, "probe_from": probe_path, "N": n, "tile": cfg.tile,
            "crop_margin": cfg.crop_margin if cfg.crop_margin is not None else n // 4,
            "n_images": cfg.n_images, "sim_seed": cfg.sim_seed, "split_axis": cfg.split_axis,
            "construction": "cut-then-scan"}
    views = {"dense": cfg.f_dense, "sparse": cfg.f_sparse}
    jobs: list[Job] = []
    train_ids: list[str] = []
    cmp_ids: list[str] = []
    summary_inputs: list[str] = []
    ptychi_ids: dict[str, dict[str, str]] = {}
    from ptychopinn.evaluation.compare import CompareConfig
    from ptychopinn.iterative.ptychi_runner import PtychiConfig
    from ptychopinn.training.config import protocol_overrides

    over = protocol_overrides(cfg.protocol)

    pt_params = PtychiConfig(algorithm="LSQML", epochs=cfg.ptychi_epochs, batch_size=cfg.ptychi_batch_size,
                             device=cfg.device, seed=cfg.seed).to_dict()
    cmp_params = CompareConfig(ms_ssim_sigma=cfg.ms_ssim_sigma, register=True).to_dict()
    for d in cfg.doses:
        t = dose_label(d)
        data = f"data/{t}"
        jobs.append(Job(data, f"{_MOD}:job_simulate", {**base, "dose": d}, inputs=(obj_path, probe_path)))
        vid = f"views/{t}"
        jobs.append(Job(vid, f"{_MOD}:job_views", {
            "data": data, "N": n, "gridsize": cfg.gridsize, "neighbor_count": cfg.neighbor_count,
            "grouping_seed": cfg.grouping_seed, "subsample_seed": cfg.subsample_seed, "views": views,
            "min_view_groups": cfg.min_view_groups},
            inputs=(f"{data}/train.npz", f"{data}/test.npz"), deps=(data,)))
        summary_inputs += [f"{data}/split.json", f"{data}/train.npz", f"{data}/test.npz", f"{vid}/views.json"]
        training = {"epochs": cfg.epochs, "batch_size": cfg.batch_size, "seed": cfg.seed, "device": cfg.device,
                    "neighbor_count": cfg.neighbor_count, "patience": cfg.patience, "loss": "nll",
                    "protocol": cfg.protocol, **over["training"]}
        common_models = {
            "pinn_gs1": {"kind": "pinn", "gridsize": 1, "n_filters_scale": cfg.n_filters_scale, "norm": cfg.norm,
                         **over["model"]},
            "baseline": {"kind": "supervised", "gridsize": 1, "n_filters_scale": cfg.n_filters_scale},
        }
        for name, model in common_models.items():
            jid = f"train/{t}/{name}"
            train_ids.append(jid)
            model, tfull = C.resolved_configs(model, training)
            jobs.append(Job(jid, "ptychopinn.studies._common:train_bundle",
                            {"train": f"{data}/train.npz", "model": model, "training": tfull},
                            inputs=(f"{data}/train.npz",), deps=(data,), gpu=True, volatile=C.BUNDLE_VOLATILE))
        if cfg.test_on == "full":  # one pty-chi run per dose, on the whole test half
            jobs.append(Job(f"ptychi/{t}/full", f"{_MOD}:job_ptychi_view", {"data": f"{data}/test.npz",
                                                                          "ptychi": pt_params},
                            inputs=(f"{data}/test.npz",), deps=(data,), gpu=True))
            summary_inputs.append(f"ptychi/{t}/full/status.json")
        for view in views:
            jid = f"train/{t}/pinn_gs2_{view}"
            train_ids.append(jid)
            model, tfull = C.resolved_configs({"kind": "pinn", "gridsize": cfg.gridsize,
                                               "n_filters_scale": cfg.n_filters_scale, "norm": cfg.norm,
                                               **over["model"]}, training)
            jobs.append(Job(jid, f"{_MOD}:job_train_view",
                            {"views": vid, "view": view, "model": model, "training": tfull},
                            inputs=(f"{vid}/views.json",), deps=(vid,), gpu=True, volatile=C.BUNDLE_VOLATILE))
            if cfg.test_on == "view":
                pid = f"ptychi/{t}/{view}"
                jobs.append(Job(pid, f"{_MOD}:job_ptychi_view", {"views": vid, "view": view, "ptychi": pt_params},
                                inputs=(f"{vid}/views.json",), deps=(vid,), gpu=True))
                summary_inputs.append(f"{pid}/status.json")
            else:
                pid = f"ptychi/{t}/full"
            ptychi_ids.setdefault(t, {})[view] = pid
            cid = f"compare/{t}/{view}"
            cmp_ids.append(cid)
            bundles = {"pinn_gs2": f"train/{t}/pinn_gs2_{view}", "pinn_gs1": f"train/{t}/pinn_gs1",
                       "baseline": f"train/{t}/baseline"}
            jobs.append(Job(cid, f"{_MOD}:job_compare_view",
                            {"views": vid, "view": view, "bundles": bundles, "ptychi": pid, "device": cfg.device,
                             "test": None if cfg.test_on == "view" else f"{data}/test.npz",
                             "compare": cmp_params},
                            inputs=(f"{vid}/views.json", f"{bundles['pinn_gs2']}/status.json",
                                    f"{bundles['pinn_gs1']}/losses.json", f"{bundles['baseline']}/losses.json",
                                    f"{pid}/status.json", *((f"{data}/test.npz",) if cfg.test_on == "full" else ())),
                            deps=(vid, data, *bundles.values(), pid)))
            summary_inputs.append(f"{cid}/status.json")
    summary_inputs += [f"{j}/status.json" if "pinn_gs2_" in j else f"{j}/losses.json" for j in train_ids]
    jobs.append(Job("summary", f"{_MOD}:job_summary",
                    {"config": cfg.to_dict(), "resolved": {**base, "views": views}, "train": train_ids,
                     "compare": cmp_ids, "ptychi": ptychi_ids},
                    inputs=tuple(summary_inputs), deps=tuple(j.id for j in jobs)))
    return jobs


def job_tags(job_id: str, cfg: DoseOverlapConfig) -> dict[str, Any]:
    """(dose, view, gridsize) of a job id; None where the job has none (e.g. the gridsize of pty-chi)."""
    parts = job_id.split("/")
    if len(parts) < 2:
        return {"dose": None, "view": None, "gridsize": None}
    dose = next((d for d in cfg.doses if dose_label(d) == parts[1]), None)
    view = gs = None
    if parts[0] == "train":
        gs1 = not parts[2].startswith("pinn_gs2_")
        view, gs = ("full", 1) if gs1 else (parts[2].rsplit("_", 1)[1], cfg.gridsize)
    elif parts[0] in ("ptychi", "compare"):
        view = parts[2]
    return {"dose": dose, "view": view, "gridsize": gs}


def select_jobs(jobs: list[Job], cfg: DoseOverlapConfig, dose: float | None = None, view: str | None = None,
                gridsize: int | None = None) -> list[Job]:
    """The seed's job filters: the training, pty-chi and comparison jobs whose dose, view and
    gridsize match every given filter, plus the jobs they need. No filter: every job (and the
    summary); with a filter the summary is left out (it needs every job)."""
    if dose is None and view is None and gridsize is None:
        return list(jobs)
    if dose is not None and not any(math.isclose(dose, d, rel_tol=1e-9) for d in cfg.doses):
        raise ConfigError(f"--dose {dose:g} is not one of the study's doses {list(cfg.doses)}")
    if gridsize is not None and gridsize not in (1, cfg.gridsize):
        raise ConfigError(f"--gridsize {gridsize} is not one of the study's gridsizes (1, {cfg.gridsize})")
    byid = {j.id: j for j in jobs}
    keep: set[str] = set()
    for j in jobs:
        if j.id.split("/")[0] not in ("train", "ptychi", "compare"):
            continue
        t = job_tags(j.id, cfg)
        if dose is not None and (t["dose"] is None or not math.isclose(dose, t["dose"], rel_tol=1e-9)):
            continue
        if view is not None and t["view"] != view:
            continue
        if gridsize is not None and t["gridsize"] != gridsize:
            continue
        stack = [j.id]
        while stack:
            k = stack.pop()
            if k not in keep:
                keep.add(k)
                stack += list(byid[k].deps)
    if not keep:
        raise ConfigError(f"no job matches --dose {dose} --view {view} --gridsize {gridsize}")
    return [j for j in jobs if j.id in keep]


def run_dose_overlap(out_dir: str | Path, cfg: DoseOverlapConfig, *, n_jobs: int = 1, scheduler: Any = None,
                     progress: bool = True, log: Any = None, threads: int | None = None,
                     jobs: list[Job] | None = None) -> StudyResult:
    """Run (or resume) the study into ``out_dir`` (``jobs``: a :func:`select_jobs` subset of
    :func:`build_jobs`); the summary files are copied to ``out_dir`` when the summary ran."""
    jobs = build_jobs(cfg) if jobs is None else jobs
    res = run_study(jobs, out_dir, name="dose-overlap", n_jobs=n_jobs, scheduler=scheduler,
                    progress=progress, log=log, study_config=cfg.to_dict(), threads=threads)
    if res.ok and any(j.id == "summary" for j in jobs):
        publish(res.root, "summary", SUMMARY_FILES)
    return res


# ---------------------------------------------------------------------------------------------
# object preparation
# ---------------------------------------------------------------------------------------------
def mirror_tile(a: np.ndarray, t: int) -> np.ndarray:
    """``t`` x ``t`` copies of ``a``, every other one mirrored, so that the seams are continuous."""
    row = np.concatenate([a if j % 2 == 0 else a[:, ::-1] for j in range(t)], axis=1)
    return np.concatenate([row if i % 2 == 0 else row[::-1, :] for i in range(t)], axis=0)


def prepare_object(object_from: str, n: int, probe_n: int, crop_margin: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Crop to the scanned region and resample by n / probe_n; returns (object, record)."""
    from scipy import ndimage

    from ptychopinn.data.contract import load_object, open_npz

    obj = load_object(object_from)
    rec: dict[str, Any] = {"source_shape": list(obj.shape)}
    z = open_npz(object_from)
    if "xcoords" in z and "ycoords" in z:
        xs, ys = np.asarray(z["xcoords"], float), np.asarray(z["ycoords"], float)
        y0 = max(0, math.floor(ys.min()) - crop_margin)
        y1 = min(obj.shape[0], math.ceil(ys.max()) + crop_margin + 1)
        x0 = max(0, math.floor(xs.min()) - crop_margin)
        x1 = min(obj.shape[1], math.ceil(xs.max()) + crop_margin + 1)
        obj = obj[y0:y1, x0:x1]
        rec["crop_y0_y1_x0_x1"] = [y0, y1, x0, x1]
        rec["crop"] = f"bounding box of the file's scan positions +- {crop_margin} px"
    else:
        rec["crop"] = "none (no positions in the object file)"
    factor = n / probe_n
    if factor != 1.0:
        obj = ndimage.zoom(obj.real, factor, order=3) + 1j * ndimage.zoom(obj.imag, factor, order=3)
    rec["resample_factor"] = factor
    rec["shape"] = list(obj.shape)
    return obj, rec


def cut_object(obj: np.ndarray, axis: str, tile: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Cut ``obj`` in two along ``axis`` (first half: training, second: test), then mirror-tile
    each half ``tile`` x ``tile`` times on its own: no content crosses the cut. Returns
    (training object, test object, record)."""
    ax = 0 if axis == "y" else 1
    cut = obj.shape[ax] // 2
    train, test = (obj[:cut], obj[cut:]) if ax == 0 else (obj[:, :cut], obj[:, cut:])
    rec = {"construction": "cut, then scan each half", "cut_axis": axis, "cut_index": cut,
           "train_range": [0, cut], "test_range": [cut, int(obj.shape[ax])],
           "half_shapes": {"train": list(train.shape), "test": list(test.shape)},
           "tile": tile, "tile_mode": "mirror, within each half"}
    train, test = mirror_tile(train, tile), mirror_tile(test, tile)
    rec["shapes"] = {"train": list(train.shape), "test": list(test.shape)}
    return train, test, rec


#: the split is called leak-free when no probe-sized test patch matches the training object with a
#: normalised cross-correlation (after the high-pass of :func:`leakage`) at or above this. Measured on
#: Run1084 (stride N/4): cut halves 0.72 (amplitude) / 0.79 (phase) at N = 64 (tile 4), 0.68 / 0.77 at
#: N = 32 (tile 4; 0.68 / 0.82 with the quick preset's tile 6);
#: a mirror tiling that spans the cut 1.00 (an exact copy). 0.9 leaves a margin of > 0.1 on each side.
LEAK_NCC_THRESHOLD = 0.9


def _window_sums(a: np.ndarray, m: int) -> np.ndarray:
    c = np.pad(a, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return c[m:, m:] - c[:-m, m:] - c[m:, :-m] + c[:-m, :-m]


def max_ncc(image: np.ndarray, target: np.ndarray, size: int, stride: int) -> float:
    """Highest normalised cross-correlation between any ``size`` x ``size`` patch of ``image``
    (top-left corners on a ``stride`` grid) and any window of ``target`` (real arrays; flat
    patches and windows count as 0)."""
    from scipy import fft

    image, target = np.asarray(image, np.float64), np.asarray(target, np.float64)
    h, w = target.shape
    shape = (h + size - 1, w + size - 1)
    ft = fft.rfft2(target, shape)
    n = size * size
    s1, s2 = _window_sums(target, size), _window_sums(target * target, size)
    wvar = np.maximum(s2 - s1 * s1 / n, 0.0)
    wok = wvar > 1e-12 * max(float(wvar.max()), 1e-300)
    best = 0.0
    for y in range(0, image.shape[0] - size + 1, stride):
        for x in range(0, image.shape[1] - size + 1, stride):
            t = image[y:y + size, x:x + size]
            t = t - t.mean()
            tn = float(np.sqrt((t * t).sum()))
            if tn <= 1e-12 * max(float(np.abs(image).max()), 1e-300) * size:
                continue
            corr = fft.irfft2(ft * fft.rfft2(t[::-1, ::-1], shape), shape)[size - 1:h, size - 1:w]
            ncc = np.where(wok, corr / (tn * np.sqrt(np.where(wok, wvar, 1.0))), 0.0)
            best = max(best, float(ncc.max()))
    return best


def leakage(train: np.ndarray, test: np.ndarray, size: int, stride: int | None = None) -> dict[str, Any]:
    """Highest NCC of probe-sized test patches (stride ``size // 4``) against the training object,
    on amplitude and phase, each high-passed first (minus a Gaussian blur of sigma ``size / 16``):
    a smooth background, such as a phase ramp, correlates for any two patches whatever their content."""
    from scipy import ndimage

    stride = stride or max(1, size // 4)
    sigma = size / 16

    def hp(a: np.ndarray) -> np.ndarray:
        return a - ndimage.gaussian_filter(a, sigma, mode="reflect")

    amp = max_ncc(hp(np.abs(test)), hp(np.abs(train)), size, stride)
    ph = max_ncc(hp(np.angle(test)), hp(np.angle(train)), size, stride)
    return {"max_ncc_amplitude": amp, "max_ncc_phase": ph, "max_ncc": max(amp, ph), "patch": size,
            "stride": stride, "highpass_sigma": sigma, "threshold": LEAK_NCC_THRESHOLD,
            "ok": max(amp, ph) < LEAK_NCC_THRESHOLD}


def job_simulate(out: Path, root: Path, p: dict[str, Any], progress: bool) -> None:
    """Cut the object (:func:`cut_object`), then simulate one jittered-raster scan inside each half
    (training: seed ``sim_seed``, test: ``sim_seed + 1``; half the positions each); writes
    train.npz, test.npz and split.json (construction, sizes, measured leakage)."""
    from ptychopinn.data.contract import load_probe
    from ptychopinn.data.simulate import SimulationConfig, simulate

    n = int(p["N"])
    raw_probe = load_probe(p["probe_from"])
    probe = load_probe(p["probe_from"], n)
    obj, orec = prepare_object(p["object_from"], n, raw_probe.shape[0], int(p["crop_margin"]))
    train_obj, test_obj, crec = cut_object(obj, p["split_axis"], int(p["tile"]))
    n_train = int(p["n_images"]) // 2
    counts = {"train": n_train, "test": int(p["n_images"]) - n_train}
    prov = {"object": {"file": Path(p["object_from"]).name, **orec, **crec},
            "probe": {"file": Path(p["probe_from"]).name, "source_size": int(raw_probe.shape[0]), "N": n,
                      "resampled": raw_probe.shape[0] != n}}
    photons, seeds = {}, {}
    for k, (name, o) in enumerate((("train", train_obj), ("test", test_obj))):
        seed = int(p["sim_seed"]) + k
        cfg = SimulationConfig(n_images=counts[name], nphotons=float(p["dose"]), N=n, object_size=o.shape[0],
                               scan="jitter", seed=seed, noise_seed=C.noise_seed(seed, p["dose"]))
        ds = simulate(cfg, obj=o, probe=probe)
        if ds.n_patterns < counts[name]:
            raise ConfigError(f"the {name} half {o.shape} holds only {ds.n_patterns} of {counts[name]} positions; "
                              "lower --n-images or raise --tile")
        ds.metadata["study"] = {"name": "dose-overlap", "split": name, **prov}
        C.save_dataset(ds, out / f"{name}.npz")
        photons[name] = ds.photons_per_pattern()
        seeds[name] = {"seed": seed, **cfg.stream_seeds()}
    leak = leakage(train_obj, test_obj, n)
    write_json_atomic(out / "split.json", {
        "axis": p["split_axis"], "n_train": counts["train"], "n_test": counts["test"], "seeds": seeds,
        "leakage": leak, "ok": leak["ok"], "measured_photons_per_pattern": photons, **prov})


def select_view(centres: np.ndarray, s: float, seed: int) -> np.ndarray:
    """Indices of the groups accepted in a random visiting order (seed) such that every accepted
    centre lies at least ``s`` px from every other accepted centre."""
    from scipy.spatial import cKDTree

    order = np.random.default_rng(seed).permutation(len(centres))
    accepted: list[int] = []
    pts: list[np.ndarray] = []
    tree = None
    for i in order:
        c = centres[i]
        if pts:
            if tree is None or len(pts) != tree.n:
                tree = cKDTree(np.asarray(pts))
            if tree.query(c, k=1)[0] < s:
                continue
        accepted.append(int(i))
        pts.append(c)
    return np.sort(np.asarray(accepted, dtype=np.int64))


def nearest_spacing(centres: np.ndarray) -> np.ndarray:
    from scipy.spatial import cKDTree

    if len(centres) < 2:
        return np.zeros(0)
    d, _ = cKDTree(centres).query(centres, k=2)
    return d[:, 1]


def job_views(out: Path, root: Path, p: dict[str, Any], progress: bool) -> None:
    from ptychopinn.data.grouping import (
        make_groups,
        overlap_between_groups,
        overlap_to_neighbours,
        overlap_within_groups,
        probe_diameter_estimate,
    )

    n = int(p["N"])
    splits = {s: C.load_rel(root, f"{p['data']}/{s}.npz") for s in ("train", "test")}
    diameter = probe_diameter_estimate(splits["train"].probe)
    result: dict[str, Any] = {"N": n, "gridsize": p["gridsize"], "neighbor_count": p["neighbor_count"],
                              "probe_diameter_px": diameter, "seeds": {"grouping": p["grouping_seed"],
                                                                        "subsample": p["subsample_seed"]},
                              "views": {}}
    fig = C.new_figure((9, 3.4 * len(p["views"])))
    axes = fig.subplots(len(p["views"]), 2, squeeze=False)
    for r, (view, f) in enumerate(p["views"].items()):
        s = spacing(f, n)
        v: dict[str, Any] = {"f_overlap": f, "S_px": s, "splits": {}}
        for c, (split, ds) in enumerate(splits.items()):
            g = make_groups(ds.positions_yx, p["gridsize"], p["neighbor_count"], seed=p["grouping_seed"])
            acc = select_view(g.centres, s, p["subsample_seed"])
            from ptychopinn.data.grouping import Groups

            kept = Groups(g.indices[acc], g.offsets[acc], g.centres[acc])
            members = np.unique(kept.indices.ravel())
            sp = nearest_spacing(kept.centres)
            rec = {"candidate_groups": g.n_groups, "accepted_groups": kept.n_groups,
                   "acceptance_rate": kept.n_groups / g.n_groups, "patterns": int(members.size),
                   "min_centre_spacing_px": float(sp.min()) if sp.size else None,
                   "mean_centre_spacing_px": float(sp.mean()) if sp.size else None,
                   "spacing_respects_S": bool(sp.size == 0 or sp.min() >= s),
                   "overlap_metric1_within_group": overlap_within_groups(kept, diameter) if kept.n_groups else None,
                   "overlap_metric2_image_to_neighbours": overlap_to_neighbours(ds.positions_yx[members], diameter)
                   if members.size > 1 else None,
                   "overlap_metric3_group_to_group": overlap_between_groups(kept, diameter) if kept.n_groups > 1 else None}
            from ptychopinn._io import save_npz_atomic

            save_npz_atomic(out / f"{view}_{split}_groups.npz", indices=kept.indices, centres=kept.centres,
                            offsets=kept.offsets)
            rec["groups_file"] = f"{view}_{split}_groups.npz"
            if members.size:
                sub = ds.subset(members)
                sub.metadata["view"] = {"name": view, "split": split, "S_px": s, "accepted_groups": kept.n_groups}
                C.save_dataset(sub, out / f"{view}_{split}.npz")
                rec["file"] = f"{view}_{split}.npz"
                rec["sha256"] = sha256_file(out / f"{view}_{split}.npz")
            v["splits"][split] = rec
            C.spacing_histogram(axes[r, c], sp, s, f"{view} {split}: {kept.n_groups}/{g.n_groups} groups accepted")
        ntr = v["splits"]["train"]["accepted_groups"]
        nte = v["splits"]["test"]["accepted_groups"]
        if min(ntr, nte) < p["min_view_groups"]:
            v["skipped"] = True
            v["reason"] = (f"spacing filter S = {s:.1f} px keeps {ntr} training and {nte} test groups; "
                           f"fewer than min_view_groups = {p['min_view_groups']}")
        else:
            v["skipped"] = False
        result["views"][view] = v
    C.save_figure(fig, out / "spacing_histograms.png")
    write_json_atomic(out / "views.json", result)


def _view(root: Path, p: dict[str, Any]) -> dict[str, Any]:
    return C.read_json(root / p["views"] / "views.json")["views"][p["view"]]


def _skip(out: Path, v: dict[str, Any]) -> bool:
    if v.get("skipped"):
        write_json_atomic(out / "status.json", {"status": "skipped", "reason": v["reason"]})
        return True
    return False


def job_train_view(out: Path, root: Path, p: dict[str, Any], progress: bool) -> None:
    v = _view(root, p)
    if _skip(out, v):
        return
    C.train_bundle(out, root, {"train": f"{p['views']}/{v['splits']['train']['file']}", "model": p["model"],
                               "training": p["training"]}, progress)
    write_json_atomic(out / "status.json", {"status": "done",
                                            "weights_digest": C.read_json(out / "losses.json")["weights_digest"]})


def job_ptychi_view(out: Path, root: Path, p: dict[str, Any], progress: bool) -> None:
    """pty-chi on a view's test set (``views``, ``view``) or on a given dataset (``data``)."""
    from ptychopinn.errors import DependencyError

    data = p.get("data")
    if data is None:
        v = _view(root, p)
        if _skip(out, v):
            return
        data = f"{p['views']}/{v['splits']['test']['file']}"
    try:
        C.run_iterative(out, root, {"data": data, "ptychi": p["ptychi"]}, progress)
    except DependencyError as exc:  # pty-chi not installed: the comparison goes on without it
        write_json_atomic(out / "status.json", {"status": "skipped", "reason": str(exc)})
        return
    write_json_atomic(out / "status.json", {"status": "done"})


def job_compare_view(out: Path, root: Path, p: dict[str, Any], progress: bool) -> None:
    v = _view(root, p)
    if _skip(out, v):
        return
    from ptychopinn.errors import PtychoPINNError, one_line

    test = p.get("test") or f"{p['views']}/{v['splits']['test']['file']}"
    arms, sources, failed = {}, {}, {}
    for key, bundle in p["bundles"].items():
        sub = out / f"recon_{key}"
        sub.mkdir()
        try:
            C.infer_bundle(sub, root, {"bundle": bundle, "data": test, "device": p["device"]}, progress)
        except PtychoPINNError as exc:  # one arm that cannot reconstruct does not sink the others
            failed[LABELS[key]] = one_line(exc)
            continue
        arms[LABELS[key]] = str(sub / "reconstruction.npz")  # absolute: inside this job's temporary folder
        sources[LABELS[key]] = f"recon_{key}/reconstruction.npz"
    if C.read_json(root / p["ptychi"] / "status.json")["status"] == "done":
        arms[LABELS["ptychi"]] = sources[LABELS["ptychi"]] = f"{p['ptychi']}/reconstruction.npz"
    if not arms:
        raise PtychoPINNError(f"no arm could be reconstructed: {failed}")
    C.compare_arms(out / "comparison", root, {"data": test, "arms": arms, "sources": sources,
                                              "compare": p["compare"]}, progress)
    write_json_atomic(out / "status.json", {"status": "done", "arms": sorted(arms), "n_success": len(arms),
                                            "n_failed": len(failed), "failed": failed})


def job_summary(out: Path, root: Path, p: dict[str, Any], progress: bool) -> None:
    cfg = DoseOverlapConfig.from_dict(p["config"])
    res = p["resolved"]
    datasets, metrics_bundle, skips, train_rows, metric_rows = [], {}, [], [], []
    tables: dict[tuple[str, str], dict[str, Any]] = {}
    comparisons: dict[str, Any] = {"n_success": 0, "n_failed": 0, "failed": []}
    for d in cfg.doses:
        t = dose_label(d)
        split = C.read_json(root / f"data/{t}/split.json")
        datasets.append({"dose": d, "tag": t, "split": split,
                         "train": {"path": f"data/{t}/train.npz", "sha256": sha256_file(root / f"data/{t}/train.npz")},
                         "test": {"path": f"data/{t}/test.npz", "sha256": sha256_file(root / f"data/{t}/test.npz")}})
        views = C.read_json(root / f"views/{t}/views.json")
        metrics_bundle[t] = {**views, "histograms": f"views/{t}/spacing_histograms.png"}
        for view, v in views["views"].items():
            if v["skipped"]:
                skips.append({"dose": d, "view": view, "reason": v["reason"]})
                continue
            pst = C.read_json(root / p["ptychi"][t][view] / "status.json")
            if pst["status"] != "done":
                skips.append({"dose": d, "view": view, "arm": "PtyChi", "reason": pst["reason"]})
            cst = C.read_json(root / f"compare/{t}/{view}/status.json")
            comparisons["n_success"] += cst.get("n_success", len(cst.get("arms", [])))
            comparisons["n_failed"] += cst.get("n_failed", 0)
            comparisons["failed"] += [{"dose": d, "view": view, "arm": a, "reason": r}
                                      for a, r in cst.get("failed", {}).items()]
            cdir = root / f"compare/{t}/{view}/comparison"
            m = C.read_metrics_csv(cdir / "comparison_metrics.csv")
            tables[(t, view)] = m
            metric_rows += [[d, view, model, k, a, ph] for model, mm in m.items() for k, (a, ph) in mm.items()]
    for jid in p["train"]:
        _, t, name = jid.split("/")
        dose = next(d for d in cfg.doses if dose_label(d) == t)
        view = name.rsplit("_", 1)[1] if name.startswith("pinn_gs2_") else "full"
        gs = cfg.gridsize if name.startswith("pinn_gs2_") else 1
        kind = "supervised" if name == "baseline" else "pinn"
        losses = root / jid / "losses.json"
        if not losses.exists():
            continue  # skipped view
        lj = C.read_json(losses)
        h = lj["history"]
        train_rows.append({
            "id": jid, "dose": dose, "view": view, "gridsize": gs, "kind": kind, "bundle_path": jid,
            "bundle_sha256": sha256_file(root / jid / "model.safetensors"), "weights_digest": lj["weights_digest"],
            "final_loss": h[-1]["train_loss"] if h else None, "final_val_loss": h[-1]["val_loss"] if h else None,
            "initial_loss": h[0]["train_loss"] if h else None, "epochs_run": lj["epochs_run"],
            "best_val_loss": lj["best_val_loss"], "protocol": cfg.protocol,
            "convergence": C.arm_convergence(root / jid)})
    write_json_atomic(out / "run_manifest.json", {"study": "dose-overlap", "config": cfg.to_dict(),
                                                  "protocol": cfg.protocol, "resolved": res, "datasets": datasets,
                                                  "comparisons": comparisons})
    write_json_atomic(out / "training_manifest.json", {"study": "dose-overlap", "jobs": train_rows,
                                                       "skip_summary": "skip_summary.json"})
    write_json_atomic(out / "skip_summary.json", {
        "skipped_views": [s for s in skips if "arm" not in s], "skipped_arms": [s for s in skips if "arm" in s],
        "skipped_count": len(skips)})
    write_json_atomic(out / "metrics_bundle.json", metrics_bundle)
    C.write_csv(out / "metrics.csv", ["dose", "view", "model", "metric", "amplitude", "phase"], metric_rows)
    write_text_atomic(out / "summary.md", summary_md(cfg, datasets, metrics_bundle, tables, skips, train_rows,
                                                     comparisons))


def _reading(m: dict[str, dict[str, tuple[float, float]]]) -> str:
    """Plain-language reading of one table: who wins phase MS-SSIM, and by how much."""
    ph = {k: v["ms_ssim"][1] for k, v in m.items() if math.isfinite(v["ms_ssim"][1])}
    amp = {k: v["ms_ssim"][0] for k, v in m.items() if math.isfinite(v["ms_ssim"][0])}
    if not ph:
        return "No finite phase MS-SSIM: nothing to rank."
    order = sorted(ph, key=ph.get, reverse=True)
    best, worst = order[0], order[-1]
    s = (f"{best} has the best phase MS-SSIM ({ph[best]:.3f}); {worst} the worst ({ph[worst]:.3f}).")
    if amp:
        ba = max(amp, key=amp.get)
        s += f" On amplitude {ba} leads (MS-SSIM {amp[ba]:.3f})."
    return s


def summary_md(cfg: DoseOverlapConfig, datasets: list[dict[str, Any]], bundle: dict[str, Any],
               tables: dict[tuple[str, str], Any], skips: list[dict[str, Any]], train_rows: list[dict[str, Any]],
               comparisons: dict[str, Any] | None = None) -> str:
    out = ["# Dose x overlap study", "",
           f"Object {Path(cfg.object_from).name} (cropped, resampled, cut along {cfg.split_axis} into a training and a "
           f"test half, each mirror-tiled {cfg.tile}x{cfg.tile} on its own), probe "
           f"{Path(cfg.probe_from).name}; doses {', '.join(f'{d:.0e}' for d in cfg.doses)} photons per pattern; "
           f"{cfg.n_images} positions (half per half); gridsize {cfg.gridsize}, K = {cfg.neighbor_count}; "
           f"PINN/baseline {cfg.epochs} epochs ({'fixed' if cfg.protocol == 'seed' else 'max'}), training protocol '{cfg.protocol}', pty-chi LSQML {cfg.ptychi_epochs} epochs; "
           f"seeds simulation {cfg.sim_seed}, grouping {cfg.grouping_seed}, subsampling {cfg.subsample_seed}. "
           + ("Every arm is scored on the view's test set." if cfg.test_on == "view" else
              "Every arm is scored on the whole test half (views change the gridsize-2 PINN's training set only)."),
           "",
           "## Views", "", "| dose | view | S (px) | split | accepted / candidates | rate | min spacing (px) | "
           "metric 1 | metric 2 | metric 3 |", "|---|---|---|---|---|---|---|---|---|---|"]
    for ds in datasets:
        t = ds["tag"]
        for view, v in bundle[t]["views"].items():
            for split, r in v["splits"].items():
                out.append(f"| {ds['dose']:.0e} | {view} | {v['S_px']:.1f} | {split} | {r['accepted_groups']} / "
                           f"{r['candidate_groups']} | {r['acceptance_rate']:.3f} | {C.fmt(r['min_centre_spacing_px'], '.1f')} | "
                           f"{C.fmt(r['overlap_metric1_within_group'])} | {C.fmt(r['overlap_metric2_image_to_neighbours'])} | "
                           f"{C.fmt(r['overlap_metric3_group_to_group'])} |")
    for ds in datasets:
        t = ds["tag"]
        lk = ds["split"]["leakage"]
        out += ["", f"Split check at {ds['dose']:.0e}: the object was cut along {ds['split']['axis']} before "
                f"scanning ({ds['split']['n_train']} train / {ds['split']['n_test']} test patterns); highest "
                f"normalised cross-correlation of a test patch with the training object {lk['max_ncc']:.3f} "
                f"(amplitude {lk['max_ncc_amplitude']:.3f}, phase {lk['max_ncc_phase']:.3f}; leak threshold "
                f"{lk['threshold']}): {'no leak' if lk['ok'] else 'LEAK'}."]
    for (t, view), m in tables.items():
        dose = next(d["dose"] for d in datasets if d["tag"] == t)
        out += ["", f"## Dose {dose:.0e}, {view} view", "",
                "| model | MS-SSIM phase | MS-SSIM amplitude | SSIM phase | SSIM amplitude | PSNR amplitude (dB) | "
                "FRC50 amplitude | MAE amplitude | MSE amplitude |", "|---|---|---|---|---|---|---|---|---|"]
        for model, mm in m.items():
            out.append(f"| {model} | {C.fmt(mm['ms_ssim'][1])} | {C.fmt(mm['ms_ssim'][0])} | {C.fmt(mm['ssim'][1])} | "
                       f"{C.fmt(mm['ssim'][0])} | {C.fmt(mm['psnr'][0], '.2f')} | {C.fmt(mm['frc50'][0])} | "
                       f"{C.fmt(mm['mae'][0], '.4f')} | {C.fmt(mm['mse'][0], '.5f')} |")
        out += ["", _reading(m)]
    out += ["", "## Training", "", C.convergence_rule(), "",
            "| job | final train loss | initial | epochs | deviance / floor | converged |", "|---|---|---|---|---|---|"]
    for r in train_rows:
        cv = r["convergence"]
        out.append(f"| {r['id']} | {C.fmt(r['final_loss'], '.6g')} | {C.fmt(r['initial_loss'], '.6g')} | "
                   f"{r['epochs_run']} | {C.fmt(cv['deviance_ratio'], '.2f')} | {'yes' if cv['converged'] else 'NO'} |")
    bad = [r for r in train_rows if not r["convergence"]["converged"]]
    out += [""] + ([f"Not converged ({len(bad)} of {len(train_rows)}; their metrics describe unfinished runs):"]
                   + [f"- {r['id']}: {r['convergence']['reason']}" for r in bad] if bad
                   else [f"Every arm converged by the rule above ({len(train_rows)} arms)."])
    if comparisons is not None:
        out += ["", f"Comparisons: {comparisons['n_success']} arm scorings succeeded, {comparisons['n_failed']} failed."]
        out += [f"- {f['dose']:.0e} {f['view']} {f['arm']}: {f['reason']}" for f in comparisons["failed"]]
    out += ["", "## Skipped views", ""]
    out += [f"- {s['dose']:.0e} {s['view']}{' ' + s['arm'] if 'arm' in s else ''}: {s['reason']}"
            for s in skips] or ["None."]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# training-loss guardrail
# ---------------------------------------------------------------------------------------------
def read_training_manifest(path: str | Path) -> dict[str, Any]:
    """A ``training_manifest.json``; ConfigError naming the file when it is unreadable or has no
    list of ``jobs``."""
    from ptychopinn._io import read_json

    d = read_json(path, "training manifest", error=ConfigError)
    if not isinstance(d, dict) or not isinstance(d.get("jobs"), list):
        raise ConfigError(f"{path}: key 'jobs': missing or not a list (not a training_manifest.json)")
    return d


def check_loss(reference: dict[str, Any] | str | Path, candidate: dict[str, Any] | str | Path,
               tolerance: float = 0.05, dose: float | None = None, view: str | None = None,
               gridsize: int | None = None) -> list[str]:
    """Problems of ``candidate`` against ``reference`` (two ``training_manifest.json`` dicts, or their
    paths: :func:`read_training_manifest`): a job of the reference that is missing from the
    candidate, a missing or non-finite final loss, or a final loss above
    ``reference + tolerance * |reference|``. Empty list: passed."""
    reference, candidate = (m if isinstance(m, dict) else read_training_manifest(m) for m in (reference, candidate))

    def sel(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        out = {}
        for r in rows:
            if dose is not None and not math.isclose(float(r.get("dose", float("nan"))), dose, rel_tol=1e-9):
                continue
            if view is not None and r.get("view") != view:
                continue
            if gridsize is not None and r.get("gridsize") != gridsize:
                continue
            out[r["id"]] = r
        return out

    ref, cand = sel(reference.get("jobs", [])), sel(candidate.get("jobs", []))
    problems = []
    if not ref:
        problems.append("the reference has no training job matching the filters")
    for jid, r in ref.items():
        c = cand.get(jid)
        if c is None:
            problems.append(f"{jid}: missing from the candidate")
            continue
        fl = c.get("final_loss")
        if fl is None or not isinstance(fl, (int, float)) or not math.isfinite(fl):
            problems.append(f"{jid}: final_loss is missing or not finite ({fl!r})")
            continue
        rl = r.get("final_loss")
        if rl is None or not math.isfinite(rl):
            problems.append(f"{jid}: the reference final_loss is missing or not finite ({rl!r})")
            continue
        limit = rl + tolerance * abs(rl)
        if fl > limit:
            problems.append(f"{jid}: final_loss {fl:.6g} exceeds the reference {rl:.6g} by more than "
                            f"{100 * tolerance:g} % (limit {limit:.6g})")
    return problems


def job_outcomes(root: str | Path, jobs: list[Job]) -> dict[str, dict[str, Any]]:
    """What each of ``jobs`` left in the study folder ``root``: ``{"skipped": reason}`` for a job
    that skipped itself (too few groups in its view, pty-chi missing), ``{"bundle": path,
    "bundle_sha256": hex digest of its model.safetensors}`` for a training job that wrote a model
    bundle, else ``{}``."""
    import json

    out: dict[str, dict[str, Any]] = {}
    for j in jobs:
        d = Path(root) / j.id
        st = d / "status.json"
        status = json.loads(st.read_text()) if st.is_file() else {}
        if status.get("status") == "skipped":
            out[j.id] = {"skipped": status.get("reason", "")}
        elif j.id.startswith("train/") and (d / "model.safetensors").is_file():
            out[j.id] = {"bundle": d, "bundle_sha256": sha256_file(d / "model.safetensors")}
        else:
            out[j.id] = {}
    return out
