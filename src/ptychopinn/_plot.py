"""One plotting style for every figure of the package (infer, pty-chi, compare, demo, training).

Rules, applied by :func:`show_image`:

- colour limits from percentiles of the shown data (default 1-99 %), never a fixed range, so a
  0.3 rad phase spans the colour map;
- phase is shown with its (amplitude-weighted) global offset removed;
- pixels no scan position covered are NaN and drawn transparent (the figure background), not
  counted as zeros;
- every image has a colour bar with its units, a scale bar when the pixel size is known, and the
  metrics go into the panel titles;
- one colour map per quantity (:data:`CMAPS`).

Figures are ``matplotlib.figure.Figure`` objects on an Agg canvas (no pyplot, no global backend
switch) and are written atomically.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: colour map and colour-bar label of each kind of image
CMAPS: dict[str, str] = {"amplitude": "gray", "phase": "viridis", "probe": "magma", "counts": "magma"}
UNITS: dict[str, str] = {
    "amplitude": "amplitude (transmission, a.u.)",
    "phase": "phase (rad)",
    "probe": "probe amplitude (a.u.)",
    "counts": "log10(1 + counts)",
}
PERCENTILES = (1.0, 99.0)
#: metadata keys that may hold the object pixel size in metres: a number, or [dy, dx] (the CXI
#: reader's ``geometry.object_pixel_m``)
PIXEL_SIZE_KEYS = ("object_pixel_m", "object_pixel_size_m", "pixel_size_m")


# ---------------------------------------------------------------------------------------------
# data preparation
# ---------------------------------------------------------------------------------------------
def masked(img: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Float copy of ``img`` with NaN where ``mask`` is False (and where ``img`` is not finite)."""
    out = np.array(img, dtype=np.float64)
    if mask is not None:
        out[~np.asarray(mask, dtype=bool)] = np.nan
    out[~np.isfinite(out)] = np.nan
    return out


def remove_phase_offset(phase: np.ndarray, mask: np.ndarray | None = None,
                        weight: np.ndarray | None = None) -> np.ndarray:
    """``phase`` minus its circular mean over ``mask`` (weighted by ``weight``, e.g. the
    amplitude), wrapped to (-pi, pi]."""
    ph = np.asarray(phase, dtype=np.float64)
    sel = np.isfinite(ph) if mask is None else (np.asarray(mask, dtype=bool) & np.isfinite(ph))
    if not sel.any():
        return ph.copy()
    w = np.ones(int(sel.sum())) if weight is None else np.abs(np.asarray(weight, dtype=np.float64)[sel])
    if not np.any(w > 0):
        w = np.ones_like(w)
    offset = float(np.angle(np.sum(w * np.exp(1j * ph[sel]))))
    return np.angle(np.exp(1j * (ph - offset)))


def robust_range(img: np.ndarray, percentiles: tuple[float, float] = PERCENTILES) -> tuple[float, float]:
    """(low, high) percentiles of the finite values of ``img``; a flat image gets +-5 % (or
    +-0.5 around zero) so it still has a colour bar."""
    vals = np.asarray(img, dtype=np.float64)
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(vals, percentiles))
    if not hi > lo:
        half = 0.05 * abs(lo) if lo != 0 else 0.5
        lo, hi = lo - half, hi + half
    return lo, hi


def coverage_mask(positions_yx: np.ndarray, probe: np.ndarray, origin: Sequence[float],
                  shape: tuple[int, int], level: float = 0.05) -> np.ndarray:
    """Canvas pixels that some scan position illuminates with at least ``level`` x the probe's
    peak intensity. Positions are patch centres in object pixels; canvas pixel (i, j) is object
    pixel (origin[0] + i, origin[1] + j)."""
    inten = np.abs(np.asarray(probe)) ** 2
    n = inten.shape[0]
    cov = np.zeros((shape[0] + 2 * n, shape[1] + 2 * n), dtype=np.float32)  # padded: no clipping
    top = np.rint(np.asarray(positions_yx, dtype=np.float64) - n // 2 - np.asarray(origin, dtype=np.float64))
    top = top.astype(np.int64) + n
    for ty, tx in top:
        if -n < ty - n < shape[0] and -n < tx - n < shape[1]:
            np.maximum(cov[ty:ty + n, tx:tx + n], inten, out=cov[ty:ty + n, tx:tx + n])
    peak = float(inten.max()) if inten.size else 0.0
    return cov[n:n + shape[0], n:n + shape[1]] >= level * peak if peak > 0 else np.zeros(shape, bool)


def pixel_size_of(metadata: Mapping[str, Any] | None) -> float | None:
    """The object pixel size along x (m) recorded in a metadata dict (top level or its
    ``geometry`` block), or None."""
    blocks = [metadata or {}]
    if isinstance((metadata or {}).get("geometry"), Mapping):
        blocks.append(metadata["geometry"])
    for block in blocks:
        for key in PIXEL_SIZE_KEYS:
            v = block.get(key)
            if isinstance(v, (list, tuple)) and len(v) == 2:
                v = v[1]  # [dy, dx]: the scale bar is horizontal
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0:
                return float(v)
    return None


def metrics_title(label: str, metrics: Mapping[str, float] | None, keys: Sequence[str] = ("ssim", "psnr", "frc50")
                  ) -> str:
    """``label`` plus a second line with the chosen metrics (e.g. 'SSIM 0.951  PSNR 24.3 dB')."""
    if not metrics:
        return label
    names = {"ssim": "SSIM", "ms_ssim": "MS-SSIM", "psnr": "PSNR", "mae": "MAE", "frc50": "FRC50",
             "pearson_r": "r"}
    parts = []
    for k in keys:
        v = metrics.get(k)
        if v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
            continue
        parts.append(f"{names.get(k, k)} {v:.1f} dB" if k == "psnr" else f"{names.get(k, k)} {v:.3g}")
    return label + ("\n" + "  ".join(parts) if parts else "")


# ---------------------------------------------------------------------------------------------
# drawing
# ---------------------------------------------------------------------------------------------
def blank_figure(figsize: tuple[float, float]) -> Any:
    """An empty Figure on an Agg canvas with constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def new_figure(nrows: int = 1, ncols: int = 1, panel: tuple[float, float] = (3.4, 3.0),
               heights: Sequence[float] | None = None, **kw: Any):
    """(Figure on an Agg canvas, 2-D array of axes) with constrained layout; ``heights`` (inches
    per row) overrides ``panel[1]`` so rows of wide images do not leave empty bands."""
    heights = [panel[1]] * nrows if heights is None else list(heights)
    fig = blank_figure((panel[0] * ncols + 0.4, sum(heights) + 0.3))
    axes = fig.subplots(nrows, ncols, squeeze=False, gridspec_kw={"height_ratios": heights}, **kw)
    return fig, axes


def row_height(shape: tuple[int, ...], width: float, title_lines: int = 2) -> float:
    """Inches a row needs for images of ``shape`` drawn ``width`` inches wide, plus titles."""
    return max(1.2, width * 0.78 * shape[0] / max(shape[1], 1)) + 0.2 * title_lines + 0.2


def cmap(kind: str):
    """The colour map of ``kind`` with NaN (uncovered) pixels transparent."""
    import matplotlib

    return matplotlib.colormaps[CMAPS[kind]].with_extremes(bad=(0.0, 0.0, 0.0, 0.0))


def _nice_length(target: float) -> float:
    exp = math.floor(math.log10(target))
    for m in (5, 2, 1):
        if m * 10 ** exp <= target:
            return m * 10 ** exp
    return 10 ** exp


def _length_label(metres: float) -> str:
    for unit, f in (("mm", 1e-3), ("µm", 1e-6), ("nm", 1e-9)):
        if metres >= f:
            return f"{metres / f:g} {unit}"
    return f"{metres / 1e-12:g} pm"


def add_scale_bar(ax: Any, pixel_size: float, width_px: float, color: str = "white") -> None:
    """A scale bar of a round length (about a fifth of the width) in the lower left corner."""
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    length = _nice_length(0.2 * width_px * pixel_size)
    bar = AnchoredSizeBar(ax.transData, length / pixel_size, _length_label(length), "lower left",
                          pad=0.4, color=color, frameon=False, size_vertical=max(width_px / 100, 0.5))
    ax.add_artist(bar)


def show_image(ax: Any, img: np.ndarray, kind: str, *, mask: np.ndarray | None = None, title: str | None = None,
               vrange: tuple[float, float] | None = None, extent: Sequence[float] | None = None,
               pixel_size: float | None = None, colorbar: bool = True, label: str | None = None,
               remove_offset: bool = True, weight: np.ndarray | None = None):
    """Draw ``img`` in the package style; returns the image artist.

    ``kind``: 'amplitude', 'phase', 'probe' or 'counts'. ``mask``: covered pixels (others are
    NaN, drawn transparent). Phase gets its offset removed (weighted by ``weight``) unless
    ``remove_offset`` is False. ``vrange`` defaults to the 1-99 % percentiles of the shown
    values. ``extent`` is passed to imshow (axes then in those units); the scale bar assumes
    axes in pixels.
    """
    data = np.asarray(img)
    if kind == "phase" and remove_offset:
        data = remove_phase_offset(data, mask, weight)
    shown = masked(data, mask)
    lo, hi = robust_range(shown) if vrange is None else vrange
    kw: dict[str, Any] = {} if extent is None else {"extent": tuple(extent)}
    im = ax.imshow(shown, cmap=cmap(kind), vmin=lo, vmax=hi, interpolation="nearest", origin="upper", **kw)
    if title:
        ax.set_title(title, fontsize=9)
    if extent is None:
        ax.set_xticks([])
        ax.set_yticks([])
    if colorbar:
        ax.figure.colorbar(im, ax=ax, shrink=0.85, label=label or UNITS[kind])
    if pixel_size:
        add_scale_bar(ax, pixel_size, shown.shape[1], color="white" if kind != "amplitude" else "tab:orange")
    return im


def zoom_to(ax: Any, mask: np.ndarray | None, extent: Sequence[float], pad: int = 2) -> None:
    """Limit the view of ``ax`` (drawn with ``extent``) to the bounding box of ``mask``."""
    if mask is None or not np.any(mask):
        return
    rows, cols = np.nonzero(mask)
    x0, y0 = extent[0] + 0.5, extent[3] + 0.5  # data coordinates of pixel (0, 0)
    ax.set_xlim(x0 + cols.min() - pad - 0.5, x0 + cols.max() + pad + 0.5)
    ax.set_ylim(y0 + rows.max() + pad + 0.5, y0 + rows.min() - pad - 0.5)


def image_extent(origin: Sequence[float], shape: tuple[int, int]) -> tuple[float, float, float, float]:
    """imshow extent placing canvas pixel (i, j) at object pixel (origin[0] + i, origin[1] + j)."""
    y0, x0 = float(origin[0]), float(origin[1])
    h, w = shape
    return (x0 - 0.5, x0 + w - 0.5, y0 + h - 0.5, y0 - 0.5)


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write ``fig`` as PNG atomically (no software-version stamp: the same figure gives the same
    bytes)."""
    from ptychopinn._io import atomic_path

    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", metadata={"Software": None})
    return Path(path)


def image_png(img: np.ndarray, kind: str, path: str | os.PathLike, *, mask: np.ndarray | None = None,
              origin: Sequence[float] = (0.0, 0.0), title: str | None = None, pixel_size: float | None = None,
              weight: np.ndarray | None = None) -> Path:
    """One image (axes in object pixels) with colour bar, written to ``path`` (infer's PNGs)."""
    fig, axes = new_figure(1, 1, panel=(5.0, 4.2))
    ax = axes[0, 0]
    show_image(ax, img, kind, mask=mask, title=title, extent=image_extent(origin, img.shape),
               pixel_size=pixel_size, weight=weight)
    ax.set_xlabel("x (object px)")
    ax.set_ylabel("y (object px)")
    return save_figure(fig, path, dpi=120)


def history_png(history: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path | None:
    """Training curves: losses per epoch (train, val, test) and the learning rate; None when the
    history is empty."""
    if not history:
        return None
    fig, axes = new_figure(1, 2, panel=(4.2, 3.2))
    by_step = all("step" in h for h in history)  # a general model's history: one record per validation
    epochs = np.array([h["step"] if by_step else h.get("epoch", i + 1) for i, h in enumerate(history)],
                      dtype=np.float64)
    unit = "training step" if by_step else "epoch"
    ax = axes[0, 0]
    logy = True
    for key, style in (("train_loss", "-o"), ("val_loss", "-s"), ("test_loss", "-^")):
        vals = np.array([np.nan if h.get(key) is None else float(h[key]) for h in history])
        if np.isfinite(vals).any():
            ax.plot(epochs, vals, style, ms=3, label=key.replace("_loss", ""))
            logy &= bool(np.all(vals[np.isfinite(vals)] > 0))
    if logy:
        ax.set_yscale("log")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(unit)
    ax.set_ylabel("loss")
    ax.set_title(f"loss per {unit}", fontsize=9)
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    lr = np.array([np.nan if h.get("lr") is None else float(h["lr"]) for h in history])
    ax.plot(epochs, lr, "-o", ms=3, color="tab:purple")
    if np.all(lr[np.isfinite(lr)] > 0) and np.isfinite(lr).any():
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(unit)
    ax.set_ylabel("learning rate")
    ax.set_title("learning rate" + ("" if by_step else " (start of epoch)"), fontsize=9)
    return save_figure(fig, path)
