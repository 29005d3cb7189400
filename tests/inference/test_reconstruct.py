"""reconstruct(): end-to-end against a known object, output files, atomic writes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from inference_helpers import StandInModel, oracle_r

import ptychopinn
import ptychopinn.inference.reconstruct as rec_mod
from ptychopinn.data.contract import PtychoDataset


def _object_dataset(n=16, size=72, m=120, seed=6):
    """A dataset whose 'diffraction' is the ground-truth amplitude patch times 7, so the stand-in
    model (normalised input as amplitude) must return 7 r |O| over the scanned region."""
    rng = np.random.default_rng(seed)
    amp = (0.5 + rng.random((size, size))).astype(np.float32)
    pos = rng.integers(n // 2, size - n // 2, size=(m, 2)).astype(np.float64)
    patches = np.stack([amp[y - n // 2:y - n // 2 + n, x - n // 2:x - n // 2 + n] for y, x in pos.astype(int)])
    ds = PtychoDataset(diff3d=7.0 * patches, probe=np.ones((n, n), np.complex64), xcoords=pos[:, 1],
                       ycoords=pos[:, 0], object=amp.astype(np.complex64))
    return ds, amp


def test_reconstruct_recovers_known_object_and_writes_files(tmp_path):
    ds, amp = _object_dataset()
    out = tmp_path / "out"
    rec = ptychopinn.reconstruct(StandInModel(16), ds, out, stitch_crop=6, batch_size=32,
                                 device="cpu", progress=False)
    y0, x0 = rec.origin.astype(int)
    h, w = rec.object.shape
    cov = rec.counts > 0
    expected = 7.0 * oracle_r(ds.diff3d) * amp[y0:y0 + h, x0:x0 + w]
    np.testing.assert_allclose(rec.amplitude[cov], expected[cov], rtol=1e-5)
    np.testing.assert_allclose(rec.phase[cov], 0.0, atol=1e-6)

    assert sorted(p.name for p in out.iterdir()) == ["amplitude.png", "phase.png", "reconstruction.npz"]
    with np.load(out / "reconstruction.npz", allow_pickle=False) as z:
        assert z["object"].dtype == np.complex64 and z["object"].shape == (h, w)
        assert z["amplitude"].dtype == np.float32 and z["phase"].dtype == np.float32
        np.testing.assert_array_equal(z["object"], rec.object)
        np.testing.assert_array_equal(z["amplitude"], np.abs(rec.object))
        np.testing.assert_array_equal(z["origin"], rec.origin)
        assert z["origin"].dtype == np.float64
        np.testing.assert_array_equal(z["xcoords"], ds.xcoords)
        np.testing.assert_array_equal(z["ycoords"], ds.ycoords)
        assert int(z["stitch_crop"]) == 6
        meta = json.loads(str(z["_metadata"]))
    assert meta["n_patterns"] == 120 and meta["stitch_crop"] == 6 and meta["gridsize"] == 1
    assert abs(meta["input_scale_r"] - oracle_r(ds.diff3d)) < 1e-6 * oracle_r(ds.diff3d)
    for name in ("amplitude.png", "phase.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    t = rec.timing
    assert t["predict_s"] >= 0 and t["stitch_s"] >= 0 and t["patterns_per_s"] > 0


def test_default_crop_and_path_input(tmp_path):
    ds, _ = _object_dataset(n=16)
    path = tmp_path / "data.npz"
    ds.save(path)
    rec = rec_mod.reconstruct(StandInModel(16), str(path), device="cpu", progress=False)
    assert rec.stitch_crop == 5  # round(16 * 20 / 64)
    assert rec.metadata["data"] == str(path)


def test_outputs_all_or_nothing(tmp_path, monkeypatch):
    ds, _ = _object_dataset()
    out = tmp_path / "out"
    calls = []

    def failing_png(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # npz and the first PNG are already written under temporary names
            raise OSError("disk full")
        return real_png(*args, **kwargs)

    import ptychopinn._plot as plot_mod

    real_png = plot_mod.image_png
    monkeypatch.setattr(plot_mod, "image_png", failing_png)
    with pytest.raises(OSError, match="disk full"):
        rec_mod.reconstruct(StandInModel(16), ds, out, device="cpu", progress=False)
    assert list(out.iterdir()) == []  # neither final files nor temporaries remain

    # an earlier complete result is not clobbered by a failed run
    monkeypatch.setattr(plot_mod, "image_png", real_png)
    rec_mod.reconstruct(StandInModel(16), ds, out, device="cpu", progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    calls.clear()
    monkeypatch.setattr(plot_mod, "image_png", failing_png)
    with pytest.raises(OSError):
        rec_mod.reconstruct(StandInModel(16), ds, out, stitch_crop=3, device="cpu", progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
