"""Group cover at inference: every pattern covered, each member stitched at its own position."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ptychopinn.data.contract import PtychoDataset
from ptychopinn.inference.predict import build_groups, cover_groups
from ptychopinn.inference.reconstruct import reconstruct
from ptychopinn.physics.objects import lines_object


def test_cover_contains_every_pattern_with_fewer_groups() -> None:
    rng = np.random.default_rng(0)
    pos = rng.uniform(40, 200, (300, 2))
    idx, _ = build_groups(pos, 2)
    rows = cover_groups(idx)
    assert np.array_equal(np.unique(idx[rows]), np.arange(300))
    assert rows.size < 0.6 * 300  # groups of 4: about M/2 or fewer, not M


class _PatchEcho(nn.Module):
    """A 'perfect' gridsize-2 model for a dataset whose patterns ARE the object patches: member j's
    re-extracted patch is its own input, so stitching must rebuild the object wherever it is covered."""

    N, gridsize, kind = 32, 2, "pinn"

    def predict_patches(self, x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return x.to(torch.complex64)


def test_cover_and_anchor_stitch_the_same_object_from_exact_patches() -> None:
    obj = np.abs(lines_object(96, np.random.default_rng(1), amp_range=(0.5, 1.5), phase_scale=0.0))
    ys, xs = np.meshgrid(np.arange(16, 81, 4), np.arange(16, 81, 4), indexing="ij")
    pos = np.stack([ys.ravel(), xs.ravel()], 1)
    patches = np.stack([obj[y - 16:y + 16, x - 16:x + 16] for y, x in pos]).astype(np.float32)
    ds = PtychoDataset(diff3d=patches, probe=np.ones((32, 32), complex), xcoords=pos[:, 1].astype(float),
                       ycoords=pos[:, 0].astype(float), object=obj.astype(complex))
    a = reconstruct(_PatchEcho(), ds, device="cpu", groups="anchor", progress=False)
    c = reconstruct(_PatchEcho(), ds, device="cpu", groups="cover", progress=False)
    assert np.array_equal(a.origin, c.origin) and np.array_equal(a.counts > 0, c.counts > 0)
    seen = a.counts > 0
    r = a.input_scale  # the echo returns the normalised input x = X r
    oy, ox = (int(v) for v in a.origin)
    truth = obj[oy:oy + seen.shape[0], ox:ox + seen.shape[1]] * r
    assert np.allclose(a.object.real[seen], truth[seen], rtol=1e-4)
    assert np.allclose(c.object.real[seen], truth[seen], rtol=1e-4)
