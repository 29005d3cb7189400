"""One Fourier-shift convention: physics (torch) and evaluation (numpy) move content the same way."""

import numpy as np
import torch

from ptychopinn.evaluation.align import fourier_shift_image
from ptychopinn.physics.forward import fourier_shift


def test_both_fourier_shifts_agree_with_np_roll_and_each_other():
    rng = np.random.default_rng(0)
    img = rng.normal(size=(16, 20)) + 1j * rng.normal(size=(16, 20))
    # integer shift: content moves towards +y, +x exactly like np.roll
    expected = np.roll(img, (3, -5), axis=(0, 1))
    a = fourier_shift(torch.from_numpy(img), torch.tensor([3.0, -5.0], dtype=torch.float64)).numpy()
    b = fourier_shift_image(img, (3.0, -5.0))
    np.testing.assert_allclose(a, expected, atol=1e-12)
    np.testing.assert_allclose(b, expected, atol=1e-12)
    # sub-pixel shift: the two implementations give the same image
    a = fourier_shift(torch.from_numpy(img), torch.tensor([0.3, 1.7], dtype=torch.float64)).numpy()
    b = fourier_shift_image(img, (0.3, 1.7))
    np.testing.assert_allclose(a, b, atol=1e-10)
