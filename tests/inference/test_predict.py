"""Chunked prediction with a stand-in model whose output is known analytically."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from inference_helpers import StandInModel, make_dataset, oracle_r

from ptychopinn.data.contract import PtychoDataset
from ptychopinn.data.grouping import make_groups
from ptychopinn.errors import ConfigError, DataError
from ptychopinn.inference.predict import predict, resolve_device
from ptychopinn.inference.reconstruct import reconstruct


def test_predict_gridsize1_matches_oracle_for_any_batch_size():
    ds = make_dataset(m=37, n=16)
    model = StandInModel(16, gridsize=1)
    outs = {b: predict(model, ds, batch_size=b, device="cpu", progress=False) for b in (1, 7, 256)}
    np.testing.assert_array_equal(outs[1], outs[7])
    np.testing.assert_array_equal(outs[1], outs[256])
    # oracle: normalised input as amplitude, zero offsets -> zero phase
    expected = ds.diff3d.astype(np.float64) * oracle_r(ds.diff3d)
    assert outs[7].dtype == np.complex64 and outs[7].shape == (37, 16, 16)
    np.testing.assert_allclose(outs[7], expected, rtol=2e-6)


def test_predict_gridsize2_keeps_anchor_patch():
    ds = make_dataset(m=30, n=16, subpixel=True)
    model = StandInModel(16, gridsize=2)
    outs = {b: predict(model, ds, batch_size=b, device="cpu", progress=False) for b in (1, 7, 256)}
    np.testing.assert_array_equal(outs[1], outs[7])
    np.testing.assert_array_equal(outs[1], outs[256])
    # anchor of group i is pattern i (one group per pattern, no oversampling); its offset is its
    # position minus the group centroid
    groups = make_groups(ds.positions_yx, 2, n_groups=None)
    off = groups.offsets[:, 0]
    phase = 0.1 * off[:, 0] - 0.05 * off[:, 1]
    expected = ds.diff3d * oracle_r(ds.diff3d) * np.exp(1j * phase)[:, None, None]
    np.testing.assert_allclose(outs[7], expected, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("gridsize", [1, 2])
def test_reconstruct_identical_for_batch_sizes(gridsize):
    ds = make_dataset(m=45, n=16, subpixel=True, seed=4)
    model = StandInModel(16, gridsize=gridsize)
    recs = [reconstruct(model, ds, batch_size=b, device="cpu", progress=False) for b in (1, 7, 256)]
    for rec in recs[1:]:
        np.testing.assert_array_equal(rec.object, recs[0].object)
        np.testing.assert_array_equal(rec.counts, recs[0].counts)
        np.testing.assert_array_equal(rec.origin, recs[0].origin)


def test_all_zero_data_is_data_error():
    ds = make_dataset(m=10, n=16)
    ds.diff3d[:] = 0
    with pytest.raises(DataError, match="diff3d"):
        reconstruct(StandInModel(16), ds, device="cpu", progress=False)


def test_pattern_size_mismatch_is_data_error():
    ds = make_dataset(m=10, n=16)
    with pytest.raises(DataError, match="N=32"):
        reconstruct(StandInModel(32), ds, device="cpu", progress=False)


def test_bad_options():
    ds = make_dataset(m=10, n=16)
    with pytest.raises(ConfigError):
        reconstruct(StandInModel(16), ds, batch_size=0, device="cpu")
    with pytest.raises(ConfigError):
        reconstruct(StandInModel(16), ds, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            resolve_device("cuda")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_predict_gridsize2_offsets_of_hand_made_groups():
    # three isolated 2x2 px squares, 40 px apart: with K = C = 4 every group is one square, so each
    # anchor's offset from its group centroid is (+-1, +-1) px, known without any grouping code
    corners = np.array([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
    pos = np.concatenate([c + corners for c in ([20.0, 20.0], [20.0, 60.0], [60.0, 40.0])])
    rng = np.random.default_rng(3)
    n = 16
    diff = rng.gamma(2.0, 3.0, size=(12, n, n)).astype(np.float32)
    ds = PtychoDataset(diff3d=diff, probe=np.ones((n, n), np.complex64), xcoords=pos[:, 1].copy(),
                       ycoords=pos[:, 0].copy(), object=np.ones((96, 96), np.complex64))
    model = StandInModel(n, gridsize=2)
    model.config = {"neighbor_count": 4}
    out = predict(model, ds, batch_size=5, device="cpu", progress=False)
    off = np.tile(corners, (3, 1))  # anchor i is pattern i: its own corner
    phase = 0.1 * off[:, 0] - 0.05 * off[:, 1]
    np.testing.assert_allclose(np.angle(out[:, 0, 0]), phase, atol=1e-6)
    np.testing.assert_allclose(np.abs(out), diff * oracle_r(diff), rtol=2e-6)


def test_model_geometry_reads_config_then_attributes():
    from ptychopinn.inference.predict import model_geometry
    from ptychopinn.model.config import ModelConfig

    bare = StandInModel(16, gridsize=2)
    assert model_geometry(bare) == (16, 2, "pinn", 7)
    cfg = ModelConfig(N=32, gridsize=3, kind="pinn")
    assert model_geometry(bare, cfg, {"neighbor_count": 11}) == (32, 3, "pinn", 11)
    assert model_geometry(torch.nn.Linear(2, 2)) == (0, 1, "pinn", 7)  # nothing known: defaults
