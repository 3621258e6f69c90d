"""Data sets: the embedded defaults, the real loaders, ZCA and DSA augmentation."""
from __future__ import annotations

import os
from typing import Callable

from ddlib.data.dataset import ImageDataset
from ddlib.data.embedded import load_digits, load_mnist5k

__all__ = ["ImageDataset", "load_dataset", "DATASET_NAMES", "canonical_name"]

EMBEDDED = ("mnist5k", "digits")
REAL = (
    "mnist", "fashionmnist", "svhn", "cifar10", "cifar100", "tinyimagenet",
    "imagenette", "imagewoof", "imagefruit", "imagemeow", "imagesquawk", "imageyellow",
)
DATASET_NAMES = EMBEDDED + REAL


def canonical_name(name: str) -> str:
    """Registry key of a data set name: ``"CIFAR-10"`` -> ``"cifar10"``, ``"Tiny_ImageNet"`` -> ``"tinyimagenet"``.

    Raises
    ------
    ValueError
        Naming the unknown data set and the known ones.
    """
    key = str(name).lower().replace("-", "").replace("_", "").replace(" ", "")
    if key not in DATASET_NAMES:
        raise ValueError(f"unknown data set {name!r}; expected one of {list(DATASET_NAMES)}")
    return key


def load_dataset(name: str, data_root: str | os.PathLike | None = None, download: bool = False) -> ImageDataset:
    """Load a data set by name.

    Parameters
    ----------
    name : str
        ``"mnist5k"`` or ``"digits"`` (embedded, offline, no ``data_root`` needed), or a
        real set read from standard files under ``data_root``: ``"mnist"``,
        ``"fashionmnist"``, ``"svhn"``, ``"cifar10"``, ``"cifar100"``, ``"tinyimagenet"``,
        ``"imagenette"``, ``"imagewoof"``, ``"imagefruit"``, ``"imagemeow"``,
        ``"imagesquawk"``, ``"imageyellow"``.
    data_root : path, optional
        Folder holding the real data sets in their standard on-disk layout.
    download : bool
        Only for the torchvision sets (MNIST, FashionMNIST, SVHN, CIFAR): fetch the
        files when they are missing. Never done unless asked.

    Returns
    -------
    ImageDataset
        Normalised train/test tensors ``(N, C, H, W)`` with labels and metadata.

    Raises
    ------
    ValueError
        Unknown name, or a real set requested without ``data_root``.
    FileNotFoundError
        A standard file is missing; the message names the path and where to get it.
    """
    key = canonical_name(name)
    if key in EMBEDDED:
        return {"mnist5k": load_mnist5k, "digits": load_digits}[key]()
    if data_root is None:
        raise ValueError(
            f"data set {name!r} is read from files: pass data_root=<folder holding it> "
            f"(the embedded sets {list(EMBEDDED)} need none)"
        )
    from ddlib.data import real

    loader: Callable[..., ImageDataset] = real.LOADERS[key]
    return loader(os.fspath(data_root), download=download)
