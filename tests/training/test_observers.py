"""Observers of train() and reconstruct(): the events arrive in order, with the loop's own tensors."""

from __future__ import annotations

import math

import numpy as np
import torch
from training_helpers import tiny_dataset, tiny_model, tiny_train

from ptychopinn.inference.reconstruct import reconstruct
from ptychopinn.training.trainer import train


class Log:
    """Records every event (no base class: the protocol is duck-typed)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def __getattr__(self, name):
        if name in ("setup", "batch", "epoch", "diverged", "end"):
            return lambda **info: self.events.append((name, info))
        raise AttributeError(name)


def test_train_observer_sees_the_batches_the_loop_feeds(tmp_path):
    ds = tiny_dataset(n_images=40)
    log = Log()
    res = train(ds, tmp_path / "run", tiny_model(), tiny_train(epochs=2, batch_size=8, val_fraction=0.25),
                progress=False, observers=[log])
    names = [e for e, _ in log.events]
    # 40 groups, 10 validation -> 30 training groups -> 4 batches of 8 per epoch
    assert names == ["setup"] + (["batch"] * 4 + ["epoch"]) * 2 + ["end"]
    d = ds.diff3d.astype(np.float64)
    r = math.sqrt((ds.N / 2) ** 2 / np.mean(np.sum(d * d, axis=(1, 2))))  # independent of the package
    assert abs(log.events[0][1]["r"] / r - 1) < 1e-12
    seen = []
    for e, info in log.events:
        if e == "batch" and info["epoch"] == 1:
            x, xm = info["x"], info["measured"]
            assert x.shape[1:] == (1, 32, 32) and torch.allclose(x, xm * r, rtol=1e-6)
            # the targets are the measured amplitudes of real patterns
            for row in xm[:, 0]:
                seen.append(int(np.argmin(np.abs(ds.diff3d - row.numpy()).sum(axis=(1, 2)))))
    assert len(seen) == 30 and len(set(seen)) == 30  # every training group once in epoch 1
    assert [info["record"]["epoch"] for e, info in log.events if e == "epoch"] == [1, 2]
    assert log.events[-1][1]["result"] is res


def test_reconstruct_observer_chunks_cover_every_pattern(tmp_path):
    ds = tiny_dataset(n_images=30)
    res = train(ds, tmp_path / "run", tiny_model(), tiny_train(epochs=1), progress=False)
    log = Log()
    rec = reconstruct(res.model, ds, batch_size=7, device="cpu", observers=[log])
    names = [e for e, _ in log.events]
    assert names == ["setup"] + ["batch"] * 5 + ["end"]
    slices = [info["patterns"] for e, info in log.events if e == "batch"]
    assert [(s.start, s.stop) for s in slices] == [(0, 7), (7, 14), (14, 21), (21, 28), (28, 30)]
    assert log.events[-1][1]["reconstruction"] is rec and log.events[-1][1]["ds"] is ds
