"""The one reconstruction type round-trips through its NPZ; amplitude and phase follow the object."""

from __future__ import annotations

import numpy as np

from ptychopinn.data.reconstruction import Reconstruction, load_reconstruction


def test_reconstruction_round_trips_through_its_file_and_derives_amplitude_and_phase(tmp_path):
    rng = np.random.default_rng(3)
    obj = (rng.normal(size=(9, 13)) + 1j * rng.normal(size=(9, 13))).astype(np.complex64)
    counts = rng.integers(0, 3, size=obj.shape).astype(np.int32)
    rec = Reconstruction(object=obj, origin=np.array([4.5, -2.0]), label="PtyChi", counts=counts,
                         metadata={"note": "test"})

    path = rec.save(tmp_path / "rec.npz")
    back = Reconstruction.load(path)
    np.testing.assert_array_equal(back.object, obj)
    assert back.origin == (4.5, -2.0) and back.label == "PtyChi" and back.source == str(path)
    np.testing.assert_array_equal(back.counts, counts)
    np.testing.assert_array_equal(back.coverage, counts > 0)
    assert back.metadata == {"note": "test"}
    assert load_reconstruction(path, "PtychoPINN").label == "PtychoPINN"  # a given label wins

    # independent oracle: amplitude = hypot(re, im), phase = arctan2(im, re), in float64
    re, im = obj.real.astype(np.float64), obj.imag.astype(np.float64)
    for r in (rec, back):
        np.testing.assert_allclose(r.amplitude, np.hypot(re, im), rtol=1e-6)
        np.testing.assert_allclose(r.phase, np.arctan2(im, re), rtol=0, atol=1e-6)
    with np.load(path) as z:  # the file's amplitude / phase keys are the same derived arrays
        np.testing.assert_allclose(z["amplitude"], np.hypot(re, im), rtol=1e-6)
        np.testing.assert_allclose(z["phase"], np.arctan2(im, re), rtol=0, atol=1e-6)
