"""Per-epoch training diagnostics recorded in ``history.json`` (issue: healthy training).

* ``dead_units``: per activation layer, the fraction of channels whose output is constant over a
  fixed validation batch (a dead ReLU outputs 0 everywhere; any activation whose channel does not
  vary carries no information).
* ``tiling``: the fraction of the predicted patches' spatial variance that is shared by all
  patches, ``B |m - mean(m)|^2 / sum_i |p_i - mean(p_i)|^2`` with ``m`` the mean patch (amplitude,
  over the support). Independent patches give about 1/B; one repeated pattern gives 1.
* ``deviance_per_pixel`` and ``deviance_floor_per_pixel``: the Poisson deviance
  ``2 [k log(k/lam) - (k - lam)]`` per detector pixel and its expectation when the counts are
  Poisson around the model's own lam (the best any model can reach: about 1 for well-exposed pixels,
  less at low counts). Their ratio says how far from the noise floor the fit is.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from scipy.special import gammaln
from torch import Tensor, nn

_K_MAX = 200


@functools.lru_cache(maxsize=1)
def _expected_deviance_table() -> tuple[np.ndarray, np.ndarray]:
    """E[d(k, lam)] for k ~ Poisson(lam) on a log grid of lam in [1e-4, 60], by exact summation."""
    lam = np.logspace(-4, math.log10(60.0), 400)
    k = np.arange(_K_MAX + 1, dtype=np.float64)[:, None]
    logp = k * np.log(lam)[None, :] - lam[None, :] - gammaln(k + 1)
    klogk = np.where(k > 0, k * np.log(np.maximum(k, 1.0)), 0.0)
    d = 2.0 * (klogk - k * np.log(lam)[None, :] - (k - lam[None, :]))
    val = (np.exp(logp) * d).sum(axis=0)
    lam.flags.writeable = val.flags.writeable = False  # cached: shared by every call
    return lam, val


def expected_deviance(lam: Tensor) -> Tensor:
    """E[2 (k log(k/lam) - (k - lam))], k ~ Poisson(lam), elementwise: exact below lam = 60, the
    asymptotic ``1 + 1/(6 lam)`` above."""
    grid, val = _expected_deviance_table()
    lam_np = lam.detach().double().cpu().numpy()
    out = np.where(lam_np > 60.0, 1.0 + 1.0 / (6.0 * np.maximum(lam_np, 60.0)),
                   np.interp(np.log(np.clip(lam_np, 1e-4, 60.0)), np.log(grid), val))
    return torch.from_numpy(out)


def poisson_deviance(lam: Tensor, counts: Tensor) -> Tensor:
    """Elementwise Poisson deviance (0 where k = lam)."""
    lam = lam.double().clamp_min(1e-12)
    k = counts.double()
    klog = torch.where(k > 0, k * torch.log(k.clamp_min(1e-300) / lam), torch.zeros_like(k))
    return 2.0 * (klog - (k - lam))


def tiling_fraction(patches: Tensor, mask: Tensor | None = None) -> float:
    """Shared-variance fraction of patches (B, ..., n, n) (real), over ``mask`` pixels."""
    p = patches.detach().double().reshape(-1, *patches.shape[-2:])
    if mask is not None:
        p = p[:, mask.bool()]
    else:
        p = p.reshape(p.shape[0], -1)
    if p.shape[0] < 2:
        return float("nan")
    p = p - p.mean(dim=1, keepdim=True)
    total = float(p.square().sum())
    if total <= 0:
        return 1.0
    m = p.mean(dim=0)
    return float(p.shape[0] * m.square().sum()) / total


class ActivationProbe:
    """Forward hooks on every activation layer; records per-channel spread over one batch."""

    ACTIVATIONS = (nn.ReLU, nn.SiLU, nn.LeakyReLU, nn.GELU)

    def __init__(self, model: nn.Module) -> None:
        self.spread: dict[str, float] = {}
        self._handles = []
        for name, mod in model.named_modules():
            if isinstance(mod, self.ACTIVATIONS):
                self._handles.append(mod.register_forward_hook(self._hook(name)))

    def _hook(self, name: str):
        def fn(_mod: nn.Module, _inp: tuple, out: Tensor) -> None:
            o = out.detach().float()
            flat = o.transpose(0, 1).reshape(o.shape[1], -1)  # (channels, everything else)
            span = flat.max(dim=1).values - flat.min(dim=1).values
            scale = flat.abs().max().clamp_min(1e-12)
            self.spread[name] = float((span <= 1e-6 * scale).float().mean())
        return fn

    def close(self) -> None:
        for h in self._handles:
            h.remove()


@torch.no_grad()
def epoch_diagnostics(model: nn.Module, x: Tensor, offsets: Tensor, measured: Tensor) -> dict:
    """Diagnostics of ``model`` on one batch (normalised inputs, offsets, measured amplitudes)."""
    was_training = model.training
    model.eval()
    probe = ActivationProbe(model)
    try:
        out = model(x, offsets)
    finally:
        probe.close()
        model.train(was_training)
    lam = out["amplitude"].float().square()
    counts = measured.float().square()
    dev = float(poisson_deviance(lam, counts).mean())
    floor = float(expected_deviance(lam).mean())
    support = getattr(model, "inner", None)
    amp = out["object_amplitude"] if "object_amplitude" in out else out["patches"].abs()
    return {
        "dead_units": {k: round(v, 4) for k, v in probe.spread.items()},
        "dead_unit_fraction": float(np.mean(list(probe.spread.values()))) if probe.spread else None,
        "tiling": tiling_fraction(amp, support),
        "deviance_per_pixel": dev,
        "deviance_floor_per_pixel": floor,
        "deviance_ratio": dev / floor if floor > 0 else None,
    }


#: epochs over which :func:`convergence` looks for a plateau (it needs one more epoch than this)
PLATEAU_WINDOW = 5


def convergence(history: list[dict], window: int = PLATEAU_WINDOW, loss_tol: float = 0.05,
                deviance_tol: float = 0.05, floor_ratio: float = 1.2) -> dict:
    """Whether a run (its ``history.json`` records) converged.

    Loss plateau: the last ``window`` epochs brought less than ``loss_tol`` of the run's total
    improvement, ``|L[-1-window] - L[-1]| / (L[0] - L[-1]) < loss_tol`` (offset- and scale-free, so
    it holds for a Poisson NLL without its constant; the validation loss when every record has one,
    else the training loss). When the records carry diagnostics, the deviance-to-floor ratio must
    also have settled: ``|R[-1-window] - R[-1]| / R[-1] < deviance_tol``; ``at_noise_floor`` says
    whether R <= ``floor_ratio`` (reported, not required: a plateau above the floor is a model's
    limit, not a run that stopped too soon). Fewer than ``window + 1`` epochs is never converged.
    """
    n = len(history)
    out: dict = {"converged": False, "epochs": n, "window": window, "loss_tol": loss_tol,
                 "deviance_tol": deviance_tol, "loss_key": None, "loss_change": None, "deviance_ratio": None,
                 "deviance_change": None, "at_noise_floor": None}
    ratios = [(h.get("diagnostics") or {}).get("deviance_ratio") for h in history]
    if ratios and ratios[-1] is not None:
        out["deviance_ratio"] = float(ratios[-1])
        out["at_noise_floor"] = bool(ratios[-1] <= floor_ratio)
    if n < window + 1:
        out["reason"] = f"only {n} epochs; the plateau test needs at least {window + 1}"
        return out
    key = "val_loss" if all(h.get("val_loss") is not None for h in history) else "train_loss"
    loss = [float(h[key]) for h in history]
    out["loss_key"] = key
    total = loss[0] - loss[-1]
    if not all(math.isfinite(v) for v in loss) or not total > 0:
        out["reason"] = f"the {key} did not fall over the run"
        return out
    change = abs(loss[-1 - window] - loss[-1]) / total
    out["loss_change"] = change
    if change >= loss_tol:
        out["reason"] = (f"the last {window} epochs brought {100 * change:.1f} % of the {key}'s total fall "
                         f"(plateau: < {100 * loss_tol:g} %)")
        return out
    r0, r1 = ratios[-1 - window], ratios[-1]
    if r0 is not None and r1 is not None and r1 > 0:
        dch = abs(r0 - r1) / r1
        out["deviance_change"] = dch
        if dch >= deviance_tol:
            out["reason"] = (f"the deviance-to-floor ratio still moved {100 * dch:.1f} % over the last {window} "
                             f"epochs (settled: < {100 * deviance_tol:g} %)")
            return out
    out["converged"] = True
    out["reason"] = (f"plateau: the last {window} epochs brought {100 * change:.1f} % of the {key}'s total fall"
                     + (f"; deviance {out['deviance_ratio']:.2f} x its Poisson floor" if out["deviance_ratio"]
                        is not None else ""))
    return out
