"""Model construction, output contract, configs, scaling and state isolation."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from ptychopinn.errors import ConfigError
from ptychopinn.model import build_model, count_parameters
from ptychopinn.model import physics_layers as ph
from ptychopinn.model.config import ModelConfig, needs_border_branch
from ptychopinn.model.scaling import choose_intensity_scale, closed_form_scale, input_scale, nphotons_from_metadata
from ptychopinn.physics.probe import default_probe


@pytest.mark.parametrize("n,gridsize", [(32, 1), (32, 2), (64, 2), (128, 1)])
def test_pinn_output_contract(n: int, gridsize: int) -> None:
    c = gridsize * gridsize
    torch.manual_seed(0)
    cfg = ModelConfig(N=n, gridsize=gridsize, n_filters_scale=1)
    model = build_model(cfg, default_probe(n), 50.0)
    assert model.config.border_branch is False  # auto: the default probe fits the N/2 support
    x = torch.rand(2, c, n, n)
    off = torch.randn(2, c, 2) * 2 if c > 1 else torch.zeros(2, 1, 2)
    with torch.no_grad():
        out = model(x, off)
    for key in ("patches", "object_patches", "amplitude", "intensity"):
        assert out[key].shape == (2, c, n, n)
    assert out["object"].shape == (2, n, n)
    assert out["patches"].dtype == torch.complex64 and out["amplitude"].dtype == torch.float32
    amp = out["patches"].abs()
    outside = ph.support_mask(n) == 0
    assert float(amp[..., outside].max()) == 0.0  # zero outside the N/2 support
    assert float(amp.max()) <= cfg.amp_max + 1e-6  # amp_max * sigmoid head
    assert float(out["patches"].angle().abs().max()) <= math.pi + 1e-6
    pp = model.predict_patches(x, off)
    assert pp.shape == (2, c, n, n) and pp.dtype == torch.complex64
    torch.testing.assert_close(pp, out["object_patches"])


def test_encoder_widths_and_parameter_count() -> None:
    """The classic (reference) network keeps its published shape."""
    m64 = build_model(ModelConfig(N=64, n_filters_scale=2, arch="classic"), default_probe(64), 1.0)
    widths = [mod.out_channels for mod in m64.encoder if isinstance(mod, torch.nn.Conv2d)][1::2]
    assert widths == [64, 128, 256]  # 32/64/128 x 2
    assert 2.2e6 < count_parameters(m64) < 2.4e6
    m128 = build_model(ModelConfig(N=128, n_filters_scale=1, arch="classic"), default_probe(128), 1.0)
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in m128.encoder) == 4
    m32 = build_model(ModelConfig(N=32, n_filters_scale=1, arch="classic"), default_probe(32), 1.0)
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in m32.encoder) == 2


def test_bf16_autocast_keeps_heads_and_physics_float32() -> None:
    model = build_model(ModelConfig(N=32, gridsize=2, n_filters_scale=1), default_probe(32), 10.0)
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        out = model(torch.rand(2, 4, 32, 32), torch.randn(2, 4, 2))
    assert out["amplitude"].dtype == torch.float32 and out["patches"].dtype == torch.complex64


def test_two_models_keep_their_own_intensity_scale() -> None:
    probe = default_probe(32)
    cfg = ModelConfig(N=32, n_filters_scale=1, intensity_scale_trainable=True)
    torch.manual_seed(0)
    a = build_model(cfg, probe, 10.0)
    b = build_model(cfg, probe, 1000.0)
    b.load_state_dict({k: v for k, v in a.state_dict().items() if k != "log_s"}, strict=False)
    assert a.intensity_scale == pytest.approx(10.0, rel=1e-6)
    assert b.intensity_scale == pytest.approx(1000.0, rel=1e-6)
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        ra = a(x, None)["amplitude"]
        rb = b(x, None)["amplitude"]
    torch.testing.assert_close(rb, 100 * ra, rtol=1e-5, atol=1e-3)
    # training one model's scale leaves the other alone
    opt = torch.optim.SGD([a.log_s], lr=0.1)
    a(x, None)["amplitude"].sum().backward()
    opt.step()
    assert a.intensity_scale != pytest.approx(10.0, rel=1e-6)
    assert b.intensity_scale == pytest.approx(1000.0, rel=1e-6)
    assert a.probe.data_ptr() != b.probe.data_ptr()


def test_probe_trainable_and_fixed() -> None:
    probe = default_probe(32)
    fixed = build_model(ModelConfig(N=32, n_filters_scale=1), probe, 1.0)
    train = build_model(ModelConfig(N=32, n_filters_scale=1, probe_trainable=True), probe, 1.0)
    assert "probe" not in dict(fixed.named_parameters()) and "probe" in dict(fixed.named_buffers())
    assert dict(train.named_parameters())["probe"].requires_grad
    p = torch.view_as_complex(fixed.probe).numpy()
    assert float(np.sum(np.abs(p) ** 2)) == pytest.approx(16 ** 2, rel=1e-5)


def test_supervised_output_contract() -> None:
    model = build_model(ModelConfig(kind="supervised", N=32, n_filters_scale=1), default_probe(32), 5.0,
                        amplitude_scale=2.5)
    with torch.no_grad():
        out = model(torch.rand(2, 1, 32, 32))
    assert out["patches"].shape == (2, 1, 32, 32) and out["patches"].dtype == torch.complex64
    assert float(out["object_amplitude"].max()) <= 2.5
    assert float(out["object_amplitude"][..., :4, :4].abs().sum()) > 0  # full N x N output
    with pytest.raises(ConfigError):
        ModelConfig(kind="supervised", gridsize=2)


def test_model_config_round_trip_and_validation() -> None:
    cfg = ModelConfig(N=64, gridsize=2, probe_trainable=True, amp_max=1.5)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.C == 4 and cfg.n_stages == 3
    with pytest.raises(ConfigError):
        ModelConfig(N=48)
    with pytest.raises(ConfigError):
        ModelConfig(kind="gan")
    with pytest.raises(ConfigError):
        ModelConfig.from_dict({"N": 64, "bogus": 1})
    with pytest.raises(ConfigError):
        ModelConfig(N=64).with_N(32)


def test_intensity_scale_definitions() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((10, 16, 16)).astype(np.float32) * 30
    mean_total = float(np.mean(np.sum(x.astype(np.float64) ** 2, axis=(1, 2))))
    r = input_scale(x)
    assert r == pytest.approx(math.sqrt(64 / mean_total))
    assert float(np.mean(np.sum((x * r).astype(np.float64) ** 2, axis=(1, 2)))) == pytest.approx(64, rel=1e-5)
    assert closed_form_scale(1e6, 64) == pytest.approx(1000 / 32)
    assert nphotons_from_metadata({"config": {"nphotons": 5.0}}) == 5.0
    sc = choose_intensity_scale(x, {"nphotons_requested": 1e4}, "closed_form")
    assert sc.value == pytest.approx(100 / 8) and sc.input_scale == pytest.approx(8 / 100)
    assert sc.data_derived == pytest.approx(1 / r)
    with pytest.raises(ConfigError):
        choose_intensity_scale(x, {}, "closed_form")


def test_imports_do_no_work() -> None:
    code = ("import sys, ptychopinn.model, ptychopinn.training, ptychopinn.cli.train, ptychopinn.model.config, "
            "ptychopinn.model.losses, "
            "ptychopinn.training.config; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_border_branch_auto_and_output() -> None:
    big = default_probe(32, diameter=28)  # wider than the central N/2 support
    assert needs_border_branch(big) and not needs_border_branch(default_probe(32))
    model = build_model(ModelConfig(N=32, gridsize=2, n_filters_scale=1), big, 1.0)
    assert model.config.border_branch is True
    with torch.no_grad():
        out = model(torch.rand(2, 4, 32, 32), torch.randn(2, 4, 2))
    outside = ph.support_mask(32) == 0
    assert float(out["patches"].abs()[..., outside].min()) > 0  # the border is predicted too
    assert float(out["object_patches"].abs()[..., outside].max()) > 0
    off = build_model(ModelConfig(N=32, n_filters_scale=1, border_branch=False), big, 1.0)
    assert off.config.border_branch is False
