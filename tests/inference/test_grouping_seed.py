"""Inference grouping takes the caller's seed (gridsize > 1)."""

import numpy as np

from ptychopinn.inference.predict import build_groups


def test_build_groups_uses_the_callers_seed():
    rng = np.random.default_rng(0)
    pos = rng.uniform(0, 50, (60, 2))
    i0, o0 = build_groups(pos, 2, 7, seed=0)
    i0b, _ = build_groups(pos, 2, 7, seed=0)
    i1, _ = build_groups(pos, 2, 7, seed=1)
    assert np.array_equal(i0[:, 0], np.arange(60)) and np.array_equal(i1[:, 0], np.arange(60))
    assert np.array_equal(i0, i0b)  # same seed, same groups
    assert not np.array_equal(np.sort(i0[:, 1:], axis=1), np.sort(i1[:, 1:], axis=1))  # the seed is used
    # every member is among the anchor's 7 nearest positions (itself included)
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    nearest = np.argsort(d, axis=1)[:, :7]
    assert all(set(row) <= set(nearest[k]) for k, row in enumerate(i0))
    # offsets are relative to the group centroid
    np.testing.assert_allclose(o0, pos[i0] - pos[i0].mean(axis=1, keepdims=True), atol=1e-5)
