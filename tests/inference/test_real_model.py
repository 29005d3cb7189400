"""Inference with the real network (untrained, from build_model) and with a trained bundle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from inference_helpers import make_dataset

from ptychopinn.inference.predict import predict
from ptychopinn.inference.reconstruct import reconstruct

model_mod = pytest.importorskip("ptychopinn.model")
config_mod = pytest.importorskip("ptychopinn.model.config")


def _model(gridsize: int):
    from ptychopinn.physics.probe import default_probe

    torch.manual_seed(0)
    cfg = config_mod.ModelConfig(N=32, gridsize=gridsize, n_filters_scale=1)
    return model_mod.build_model(cfg, default_probe(32), 1.0)


@pytest.mark.parametrize("gridsize", [1, 2])
def test_untrained_model_contract(gridsize):
    ds = make_dataset(m=24, n=32, size=96, seed=8)  # integer positions
    model = _model(gridsize)
    p7 = predict(model, ds, batch_size=7, device="cpu", progress=False)
    p24 = predict(model, ds, batch_size=24, device="cpu", progress=False)
    assert p7.shape == (24, 32, 32) and p7.dtype == np.complex64
    np.testing.assert_allclose(p7, p24, rtol=1e-4, atol=1e-5)  # conv kernels may differ per batch size
    rec = reconstruct(model, ds, batch_size=5, device="cpu", progress=False)
    assert rec.stitch_crop == 10 and rec.counts.sum() == 24 * 10 * 10
    assert np.all(np.isfinite(rec.object))
    # oracle: a plain loop averaging the central 10 x 10 of every predicted patch at its position
    acc = np.zeros((96, 96), np.complex128)
    cnt = np.zeros((96, 96))
    for (cy, cx), patch in zip(ds.positions_yx.astype(int), p24):
        acc[cy - 5:cy + 5, cx - 5:cx + 5] += patch[11:21, 11:21]
        cnt[cy - 5:cy + 5, cx - 5:cx + 5] += 1
    y0, x0 = rec.origin.astype(int)
    h, w = rec.object.shape
    cov = cnt[y0:y0 + h, x0:x0 + w] > 0
    np.testing.assert_array_equal(cov, rec.counts > 0)
    expected = acc[y0:y0 + h, x0:x0 + w][cov] / cnt[y0:y0 + h, x0:x0 + w][cov]
    np.testing.assert_allclose(rec.object[cov], expected, rtol=1e-4, atol=1e-5)
    assert np.all(rec.amplitude[cov] > 0)


@pytest.mark.slow
def test_infer_with_trained_bundle(tmp_path):
    """Train 1 epoch (gridsize 2, tiny), then ``ptychopinn infer`` on the bundle directory."""
    trainer = pytest.importorskip("ptychopinn.training.trainer")
    from ptychopinn.cli.main import main
    from ptychopinn.data.simulate import simulate
    from ptychopinn.training.config import TrainConfig

    ds = simulate(n_images=32, N=32, object_size=64, nphotons=1e5, seed=3)
    data = tmp_path / "data.npz"
    ds.save(data)
    run = tmp_path / "run"
    res = trainer.train(
        str(data), run, config_mod.ModelConfig(gridsize=2, n_filters_scale=1),
        TrainConfig(epochs=1, batch_size=16, device="cpu", precision="float32", seed=0), progress=False,
    )
    out = tmp_path / "out"
    assert main(["infer", "--model", str(run), "--data", str(data), "-o", str(out), "--device", "cpu",
                 "--batch-size", "10", "--no-progress"]) == 0
    with np.load(out / "reconstruction.npz", allow_pickle=False) as z:
        obj, origin, counts = z["object"], z["origin"], z["counts"]
    assert np.all(np.isfinite(obj)) and counts.sum() == 32 * 10 * 10
    # the canvas covers the scanned region of the ground truth (origin convention)
    y0, x0 = origin.astype(int)
    assert y0 >= 0 and x0 >= 0 and y0 + obj.shape[0] <= 64 and x0 + obj.shape[1] <= 64
    # the bundle reloads the trained weights: same prediction as the in-memory model
    in_memory = reconstruct(res.model, ds, batch_size=10, device="cpu", progress=False)
    np.testing.assert_allclose(in_memory.object, obj, rtol=1e-5, atol=1e-6)
