"""The default network body (arch 'unet'): back-projection oracle, output contract, and the
classic network's bundles (written before ``arch`` existed) still loading as classic."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ptychopinn.model import build_model
from ptychopinn.model import physics_layers as ph
from ptychopinn.model.config import ModelConfig
from ptychopinn.model.unet import back_projection
from ptychopinn.physics.forward import far_field
from ptychopinn.physics.probe import default_probe

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "classic_bundle_v0.1.0"


def test_back_projection_of_a_flat_object_is_the_probe_filter() -> None:
    """O = 1: the measured modulus is |F[P]| and its phase is the probe's own, so the estimate is
    exactly |P|^2 / (|P|^2 + delta max|P|^2) (real), whatever the probe's phase."""
    n, delta = 32, 0.1
    p = torch.from_numpy(default_probe(n, defocus=2.0).astype(np.complex64))
    x = far_field(p).abs()[None, None]
    bp = back_projection(x, p, delta)
    p2 = p.abs().square()
    expect = p2 / (p2 + delta * p2.max())
    torch.testing.assert_close(bp[0, 0], expect, atol=2e-5, rtol=0)
    assert float(bp[0, 1].abs().max()) < 2e-5


@pytest.mark.parametrize("n,gridsize", [(32, 1), (64, 2)])
def test_unet_output_contract(n: int, gridsize: int) -> None:
    c = gridsize * gridsize
    torch.manual_seed(0)
    cfg = ModelConfig(N=n, gridsize=gridsize, n_filters_scale=1)
    assert cfg.arch == "unet"
    model = build_model(cfg, default_probe(n), 50.0)
    x = torch.rand(2, c, n, n)
    off = torch.randn(2, c, 2) * 2 if c > 1 else torch.zeros(2, 1, 2)
    with torch.no_grad():
        out = model(x, off)
    assert out["amplitude"].shape == (2, c, n, n)
    amp = out["patches"].abs()
    assert float(amp[..., ph.support_mask(n) == 0].max()) == 0.0
    assert float(amp.max()) <= cfg.amp_max + 1e-6
    assert float(out["patches"].angle().abs().max()) <= math.pi + 1e-6
    # the phase head starts at zero: a flat phase, amplitude amp_max * sigmoid(.) inside the support
    assert float(out["object_phase"].abs().max()) == 0.0


def test_classic_bundle_config_from_before_arch_loads_as_classic() -> None:
    """A config.json written by v0.1.0 (no 'arch' key) builds the classic network with exactly the
    tensor names and shapes that version stored in model.safetensors (recorded in the fixture)."""
    cfg = json.loads((FIXTURE / "config.json").read_text())
    assert "arch" not in cfg["model"]
    mcfg = ModelConfig.from_dict(cfg["model"])
    assert mcfg.arch == "classic"
    model = build_model(mcfg, default_probe(int(mcfg.N)), 1.0)
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert shapes == json.loads((FIXTURE / "weights_shapes.json").read_text())


def test_classic_bundle_without_arch_key_loads_and_infers(tmp_path: Path) -> None:
    """A classic bundle whose config.json predates ``arch`` loads as classic and reconstructs."""
    from ptychopinn.data.simulate import simulate
    from ptychopinn.inference.reconstruct import reconstruct
    from ptychopinn.model.bundle import load_bundle
    from ptychopinn.training.config import TrainConfig
    from ptychopinn.training.trainer import train

    ds = simulate(n_images=48, N=32, object_size=64, nphotons=1e6, seed=3)
    run = tmp_path / "run"
    train(ds, run, ModelConfig(arch="classic", n_filters_scale=1),
          TrainConfig(epochs=1, device="cpu", diagnostics=False), progress=False)
    cfg = json.loads((run / "config.json").read_text())
    del cfg["model"]["arch"], cfg["model"]["norm"], cfg["model"]["back_project"]  # as v0.1.0 wrote it
    (run / "config.json").write_text(json.dumps(cfg))
    b = load_bundle(run)
    assert b.model_config.arch == "classic" and hasattr(b.model, "encoder")
    rec = reconstruct(run, ds, device="cpu", progress=False)
    assert np.isfinite(rec.object).all() and np.abs(rec.object).max() > 0
