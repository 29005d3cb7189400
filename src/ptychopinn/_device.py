"""One device resolver for training, inference and the pty-chi bridge, and the CPU thread count.

Device names: ``auto`` (a free GPU when CUDA is available, else the CPU), ``cpu``, ``cuda``
(the process's GPU: ``local_rank`` under torchrun, else GPU 0) and ``cuda:K`` (GPU K)."""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING

from ptychopinn.errors import ConfigError

if TYPE_CHECKING:  # torch is imported where a device is resolved, not to check a name
    import torch

_NAME = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
DEVICE_HELP = "auto (a free GPU if CUDA is available, else cpu), cpu, cuda or cuda:K"


def check_device_name(name: str, what: str = "device") -> str:
    """``name`` if it is a valid device name (see the module docstring), else a ConfigError."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{what} must be {DEVICE_HELP}; got {name!r}")
    return name


def free_gpu() -> int:
    """Index of the visible GPU with the most free memory (0 when it cannot be measured)."""
    import torch

    best, best_free = 0, -1
    for k in range(torch.cuda.device_count()):
        try:
            free, _total = torch.cuda.mem_get_info(k)
        except Exception:  # noqa: BLE001 - a GPU we cannot query is not chosen
            continue
        if free > best_free:
            best, best_free = k, free
    return best


def resolve_device(device: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` -> a free GPU when CUDA is available (the ``local_rank`` GPU under torchrun), else
    the CPU; ``cuda`` without an index takes ``local_rank``. An unavailable or unknown device is a
    ConfigError."""
    import torch

    if isinstance(device, torch.device):
        dev = device
    else:
        name = str(device)
        if not _NAME.match(name):
            raise ConfigError(f"unsupported device {name!r} ({DEVICE_HELP})")
        if name == "auto":
            if not torch.cuda.is_available():
                return torch.device("cpu")
            distributed = "LOCAL_RANK" in os.environ or local_rank
            return torch.device("cuda", local_rank if distributed else free_gpu())
        dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {str(device)!r} requested but CUDA is not available "
                              "(use --device cpu or auto)")
        if dev.index is None:
            dev = torch.device("cuda", local_rank)
        n = torch.cuda.device_count()
        if dev.index >= n:
            raise ConfigError(f"device {str(device)!r} requested but only {n} GPU(s) are visible "
                              f"(cuda:0 ... cuda:{n - 1})")
    elif dev.type != "cpu":
        raise ConfigError(f"unsupported device {str(device)!r} ({DEVICE_HELP})")
    return dev


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """``OMP_NUM_THREADS`` when set to a positive integer, else the available cores divided
    among the local processes of a torchrun job (``LOCAL_WORLD_SIZE``)."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    local = os.environ.get("LOCAL_WORLD_SIZE", "1")
    procs = int(local) if local.isdigit() and int(local) > 0 else 1
    return max(1, available_cores() // procs)


def thread_state() -> tuple[dict[str, str | None], int | None]:
    """What :func:`apply_threads` changes (to put it back with :func:`restore_threads`)."""
    torch = sys.modules.get("torch")
    env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    return env, (torch.get_num_threads() if torch is not None else None)


def restore_threads(state: tuple[dict[str, str | None], int | None]) -> None:
    env, n = state
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    torch = sys.modules.get("torch")
    if torch is not None and n is not None:
        torch.set_num_threads(n)


def apply_threads(n: int | None) -> int:
    """Use ``n`` CPU threads (default :func:`default_threads`): sets ``OMP_NUM_THREADS`` and
    ``MKL_NUM_THREADS`` (read by torch, numpy's BLAS and child processes when they start) and,
    when torch is already imported, ``torch.set_num_threads``. Returns ``n``."""
    n = default_threads() if n is None else int(n)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(n)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    return n
