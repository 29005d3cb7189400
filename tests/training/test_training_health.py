"""Healthy-training pieces against independent oracles: the learning-rate schedule, the Poisson
deviance floor (Monte-Carlo), the tiling and dead-unit diagnostics, gradient clipping."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from ptychopinn.training.config import TrainConfig
from ptychopinn.training.diagnostics import (
    ActivationProbe,
    expected_deviance,
    poisson_deviance,
    tiling_fraction,
)
from ptychopinn.training.trainer import clip_gradients, cosine_lr


def test_cosine_schedule_endpoints_and_midpoint() -> None:
    t = TrainConfig(lr=1e-3, min_lr=1e-5)
    warm, total = 10, 110
    assert cosine_lr(t, 0, warm, total) == pytest.approx(1e-4)
    assert cosine_lr(t, 9, warm, total) == pytest.approx(1e-3)
    assert cosine_lr(t, 10, warm, total) == pytest.approx(1e-3)
    assert cosine_lr(t, 60, warm, total) == pytest.approx((1e-3 + 1e-5) / 2, rel=0.02)
    assert cosine_lr(t, total - 1, warm, total) == pytest.approx(1e-5)
    rates = [cosine_lr(t, s, warm, total) for s in range(warm, total)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))  # monotone decay after warmup


@pytest.mark.parametrize("lam", [0.05, 0.7, 3.0, 20.0, 400.0])
def test_expected_deviance_matches_monte_carlo(lam: float) -> None:
    rng = np.random.default_rng(0)
    k = torch.from_numpy(rng.poisson(lam, size=200_000).astype(np.float64))
    mc = float(poisson_deviance(torch.full_like(k, lam), k).mean())
    got = float(expected_deviance(torch.tensor([lam]))[0])
    assert got == pytest.approx(mc, rel=0.02)


def test_deviance_is_zero_at_the_counts() -> None:
    k = torch.tensor([0.0, 1.0, 7.0, 1e6])
    assert float(poisson_deviance(k.clamp_min(1e-12), k).abs().max()) < 1e-6


def test_tiling_fraction_oracles() -> None:
    rng = np.random.default_rng(1)
    base = torch.from_numpy(rng.normal(size=(16, 16)))
    same = base.expand(32, 16, 16) + 3.0 * torch.arange(32.0)[:, None, None]  # one pattern, other offsets
    assert tiling_fraction(same) == pytest.approx(1.0)
    indep = torch.from_numpy(rng.normal(size=(64, 16, 16)))
    assert tiling_fraction(indep) == pytest.approx(1 / 64, rel=0.15)


def test_dead_unit_probe_counts_constant_channels() -> None:
    conv = nn.Conv2d(1, 4, 3, padding=1)
    with torch.no_grad():
        conv.bias[:2] = -1e6  # channels 0 and 1: ReLU output is 0 everywhere
    model = nn.Sequential(conv, nn.ReLU())
    probe = ActivationProbe(model)
    model(torch.randn(8, 1, 12, 12))
    probe.close()
    assert probe.spread == {"1": 0.5}


def test_gradient_clipping_follows_the_running_norm() -> None:
    p = nn.Parameter(torch.zeros(3))
    model = nn.Module()
    model.p = p
    p.grad = torch.tensor([3.0, 4.0, 0.0])  # norm 5
    running = clip_gradients(model, 2.0, None)
    assert running == pytest.approx(5.0) and torch.equal(p.grad, torch.tensor([3.0, 4.0, 0.0]))
    p.grad = torch.tensor([30.0, 40.0, 0.0])  # norm 50 > 2 x 5: clipped to 10
    running = clip_gradients(model, 2.0, running)
    assert float(p.grad.norm()) == pytest.approx(10.0, rel=1e-5)
    assert running == pytest.approx(0.98 * 5 + 0.02 * 10)
    assert math.isfinite(running)


@pytest.mark.parametrize("field,value", [("warmup_epochs", float("nan")), ("nll_weight", float("inf")),
                                          ("mae_weight", -1.0), ("min_lr", -1e-4), ("grad_clip", float("nan")),
                                          ("schedule", "step")])
def test_train_config_refuses_bad_values_from_python(field: str, value: object) -> None:
    from ptychopinn.errors import ConfigError

    with pytest.raises(ConfigError, match=field.split("_")[0] if field != "mae_weight" else "weights"):
        TrainConfig(**{field: value})


def test_trainable_probe_is_held_during_its_warmup_then_moves_at_its_own_rate(tmp_path) -> None:
    """Epoch 1 (probe warm-up): the probe stays exactly the initial one; afterwards it moves, and a
    10x probe rate moves it further than the network's rate does."""
    from ptychopinn.data.simulate import simulate
    from ptychopinn.model.config import ModelConfig
    from ptychopinn.training.trainer import train

    ds = simulate(n_images=64, N=32, object_size=64, nphotons=1e6, seed=4)
    m = ModelConfig(n_filters_scale=1, probe_trainable=True)
    one = train(ds, tmp_path / "a", m, TrainConfig(epochs=1, device="cpu", diagnostics=False), progress=False)
    p0 = torch.view_as_complex(one.model.probe.detach())
    init = np.load(tmp_path / "a" / "probe.npz")["probe_initial"]
    assert np.array_equal(p0.numpy(), init)
    moved = {}
    for lr in (None, 1e-2):
        r = train(ds, tmp_path / f"b{lr}", m, TrainConfig(epochs=3, device="cpu", diagnostics=False, probe_lr=lr,
                                                          restore_best=False), progress=False)
        moved[lr] = float(np.abs(torch.view_as_complex(r.model.probe.detach()).numpy() - init).max())
    assert 0 < moved[None] < moved[1e-2]


def test_fine_tuning_starts_from_the_bundle_weights(tmp_path) -> None:
    """init_from: with a negligible rate the fine-tuned network equals the source bundle's network
    (its probe and intensity scale come from the new data); a different network is refused."""
    from safetensors.torch import load_file

    from ptychopinn.data.simulate import simulate
    from ptychopinn.errors import ConfigError
    from ptychopinn.model.config import ModelConfig
    from ptychopinn.training.trainer import train

    a = simulate(n_images=64, N=32, object_size=64, nphotons=1e6, seed=5)
    b = simulate(n_images=64, N=32, object_size=64, nphotons=1e4, seed=6)
    train(a, tmp_path / "src", ModelConfig(gridsize=2, n_filters_scale=1), TrainConfig(epochs=1, device="cpu"),
          progress=False)
    res = train(b, tmp_path / "ft", None, TrainConfig(epochs=1, device="cpu", lr=1e-12, min_lr=1e-12,
                                                      warmup_epochs=0, restore_best=False, diagnostics=False),
                progress=False, init_from=tmp_path / "src")
    src = load_file(str(tmp_path / "src" / "model.safetensors"))
    got = load_file(str(tmp_path / "ft" / "model.safetensors"))
    net = [k for k in src if k not in ("probe", "log_s")]
    assert net and all(torch.allclose(src[k], got[k], atol=1e-6) for k in net)
    assert not torch.allclose(src["log_s"], got["log_s"])  # the new data's dose
    import json

    cfg = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert cfg["init_from"]["path"] == str(tmp_path / "src") and res.model_config.gridsize == 2
    with pytest.raises(ConfigError, match="gridsize"):
        train(b, tmp_path / "bad", ModelConfig(gridsize=1, n_filters_scale=1), TrainConfig(epochs=1, device="cpu"),
              progress=False, init_from=tmp_path / "src")
