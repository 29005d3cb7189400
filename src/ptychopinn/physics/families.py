"""Procedural object and probe families for the general-model training corpus.

Objects are built in two steps: a *texture* (a real field in [0, 1], one of :data:`TEXTURES`) and an
*amplitude-phase relation* (one of :data:`RELATIONS`) that turns one or two textures into a complex
transmission. Probes come from :data:`PROBE_KINDS`. Every random choice takes a
``numpy.random.Generator``; nothing is seeded here.

Held-out families stay out on purpose: natural images, the real object of an experiment and the
Siemens star are for evaluation only (see ``docs/general_model.md``), so no texture here draws spokes
or photographs.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ptychopinn.physics.objects import lines_object

TEXTURES = ("lines", "grf_smooth", "grf_fine", "cells", "polygons", "particles", "pink", "fibres", "mixture")
RELATIONS = ("independent", "thickness", "phase_only", "amplitude_only")
PROBE_KINDS = ("disk", "gaussian", "defocused", "aberrated", "annular")


def _norm01(a: np.ndarray) -> np.ndarray:
    a = a - a.min()
    m = a.max()
    return np.zeros_like(a) if m <= 0 else a / m


def _smooth_noise(size: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return _norm01(ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma, mode="wrap"))


def _power_law(size: int, power: float, rng: np.random.Generator) -> np.ndarray:
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    k = np.hypot(fy, fx)
    k[0, 0] = np.inf
    noise = np.fft.fft2(rng.standard_normal((size, size)))
    return _norm01(np.real(np.fft.ifft2(noise * k ** (-power / 2.0))))


def _cells(size: int, rng: np.random.Generator) -> np.ndarray:
    """Voronoi cells of random density, each a random level, with darker walls."""
    n = int(rng.integers(8, 80))
    seeds = rng.uniform(0, size, (n, 2))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    d = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2
    order = np.argsort(d, axis=-1)
    lab = order[..., 0]
    d1 = np.sqrt(np.take_along_axis(d, order[..., :1], -1)[..., 0])
    d2 = np.sqrt(np.take_along_axis(d, order[..., 1:2], -1)[..., 0])
    levels = rng.uniform(0.2, 1.0, n)
    wall = np.exp(-((d2 - d1) / rng.uniform(0.8, 2.5)) ** 2)
    return _norm01(ndimage.gaussian_filter(levels[lab] * (1 - 0.8 * wall), rng.uniform(0.5, 1.5)))


def _polygons(size: int, rng: np.random.Generator) -> np.ndarray:
    """Overlapping random convex polygons (sharp edges, anti-aliased by 2x supersampling)."""
    ss = 2
    big = size * ss
    yy, xx = np.mgrid[0:big, 0:big].astype(np.float64)
    out = np.zeros((big, big))
    for _ in range(int(rng.integers(4, 25))):
        c = rng.uniform(0, big, 2)
        r = rng.uniform(0.04, 0.25) * big
        k = int(rng.integers(3, 8))
        ang = np.sort(rng.uniform(0, 2 * math.pi, k))
        vy, vx = c[0] + r * np.sin(ang), c[1] + r * np.cos(ang)
        inside = np.ones((big, big), bool)
        for i in range(k):  # inside every edge's half plane (counter-clockwise vertices)
            ay, ax, by, bx = vy[i], vx[i], vy[(i + 1) % k], vx[(i + 1) % k]
            inside &= (bx - ax) * (yy - ay) - (by - ay) * (xx - ax) >= 0
        out[inside] = out[inside] * rng.uniform(0, 0.5) + rng.uniform(0.3, 1.0)
    return _norm01(out.reshape(size, ss, size, ss).mean(axis=(1, 3)))


def _particles(size: int, rng: np.random.Generator) -> np.ndarray:
    """Random discs and Gaussian blobs of many sizes (nanoparticles, pores)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    out = np.zeros((size, size))
    for _ in range(int(rng.integers(10, 120))):
        c = rng.uniform(0, size, 2)
        r = rng.uniform(1.0, 0.08 * size)
        d = np.hypot(yy - c[0], xx - c[1])
        if rng.random() < 0.5:
            out += rng.uniform(0.3, 1.0) * np.clip(r + 0.5 - d, 0, 1)
        else:
            out += rng.uniform(0.3, 1.0) * np.exp(-0.5 * (d / r) ** 2)
    return _norm01(np.minimum(out, np.quantile(out, 0.995) + 1e-12))


def _fibres(size: int, rng: np.random.Generator) -> np.ndarray:
    """Thick curved strands (random walks with smooth curvature), blurred."""
    canvas = np.zeros((size, size))
    for _ in range(int(rng.integers(3, 20))):
        p = rng.uniform(0, size, 2)
        ang = rng.uniform(0, 2 * math.pi)
        curv = rng.normal(0, 0.03)
        width = rng.uniform(0.5, 3.0)
        amp = rng.uniform(0.4, 1.0)
        for _ in range(3 * size):
            ang += curv + rng.normal(0, 0.02)
            p = p + 0.5 * np.array([math.sin(ang), math.cos(ang)])
            iy, ix = int(p[0]) % size, int(p[1]) % size
            canvas[iy, ix] = max(canvas[iy, ix], amp * width)
    return _norm01(ndimage.gaussian_filter(canvas, rng.uniform(1.0, 2.5)))


def texture(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A real (size, size) field in [0, 1] of texture ``kind`` (one of :data:`TEXTURES`)."""
    if kind == "lines":
        return _norm01(np.abs(lines_object(size, rng, amp_range=(0.0, 1.0), phase_scale=0.0)))
    if kind == "grf_smooth":
        return _smooth_noise(size, rng.uniform(4.0, 16.0), rng)
    if kind == "grf_fine":
        return _smooth_noise(size, rng.uniform(0.8, 3.0), rng)
    if kind == "cells":
        return _cells(size, rng)
    if kind == "polygons":
        return _polygons(size, rng)
    if kind == "particles":
        return _particles(size, rng)
    if kind == "pink":
        return _power_law(size, rng.uniform(1.5, 3.5), rng)
    if kind == "fibres":
        return _fibres(size, rng)
    if kind == "mixture":  # two other textures blended through a smooth mask
        a, b = rng.choice([t for t in TEXTURES if t != "mixture"], 2, replace=False)
        m = _smooth_noise(size, rng.uniform(6.0, 20.0), rng)
        m = 1.0 / (1.0 + np.exp(-(m - 0.5) * rng.uniform(5, 30)))
        return _norm01(m * texture(str(a), size, rng) + (1 - m) * texture(str(b), size, rng))
    raise ValueError(f"unknown texture {kind!r} (one of {TEXTURES})")


def complex_object(relation: str, t_amp: np.ndarray, t_phase: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Complex transmission from textures in [0, 1] and an amplitude-phase ``relation``:

    * ``independent``: amplitude in [a_min, 1] from ``t_amp``, phase from ``t_phase``
      (range 0.1..3 rad);
    * ``thickness``: one thickness map t = ``t_amp``; amplitude exp(-mu t), phase -delta/beta * mu t
      with delta/beta drawn log-uniform in 1..100 (weak absorbers with strong phase, and the reverse);
    * ``phase_only``: amplitude 1 (a pure phase object), phase from ``t_phase``;
    * ``amplitude_only``: phase 0, amplitude from ``t_amp``.
    The phase has zero mean and stays within +-3 rad (no wraps for the network's pi*tanh head).
    """
    if relation == "thickness":
        mu = rng.uniform(0.05, 1.5)
        ratio = math.exp(rng.uniform(0.0, math.log(100.0)))
        amp = np.exp(-mu * t_amp)
        phase = -min(ratio * mu, 3.0) * t_amp
    else:
        a_min = rng.uniform(0.1, 0.9)
        p_range = math.exp(rng.uniform(math.log(0.1), math.log(3.0)))
        amp = a_min + (1 - a_min) * t_amp if relation in ("independent", "amplitude_only") else np.ones_like(t_amp)
        phase = p_range * t_phase if relation in ("independent", "phase_only") else np.zeros_like(t_amp)
    phase = phase - phase.mean()
    return (amp * np.exp(1j * phase)).astype(np.complex128)


def random_object(size: int, rng: np.random.Generator, textures: tuple[str, ...] = TEXTURES,
                  relations: tuple[str, ...] = RELATIONS) -> tuple[np.ndarray, dict]:
    """A random complex object (size, size) and its description (textures, relation)."""
    ta, tp = (str(rng.choice(textures)) for _ in range(2))
    rel = str(rng.choice(relations))
    t_amp = texture(ta, size, rng)
    t_phase = t_amp if rel == "thickness" else texture(tp, size, rng)
    return complex_object(rel, t_amp, t_phase, rng), {"amplitude_texture": ta, "phase_texture": tp, "relation": rel}


def _pupil_probe(n: int, radius: float, inner: float, aberr: np.ndarray) -> np.ndarray:
    """Focused probe = inverse Fourier transform of a (possibly annular) pupil with phase errors.

    ``radius`` / ``inner`` are the pupil radii in frequency pixels; ``aberr`` holds coefficients
    (radians at the pupil edge) of defocus, two astigmatisms, two comas and spherical aberration."""
    c = n // 2
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    u, v = (xx - c) / radius, (yy - c) / radius
    rho2 = u * u + v * v
    pupil = ndimage.gaussian_filter(((rho2 <= 1) & (rho2 >= (inner / radius) ** 2)).astype(float), 0.7)
    th = np.arctan2(v, u)
    rho = np.sqrt(rho2)
    z = [2 * rho2 - 1, rho2 * np.cos(2 * th), rho2 * np.sin(2 * th), (3 * rho2 - 2) * rho * np.cos(th),
         (3 * rho2 - 2) * rho * np.sin(th), 6 * rho2 ** 2 - 6 * rho2 + 1]
    phase = sum(a * zi for a, zi in zip(aberr, z))
    field = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(pupil * np.exp(1j * phase))))
    return field / np.abs(field).max()


def random_probe(n: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A probe (n, n) complex128 of ``kind`` (one of :data:`PROBE_KINDS`), peak amplitude 1, its
    energy mostly within the central n/2 (diameters n/6..n/2.5):

    * ``disk``: soft-edged disk (pinhole-defined beam), flat phase;
    * ``gaussian``: Gaussian spot, optional small curvature;
    * ``defocused``: disk with a quadratic phase of up to 3 pi at its edge;
    * ``aberrated``: focus of a circular pupil with random low-order aberrations (side lobes);
    * ``annular``: focus of an annular pupil (central stop, as a zone plate), optionally defocused.
    """
    from ptychopinn.physics.probe import default_probe

    if kind in ("disk", "defocused"):
        d = rng.uniform(n / 6, n / 2.5)
        return default_probe(n, d, rng.uniform(0.5, 3 * math.pi) if kind == "defocused" else 0.0)
    if kind == "gaussian":
        sigma = rng.uniform(n / 24, n / 10)
        yy, xx = np.mgrid[0:n, 0:n].astype(np.float64) - n // 2
        r2 = yy * yy + xx * xx
        return np.exp(-r2 / (2 * sigma ** 2) + 1j * rng.uniform(-1, 1) * r2 / (2 * sigma) ** 2)
    if kind in ("aberrated", "annular"):
        # redraw until 90 % of the energy lies in the central n/2 (a defocus too strong for the
        # frame would wrap around its edges): deterministic for a given generator
        for _ in range(50):
            radius = rng.uniform(n / 10, n / 5)  # focal spot ~ n / radius px wide
            inner = rng.uniform(0.3, 0.6) * radius if kind == "annular" else 0.0
            aberr = rng.normal(0, 1.0, 6) * np.array([1.5, 0.8, 0.8, 0.5, 0.5, 0.3])
            if kind == "annular":
                aberr[0] += rng.uniform(-4, 4)  # out of focus: a ring
            p = _pupil_probe(n, radius, inner, aberr)
            e = np.abs(p) ** 2
            if e[n // 4:n // 4 + n // 2, n // 4:n // 4 + n // 2].sum() >= 0.9 * e.sum():
                return p
        return p
    raise ValueError(f"unknown probe kind {kind!r} (one of {PROBE_KINDS})")
