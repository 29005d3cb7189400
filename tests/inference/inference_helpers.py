"""Shared helpers for inference tests: a stand-in model honouring the forward contract and small
in-memory datasets (no dependence on the trained model stage)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ptychopinn.data.contract import PtychoDataset


class StandInModel(nn.Module):
    """Contract-shaped model with an analytic output: member c's patch is
    ``x[:, c] * exp(i * (0.1 * off_y - 0.05 * off_x))`` (the normalised input as amplitude)."""

    def __init__(self, n: int, gridsize: int = 1) -> None:
        super().__init__()
        self.N = n
        self.gridsize = gridsize
        self.gain = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor, offsets: torch.Tensor) -> dict[str, torch.Tensor]:
        assert x.dtype == torch.float32 and x.ndim == 4 and x.shape[1] == self.gridsize ** 2
        assert offsets.shape == (x.shape[0], x.shape[1], 2)
        ph = (0.1 * offsets[..., 0] - 0.05 * offsets[..., 1])[..., None, None].expand_as(x)
        return {"patches": torch.polar(x * self.gain, ph.to(x.dtype))}


def oracle_r(diff3d: np.ndarray) -> float:
    """DESIGN section 2 normalisation, written out independently in float64."""
    n = diff3d.shape[-1]
    d = diff3d.astype(np.float64)
    return math.sqrt((n / 2) ** 2 / np.mean((d * d).sum(axis=(1, 2))))


def make_dataset(m: int = 40, n: int = 16, size: int = 64, seed: int = 0, subpixel: bool = False) -> PtychoDataset:
    rng = np.random.default_rng(seed)
    lo, hi = n // 2 + 1, size - n // 2 - 2
    if subpixel:
        pos = rng.uniform(lo, hi, size=(m, 2))
    else:
        pos = rng.integers(lo, hi, size=(m, 2)).astype(np.float64)
    diff = (rng.gamma(2.0, 3.0, size=(m, n, n))).astype(np.float32)
    obj = np.ones((size, size), np.complex64)
    probe = np.ones((n, n), np.complex64)
    return PtychoDataset(diff3d=diff, probe=probe, xcoords=pos[:, 1].copy(), ycoords=pos[:, 0].copy(),
                         object=obj, metadata={"test": True})

