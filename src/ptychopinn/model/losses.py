"""Training losses (DESIGN section 5).

* Poisson NLL in count units: ``mean(lam - k log lam)`` with ``lam = A_pred^2`` clamped >= 1e-12 and
  ``k = X^2`` the measured counts (the constant ``log k!`` is omitted; :func:`log_factorial_mean`
  gives it for reporting).
* MAE on amplitudes, in normalised units: ``mean|A_pred - X| / s`` (s = the data intensity scale),
  so its size does not depend on the dose.
* Supervised: MAE of amplitude plus MAE of phase against the ground-truth patches.

A detector mask enters as ``pixel_weight`` (N, N): 1 on good pixels, 0 on bad ones. The means above
then run over the good pixels only (sum of weight x term, divided by the number of good pixels of
all patterns), so bad pixels contribute nothing and the loss scale does not depend on the mask.

The PINN loss names live in one registry, :data:`LOSS_REGISTRY` (name -> default term weights);
``TrainConfig.loss`` and ``ptychopinn train --loss`` read it. This module imports torch only when a
loss is computed, so the registry can be read by torch-free code (configs, the CLI).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ptychopinn.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

LAM_MIN = 1e-12


def _mean(term: Tensor, pixel_weight: Tensor | None) -> Tensor:
    """mean(term), or the mean over the good pixels when ``pixel_weight`` (N, N) is given."""
    if pixel_weight is None:
        return term.mean()
    w = pixel_weight.to(term.dtype)
    n_images = term.numel() // w.numel()
    return (term * w).sum() / (w.sum() * n_images)


def poisson_nll(pred_amplitude: Tensor, counts: Tensor, lam_min: float = LAM_MIN,
                pixel_weight: Tensor | None = None) -> Tensor:
    """mean(lam - k log lam), lam = pred_amplitude^2 clamped to >= ``lam_min`` (over good pixels)."""
    import torch

    lam = pred_amplitude.square().clamp_min(lam_min)
    return _mean(lam - counts * torch.log(lam), pixel_weight)


def log_factorial_mean(counts: Tensor) -> Tensor:
    """mean(log k!) (add to :func:`poisson_nll` for the full negative log-likelihood)."""
    import torch

    return torch.lgamma(counts + 1).mean()


def amplitude_mae(pred_amplitude: Tensor, target_amplitude: Tensor, scale: float = 1.0,
                  pixel_weight: Tensor | None = None) -> Tensor:
    """mean|pred - target| / scale (over good pixels)."""
    return _mean((pred_amplitude - target_amplitude).abs(), pixel_weight) / scale


@dataclass(frozen=True)
class LossWeights:
    """Weights of the PINN loss terms."""

    nll: float = 1.0
    mae: float = 0.0

    @classmethod
    def for_kind(cls, kind: str, nll_weight: float | None = None, mae_weight: float | None = None) -> LossWeights:
        if kind not in LOSS_REGISTRY:
            raise ConfigError(f"loss must be one of {LOSS_KINDS}; got {kind!r}")
        d = LOSS_REGISTRY[kind]
        w = cls(d.nll if nll_weight is None else float(nll_weight), d.mae if mae_weight is None else float(mae_weight))
        if w.nll < 0 or w.mae < 0 or w.nll + w.mae == 0:
            raise ConfigError("loss weights must be >= 0 and not both zero")
        return w

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The loss registry: each PINN ``loss`` name and the default weights of its terms (overridden by
#: ``nll_weight`` / ``mae_weight``). The one list of loss names: TrainConfig.loss, LossWeights.for_kind
#: and ``ptychopinn train --loss`` read it. A new combination of the terms is one entry here; a new term
#: is also a field of LossWeights and a line of :func:`pinn_loss`.
LOSS_REGISTRY: dict[str, LossWeights] = {
    "nll": LossWeights(nll=1.0, mae=0.0),
    "mae": LossWeights(nll=0.0, mae=1.0),
    "nll+mae": LossWeights(nll=1.0, mae=1.0),
}
LOSS_KINDS: tuple[str, ...] = tuple(LOSS_REGISTRY)


def pinn_loss(outputs: dict[str, Tensor], target_amplitude: Tensor, weights: LossWeights,
              amplitude_unit: float = 1.0, pixel_weight: Tensor | None = None) -> Tensor:
    """Weighted NLL + MAE of the predicted amplitudes (count units) against measured ``X``;
    ``pixel_weight`` (N, N): 0 on bad detector pixels (excluded), 1 elsewhere."""
    pred = outputs["amplitude"]
    loss = pred.new_zeros(())
    if weights.nll:
        loss = loss + weights.nll * poisson_nll(pred, target_amplitude.square(), pixel_weight=pixel_weight)
    if weights.mae:
        loss = loss + weights.mae * amplitude_mae(pred, target_amplitude, amplitude_unit, pixel_weight)
    return loss


def supervised_loss(outputs: dict[str, Tensor], target_patches: Tensor) -> Tensor:
    """MAE(amplitude) + MAE(phase) against complex ground-truth patches (B, 1, N, N)."""
    import torch

    amp_t = target_patches.abs()
    ph_t = torch.angle(target_patches)
    return ((outputs["object_amplitude"] - amp_t).abs().mean()
            + (outputs["object_phase"] - ph_t).abs().mean())
