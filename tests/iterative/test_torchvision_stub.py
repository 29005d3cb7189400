"""The torchvision stand-in: GaussianBlur against scipy.ndimage (an independent implementation),
and the install-only-when-broken logic against fake torchvision packages on sys.meta_path."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from ptychopinn.iterative._torchvision_stub import (
    STUB_MARKER,
    GaussianBlur,
    torchvision_stub,
)


def _reference(img: np.ndarray, sigma: float, radius: tuple[int, int]) -> np.ndarray:
    # torchvision pads with mode="reflect" (edge pixel not repeated) == scipy's "mirror"
    return gaussian_filter(img, sigma, mode="mirror", radius=radius)


def test_blur_matches_scipy_as_ptychi_calls_it():
    rng = np.random.default_rng(0)
    img = rng.normal(0.9, 0.1, size=(37, 52))
    out = GaussianBlur(kernel_size=(9, 9), sigma=(3, 3))(torch.from_numpy(img)[None, None])
    assert out.shape == (1, 1, 37, 52) and out.dtype == torch.float64
    # 9 taps at sigma 3 == truncate 4/3 (radius int(4/3 * 3 + 0.5) = 4)
    ref = gaussian_filter(img, 3.0, mode="mirror", truncate=4.0 / 3.0)
    got = out[0, 0].numpy()
    np.testing.assert_allclose(got[4:-4, 4:-4], ref[4:-4, 4:-4], rtol=0, atol=1e-12)  # interior
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)  # borders included


def test_blur_axis_order_channels_and_float32():
    rng = np.random.default_rng(1)
    img = rng.normal(size=(2, 3, 20, 25)).astype(np.float32)
    # kernel_size is (kx, ky): 9 taps along x (last axis), 5 along y
    out = GaussianBlur(kernel_size=(9, 5), sigma=2.0)(torch.from_numpy(img)).numpy()
    assert out.dtype == np.float32
    for b in range(2):
        for c in range(3):
            ref = _reference(img[b, c].astype(np.float64), 2.0, radius=(2, 4))
            np.testing.assert_allclose(out[b, c], ref, rtol=0, atol=2e-6)


def test_blur_draws_sigma_from_the_range_like_torchvision():
    img = torch.from_numpy(np.random.default_rng(2).normal(size=(16, 16)))
    torch.manual_seed(5)
    out = GaussianBlur(kernel_size=7, sigma=(0.5, 2.5))(img)
    torch.manual_seed(5)
    sigma = float(torch.empty(1).uniform_(0.5, 2.5).item())
    np.testing.assert_allclose(out.numpy(), _reference(img.numpy(), sigma, radius=(3, 3)), atol=1e-12)


@pytest.mark.parametrize("kwargs", [{"kernel_size": 4}, {"kernel_size": (3, 0)},
                                    {"kernel_size": 3, "sigma": 0}, {"kernel_size": 3, "sigma": (2.0, 1.0)}])
def test_blur_rejects_what_torchvision_rejects(kwargs):
    with pytest.raises(ValueError):
        GaussianBlur(**kwargs)


class _FakeTorchvision(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """A fake ``torchvision`` that is either broken (like the CUDA wheel beside a CPU torch:
    leaves a partial submodule behind, then raises RuntimeError) or working."""

    def __init__(self, broken: bool) -> None:
        self.broken = broken
        self.working_blur = type("GaussianBlur", (), {})

    def find_spec(self, name, path=None, target=None):
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        if self.broken:
            sys.modules["torchvision.extension"] = types.ModuleType("torchvision.extension")
            raise RuntimeError("operator torchvision::nms does not exist")
        if module.__name__ == "torchvision.transforms":
            module.GaussianBlur = self.working_blur


@pytest.fixture
def fake_torchvision(monkeypatch):
    for key in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
        monkeypatch.delitem(sys.modules, key)

    def install(broken: bool) -> _FakeTorchvision:
        finder = _FakeTorchvision(broken)
        monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
        return finder

    yield install
    for key in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
        del sys.modules[key]


def test_stub_installed_only_while_broken_and_removed_after(fake_torchvision):
    fake_torchvision(broken=True)
    with torchvision_stub() as status:
        from torchvision.transforms import GaussianBlur as blur_cls

        assert blur_cls is GaussianBlur
        assert getattr(sys.modules["torchvision"], STUB_MARKER)
        assert "torchvision.extension" not in sys.modules  # partial import cleaned up
    assert status.stub_used and "torchvision::nms" in status.import_error
    assert status.to_dict()["torchvision_stub_used"] is True
    assert not [k for k in sys.modules if k.startswith("torchvision")]  # stand-in removed


def test_real_torchvision_preferred_when_it_imports(fake_torchvision):
    finder = fake_torchvision(broken=False)
    with torchvision_stub() as status:
        from torchvision.transforms import GaussianBlur as blur_cls
    assert not status.stub_used and status.import_error is None
    assert blur_cls is finder.working_blur
