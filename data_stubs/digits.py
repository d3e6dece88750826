"""scikit-learn's handwritten digits as image batches for the attack and visualisation lectures.

1797 grey 8x8 images of the digits 0-9 (UCI optical recognition data) ship inside scikit-learn,
so nothing is downloaded. Pixel values 0..16 are scaled to [0, 1].
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Digits(NamedTuple):
    x_train: np.ndarray  # (N, H, W, 1) float32 in [0, 1]
    y_train: np.ndarray  # (N,) int64 class indices 0..9
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits(test_fraction: float = 0.25, seed: int = 0, image_size: int = 8) -> Digits:
    """The digits as NHWC float32 images in [0, 1], split stratified into train and test.

    Args:
        test_fraction: share of the images held out, in (0, 1).
        seed: seed of the split, so every run sees the same test set.
        image_size: side of the returned images; 8 is the native size, larger sizes are
            bilinearly upsampled (useful for visualisations that need spatial extent).

    Returns:
        A :class:`Digits` tuple ``(x_train, y_train, x_test, y_test)``.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    if int(image_size) != image_size or image_size < 8:
        raise ValueError(f"image_size must be an integer >= 8, got {image_size!r}")
    from sklearn.datasets import load_digits as _sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = _sk_load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[..., None]
    if image_size != 8:
        from skimage.transform import resize

        images = resize(images, (len(images), image_size, image_size, 1), order=1,
                        anti_aliasing=False).astype(np.float32)
        images = np.clip(images, 0.0, 1.0)
    labels = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, labels, test_size=test_fraction, random_state=seed, stratify=labels)
    return Digits(x_tr, y_tr, x_te, y_te)
