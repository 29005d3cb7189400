"""The general-model corpus: deterministic scans, the stated dose, step and geometry."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from ptychopinn.data.corpus import Corpus, CorpusConfig, probe_diameter, zoom_probe
from ptychopinn.errors import ConfigError
from ptychopinn.physics.probe import default_probe


def test_scan_is_a_pure_function_of_config_and_index() -> None:
    c = Corpus(CorpusConfig(N=32, patterns_per_scan=16))
    a, b, other = c.scan(7), c.scan(7), c.scan(8)
    assert np.array_equal(a.diff3d, b.diff3d) and np.array_equal(a.xcoords, b.xcoords)
    assert not np.array_equal(a.diff3d, other.diff3d)
    c2 = Corpus(CorpusConfig(N=32, patterns_per_scan=16, seed=1))
    assert not np.array_equal(c2.scan(7).diff3d, a.diff3d)


def test_dose_is_the_drawn_one_and_patches_lie_inside() -> None:
    c = Corpus(CorpusConfig(N=32, patterns_per_scan=64, dose_range=(1e5, 1e5)))
    for i in range(4):
        ds = c.scan(i)
        counts = (ds.diff3d.astype(np.float64) ** 2).sum(axis=(1, 2)).mean()
        assert counts == pytest.approx(1e5, rel=0.01)  # Poisson mean of the requested dose
        h, w = ds.object.shape
        assert ds.ycoords.min() >= 16 and ds.ycoords.max() <= h - 16
        assert ds.xcoords.min() >= 16 and ds.xcoords.max() <= w - 16


def test_raster_step_is_the_drawn_fraction_of_the_probe_diameter() -> None:
    c = Corpus(CorpusConfig(N=32, patterns_per_scan=36, scans=("raster",), step_fraction=(0.5, 0.5),
                            probe_kinds=("disk",)))
    ds = c.scan(0)
    d, _ = cKDTree(ds.positions_yx).query(ds.positions_yx, k=2)
    meta = ds.metadata["corpus"]
    assert meta["step_fraction"] == 0.5
    assert np.median(d[:, 1]) == pytest.approx(0.5 * probe_diameter(ds.probe), abs=0.51)


def test_probe_diameter_of_a_disk() -> None:
    # soft disk of nominal diameter 20 px: 90 % of its energy within a ~19 px disc
    assert probe_diameter(default_probe(64, 20.0)) == pytest.approx(19.0, abs=1.5)
    z = zoom_probe(default_probe(64, 20.0), 64, 1.5)
    assert probe_diameter(z) == pytest.approx(1.5 * probe_diameter(default_probe(64, 20.0)), rel=0.08)


def test_corpus_config_refuses_unknown_families_and_bad_ranges() -> None:
    with pytest.raises(ConfigError, match="siemens"):
        CorpusConfig(textures=("siemens",))
    with pytest.raises(ConfigError, match="dose_range"):
        CorpusConfig(dose_range=(1e6, 1e3))
    with pytest.raises(ConfigError, match="unknown"):
        CorpusConfig.from_dict({"N": 64, "photographs": True})
    cfg = CorpusConfig(probe_files=("a.npz",))
    assert CorpusConfig.from_dict(cfg.to_dict()) == cfg
