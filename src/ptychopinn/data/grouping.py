"""Grouping of scan positions into solution regions, spatial splits and overlap metrics (DESIGN §4).

Sign convention (used by the model's merge/extract layers and tested by round trip): for a group
with member centres ``c_j`` (y, x) and centroid ``c̄``, the offset is ``o_j = c_j - c̄``; in the group
canvas (same size as a patch, centred at ``c̄``), member j's patch is centred at canvas centre + o_j.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from ptychopinn.errors import ConfigError
from ptychopinn.physics.scan import disc_overlap


@dataclass(frozen=True)
class Groups:
    """``indices`` (G, C) pattern indices (column 0 = anchor); ``offsets`` (G, C, 2) (y, x) px
    relative to each group's centroid; ``centres`` (G, 2) the centroids."""

    indices: np.ndarray
    offsets: np.ndarray
    centres: np.ndarray

    @property
    def n_groups(self) -> int:
        return int(self.indices.shape[0])

    @property
    def group_size(self) -> int:
        return int(self.indices.shape[1])


def group_offsets(positions_yx: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(offsets (G, C, 2), centroids (G, 2)) for the given member indices."""
    members = positions_yx[indices]  # (G, C, 2)
    centres = members.mean(axis=1)
    return members - centres[:, None, :], centres


#: the default K of the K-nearest-neighbour grouping (DESIGN section 4); configs read it from here
DEFAULT_NEIGHBOR_COUNT = 7


def make_groups(
    positions_yx: np.ndarray,
    gridsize: int = 1,
    neighbor_count: int = DEFAULT_NEIGHBOR_COUNT,
    n_groups: int | None = None,
    *,
    oversample: bool = False,
    seed: int | np.random.Generator | None = 0,
) -> Groups:
    """K-nearest-neighbour groups: an anchor plus C-1 of its K nearest neighbours (C = gridsize^2).

    ``n_groups`` counts groups (default: one per position). Without ``oversample``, at most one
    group per anchor is drawn (anchors without replacement); asking for more groups than
    positions is then an error. With ``oversample`` extra groups draw further distinct
    (C-1)-combinations of each anchor's K neighbours.
    """
    pos = np.asarray(positions_yx, dtype=np.float64)
    m = pos.shape[0]
    c = gridsize * gridsize
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n_groups = m if n_groups is None else int(n_groups)
    if n_groups < 1:
        raise ConfigError("n_groups must be >= 1")
    if c == 1:
        if n_groups > m and not oversample:
            raise ConfigError(f"asked for {n_groups} groups but there are only {m} positions; "
                              "gridsize 1 cannot oversample (one group per pattern)")
        if n_groups > m:
            raise ConfigError(f"gridsize 1 has at most {m} distinct groups; asked for {n_groups}")
        idx = np.sort(rng.choice(m, size=n_groups, replace=False)) if n_groups < m else np.arange(m)
        idx = idx[:, None]
        off, cen = group_offsets(pos, idx)
        return Groups(idx, off, cen)
    k = int(neighbor_count)
    if k < c:
        raise ConfigError(f"neighbor_count K={k} must be >= C={c} (gridsize {gridsize})")
    if m < c:
        raise ConfigError(f"{m} positions are too few for groups of {c}")
    k_eff = min(k, m)
    # scipy is imported where it is used: configs import this module for DEFAULT_NEIGHBOR_COUNT
    from scipy.spatial import cKDTree

    tree = cKDTree(pos)
    # query k_eff+1: the point itself comes first (ties broken by the tree; remove self explicitly)
    _, nn = tree.query(pos, k=k_eff)
    nn = np.atleast_2d(nn)
    neigh = np.empty((m, k_eff - 1), dtype=np.int64)
    for_self = nn == np.arange(m)[:, None]
    # rows where self is absent (duplicate positions): drop the last neighbour instead
    has_self = for_self.any(axis=1)
    drop = np.where(has_self[:, None], for_self, np.arange(k_eff)[None, :] == k_eff - 1)
    neigh[:] = nn[~drop].reshape(m, k_eff - 1)
    if n_groups > m and not oversample:
        raise ConfigError(f"asked for {n_groups} groups but there are only {m} positions; "
                          "pass oversample=True (--oversample) to draw several neighbour sets per anchor")
    if n_groups <= m:
        anchors = np.sort(rng.choice(m, size=n_groups, replace=False)) if n_groups < m else np.arange(m)
        # choose C-1 of the K-1 neighbours per anchor, vectorised via random keys
        keys = rng.random((anchors.size, k_eff - 1))
        pick = np.argsort(keys, axis=1)[:, : c - 1]
        members = np.take_along_axis(neigh[anchors], pick, axis=1)
        idx = np.concatenate([anchors[:, None], members], axis=1)
    else:
        combos = np.array(list(combinations(range(k_eff - 1), c - 1)), dtype=np.int64)
        total = m * combos.shape[0]
        if n_groups > total:
            raise ConfigError(f"asked for {n_groups} groups but only {total} distinct "
                              f"(anchor, neighbour-set) combinations exist")
        flat = rng.choice(total, size=n_groups, replace=False)
        anchors, ci = np.divmod(flat, combos.shape[0])
        members = np.take_along_axis(neigh[anchors], combos[ci], axis=1)
        idx = np.concatenate([anchors[:, None], members], axis=1)
    off, cen = group_offsets(pos, idx)
    return Groups(idx.astype(np.int64), off, cen)


def spatial_split(positions_yx: np.ndarray, axis: str = "y", fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Split indices at the ``fraction`` quantile of y (or x): (train, test), disjoint halves of the
    field of view so that no test position lies inside the training half."""
    col = {"y": 0, "x": 1}.get(axis)
    if col is None:
        raise ConfigError(f"split axis must be 'y' or 'x'; got {axis!r}")
    v = np.asarray(positions_yx)[:, col]
    cut = np.quantile(v, fraction)
    train = np.flatnonzero(v < cut)
    test = np.flatnonzero(v >= cut)
    return train, test


# ---- overlap metrics -------------------------------------------------------------------------
def overlap_within_groups(groups: Groups, probe_diameter: float) -> float:
    """Metric 1: mean pairwise disc overlap between members of the same group."""
    c = groups.group_size
    if c < 2:
        return float("nan")
    pos = groups.offsets
    ii, jj = np.triu_indices(c, k=1)
    d = np.linalg.norm(pos[:, ii] - pos[:, jj], axis=-1)
    return float(disc_overlap(d, probe_diameter).mean())


def overlap_to_neighbours(positions_yx: np.ndarray, probe_diameter: float, k: int = 6) -> float:
    """Metric 2: mean disc overlap of each image with its K nearest other images."""
    pos = np.asarray(positions_yx, dtype=np.float64)
    k = min(k, pos.shape[0] - 1)
    if k < 1:
        return float("nan")
    from scipy.spatial import cKDTree

    d, _ = cKDTree(pos).query(pos, k=k + 1)
    return float(disc_overlap(d[:, 1:], probe_diameter).mean())


def overlap_between_groups(groups: Groups, probe_diameter: float, k: int = 6) -> float:
    """Metric 3: mean disc overlap between each group centre and its K nearest group centres."""
    return overlap_to_neighbours(groups.centres, probe_diameter, k)


def mean_nn_step(positions_yx: np.ndarray) -> float:
    """Mean nearest-neighbour distance between scan positions (px)."""
    pos = np.asarray(positions_yx, dtype=np.float64)
    if pos.shape[0] < 2:
        return float("nan")
    from scipy.spatial import cKDTree

    d, _ = cKDTree(pos).query(pos, k=2)
    return float(d[:, 1].mean())


def probe_diameter_estimate(probe: np.ndarray, level: float = 0.1) -> float:
    """Equivalent-disc diameter of the region where |P| >= level * max|P| (px)."""
    a = np.abs(probe)
    area = float(np.count_nonzero(a >= level * a.max()))
    return 2.0 * math.sqrt(area / math.pi)
