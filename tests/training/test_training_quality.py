"""End-to-end quality (slow): a small PINN trained on simulated lines at 1e9 photons reconstructs
the held-out half of the object (spatial split along y)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ptychopinn.data.grouping import spatial_split
from ptychopinn.data.simulate import simulate
from ptychopinn.model.config import ModelConfig
from ptychopinn.training.config import TrainConfig
from ptychopinn.training.trainer import train


def _best_integer_alignment(gt: np.ndarray, rec: np.ndarray, valid: np.ndarray, rim: int = 3,
                            search: int = 2) -> tuple[float, float, tuple[int, int]]:
    """Pearson r of amplitudes at the best integer shift within +-search px, and the relative MSE of
    the least-squares scaled reconstruction (a constant image scores 1)."""
    h, w = gt.shape
    best = (-2.0, np.inf, (0, 0))
    for dy in range(-search, search + 1):
        for dx in range(-search, search + 1):
            sl_g = (slice(rim + search, h - rim - search), slice(rim + search, w - rim - search))
            sl_r = (slice(rim + search - dy, h - rim - search - dy), slice(rim + search - dx, w - rim - search - dx))
            m = valid[sl_g] & valid[sl_r]
            a, b = rec[sl_r][m], gt[sl_g][m]
            r = float(np.corrcoef(a, b)[0, 1])
            if r > best[0]:
                k = float(a @ b / (a @ a))
                best = (r, float(np.mean((k * a - b) ** 2) / np.var(b)), (dy, dx))
    return best


@pytest.mark.slow
@pytest.mark.parametrize("gridsize,epochs", [(1, 8), (2, 6)])
def test_small_pinn_reconstructs_held_out_region(gridsize: int, epochs: int, tmp_path: Path) -> None:
    from ptychopinn.inference.reconstruct import reconstruct

    ds = simulate(n_images=600, N=32, object_size=112, nphotons=1e9, object_kind="lines", seed=11)
    tr, te = spatial_split(ds.positions_yx, "y", 0.5)
    res = train(ds.subset(tr), tmp_path / "run", ModelConfig(gridsize=gridsize, n_filters_scale=1),
                TrainConfig(epochs=epochs, device="cpu", patience=0, seed=0), progress=False)
    assert res.history[-1]["val_loss"] < res.history[0]["val_loss"]
    test = ds.subset(te)
    rec = reconstruct(tmp_path / "run", test, device="cpu", progress=False)
    oy, ox = (int(round(v)) for v in rec.origin)
    h, w = rec.object.shape
    gt = np.abs(test.object[oy:oy + h, ox:ox + w])
    valid = np.asarray(rec.counts) > 0
    r, rel_mse, shift = _best_integer_alignment(gt, np.abs(rec.object), valid)
    print(f"gridsize {gridsize}: amplitude Pearson r = {r:.3f}, relative MSE = {rel_mse:.3f} "
          f"(constant image: 1), shift {shift}, {res.train_patterns_per_s:.0f} train patterns/s")
    assert r >= 0.8
    assert rel_mse < 0.5
