"""Scan trajectories: patch centres (y, x) in object pixels that keep every N x N patch inside."""

from __future__ import annotations

import math

import numpy as np


def _limits(object_shape: tuple[int, int], n: int, border: float) -> tuple[float, float, float, float]:
    h, w = object_shape
    lo = n // 2 + border
    y_hi = h - (n - n // 2) - border
    x_hi = w - (n - n // 2) - border
    if y_hi < lo or x_hi < lo:
        raise ValueError(f"object {h}x{w} is too small for {n}x{n} patches with a {border}-px border")
    return lo, y_hi, lo, x_hi


def random_scan(object_shape, n: int, n_images: int, rng: np.random.Generator, border: float = 0.0) -> np.ndarray:
    """``n_images`` uniform random centres (sub-pixel) such that patches stay inside the object."""
    y0, y1, x0, x1 = _limits(object_shape, n, border)
    y = rng.uniform(y0, y1, n_images)
    x = rng.uniform(x0, x1, n_images)
    return np.stack([y, x], axis=1)


def raster_scan(object_shape, n: int, step: float, border: float = 0.0) -> np.ndarray:
    """Row-major raster of integer-spaced centres with the given step, centred on the object."""
    y0, y1, x0, x1 = _limits(object_shape, n, border)
    ny = int(np.floor((y1 - y0) / step)) + 1
    nx = int(np.floor((x1 - x0) / step)) + 1
    oy = y0 + ((y1 - y0) - (ny - 1) * step) / 2
    ox = x0 + ((x1 - x0) - (nx - 1) * step) / 2
    yy, xx = np.meshgrid(oy + step * np.arange(ny), ox + step * np.arange(nx), indexing="ij")
    return np.stack([yy.ravel(), xx.ravel()], axis=1)


def jitter_scan(object_shape, n: int, step: float, rng: np.random.Generator, jitter: float | None = None,
                border: float = 0.0) -> np.ndarray:
    """Raster plus uniform jitter of +-``jitter`` px (default step/4), clipped to the valid range."""
    jitter = step / 4.0 if jitter is None else jitter
    y0, y1, x0, x1 = _limits(object_shape, n, border)
    pos = raster_scan(object_shape, n, step, border + jitter)
    pos = pos + rng.uniform(-jitter, jitter, size=pos.shape)
    pos[:, 0] = np.clip(pos[:, 0], y0, y1)
    pos[:, 1] = np.clip(pos[:, 1], x0, x1)
    return pos


def disc_overlap(d: np.ndarray | float, diameter: float) -> np.ndarray:
    """Overlap fraction of two discs of diameter D whose centres are d apart (1 at d=0, 0 at d>=D)."""
    d = np.asarray(d, dtype=np.float64)
    r = diameter / 2.0
    dc = np.clip(d, 0.0, diameter)
    lens = 2 * r * r * np.arccos(dc / (2 * r)) - (dc / 2) * np.sqrt(np.maximum(4 * r * r - dc * dc, 0.0))
    return np.where(d >= diameter, 0.0, lens / (math.pi * r * r))
