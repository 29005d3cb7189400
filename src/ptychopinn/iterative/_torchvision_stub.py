"""A minimal in-process stand-in for ``torchvision.transforms.GaussianBlur``.

Why: pty-chi imports ``from torchvision.transforms import GaussianBlur`` at module level (in
``ptychi/utils.py``) and uses it for one thing only: smoothing random initial objects with
``GaussianBlur(kernel_size=(9, 9), sigma=(3, 3))(img[None, None])``. The torchvision wheels on the
package index are CUDA builds; beside a CPU-only torch they fail to import with
``RuntimeError: operator torchvision::nms does not exist``, which would make pty-chi unusable.

What: :func:`torchvision_stub` is a context manager that first tries the real torchvision. Only if
that import fails does it remove the partially imported ``torchvision*`` entries from
``sys.modules`` and register two tiny modules, ``torchvision`` and ``torchvision.transforms``,
that expose nothing but :class:`GaussianBlur`. On exit it removes the stand-in again (modules that
imported ``GaussianBlur`` keep their reference), so the rest of the process sees torchvision exactly
as it was: absent or broken. Nothing happens at import time of this module.

Semantics reproduced from torchvision 0.2x (``transforms.GaussianBlur`` on tensors): odd kernel
sizes ``(kx, ky)``; ``sigma`` a number or a ``(min, max)`` range from which one value is drawn per
call with ``torch.empty(1).uniform_(min, max)`` (same RNG consumption as torchvision); the 1-D kernel
is ``exp(-x^2 / (2 sigma^2))`` on ``x = linspace(-(k-1)/2, (k-1)/2, k)``, normalised to sum 1;
borders use ``reflect`` padding (mirror without repeating the edge pixel, scipy's ``mode='mirror'``);
channels are blurred independently. The blur is applied separably (rows, then columns).
"""

from __future__ import annotations

import contextlib
import numbers
import sys
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: attribute set on the stand-in modules so they can be told apart from the real package
STUB_MARKER = "__ptychopinn_stub__"

#: exceptions a broken torchvision install raises on import (CUDA build beside CPU torch:
#: RuntimeError; missing shared library: OSError/ImportError; ABI mismatch: AttributeError)
IMPORT_FAILURES = (ImportError, RuntimeError, OSError, AttributeError)


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(value, numbers.Integral):
        return int(value), int(value)
    if isinstance(value, Sequence) and len(value) == 1:
        return int(value[0]), int(value[0])
    if isinstance(value, Sequence) and len(value) == 2:
        return int(value[0]), int(value[1])
    raise ValueError(f"{name} should be an int or a sequence of two ints; got {value!r}")


def gaussian_kernel1d(kernel_size: int, sigma: float, dtype: torch.dtype = torch.float32,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """Normalised 1-D Gaussian of ``kernel_size`` taps (torchvision's sampling of the kernel)."""
    half = (kernel_size - 1) * 0.5
    x = torch.linspace(-half, half, steps=kernel_size, dtype=dtype, device=device)
    pdf = torch.exp(-0.5 * (x / sigma) ** 2)
    return pdf / pdf.sum()


def gaussian_blur(img: torch.Tensor, kernel_size: tuple[int, int], sigma: tuple[float, float]) -> torch.Tensor:
    """Blur the last two axes of ``img`` (..., H, W) with a separable Gaussian, reflect padding.

    ``kernel_size`` and ``sigma`` are ``(x, y)`` pairs, as in torchvision.
    """
    if img.ndim < 2:
        raise TypeError(f"expected a tensor with at least 2 dimensions; got {img.ndim}")
    kx, ky = kernel_size
    sx, sy = sigma
    work_dtype = img.dtype if img.is_floating_point() else torch.float32
    shape = img.shape
    x = img.reshape(-1, 1, shape[-2], shape[-1]).to(work_dtype)
    gx = gaussian_kernel1d(kx, sx, work_dtype, x.device).view(1, 1, 1, kx)
    gy = gaussian_kernel1d(ky, sy, work_dtype, x.device).view(1, 1, ky, 1)
    x = F.pad(x, [kx // 2, kx // 2, ky // 2, ky // 2], mode="reflect")
    x = F.conv2d(F.conv2d(x, gx), gy)
    out = x.reshape(shape)
    if not img.is_floating_point():
        out = torch.round(out).to(img.dtype)
    return out


class GaussianBlur(torch.nn.Module):
    """Stand-in for ``torchvision.transforms.GaussianBlur`` (tensor inputs only)."""

    def __init__(self, kernel_size: int | Sequence[int], sigma: float | Sequence[float] = (0.1, 2.0)) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size")
        for k in self.kernel_size:
            if k <= 0 or k % 2 == 0:
                raise ValueError("Kernel size value should be an odd and positive number.")
        if isinstance(sigma, numbers.Number):
            if sigma <= 0:
                raise ValueError("If sigma is a single number, it must be positive.")
            sigma = (float(sigma), float(sigma))
        elif isinstance(sigma, Sequence) and len(sigma) == 2:
            if not 0.0 < sigma[0] <= sigma[1]:
                raise ValueError("sigma values should be positive and of the form (min, max).")
        else:
            raise ValueError("sigma should be a single number or a list/tuple with length 2.")
        self.sigma = (float(sigma[0]), float(sigma[1]))

    @staticmethod
    def get_params(sigma_min: float, sigma_max: float) -> float:
        """Draw the sigma of one call uniformly from [sigma_min, sigma_max] (torch's global RNG)."""
        return float(torch.empty(1).uniform_(sigma_min, sigma_max).item())

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if not isinstance(img, torch.Tensor):
            raise TypeError("the torchvision stand-in only blurs torch tensors")
        s = self.get_params(self.sigma[0], self.sigma[1])
        return gaussian_blur(img, self.kernel_size, (s, s))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(kernel_size={self.kernel_size}, sigma={self.sigma}) [ptychopinn stand-in]"


@dataclass(frozen=True)
class TorchvisionStatus:
    """What :func:`torchvision_stub` found: the real package or the stand-in, and why."""

    stub_used: bool
    version: str | None = None
    import_error: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {"torchvision_stub_used": self.stub_used, "torchvision_version": self.version,
                "torchvision_import_error": self.import_error}


def _torchvision_keys() -> list[str]:
    return [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]


def _is_stub(module: object) -> bool:
    return bool(getattr(module, STUB_MARKER, False))


def make_stub_modules() -> dict[str, types.ModuleType]:
    """Fresh ``torchvision`` / ``torchvision.transforms`` modules exposing only GaussianBlur."""
    root = types.ModuleType("torchvision", "ptychopinn stand-in: only transforms.GaussianBlur")
    transforms = types.ModuleType("torchvision.transforms", "ptychopinn stand-in: only GaussianBlur")
    transforms.GaussianBlur = GaussianBlur  # type: ignore[attr-defined]
    root.transforms = transforms  # type: ignore[attr-defined]
    root.__version__ = "0+ptychopinn.stub"  # type: ignore[attr-defined]
    root.__path__ = []  # a package, so "import torchvision.transforms" resolves via sys.modules
    for m in (root, transforms):
        setattr(m, STUB_MARKER, True)
    return {"torchvision": root, "torchvision.transforms": transforms}


@contextlib.contextmanager
def torchvision_stub() -> Iterator[TorchvisionStatus]:
    """Make ``from torchvision.transforms import GaussianBlur`` work inside the ``with`` block.

    Yields a :class:`TorchvisionStatus`. The real torchvision is used whenever it imports; the
    stand-in is registered only after that import failed, and removed again on exit.
    """
    present = sys.modules.get("torchvision")
    if present is not None and _is_stub(present):  # someone else's block is active: reuse it
        yield TorchvisionStatus(stub_used=True, version=getattr(present, "__version__", None))
        return
    try:
        import torchvision
        import torchvision.transforms  # noqa: F401
    except IMPORT_FAILURES as exc:
        error = f"{exc.__class__.__name__}: {exc}"
    else:
        yield TorchvisionStatus(stub_used=False, version=getattr(sys.modules["torchvision"], "__version__", None))
        return
    for key in _torchvision_keys():  # drop the partially imported package
        del sys.modules[key]
    stubs = make_stub_modules()
    sys.modules.update(stubs)
    try:
        yield TorchvisionStatus(stub_used=True, version=stubs["torchvision"].__version__, import_error=error)
    finally:
        for key, mod in stubs.items():
            if sys.modules.get(key) is mod:
                del sys.modules[key]
