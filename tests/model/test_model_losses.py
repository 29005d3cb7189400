"""Losses against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from ptychopinn.errors import ConfigError
from ptychopinn.model import losses


def test_poisson_nll_matches_hand_computed_value() -> None:
    amp = torch.tensor([[1.0, 2.0], [3.0, 0.5]])
    k = torch.tensor([[0.0, 4.0], [9.0, 1.0]])
    terms = [1 - 0, 4 - 4 * math.log(4), 9 - 9 * math.log(9), 0.25 - 1 * math.log(0.25)]
    assert float(losses.poisson_nll(amp, k)) == pytest.approx(sum(terms) / 4, rel=1e-6)


def test_poisson_nll_clamp_prevents_nan_at_zero() -> None:
    amp = torch.zeros(2, 3, requires_grad=True)
    k = torch.tensor([[0.0, 1.0, 5.0], [2.0, 0.0, 3.0]])
    v = losses.poisson_nll(amp, k)
    assert math.isfinite(float(v.detach()))
    assert float(v.detach()) == pytest.approx(float((1e-12 - k * math.log(1e-12)).mean()), rel=1e-6)
    v.backward()
    assert torch.all(torch.isfinite(amp.grad))


def test_log_factorial_mean() -> None:
    k = torch.tensor([0.0, 1.0, 3.0, 5.0])
    assert float(losses.log_factorial_mean(k)) == pytest.approx((0 + 0 + math.log(6) + math.log(120)) / 4, rel=1e-6)


def test_amplitude_mae_and_weights() -> None:
    p = torch.tensor([1.0, 2.0, 4.0])
    t = torch.tensor([1.5, 2.0, 2.0])
    assert float(losses.amplitude_mae(p, t)) == pytest.approx(2.5 / 3)
    assert float(losses.amplitude_mae(p, t, scale=2.0)) == pytest.approx(2.5 / 6)
    out = {"amplitude": p}
    w = losses.LossWeights.for_kind("nll+mae", mae_weight=3.0)
    expect = float(losses.poisson_nll(p, t ** 2)) + 3.0 * 2.5 / 3
    assert float(losses.pinn_loss(out, t, w)) == pytest.approx(expect, rel=1e-6)
    assert losses.LossWeights.for_kind("mae") == losses.LossWeights(0.0, 1.0)
    with pytest.raises(ConfigError):
        losses.LossWeights.for_kind("l2")
    with pytest.raises(ConfigError):
        losses.LossWeights.for_kind("nll", nll_weight=0.0)


def test_supervised_loss_hand_computed() -> None:
    target = torch.polar(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.5, -1.0]]))
    out = {"object_amplitude": torch.tensor([[1.5, 2.0]]), "object_phase": torch.tensor([[0.5, 0.0]])}
    assert float(losses.supervised_loss(out, target)) == pytest.approx(0.25 + 0.5, rel=1e-6)


def test_loss_names_come_from_the_one_registry() -> None:
    """LOSS_REGISTRY is the one list of loss names: the weights, TrainConfig and ``train --loss`` agree."""
    from ptychopinn.cli.main import build_parser
    from ptychopinn.training.config import LOSSES, TrainConfig

    assert losses.LOSS_KINDS == tuple(losses.LOSS_REGISTRY) == LOSSES == ("nll", "mae", "nll+mae")
    for name, default in losses.LOSS_REGISTRY.items():
        assert losses.LossWeights.for_kind(name) == default
        assert TrainConfig(loss=name).loss == name
    with pytest.raises(ConfigError, match="loss must be one of"):
        TrainConfig(loss="l2")
    train = build_parser(only="train")._command_parsers["train"]
    (opt,) = [a for a in train._actions if "--loss" in a.option_strings]
    assert tuple(opt.choices) == losses.LOSS_KINDS
