"""Corpus object and probe families: ranges, contrast relations, probe footprint."""

from __future__ import annotations

import numpy as np
import pytest

from ptychopinn.physics import families as fam


@pytest.mark.parametrize("kind", fam.TEXTURES)
def test_every_texture_spans_zero_to_one_and_is_not_flat(kind: str) -> None:
    t = fam.texture(kind, 96, np.random.default_rng(3))
    assert t.shape == (96, 96) and np.isfinite(t).all()
    assert t.min() == pytest.approx(0.0, abs=1e-12) and t.max() == pytest.approx(1.0)
    assert t.std() > 0.03  # real structure, not a constant


def test_texture_is_a_pure_function_of_the_generator() -> None:
    a = fam.texture("cells", 64, np.random.default_rng(5))
    b = fam.texture("cells", 64, np.random.default_rng(5))
    c = fam.texture("cells", 64, np.random.default_rng(6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_relations_give_the_stated_amplitude_and_phase() -> None:
    rng = np.random.default_rng(0)
    t1, t2 = fam.texture("pink", 64, rng), fam.texture("particles", 64, rng)
    o = fam.complex_object("phase_only", t1, t2, rng)
    assert np.allclose(np.abs(o), 1.0) and np.ptp(np.angle(o)) > 0.05
    o = fam.complex_object("amplitude_only", t1, t2, rng)
    assert np.allclose(np.angle(o), 0.0, atol=1e-12) and np.abs(o).max() == pytest.approx(1.0)
    o = fam.complex_object("thickness", t1, t1, rng)
    # one thickness map: phase = -(delta/beta) * mu t and log|O| = -mu t, so phase is affine in log|O|
    la, ph = np.log(np.abs(o)).ravel(), np.angle(o).ravel()
    coef = np.polyfit(la, ph, 1)
    assert np.abs(np.polyval(coef, la) - ph).max() < 1e-9 and coef[0] > 0
    o = fam.complex_object("independent", t1, t2, rng)
    assert abs(np.corrcoef(np.abs(o).ravel(), np.angle(o).ravel())[0, 1]) < 0.5
    for rel in fam.RELATIONS:
        ph = np.angle(fam.complex_object(rel, t1, t2, np.random.default_rng(1)))
        assert np.abs(ph).max() < 3.2 and abs(ph.mean()) < 0.05


@pytest.mark.parametrize("kind", fam.PROBE_KINDS)
def test_probes_peak_at_one_and_mostly_fit_the_central_half(kind: str) -> None:
    for seed in range(3):
        p = fam.random_probe(64, kind, np.random.default_rng(seed))
        e = np.abs(p) ** 2
        assert np.abs(p).max() == pytest.approx(1.0)
        assert e[16:48, 16:48].sum() / e.sum() > 0.9
