"""The convergence criterion of the studies, on synthetic histories."""

from __future__ import annotations

import math

import pytest

from ptychopinn.training.diagnostics import PLATEAU_WINDOW, convergence


def _hist(losses, ratios=None, val=False):
    return [{"epoch": i + 1, "train_loss": v, "val_loss": v if val else None,
             **({"diagnostics": {"deviance_ratio": ratios[i]}} if ratios else {})} for i, v in enumerate(losses)]


def test_plateaued_run_is_converged_whatever_the_loss_offset():
    for offset in (0.0, -1000.0):  # a Poisson NLL without its constant is large and negative
        loss = [offset + math.exp(-t / 2) for t in range(40)]
        c = convergence(_hist(loss))
        # by hand: epochs 34 -> 39 against 0 -> 39: (e^-17 - e^-19.5) / (1 - e^-19.5)
        want = (math.exp(-34 / 2) - math.exp(-39 / 2)) / (1 - math.exp(-39 / 2))
        assert c["converged"] is True and c["loss_key"] == "train_loss"
        assert c["loss_change"] == pytest.approx(want, rel=1e-6 if offset == 0 else 1e-3)


def test_still_falling_run_is_not_converged():
    c = convergence(_hist([10.0 - t for t in range(10)]))  # linear: the last 5 of 9 steps = 5/9
    assert c["converged"] is False and c["loss_change"] == pytest.approx(5 / 9)
    assert "55.6 %" in c["reason"]


def test_too_short_run_is_never_converged():
    c = convergence(_hist([1.0, 0.5, 0.5, 0.5, 0.5]))  # flat, but 5 epochs < window + 1
    assert PLATEAU_WINDOW == 5 and c["converged"] is False and "needs at least 6" in c["reason"]
    assert convergence(_hist([1.0] + [0.5] * 5))["converged"] is False  # the window spans the whole fall
    assert convergence(_hist([1.0] + [0.5] * 6))["converged"] is True


def test_deviance_must_settle_and_floor_is_reported():
    loss = [math.exp(-t) for t in range(20)]
    moving = convergence(_hist(loss, ratios=[3.0 - 0.1 * t for t in range(20)]))
    # ratio 1.6 -> 1.1 over the window: |1.6 - 1.1| / 1.1
    assert moving["converged"] is False and moving["deviance_change"] == pytest.approx(0.5 / 1.1)
    settled = convergence(_hist(loss, ratios=[1.1] * 20))
    assert settled["converged"] is True and settled["at_noise_floor"] is True and settled["deviance_ratio"] == 1.1
    high = convergence(_hist(loss, ratios=[4.0] * 20))
    assert high["converged"] is True and high["at_noise_floor"] is False


def test_validation_loss_is_used_when_present_and_a_rising_run_fails():
    c = convergence(_hist([math.exp(-t) for t in range(20)], val=True))
    assert c["loss_key"] == "val_loss" and c["converged"] is True
    c = convergence(_hist([1.0 + 0.1 * t for t in range(10)]))
    assert c["converged"] is False and "did not fall" in c["reason"]
