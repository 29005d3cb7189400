"""One device resolver for training, inference and the pty-chi bridge."""

from __future__ import annotations

import torch

from ptychopinn.errors import ConfigError


def resolve_device(device: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without an index takes ``local_rank``
    (one GPU per process under torchrun). An unavailable or unknown device is a ConfigError."""
    if isinstance(device, torch.device):
        dev = device
    else:
        name = str(device)
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise ConfigError(f"unsupported device {name!r} (auto, cpu, cuda)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' requested but CUDA is not available (use --device cpu or auto)")
        if dev.index is None:
            dev = torch.device("cuda", local_rank)
    elif dev.type != "cpu":
        raise ConfigError(f"unsupported device {str(device)!r} (auto, cpu, cuda)")
    return dev
