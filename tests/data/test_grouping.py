"""Grouping, splits and overlap metrics against brute-force and analytic oracles."""

import numpy as np
import pytest

from ptychopinn.data.grouping import (
    make_groups, mean_nn_step, overlap_between_groups, overlap_to_neighbours, overlap_within_groups,
    spatial_split,
)
from ptychopinn.errors import ConfigError


def _pos(m=80, seed=0):
    return np.random.default_rng(seed).uniform(0, 100, (m, 2))


def test_members_are_among_anchor_k_nearest_brute_force():
    pos = _pos()
    k = 7
    g = make_groups(pos, gridsize=2, neighbor_count=k, seed=1)
    assert g.indices.shape == (80, 4)
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    for row in g.indices:
        a = row[0]
        knn = set(np.argsort(d[a])[:k])  # includes the anchor itself
        assert set(row) <= knn and len(set(row)) == 4


def test_offsets_are_relative_to_centroid():
    pos = _pos()
    g = make_groups(pos, gridsize=2, seed=0)
    np.testing.assert_allclose(g.offsets.sum(axis=1), 0, atol=1e-9)
    np.testing.assert_allclose(pos[g.indices], g.centres[:, None] + g.offsets)


def test_n_groups_oversampling_and_errors():
    pos = _pos(30)
    assert make_groups(pos, 2, n_groups=10, seed=0).n_groups == 10
    with pytest.raises(ConfigError, match="oversample"):
        make_groups(pos, 2, n_groups=31)
    g = make_groups(pos, 2, n_groups=100, oversample=True, seed=0)
    assert g.n_groups == 100
    assert len({tuple(r) for r in g.indices}) == 100  # distinct (anchor, neighbour set) draws
    with pytest.raises(ConfigError, match="K=3"):
        make_groups(pos, 2, neighbor_count=3)
    with pytest.raises(ConfigError):
        make_groups(pos, 1, n_groups=31)
    a = make_groups(pos, 2, n_groups=10, seed=5).indices
    b = make_groups(pos, 2, n_groups=10, seed=5).indices
    np.testing.assert_array_equal(a, b)


def test_spatial_split_has_no_leakage():
    pos = _pos(200)
    tr, te = spatial_split(pos, "y")
    assert len(tr) + len(te) == 200 and not set(tr) & set(te)
    assert pos[tr, 0].max() < pos[te, 0].min()
    tr, te = spatial_split(pos, "x", 0.75)
    assert pos[tr, 1].max() < pos[te, 1].min()
    assert len(tr) == pytest.approx(150, abs=2)


def test_overlap_metrics_on_a_regular_lattice():
    step, diam = 5.0, 10.0  # step = R: neighbour overlap 0.391 for the 4 nearest
    yy, xx = np.meshgrid(np.arange(20) * step, np.arange(20) * step, indexing="ij")
    pos = np.stack([yy.ravel(), xx.ravel()], 1)
    assert mean_nn_step(pos) == pytest.approx(step)
    interior = (pos[:, 0] > 0) & (pos[:, 0] < 95) & (pos[:, 1] > 0) & (pos[:, 1] < 95)
    # 4 nearest of an interior point are all at distance step
    val = overlap_to_neighbours(pos[interior], diam, k=4)
    assert val == pytest.approx(0.391, abs=0.05)
    g = make_groups(pos, 2, neighbor_count=5, seed=0)
    m1 = overlap_within_groups(g, diam)
    assert 0.1 < m1 < 0.5
    assert 0 <= overlap_between_groups(g, diam) <= 1
    far = make_groups(pos * 10, 2, neighbor_count=5, seed=0)
    assert overlap_within_groups(far, diam) == 0.0
