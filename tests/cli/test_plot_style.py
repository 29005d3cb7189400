"""The one plotting style: colour range follows the data, phase offset removed, uncovered pixels
masked, colour bars with units, scale bars, metrics in titles, training curves."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from matplotlib.image import imread

from ptychopinn import _plot


def _lut_indices(png, cmap_name: str, tol: float = 2.5 / 255) -> np.ndarray:
    """Colour-map index (0..255) of every PNG pixel whose colour is one of the map's colours."""
    rgb = imread(png)[..., :3].reshape(-1, 3).astype(np.float64)
    lut = matplotlib.colormaps[cmap_name](np.linspace(0, 1, 256))[:, :3]
    # nearest LUT entry per pixel (chunked to bound memory)
    idx = np.empty(rgb.shape[0], dtype=np.int64)
    dist = np.empty(rgb.shape[0])
    for a in range(0, rgb.shape[0], 20000):
        d = np.abs(rgb[a:a + 20000, None, :] - lut[None]).max(axis=2)
        idx[a:a + 20000] = d.argmin(axis=1)
        dist[a:a + 20000] = d.min(axis=1)
    return idx[dist <= tol]


def _reconstruction(phase, amplitude, counts):
    from ptychopinn.inference.reconstruct import Reconstruction

    obj = (amplitude * np.exp(1j * phase)).astype(np.complex64)
    return Reconstruction(object=obj, counts=counts.astype(np.int32), origin=np.array([10.0, 20.0]), stitch_crop=8,
                          input_scale=1.0)


def test_phase_png_of_a_small_phase_spans_the_colour_map(tmp_path):
    """infer's phase.png of a 0.3 rad phase (on a 1 rad offset, with an uncovered border) uses
    most of the colour map; a fixed +-pi scale would use about 5 % of it."""
    from ptychopinn.inference.reconstruct import write_outputs

    h, w = 120, 140
    xx = np.mgrid[:h, :w][1]
    phase = 1.0 + 0.3 * (xx / (w - 1))  # 0.3 rad ramp on a 1 rad offset
    counts = np.zeros((h, w), np.int32)
    counts[10:-10, 10:-10] = 1
    phase[counts == 0] = 0.0  # what the stitcher leaves where nothing was predicted
    amplitude = np.where(counts > 0, 1.0, 0.0)
    write_outputs(_reconstruction(phase, amplitude, counts), tmp_path, np.zeros(1), np.zeros(1))
    idx = _lut_indices(tmp_path / "phase.png", _plot.CMAPS["phase"])
    lo, hi = np.percentile(idx, [5, 95])
    assert (hi - lo) / 255 > 0.75, (lo, hi)


def test_amplitude_png_masks_uncovered_pixels_instead_of_counting_them_as_zero(tmp_path):
    from ptychopinn.inference.reconstruct import write_outputs

    h, w = 100, 100
    counts = np.zeros((h, w), np.int32)
    counts[:, :50] = 1  # right half uncovered (amplitude 0 there)
    amplitude = np.where(counts > 0, 0.9 + 0.2 * np.random.default_rng(0).random((h, w)), 0.0)
    write_outputs(_reconstruction(np.zeros((h, w)), amplitude, counts), tmp_path, np.zeros(1), np.zeros(1))
    # the covered values span the grey scale (5-95 % of the pixels drawn from the map): a scale
    # starting at the uncovered zeros would squeeze them into its top 20 %
    img = imread(tmp_path / "amplitude.png")[..., :3]
    grey = img[..., 0][(np.ptp(img, axis=2) < 1e-3) & (img[..., 0] > 0.02) & (img[..., 0] < 0.98)]
    lo, hi = np.percentile(grey, [5, 95])
    assert hi - lo > 0.6, (lo, hi)


def test_show_image_masks_and_scales_to_the_data():
    _, axes = _plot.new_figure(1, 1)
    img = np.full((20, 20), 5.0)
    img[5:15, 5:15] = np.linspace(1.0, 1.3, 100).reshape(10, 10)
    mask = np.zeros((20, 20), bool)
    mask[5:15, 5:15] = True
    im = _plot.show_image(axes[0, 0], img, "amplitude", mask=mask, title="A")
    arr = np.ma.masked_invalid(im.get_array())
    assert arr.mask.sum() == 400 - 100  # uncovered pixels are NaN (drawn as background)
    lo, hi = im.get_clim()
    assert 1.0 <= lo < 1.02 and 1.28 < hi <= 1.3  # 1-99 % of the covered values, not the 5.0 outside
    assert im.get_cmap()(np.nan)[3] == 0.0  # NaN is transparent
    cbar = im.colorbar
    assert cbar is not None and "amplitude" in cbar.ax.get_ylabel()


def test_phase_offset_is_removed_and_wrapped():
    rng = np.random.default_rng(1)
    signal = 0.2 * rng.standard_normal((30, 30))
    signal -= np.angle(np.exp(1j * signal).sum())  # zero circular mean
    shifted = np.angle(np.exp(1j * (signal + 3.0)))  # offset near pi: wraps
    out = _plot.remove_phase_offset(shifted)
    np.testing.assert_allclose(out, signal, atol=1e-9)


def test_flat_image_still_gets_a_range():
    assert _plot.robust_range(np.full((4, 4), 2.0)) == pytest.approx((1.9, 2.1))
    assert _plot.robust_range(np.zeros((4, 4))) == (-0.5, 0.5)


@pytest.mark.parametrize("px, width, label", [(10e-9, 200, "200 nm"), (50e-9, 100, "1 µm"), (1e-6, 64, "10 µm")])
def test_scale_bar_has_a_round_length(px, width, label):
    _, axes = _plot.new_figure(1, 1)
    _plot.show_image(axes[0, 0], np.random.default_rng(0).random((width, width)), "amplitude", pixel_size=px)
    texts = [t.get_text() for art in axes[0, 0].artists for t in art.findobj(matplotlib.text.Text)]
    assert label in texts


def test_metrics_go_into_titles():
    t = _plot.metrics_title("PtychoPINN amplitude", {"ssim": 0.95123, "psnr": 24.31, "frc50": float("nan")})
    assert t == "PtychoPINN amplitude\nSSIM 0.951  PSNR 24.3 dB"


def test_coverage_mask_of_one_position():
    probe = np.zeros((8, 8))
    probe[3:5, 3:5] = 1.0
    m = _plot.coverage_mask(np.array([[10.0, 12.0]]), probe, origin=(4.0, 4.0), shape=(16, 16))
    # patch top-left (10-4, 12-4) - origin = (2, 4) on the canvas; the lit 2x2 is at +3
    assert m.sum() == 4 and m[5:7, 7:9].all()


def test_history_png(tmp_path):
    hist = [{"epoch": 1, "train_loss": 2.0, "val_loss": 2.5, "lr": 1e-3},
            {"epoch": 2, "train_loss": 1.0, "val_loss": None, "lr": 5e-4}]
    p = _plot.history_png(hist, tmp_path / "history.png")
    assert p.is_file() and imread(p).shape[0] > 100
    assert _plot.history_png([], tmp_path / "none.png") is None


@pytest.mark.parametrize("labels", [["PtychoPINN"], ["PtychoPINN", "PtyChi"]])
def test_demo_figure_has_no_empty_panel_and_shows_metrics(tmp_path, monkeypatch, labels):
    from types import SimpleNamespace

    from ptychopinn.studies.demo import save_demo_figure

    rng = np.random.default_rng(0)
    arms = ["ground_truth", *labels]
    np.savez(tmp_path / "aligned.npz", **{f"{a}_{c}": rng.random((20, 40)) for a in arms for c in ("amplitude", "phase")})
    full = SimpleNamespace(object=np.ones((64, 64), complex), probe=np.ones((16, 16), complex), N=16,
                           xcoords=rng.random(10) * 64, ycoords=rng.random(10) * 64,
                           diff3d=rng.random((10, 16, 16)).astype(np.float32))
    metrics = {lab: {c: {"ssim": 0.5, "psnr": 20.0, "frc50": 0.25} for c in ("amplitude", "phase")} for lab in labels}
    figs = []
    monkeypatch.setattr(_plot, "save_figure", lambda fig, path, dpi=110: figs.append(fig) or path)
    save_demo_figure(full, full, tmp_path / "aligned.npz", labels, tmp_path / "demo.png", metrics=metrics)
    axes = [ax for ax in figs[0].get_axes() if ax.get_label() != "<colorbar>"]
    assert len(axes) == 3 + 2 * len(arms) and all(ax.images for ax in axes)  # no empty cell
    titles = [ax.get_title() for ax in axes]
    assert sum("SSIM 0.5" in t for t in titles) == 2 * len(labels)
    assert sum(1 for ax in figs[0].get_axes() if ax.get_label() == "<colorbar>") >= 4  # every image row has one


def test_pixel_size_is_read_from_the_metadata_the_readers_write():
    assert _plot.pixel_size_of({"geometry": {"object_pixel_m": [2e-8, 3e-8]}}) == 3e-8  # [dy, dx]
    assert _plot.pixel_size_of({"object_pixel_m": 5e-9}) == 5e-9
    assert _plot.pixel_size_of({"object_pixel_m": float("nan")}) is None
    assert _plot.pixel_size_of({"nphotons": 1e6}) is None and _plot.pixel_size_of(None) is None
