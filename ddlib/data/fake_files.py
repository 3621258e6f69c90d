"""Fake CIFAR files in the exact on-disk format, for rehearsing paper-scale runs without the data.

:func:`write_fake_cifar` writes random images in the layout torchvision leaves on disk
(``cifar-10-batches-py/`` or ``cifar-100-python/``: python pickles holding ``uint8`` rows of
3,072 pixels), so :func:`ddlib.data.load_dataset` reads them through the same code path as
the real files. A dry run (:mod:`ddlib.chapters.dry_run`) uses them to prove that every
shape and setting of a paper-scale chapter works before anyone spends GPU hours on it.

The pixels are random: nothing learnt from them means anything.

Examples
--------
>>> root = write_fake_cifar(tmp, "cifar10", train_per_class=3, test_per_class=1)  # doctest: +SKIP
>>> load_dataset("cifar10", data_root=root).images_train.shape  # doctest: +SKIP
torch.Size([30, 3, 32, 32])
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

__all__ = ["write_fake_cifar", "FAKE_CIFAR"]

#: Data set -> (folder, train files, test file, meta file, label key, names key, classes): torchvision's layout.
FAKE_CIFAR = {
    "cifar10": ("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch",
                "batches.meta", b"labels", b"label_names", 10),
    "cifar100": ("cifar-100-python", ("train",), "test", "meta", b"fine_labels", b"fine_label_names", 100),
}
_CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _dump(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _rows(rng: np.random.Generator, per_class: int, class_means: np.ndarray) -> tuple[np.ndarray, list[int]]:
    labels = np.repeat(np.arange(len(class_means)), per_class)
    rng.shuffle(labels)
    means = class_means[labels]
    noise = rng.integers(-48, 49, (len(labels), 3, 1024))
    pixels = np.clip(means[:, :, None] + noise, 0, 255).astype(np.uint8).reshape(len(labels), 3072)
    return pixels, labels.tolist()


def write_fake_cifar(data_root: str | os.PathLike, name: str, *, train_per_class: int, test_per_class: int,
                     seed: int = 0) -> Path:
    """Write fake CIFAR-10 or CIFAR-100 files under ``data_root``, in torchvision's exact layout.

    Parameters
    ----------
    data_root : path
        Folder to write into (created if missing); the data set's own folder is made inside it.
    name : {"cifar10", "cifar100"}
    train_per_class, test_per_class : int
        Images per class of each split (>= 1). CIFAR-10's train images are spread over its five
        ``data_batch_*`` files as in the real set.
    seed : int
        Seed of the random pixels and label order.

    Returns
    -------
    Path
        ``data_root`` (pass it as ``data_root`` to :func:`ddlib.data.load_dataset`).

    Raises
    ------
    ValueError
        Unknown ``name`` or a per-class count below 1, before anything is written.
    """
    if name not in FAKE_CIFAR:
        raise ValueError(f"name={name!r}: expected one of {sorted(FAKE_CIFAR)}")
    for label, count in (("train_per_class", train_per_class), ("test_per_class", test_per_class)):
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"{label}={count!r}: expected an int >= 1")
    folder, train_files, test_file, meta_file, label_key, names_key, classes = FAKE_CIFAR[name]
    root = Path(data_root) / folder
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    # A mean colour per class, shared by both splits, keeps the classes apart a little, so a network
    # trained on these files does better than chance on their test split (a sanity signal, not a result).
    class_means = rng.integers(64, 192, (classes, 3))
    pixels, labels = _rows(rng, train_per_class, class_means)
    for part, rows in zip(train_files, np.array_split(np.arange(len(labels)), len(train_files))):
        _dump(root / part, {b"batch_label": part.encode(), b"data": pixels[rows],
                            label_key: [labels[i] for i in rows]})
    test_pixels, test_labels = _rows(rng, test_per_class, class_means)
    _dump(root / test_file, {b"batch_label": b"test", b"data": test_pixels, label_key: test_labels})
    names = _CIFAR10_NAMES if classes == 10 else tuple(f"class_{i:02d}" for i in range(classes))
    _dump(root / meta_file, {names_key: [n.encode() for n in names], b"num_vis": 3072})
    return Path(data_root)
