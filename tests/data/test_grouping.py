"""Grouping, splits and overlap metrics against brute-force and analytic oracles."""

import math

import numpy as np
import pytest

from ptychopinn.data.grouping import (
    Groups,
    make_groups,
    mean_nn_step,
    overlap_between_groups,
    overlap_to_neighbours,
    overlap_within_groups,
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
    step, diam = 5.0, 10.0  # step = R
    # exact disc-overlap fractions: centres R apart -> 2/3 - sqrt(3)/(2 pi); sqrt(2) R apart -> 1/2 - 1/pi
    f_r = 2.0 / 3.0 - math.sqrt(3.0) / (2.0 * math.pi)
    f_diag = 0.5 - 1.0 / math.pi
    yy, xx = np.meshgrid(np.arange(20) * step, np.arange(20) * step, indexing="ij")
    pos = np.stack([yy.ravel(), xx.ravel()], 1)
    assert mean_nn_step(pos) == pytest.approx(step)
    # metric 2: every lattice point (corners included) has its 2 nearest at distance R
    assert overlap_to_neighbours(pos, diam, k=2) == pytest.approx(f_r, rel=1e-12)
    # metric 1 on hand-made 2x2 squares of side R: 4 sides at R, 2 diagonals at sqrt(2) R
    sq = np.array([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]]) * step
    centres = np.array([[0.0, 0.0], [0.0, 2 * step], [2 * step, 0.0], [2 * step, 2 * step]])
    g = Groups(indices=np.arange(16).reshape(4, 4), offsets=np.tile(sq, (4, 1, 1)), centres=centres)
    assert overlap_within_groups(g, diam) == pytest.approx((4 * f_r + 2 * f_diag) / 6, rel=1e-12)
    # metric 3: group centres 2R apart do not overlap; R apart overlap by f(R)
    assert overlap_between_groups(g, diam, k=2) == 0.0
    g_close = Groups(indices=g.indices, offsets=g.offsets, centres=centres / 2)
    assert overlap_between_groups(g_close, diam, k=2) == pytest.approx(f_r, rel=1e-12)
    far = make_groups(pos * 10, 2, neighbor_count=5, seed=0)
    assert overlap_within_groups(far, diam) == 0.0