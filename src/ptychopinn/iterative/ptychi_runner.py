"""Iterative baseline: reconstruct a :class:`~ptychopinn.data.contract.PtychoDataset` with pty-chi.

Conventions (pty-chi 2.2, DESIGN section 8; checked by ``tests/iterative``):

* **Data.** pty-chi takes intensities: ``diff3d**2`` as float32. Its forward model is an
  unnormalised ``fft2`` with the zero frequency at index 0, so the DC-centred patterns are
  ``ifftshift``-ed here and passed with ``fft_shift=False`` (for even N this is exactly what
  ``fft_shift=True`` does; for odd N it is the correct inverse of our centring).
* **Object buffer.** The objectGuess frame when the dataset has an object, else the bounding box of
  all N x N windows; plus an internal ``margin`` (2 px) on every side so that pty-chi's sub-pixel
  patch extraction (one extra pixel) never pads, plus one row/column where needed so that Hb - N
  and Wb - N are even. Object shape (1, Hb, Wb), probe (1, 1, N, N).
* **Positions.** For our patch centre ``c`` (object pixels) the window's top-left corner in the
  buffer is ``t = c - N//2 - buffer_top_left`` and pty-chi's position is
  ``pos = t - (Hb - N)/2`` (y with Hb, x with Wb): the probe centre relative to the buffer centre.
  The position origin is passed explicitly (``SPECIFIED`` = ``(Hb/2 - 0.5, Wb/2 - 0.5)``, which is
  pty-chi's own ``SUPPORT`` value for even sizes). pty-chi applies ``round(pos)`` exactly and the
  rest as a Fourier sub-pixel shift of the probe; with the parity rule above, integer centres give
  integer positions (no interpolation), for even and odd N.
* **Scale.** The probe is multiplied by ``probe_scale_factor`` so that its far field through the
  initial object carries the measured mean photons per pattern (pty-chi's FFT is unnormalised:
  sum |F(psi)|^2 = N^2 sum |psi|^2). pty-chi's own first-epoch intensity rescaling is therefore
  switched off and every epoch updates. ``reconstructed_probe`` is returned in the units of the
  input probe (divided by that factor). With ``probe_fixed`` the object-probe ambiguity removal is
  off as well, so the probe stays exactly the input probe.
* **Output frame.** ``reconstructed_object`` is (H, W) complex64 in the objectGuess pixel frame:
  canvas pixel (i, j) is object pixel (origin[0] + i, origin[1] + j); origin is (0, 0) when the
  dataset has an object.

Building a pty-chi task changes torch's default device and dtype and seeds the global RNGs of
torch, numpy and ``random``; :func:`run_ptychi` restores all of them afterwards.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from ptychopinn._config import Config, opt
from ptychopinn._device import check_device_name
from ptychopinn._io import jsonable
from ptychopinn.data.contract import PtychoDataset
from ptychopinn.data.reconstruction import Reconstruction, load_reconstruction
from ptychopinn.errors import (
    ConfigError,
    DataError,
    DependencyError,
    TrainingDivergedError,
    one_line,
)
from ptychopinn.physics.dose import mean_total

ALGORITHMS = ("LSQML", "EPIE", "DM")
DEVICES = ("auto", "cpu", "cuda")
OBJECT_INITS = ("ones", "dataset")
PTYCHI_MISSING = "pty-chi is not installed: pip install -c constraints.txt 'ptychopinn[ptychi]'"
OUTPUT_NPZ = "ptychi_reconstruction.npz"
OUTPUT_PNG = "ptychi_reconstruction.png"
OUTPUT_POSITIONS = "refined_positions.npz"
#: ``label`` of the results of :func:`run_ptychi`
LABEL = "PtyChi"
_MSE_SQRT = ("pty-chi displayed loss (mse_sqrt): mean over pixels of (sqrt(I_pred) - sqrt(I_meas))^2, "
             "averaged over the minibatches of the epoch, I_pred from the estimate before each update")
LOSS_DEFINITIONS = {
    "LSQML": _MSE_SQRT,
    "EPIE": _MSE_SQRT,
    "DM": "pty-chi's difference-map error (hard-coded in its DM reconstructor)",
}


# ---------------------------------------------------------------------------------------------
# configuration and result
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PtychiConfig(Config):
    """Settings of one pty-chi reconstruction (round-trips to JSON)."""

    algorithm: str = opt("LSQML", "reconstruction algorithm", choices=ALGORITHMS)
    epochs: int = opt(100, "number of epochs", check="positive")
    batch_size: int = opt(32, "minibatch size", check="positive")
    probe_fixed: bool = opt(False, "keep the probe fixed (default: refine it)")
    device: str = "auto"
    seed: int | None = opt(0, "random seed", check="seed")
    object_init: str = opt("ones", "initial object: ones, or the file's objectGuess", choices=OBJECT_INITS)
    margin: int = 2
    init_object: str | None = opt(None, "start from this reconstruction (e.g. a PINN's reconstruction.npz; its origin "
                                        "places it; unscanned pixels start at its mean) instead of --object-init",
                                  metavar="RECON.npz")
    init_probe: str | None = opt(None, "start from this probe (probeGuess, reconstructed_probe or probe key) "
                                       "instead of the dataset's probeGuess", metavar="PROBE.npz")
    position_correction: bool = opt(False, "refine the scan positions (pty-chi's gradient position correction; the "
                                           "mean position is kept); writes refined_positions.npz (xcoords, ycoords) "
                                           "beside the reconstruction")
    position_correction_start: int = opt(5, "first epoch that updates the positions", check="non_negative",
                                         metavar="EPOCH")
    position_step_size: float = opt(0.3, "step size of the position update (pty-chi's default 0.3; pty-chi also "
                                         "clips each update to 0.1 px per epoch)", check="positive")

    def __post_init__(self) -> None:
        alg = str(self.algorithm).upper()
        if alg not in ALGORITHMS:
            raise ConfigError(f"algorithm must be one of {ALGORITHMS}; got {self.algorithm!r}")
        object.__setattr__(self, "algorithm", alg)
        check_device_name(self.device)
        if self.object_init not in OBJECT_INITS:
            raise ConfigError(f"object_init must be one of {OBJECT_INITS}; got {self.object_init!r}")
        if int(self.epochs) < 1 or int(self.batch_size) < 1:
            raise ConfigError(f"epochs and batch_size must be >= 1; got {self.epochs} and {self.batch_size}")
        if not (math.isfinite(float(self.position_step_size)) and float(self.position_step_size) > 0):
            raise ConfigError(f"position_step_size must be a finite number > 0; got {self.position_step_size}")
        if int(self.position_correction_start) < 0:
            raise ConfigError(f"position_correction_start must be >= 0; got {self.position_correction_start}")
        if int(self.margin) < 2:
            raise ConfigError(f"margin must be >= 2 pixels; got {self.margin}")


@dataclass(frozen=True, kw_only=True)
class PtychiResult(Reconstruction):
    """A pty-chi reconstruction in the project's frame (see the module docstring): the one
    :class:`~ptychopinn.data.reconstruction.Reconstruction` type (``object`` (H, W) complex64,
    ``origin``, ``probe`` (N, N) complex64 in units of the input probe, ``coverage`` (H, W) bool:
    canvas pixels some scan position illuminates (>= 5 % of the probe's peak intensity), the PNG
    shows the others as background; ``timing``: ``import_s``, ``build_s``, ``epochs_s``,
    ``total_s``) plus what only pty-chi produces."""

    label: str = LABEL
    config: PtychiConfig
    loss_history: np.ndarray  # (epochs,) float64
    #: epoch -> object (H, W) after that epoch, for the epochs asked for in ``snapshot_epochs``
    snapshots: dict[int, np.ndarray] = field(default_factory=dict)
    #: (M, 2) float64 (y, x) patch centres after position correction (None without it)
    refined_positions: np.ndarray | None = None

    @property
    def computation_time_seconds(self) -> float:
        """Wall time of the task build and the epochs (the pty-chi import excluded)."""
        return float(self.timing["total_s"])


@dataclass(frozen=True)
class PtychiGeometry:
    """Where the output canvas and pty-chi's object buffer lie in object pixels.

    The buffer is the canvas plus ``margin`` pixels on every side, plus one more row/column at the
    bottom/right where needed so that ``Hb - N`` and ``Wb - N`` are even: then integer patch
    centres give integer pty-chi positions, which pty-chi applies without sub-pixel interpolation.
    """

    canvas_shape: tuple[int, int]
    canvas_origin: tuple[int, int]  # object pixel (y, x) of canvas pixel (0, 0)
    margin: int
    n: int  # probe / pattern size N

    @property
    def buffer_shape(self) -> tuple[int, int]:
        return tuple(  # type: ignore[return-value]
            s + 2 * self.margin + (s + 2 * self.margin - self.n) % 2 for s in self.canvas_shape
        )

    @property
    def buffer_top_left(self) -> tuple[int, int]:
        return (self.canvas_origin[0] - self.margin, self.canvas_origin[1] - self.margin)

    @property
    def position_origin(self) -> tuple[float, float]:
        """pty-chi's ``position_origin_coords`` for this buffer: (Hb/2 - 0.5, Wb/2 - 0.5)."""
        hb, wb = self.buffer_shape
        return (hb / 2.0 - 0.5, wb / 2.0 - 0.5)

    def canvas_slices(self) -> tuple[slice, slice]:
        """Slices of the buffer that give the canvas."""
        m = self.margin
        return slice(m, m + self.canvas_shape[0]), slice(m, m + self.canvas_shape[1])


def plan_geometry(dataset: PtychoDataset, margin: int = 2) -> PtychiGeometry:
    """The objectGuess frame if present, else the bounding box of every N x N window."""
    n = dataset.N
    if dataset.object is not None:
        h, w = dataset.object.shape
        return PtychiGeometry((int(h), int(w)), (0, 0), int(margin), n)
    top = np.floor(np.asarray(dataset.ycoords) - n // 2)
    left = np.floor(np.asarray(dataset.xcoords) - n // 2)
    bottom = np.ceil(np.asarray(dataset.ycoords) - n // 2) + n
    right = np.ceil(np.asarray(dataset.xcoords) - n // 2) + n
    y0, x0 = int(top.min()), int(left.min())
    return PtychiGeometry((int(bottom.max()) - y0, int(right.max()) - x0), (y0, x0), int(margin), n)


def ptychi_positions(centres_yx: np.ndarray, n: int, buffer_shape: tuple[int, int],
                     buffer_top_left: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """pty-chi 2.2 positions (M, 2) (y, x) for our patch centres: ``pos = t - (Hb - N)/2`` with
    ``t = c - N//2 - buffer_top_left`` the window's top-left corner in the buffer.

    Valid with the position origin ``(Hb/2 - 0.5, Wb/2 - 0.5)`` (:attr:`PtychiGeometry.position_origin`).
    """
    c = np.asarray(centres_yx, dtype=np.float64).reshape(-1, 2)
    t = c - (n // 2) - np.asarray(buffer_top_left, dtype=np.float64)
    return t - (np.asarray(buffer_shape, dtype=np.float64) - n) / 2.0


# ---------------------------------------------------------------------------------------------
# pty-chi import (with the torchvision stand-in) and torch global state
# ---------------------------------------------------------------------------------------------
def import_ptychi() -> SimpleNamespace:
    """Import pty-chi (``api``, ``PtychographyTask``, ``utils``, version, torchvision status).

    Raises :class:`DependencyError` if pty-chi is missing or cannot be imported. A broken
    torchvision is replaced by the stand-in of :mod:`._torchvision_stub` for the import only.
    """
    from ptychopinn.iterative._torchvision_stub import GaussianBlur as _StubBlur
    from ptychopinn.iterative._torchvision_stub import torchvision_stub

    try:
        import ptychi
    except ImportError as exc:
        if getattr(exc, "name", None) == "ptychi":
            raise DependencyError(PTYCHI_MISSING) from None
        raise DependencyError(f"pty-chi cannot be imported ({exc.__class__.__name__}: {one_line(exc)})") from None
    with torchvision_stub() as tv:
        try:
            import ptychi.utils as putils
            from ptychi import api
            from ptychi.api.task import PtychographyTask
        except ImportError as exc:
            raise DependencyError(f"pty-chi cannot be imported ({exc.__class__.__name__}: {one_line(exc)})") from None
    # the truth is what pty-chi bound, whoever imported it first
    stub_used = getattr(putils, "GaussianBlur", None) is _StubBlur
    status = tv.to_dict()
    status["torchvision_stub_used"] = bool(stub_used)
    return SimpleNamespace(api=api, PtychographyTask=PtychographyTask, utils=putils,
                           version=getattr(ptychi, "__version__", "unknown"), torchvision=status)


@contextlib.contextmanager
def preserved_torch_state() -> Iterator[None]:
    """Restore torch's default dtype and device and the torch / numpy / ``random`` RNG states."""
    import torch

    dtype = torch.get_default_dtype()
    ctx = getattr(getattr(torch, "_GLOBAL_DEVICE_CONTEXT", None), "device_context", False)
    if ctx is False:  # private attribute gone: fall back to the public getter
        dev = torch.get_default_device()
        device = None if dev.type == "cpu" else dev
    else:
        device = None if ctx is None else ctx.device
    torch_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    np_rng = np.random.get_state()
    py_rng = random.getstate()
    try:
        yield
    finally:
        torch.set_default_device(device)
        torch.set_default_dtype(dtype)
        torch.set_rng_state(torch_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        np.random.set_state(np_rng)
        random.setstate(py_rng)


def resolve_device(device: str) -> str:
    """pty-chi's device name ('cpu', 'cuda' or 'cuda:K') for ``auto`` / ``cpu`` / ``cuda`` /
    ``cuda:K`` (see :func:`ptychopinn._device.resolve_device`)."""
    from ptychopinn._device import resolve_device as _resolve

    dev = _resolve(device)
    return "cpu" if dev.type == "cpu" else f"cuda:{dev.index}"


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------
def _check_dataset(dataset: PtychoDataset, config: PtychiConfig) -> None:
    d = np.asarray(dataset.diff3d)
    if d.ndim != 3 or d.shape[1] != d.shape[2]:
        raise DataError(f"{dataset.source}: key 'diff3d': must be (M, N, N); got shape {d.shape}")
    if not np.all(np.isfinite(d)) or np.any(d < 0):
        raise DataError(f"{dataset.source}: key 'diff3d': must be finite and >= 0")
    if dataset.probe.shape != d.shape[1:]:
        raise DataError(f"{dataset.source}: key 'probeGuess': shape {dataset.probe.shape} does not match {d.shape[1:]}")
    if config.object_init == "dataset" and dataset.object is None:
        raise DataError(f"{dataset.source}: key 'objectGuess': missing (needed for object_init='dataset')")


def _initial_object(dataset: PtychoDataset, geom: PtychiGeometry, config: PtychiConfig,
                    init_object: Any = None) -> np.ndarray:
    hb, wb = geom.buffer_shape
    obj = np.ones((hb, wb), dtype=np.complex64)
    if init_object is not None:
        return place_object(init_object, geom)
    if config.object_init == "dataset":
        sy, sx = geom.canvas_slices()
        obj[sy, sx] = np.asarray(dataset.object, dtype=np.complex64)
    return obj


def place_object(recon: Any, geom: PtychiGeometry) -> np.ndarray:
    """A reconstruction (anything :func:`~ptychopinn.data.reconstruction.load_reconstruction` reads:
    our ``reconstruction.npz``, a pty-chi NPZ, an ``(array, origin)`` pair...) resampled onto the
    pty-chi buffer (nearest whole pixel of its origin). Buffer pixels it does not cover, or covers
    with 0 / NaN (unscanned), get its mean covered value, so the solver starts from a flat object
    there."""
    rec = load_reconstruction(recon, "init")
    src = np.asarray(rec.object, dtype=np.complex64)
    valid = np.isfinite(src) & (np.abs(src) > 0)
    if not valid.any():
        raise DataError(f"{rec.source}: the initial object has no finite, nonzero pixel")
    fill = np.complex64(src[valid].mean())
    hb, wb = geom.buffer_shape
    out = np.full((hb, wb), fill, dtype=np.complex64)
    ty, tx = geom.buffer_top_left
    oy, ox = (round(v) for v in rec.origin)
    # buffer pixel (i, j) is object pixel (ty + i, tx + j) = source pixel (ty + i - oy, tx + j - ox)
    y0, x0 = max(0, oy - ty), max(0, ox - tx)
    y1, x1 = min(hb, oy - ty + src.shape[0]), min(wb, ox - tx + src.shape[1])
    if y1 <= y0 or x1 <= x0:
        raise DataError(f"{rec.source}: the initial object (origin {rec.origin}, shape {src.shape}) does not "
                        f"overlap the scanned region")
    block = src[y0 + ty - oy:y1 + ty - oy, x0 + tx - ox:x1 + tx - ox]
    ok = valid[y0 + ty - oy:y1 + ty - oy, x0 + tx - ox:x1 + tx - ox]
    out[y0:y1, x0:x1] = np.where(ok, block, fill)
    return out


def load_init_probe(source: Any, n: int) -> np.ndarray:
    """A probe (N, N) from an array or an NPZ holding ``probeGuess``, ``reconstructed_probe`` or
    ``probe`` (the first mode of a (modes, N, N) / (1, 1, N, N) stack)."""
    where = "initial probe"
    if isinstance(source, (str, os.PathLike)):
        from ptychopinn.data.contract import open_npz

        z = open_npz(str(source))
        key = next((k for k in ("probeGuess", "reconstructed_probe", "probe") if k in z), None)
        if key is None:
            raise DataError(f"{source}: no key 'probeGuess', 'reconstructed_probe' or 'probe'")
        where, source = f"{source}: key '{key}'", z[key]
    p = np.asarray(source)
    while p.ndim > 2 and p.shape[0] >= 1:
        p = p[0]
    if p.shape != (n, n) or not np.all(np.isfinite(p)):
        raise DataError(f"{where}: must be a finite ({n}, {n}) array; got shape {np.shape(p)}")
    return p.astype(np.complex64)


def _probe_scale_factor(intensities: np.ndarray, probe: np.ndarray, obj: np.ndarray,
                        tl_buffer: np.ndarray) -> float:
    """Factor f such that |fft2(f P O_patch)|^2 (unnormalised FFT) sums to the measured mean
    photons per pattern, averaged over (up to 256 evenly spaced) positions of the initial object."""
    n = probe.shape[0]
    measured = mean_total(intensities, squared=False)
    idx = np.unique(np.linspace(0, len(tl_buffer) - 1, min(len(tl_buffer), 256)).round().astype(int))
    p2 = np.abs(probe.astype(np.complex128)) ** 2
    energy = []
    for i in idx:
        y, x = np.round(tl_buffer[i]).astype(int)
        y = int(np.clip(y, 0, obj.shape[0] - n))
        x = int(np.clip(x, 0, obj.shape[1] - n))
        energy.append(float(np.sum(p2 * np.abs(obj[y:y + n, x:x + n]) ** 2)))
    model = n * n * float(np.mean(energy))
    if measured <= 0 or model <= 0:
        raise DataError("diffraction data or probe x initial object carry no intensity; cannot scale the probe")
    return math.sqrt(measured / model)


def _build_options(api: Any, config: PtychiConfig, device: str, geom: PtychiGeometry) -> Any:
    cls = {"LSQML": api.LSQMLOptions, "EPIE": api.EPIEOptions, "DM": api.DMOptions}[config.algorithm]
    options = cls()
    options.data_options.fft_shift = False  # the patterns are ifftshift-ed here
    options.object_options.optimizable = True
    options.object_options.determine_position_origin_coords_by = api.ObjectPosOriginCoordsMethods.SPECIFIED
    options.object_options.position_origin_coords = np.asarray(geom.position_origin, dtype=np.float64)
    options.probe_options.optimizable = not config.probe_fixed
    ppo = options.probe_position_options
    ppo.optimizable = bool(config.position_correction)
    if config.position_correction:
        ppo.optimization_plan.start = int(config.position_correction_start)
        ppo.constrain_position_mean = True  # a common shift of all positions is not measurable
        ppo.step_size = float(config.position_step_size)
    if config.probe_fixed:
        options.object_options.remove_object_probe_ambiguity.enabled = False
    ro = options.reconstructor_options
    ro.num_epochs = int(config.epochs)
    if config.algorithm == "DM":
        # DM updates with all positions at once (no minibatches); batch_size sets the chunk of
        # its exit-wave loop instead (memory only, no effect on convergence). Its loss is pty-chi's
        # hard-coded DM error, so no displayed-loss function is set.
        ro.chunk_length = int(config.batch_size)
        ro.displayed_loss_function = None
    else:
        ro.batch_size = int(config.batch_size)
    ro.default_device = api.Devices.CPU if device == "cpu" else api.Devices.GPU
    ro.default_dtype = api.Dtypes.FLOAT32
    ro.random_seed = None if config.seed is None else int(config.seed)
    if config.algorithm == "LSQML":
        ro.rescale_probe_intensity_in_first_epoch = False  # the probe is pre-scaled to the data
    return options


@dataclass(frozen=True)
class PtychiInputs:
    """The arrays handed to pty-chi, in its conventions (see the module docstring)."""

    geometry: PtychiGeometry
    positions: np.ndarray  # (M, 2) float64 (y, x) pty-chi positions
    intensities: np.ndarray  # (M, N, N) float32, DC at index 0
    object0: np.ndarray  # (Hb, Wb) complex64 initial object buffer
    probe0: np.ndarray  # (N, N) complex64, the input probe times probe_scale_factor
    probe_scale_factor: float
    valid_pixel_mask: np.ndarray | None = None  # (N, N) bool, True = good, DC at index 0 (as intensities)


def prepare_inputs(dataset: PtychoDataset, config: PtychiConfig, init_object: Any = None,
                   init_probe: Any = None) -> PtychiInputs:
    """Geometry, positions, intensities and initial guesses for ``dataset`` (pure numpy).
    ``init_object`` / ``init_probe`` (or the config's paths) replace the starting object / probe."""
    _check_dataset(dataset, config)
    n = dataset.N
    geom = plan_geometry(dataset, config.margin)
    centres = dataset.positions_yx
    pos = ptychi_positions(centres, n, geom.buffer_shape, geom.buffer_top_left)
    tl_buffer = centres - n // 2 - np.asarray(geom.buffer_top_left, dtype=np.float64)
    hb, wb = geom.buffer_shape
    if tl_buffer.min() < 0 or np.any(tl_buffer + n > np.array([hb, wb])):
        raise DataError(f"{dataset.source}: key 'ycoords'/'xcoords': positions put patches outside the object")
    diff = np.asarray(dataset.diff3d, dtype=np.float32)
    intensities = np.ascontiguousarray(np.fft.ifftshift(diff * diff, axes=(-2, -1)), dtype=np.float32)
    init_object = config.init_object if init_object is None else init_object
    init_probe = config.init_probe if init_probe is None else init_probe
    obj0 = _initial_object(dataset, geom, config, init_object)
    probe_in = (np.asarray(dataset.probe, dtype=np.complex64) if init_probe is None
                else load_init_probe(init_probe, n))
    scale = _probe_scale_factor(intensities, probe_in, obj0, tl_buffer)
    probe0 = (probe_in * np.float32(scale)).astype(np.complex64)
    valid = None
    if dataset.mask is not None and dataset.mask.any():
        valid = np.ascontiguousarray(np.fft.ifftshift(~np.asarray(dataset.mask, bool)))
    return PtychiInputs(geom, pos, intensities, obj0, probe0, scale, valid)


def build_task(pc: SimpleNamespace, inputs: PtychiInputs, config: PtychiConfig, device: str) -> Any:
    """A built ``PtychographyTask`` (call inside :func:`preserved_torch_state`: building changes
    torch's default device and dtype and seeds the global RNGs)."""
    import torch

    options = _build_options(pc.api, config, device, inputs.geometry)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True")
        task = pc.PtychographyTask(
            options,
            diffraction_data=inputs.intensities,
            object_data=inputs.object0[None],
            probe_data=inputs.probe0[None, None],
            probe_position_x_px=inputs.positions[:, 1].astype(np.float32),
            probe_position_y_px=inputs.positions[:, 0].astype(np.float32),
            **({} if inputs.valid_pixel_mask is None else {"valid_pixel_mask": inputs.valid_pixel_mask}),
        )
    if device == "cpu":
        # pty-chi installed a DeviceContext('cpu') mode, which intercepts every torch call;
        # CPU is torch's default anyway, so drop it
        torch.set_default_device(None)
    return task


@dataclass
class _TaskRun:
    """What one pty-chi task produced (buffers in pty-chi's frame) and how long it took."""

    obj_buf: np.ndarray
    probe_buf: np.ndarray
    pos_buf: np.ndarray | None
    losses: list[float]
    epoch_seconds: list[float]
    snapshots: dict[int, np.ndarray]
    build_seconds: float
    epochs_seconds: float


def _run_epochs(task: Any, config: PtychiConfig, geom: PtychiGeometry, progress: bool,
                snap_at: set[int], t1: float) -> tuple[list[float], list[float], dict[int, np.ndarray], float]:
    """Run the epochs one at a time (progress bar, per-epoch loss and wall time, object snapshots,
    divergence check); returns the losses, epoch times, snapshots and the time spent copying them."""
    import torch
    from tqdm.auto import tqdm

    losses: list[float] = []
    epoch_seconds: list[float] = []
    snapshots: dict[int, np.ndarray] = {}
    snap_seconds = 0.0
    bar = tqdm(range(int(config.epochs)), desc=f"pty-chi {config.algorithm} ({torch.get_num_threads()} CPU threads)", unit="epoch",
               disable=None if progress else True, leave=False)  # None: no bar off a terminal
    try:
        for epoch in bar:
            task.run(n_epochs=1)
            loss = float(task.reconstructor.loss_tracker.table["loss"].iloc[-1])
            losses.append(loss)
            epoch_seconds.append(time.perf_counter() - t1 - snap_seconds - sum(epoch_seconds))
            if epoch + 1 in snap_at:
                ts = time.perf_counter()
                sy, sx = geom.canvas_slices()
                buf = task.get_data_to_cpu("object", as_numpy=True)
                snapshots[epoch + 1] = np.ascontiguousarray(buf[0][sy, sx]).astype(np.complex64)
                snap_seconds += time.perf_counter() - ts
            bar.set_postfix(loss=f"{loss:.4g}")
            if not math.isfinite(loss):
                raise TrainingDivergedError(
                    f"pty-chi {config.algorithm} diverged: loss {loss} at epoch {epoch}")
    finally:
        bar.close()
    return losses, epoch_seconds, snapshots, snap_seconds


def _run_task(pc: SimpleNamespace, inputs: PtychiInputs, config: PtychiConfig, device: str,
              progress: bool, snapshot_epochs: Any) -> _TaskRun:
    """Build the task and run its epochs with torch's global state preserved; returns the final
    buffers (the task is freed)."""
    import torch

    snap_at = {int(e) for e in snapshot_epochs}
    gpu = torch.cuda.device(device) if device != "cpu" else contextlib.nullcontext()
    with preserved_torch_state(), warnings.catch_warnings(), gpu:  # cuda:K: pty-chi's "cuda" is GPU K
        warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True")
        t0 = time.perf_counter()
        task = build_task(pc, inputs, config, device)
        build_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        losses, epoch_seconds, snapshots, snap_seconds = _run_epochs(
            task, config, inputs.geometry, progress, snap_at, t1)
        epochs_seconds = time.perf_counter() - t1 - snap_seconds
        obj_buf = task.get_data_to_cpu("object", as_numpy=True)
        probe_buf = task.get_data_to_cpu("probe", as_numpy=True)
        pos_buf = (np.asarray(task.get_data_to_cpu("probe_positions", as_numpy=True), np.float64)
                   if config.position_correction else None)
        with contextlib.suppress(Exception):
            task.__exit__(None, None, None)  # frees pty-chi's buffers (and the accelerator cache)
        del task
    return _TaskRun(obj_buf, probe_buf, pos_buf, losses, epoch_seconds, snapshots, build_seconds, epochs_seconds)


def _run_metadata(pc: SimpleNamespace, dataset: PtychoDataset, inputs: PtychiInputs, config: PtychiConfig,
                  device: str, run: _TaskRun, import_seconds: float) -> dict[str, Any]:
    """The ``metadata`` of a :class:`PtychiResult`: versions, frame, conventions and timings."""
    import torch

    from ptychopinn import __version__

    geom = inputs.geometry
    hb, wb = geom.buffer_shape
    meta = {
        "generator": "ptychopinn.iterative.ptychi_runner",
        "package_version": __version__,
        "ptychi_version": pc.version,
        "torch_version": torch.__version__,
        **pc.torchvision,
        "config": config.to_dict(),
        "device": device,
        "dataset_source": dataset.source,
        "n_patterns": dataset.n_patterns,
        "N": dataset.N,
        "canvas_shape": list(geom.canvas_shape),
        "origin": [float(geom.canvas_origin[0]), float(geom.canvas_origin[1])],
        "buffer_shape": [hb, wb],
        "buffer_margin": geom.margin,
        "position_origin_coords": list(geom.position_origin),
        "position_convention": "pos = (c - N//2 - buffer_top_left) - (buffer_shape - N)/2, (y, x); "
                               "origin SPECIFIED = buffer_shape/2 - 0.5",
        "data": "intensities diff3d**2 (float32), ifftshift-ed here, fft_shift=False",
        "probe_scale_factor": inputs.probe_scale_factor,
        "detector_mask": None if inputs.valid_pixel_mask is None else {
            "bad_pixels": int((~inputs.valid_pixel_mask).sum()),
            "passed_as": "pty-chi valid_pixel_mask (True = good), ifftshift-ed like the intensities"},
        "probe_units": "input probe units (pty-chi's probe divided by probe_scale_factor)",
        "loss_definition": LOSS_DEFINITIONS[config.algorithm],
        "import_seconds": import_seconds,
        "build_seconds": run.build_seconds,
        "epochs_seconds": run.epochs_seconds,
        "computation_time_seconds": run.build_seconds + run.epochs_seconds,
        "epoch_wall_seconds": run.epoch_seconds,
        "final_loss": run.losses[-1] if run.losses else None,
    }
    from ptychopinn._plot import pixel_size_of

    if pixel_size_of(dataset.metadata) is not None:  # real data: the PNG gets a scale bar
        meta["object_pixel_m"] = pixel_size_of(dataset.metadata)
    return meta


def _refined_centres(pos_buf: np.ndarray, dataset: PtychoDataset, geom: PtychiGeometry,
                     config: PtychiConfig) -> tuple[np.ndarray, dict[str, Any]]:
    """Patch centres (M, 2) from pty-chi's refined positions (inverse of :func:`ptychi_positions`)
    and the ``position_correction`` metadata entry."""
    refined = (pos_buf + (np.asarray(geom.buffer_shape, np.float64) - dataset.N) / 2.0 + dataset.N // 2
               + np.asarray(geom.buffer_top_left, np.float64))
    shift = refined - dataset.positions_yx
    info = {
        "start_epoch": int(config.position_correction_start),
        "rms_shift_px": float(np.sqrt(np.mean(np.sum(shift ** 2, axis=1)))),
        "max_shift_px": float(np.max(np.hypot(shift[:, 0], shift[:, 1]))),
        "method": "pty-chi probe_position_options (gradient correction, mean position kept)"}
    return refined, info


def run_ptychi(dataset: PtychoDataset, config: PtychiConfig | None = None, progress: bool = True,
               init_object: Any = None, init_probe: Any = None, snapshot_epochs: Any = ()) -> PtychiResult:
    """Reconstruct ``dataset`` with pty-chi; returns the object in the objectGuess frame, the probe,
    the per-epoch loss and the wall time (task build + epochs; the pty-chi import is excluded).

    ``init_object``: start from this reconstruction (e.g. the PINN's ``Reconstruction`` or its
    ``reconstruction.npz``) instead of ones; ``init_probe``: start from this probe (array or NPZ).
    ``snapshot_epochs``: epochs (1-based) after which the object is copied into
    ``result.snapshots[epoch]`` (time-to-quality curves; the copies are not timed)."""
    config = config or PtychiConfig()
    inputs = prepare_inputs(dataset, config, init_object, init_probe)
    t_import = time.perf_counter()
    pc = import_ptychi()
    import_seconds = time.perf_counter() - t_import
    device = resolve_device(config.device)

    geom = inputs.geometry
    run = _run_task(pc, inputs, config, device, progress, snapshot_epochs)
    total = run.build_seconds + run.epochs_seconds
    sy, sx = geom.canvas_slices()
    obj = np.ascontiguousarray(run.obj_buf[0][sy, sx]).astype(np.complex64)
    probe = (np.asarray(run.probe_buf[0, 0]) / np.float32(inputs.probe_scale_factor)).astype(np.complex64)
    if not np.all(np.isfinite(obj)):
        raise TrainingDivergedError(f"pty-chi {config.algorithm} produced a non-finite object")

    meta = _run_metadata(pc, dataset, inputs, config, device, run, import_seconds)
    origin = (float(geom.canvas_origin[0]), float(geom.canvas_origin[1]))
    refined = None
    if run.pos_buf is not None:
        refined, meta["position_correction"] = _refined_centres(run.pos_buf, dataset, geom, config)

    from ptychopinn._plot import coverage_mask

    coverage = coverage_mask(dataset.positions_yx if refined is None else refined, probe, origin, obj.shape)
    timing = {"import_s": import_seconds, "build_s": run.build_seconds, "epochs_s": run.epochs_seconds,
              "total_s": total}
    return PtychiResult(object=obj, probe=probe, origin=origin, coverage=coverage, refined_positions=refined,
                        loss_history=np.asarray(run.losses, dtype=np.float64), timing=timing,
                        config=config, metadata=meta, snapshots=run.snapshots)


# ---------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------
def result_arrays(result: PtychiResult) -> dict[str, np.ndarray]:
    """The arrays of ``ptychi_reconstruction.npz``."""
    return {
        "reconstructed_object": np.asarray(result.object, dtype=np.complex64),
        "reconstructed_probe": np.asarray(result.probe, dtype=np.complex64),
        "algorithm": np.array(result.config.algorithm),
        "epochs": np.array(len(result.loss_history), dtype=np.int64),
        "computation_time_seconds": np.array(result.computation_time_seconds, dtype=np.float64),
        "loss_history": np.asarray(result.loss_history, dtype=np.float64),
        "origin": np.asarray(result.origin, dtype=np.float64),
        "_metadata": np.array(json.dumps(result.metadata, default=jsonable)),
    }


def plot_result(result: PtychiResult, path: str | os.PathLike) -> Path:
    """PNG of the object amplitude and phase (unscanned pixels as background) and the loss
    history, in the package's plotting style (written atomically)."""
    from ptychopinn._plot import (
        image_extent,
        new_figure,
        pixel_size_of,
        save_figure,
        show_image,
        zoom_to,
    )

    obj = result.object
    fig, axes = new_figure(1, 3, panel=(4.2, 3.6))
    extent = image_extent(result.origin, obj.shape)
    px = pixel_size_of(result.metadata)
    alg = result.config.algorithm
    for ax, kind, data, title in ((axes[0, 0], "amplitude", np.abs(obj), "amplitude"),
                                  (axes[0, 1], "phase", np.angle(obj), "phase (offset removed)")):
        show_image(ax, data, kind, mask=result.coverage, title=f"pty-chi {alg}: {title}", extent=extent,
                   pixel_size=px, weight=np.abs(obj))
        zoom_to(ax, result.coverage, extent)  # the scanned region, not the whole buffer
        ax.set_xlabel("x (object px)")
        ax.set_ylabel("y (object px)")
    ax = axes[0, 2]
    if len(result.loss_history):
        ax.semilogy(np.arange(1, len(result.loss_history) + 1), np.maximum(result.loss_history, 1e-300))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (DM error)" if alg == "DM" else "loss (mse of sqrt intensities)")
    ax.set_title(f"{len(result.loss_history)} epochs, {result.computation_time_seconds:.1f} s", fontsize=9)
    return save_figure(fig, path)


def save_result(result: PtychiResult, out_dir: str | os.PathLike, plot: bool = True) -> dict[str, Path]:
    """Write ``ptychi_reconstruction.npz`` (and the PNG) into ``out_dir``, atomically."""
    from ptychopinn._io import save_npz_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"npz": save_npz_atomic(out / OUTPUT_NPZ, **result_arrays(result))}
    if result.refined_positions is not None:
        r = result.refined_positions
        written["positions"] = save_npz_atomic(
            out / OUTPUT_POSITIONS, ycoords=r[:, 0].copy(), xcoords=r[:, 1].copy(),
            _metadata=np.array(json.dumps(result.metadata.get("position_correction", {}), default=jsonable)))
    if plot:
        written["png"] = plot_result(result, out / OUTPUT_PNG)
    return written


def initial_probe_source(dataset: PtychoDataset, name: str | None = None) -> str:
    """Where ``dataset``'s probe came from (recorded ``probe_source``, else the file's
    ``probeGuess``; ``name`` replaces ``dataset.source`` in that)."""
    md = dataset.metadata
    return (md.get("probe_source") or (md.get("geometry") or {}).get("probe_source")
            or f"{name or dataset.source}: probeGuess")


def save_probe(path: str | os.PathLike, result: PtychiResult, dataset: PtychoDataset, config: PtychiConfig,
               name: str | None = None) -> Path:
    """Write ``result``'s refined probe as a probe NPZ (``probeGuess`` + ``_metadata``: the run, the
    initial probe, seconds, final loss) for ``load_dataset(..., options=InputOptions(probe_from=path))``
    (``train/infer --probe-from``); ``name``: the data's name in the record (default its source)."""
    from ptychopinn.data.contract import save_probe_file

    name = name or dataset.source
    return save_probe_file(path, result.probe, {
        "probe_source": f"pty-chi {config.algorithm} {len(result.loss_history)} epochs on {name}"
                        + (" (probe fixed)" if config.probe_fixed else ""),
        "initial_probe": initial_probe_source(dataset, name),
        "seconds": result.computation_time_seconds,
        "final_loss": float(result.loss_history[-1]) if len(result.loss_history) else None})


#: the refined probe's file beside a bundle trained on it (``train --probe-from-ptychi``)
REFINED_PROBE_FILE = "ptychi_probe.npz"


def refine_probe(dataset: PtychoDataset, epochs: int, *, device: str = "auto", seed: int = 0,
                 progress: bool = False) -> PtychoDataset:
    """``dataset`` with its probe replaced by a short pty-chi LSQML refinement from it; its
    metadata records the source (``probe_source``) and the refinement (``probe_refinement``:
    seconds, loss history, the file the trainer writes it to), which the trainer puts in the bundle."""
    md = dataset.metadata
    initial = initial_probe_source(dataset)
    res = run_ptychi(dataset, PtychiConfig(epochs=int(epochs), device=device, seed=seed), progress=progress)
    dataset.probe = np.asarray(res.probe, dtype=np.complex64)
    md["probe_source"] = f"pty-chi LSQML {len(res.loss_history)} epochs on {dataset.source} (initial probe: {initial})"
    md["probe_refinement"] = {"file": REFINED_PROBE_FILE, "seconds": float(res.computation_time_seconds),
                              "loss_history": [float(v) for v in res.loss_history]}
    return dataset
