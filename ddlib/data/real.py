"""Loaders of the real data sets, parsed from their standard on-disk files.

Every loader has the signature ``loader(data_root, download=False) -> ImageDataset``
and is reached through ``LOADERS`` (used by :func:`ddlib.data.load_dataset`).
The files are the ones torchvision leaves on disk, parsed here with numpy, pickle,
scipy and PIL; torchvision is imported only when ``download=True`` has to fetch
missing files (it is then asked to download them, and the files are parsed here).

================  ==========================================================  =========
key               files under ``data_root``                                   shape
================  ==========================================================  =========
``mnist``         ``MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``  1x28x28
``fashionmnist``  same names under ``FashionMNIST/raw/`` (``.gz`` accepted)   1x28x28
``cifar10``       ``cifar-10-batches-py/{data_batch_1..5,test_batch,...}``    3x32x32
``cifar100``      ``cifar-100-python/{train,test,meta}``                      3x32x32
``svhn``          ``{train,test}_32x32.mat`` (or under ``svhn/``)             3x32x32
``tinyimagenet``  ``tiny-imagenet-200/`` (CS231n archive layout)              3x64x64
``image*``        ``imagenet/{train,val}/<wnid>/`` (``imagenet_subsets``)     3x128x128
================  ==========================================================  =========

Pixels stay uint8 until ``from_uint8`` normalises them with the train split's per-channel
mean/std. Missing files raise ``FileNotFoundError`` naming the path and where the data comes
from; corrupt files raise ``ValueError`` naming the file.
"""
from __future__ import annotations

import gzip
import pickle
import struct
import zlib
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np
import torch

from ddlib.data.dataset import ImageDataset, from_uint8
from ddlib.data.embedded import DIGIT_NAMES
from ddlib.data.imagenet_subsets import SUBSET_LOADERS, list_images, read_images

__all__ = [
    "LOADERS", "read_idx", "load_mnist", "load_fashionmnist", "load_cifar10",
    "load_cifar100", "load_svhn", "load_tinyimagenet",
]

FASHION_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
IDX_IMAGES, IDX_LABELS = 0x0803, 0x0801  # IDX magic: 0x08 = unsigned byte, then ndim
TORCHVISION_HINT = "pass download=True to fetch it with torchvision (pip install torchvision)"
TINY_HINT = (
    "Tiny ImageNet is read from the extracted CS231n archive tiny-imagenet-200.zip "
    "(<data_root>/tiny-imagenet-200/ with wnids.txt, words.txt, train/<wnid>/images/*.JPEG, "
    "val/images/*.JPEG and val/val_annotations.txt); download=True cannot fetch it"
)
# torchvision class used by download=True, and its constructor calls (keyword sets).
_TORCHVISION = MappingProxyType({
    "mnist": ("MNIST", ({"train": True}, {"train": False})),
    "fashionmnist": ("FashionMNIST", ({"train": True}, {"train": False})),
    "cifar10": ("CIFAR10", ({"train": True}, {"train": False})),
    "cifar100": ("CIFAR100", ({"train": True}, {"train": False})),
    "svhn": ("SVHN", ({"split": "train"}, {"split": "test"})),
})


def _fetch(key: str, data_root: str) -> None:
    """Let torchvision download the standard files of ``key`` into ``data_root``."""
    try:
        import torchvision.datasets as tv_datasets
    except ImportError as error:
        raise ImportError(
            f"download=True for {key!r} needs torchvision: pip install torchvision "
            f"(or ddlib[vision]); or place the files under {data_root} yourself"
        ) from error
    class_name, calls = _TORCHVISION[key]
    for kwargs in calls:
        getattr(tv_datasets, class_name)(root=data_root, download=True, **kwargs)


def _missing(dataset: str, paths: list[Path], hint: str) -> FileNotFoundError:
    return FileNotFoundError(f"{dataset}: expected file(s) not found: {', '.join(str(p) for p in paths)}; {hint}")


def _to_torch(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels.astype(np.int64))


REPLACE_HINT = "the file is damaged or not the official one: delete it and fetch it again (download=True)"


def _check_labels(labels: np.ndarray, num_classes: int, path: Path) -> np.ndarray:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)]
        raise ValueError(
            f"{path}: labels range [{labels.min()}, {labels.max()}] ({bad.size} outside, e.g. {bad[0]}); "
            f"expected [0, {num_classes}); {REPLACE_HINT}"
        )
    return labels


def _integers(value: Any, path: Path, key: str, bounds: tuple[int, int] | None = None) -> np.ndarray:
    """``value`` as an array of whole numbers (within ``bounds`` if given); never a silent cast."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:  # ragged lists
        raise ValueError(f"{path}: {key!r} is not an array ({error}); {REPLACE_HINT}") from error
    numeric = array.dtype != bool and np.issubdtype(array.dtype, np.number)
    odd = array if not numeric else array[~np.isfinite(array) | (array != np.round(array))]
    if odd.size:
        kind = f"{array.dtype} values" if not numeric else "non-integer values"
        raise ValueError(f"{path}: {key!r} holds {kind} (e.g. {odd.reshape(-1)[:1].tolist()}); expected integers; "
                         f"{REPLACE_HINT}")
    if bounds is not None and array.size and (array.min() < bounds[0] or array.max() > bounds[1]):
        raise ValueError(f"{path}: {key!r} values range [{array.min()}, {array.max()}]; expected {list(bounds)} "
                         f"(uint8 pixels); {REPLACE_HINT}")
    return array


# ----------------------------------------------------------------- MNIST (IDX)
def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """Parse an unsigned-byte IDX file (``.gz`` compressed or not).

    Parameters
    ----------
    path : path
        The file; a name ending in ``.gz`` is decompressed.
    magic : int
        Expected magic number: ``0x0803`` (images, 3-d) or ``0x0801`` (labels, 1-d).

    Returns
    -------
    numpy.ndarray
        uint8 array with the header's dimensions, e.g. ``(N, 28, 28)`` or ``(N,)``.

    Raises
    ------
    ValueError
        Wrong magic number, truncated header, or payload size not matching the
        header, naming the file.
    """
    path = Path(path)
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(f"{path}: cannot read/decompress IDX file ({error})") from error
    if len(raw) < 4:
        raise ValueError(f"{path}: {len(raw)} bytes, too short for an IDX header")
    found = struct.unpack(">I", raw[:4])[0]
    if found != magic:
        raise ValueError(f"{path}: IDX magic number {found:#010x}; expected {magic:#010x}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header})")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: IDX header announces dims {dims} = {expected} bytes of data; "
            f"found {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()  # writable


def _mnist_like(key: str, folder: str, class_names: tuple[str, ...], data_root: str,
                download: bool) -> ImageDataset:
    raw_dir = Path(data_root) / folder / "raw"
    bases = {
        split: (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
        for split, prefix in (("train", "train"), ("test", "t10k"))
    }

    def locate(base: str) -> Path | None:
        return next((p for p in (raw_dir / base, raw_dir / f"{base}.gz") if p.is_file()), None)

    names = [b for pair in bases.values() for b in pair]
    if download and any(locate(b) is None for b in names):
        _fetch(key, data_root)
    absent = [raw_dir / b for b in names if locate(b) is None]
    if absent:
        raise _missing(key, absent, f"also accepted with a .gz suffix; {TORCHVISION_HINT}")
    splits = []
    for image_base, label_base in bases.values():
        image_path, label_path = locate(image_base), locate(label_base)
        images = read_idx(image_path, IDX_IMAGES)
        labels = read_idx(label_path, IDX_LABELS)
        if images.shape[1:] != (28, 28):
            raise ValueError(f"{image_path}: images of size {images.shape[1:]}; expected (28, 28)")
        if len(images) != len(labels):
            raise ValueError(f"{image_path} holds {len(images)} images but {label_path} {len(labels)} labels")
        splits.append(_to_torch(images[:, None], _check_labels(labels, 10, label_path)))
    return from_uint8(key, splits[0], splits[1], class_names, source=str(raw_dir))


def load_mnist(data_root: str, download: bool = False) -> ImageDataset:
    """MNIST from ``<data_root>/MNIST/raw/``: 60,000 train / 10,000 test, ``(N, 1, 28, 28)``."""
    return _mnist_like("mnist", "MNIST", DIGIT_NAMES, data_root, download)


def load_fashionmnist(data_root: str, download: bool = False) -> ImageDataset:
    """FashionMNIST from ``<data_root>/FashionMNIST/raw/``: 60,000 / 10,000, ``(N, 1, 28, 28)``."""
    return _mnist_like("fashionmnist", "FashionMNIST", FASHION_NAMES, data_root, download)


# ------------------------------------------------------------- CIFAR (pickles)
def _unpickle(path: Path) -> dict[str, Any]:
    """Load a CIFAR python pickle; bytes keys are decoded to str.

    Unpickling can run code: only point ``data_root`` at the official CIFAR files.
    """
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise ValueError(f"{path}: not a readable CIFAR python pickle ({error})") from error
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: CIFAR pickle holds a {type(obj).__name__}; expected a dict")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _field(batch: dict[str, Any], key: str, path: Path) -> Any:
    if key not in batch:
        raise ValueError(f"{path}: CIFAR pickle lacks key {key!r}; has {sorted(batch)}")
    return batch[key]


def _cifar_batch(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    data = _integers(_field(batch, "data", path), path, "data", (0, 255)).astype(np.uint8, copy=False)
    labels = _integers(_field(batch, label_key, path), path, label_key).astype(np.int64).reshape(-1)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: 'data' has shape {data.shape}; expected (N, 3072)")
    if len(labels) != len(data):
        raise ValueError(f"{path}: {len(data)} images but {len(labels)} labels")
    return data.reshape(-1, 3, 32, 32), _check_labels(labels, num_classes, path)


def _cifar(key: str, folder: str, train_files: tuple[str, ...], test_file: str, meta_file: str,
           label_key: str, names_key: str, num_classes: int, data_root: str,
           download: bool) -> ImageDataset:
    root = Path(data_root) / folder
    needed = [root / n for n in (*train_files, test_file, meta_file)]
    if download and not all(p.is_file() for p in needed):
        _fetch(key, data_root)
    absent = [p for p in needed if not p.is_file()]
    if absent:
        raise _missing(key, absent, TORCHVISION_HINT)
    meta_path = root / meta_file
    class_names = tuple(
        n.decode("utf-8") if isinstance(n, bytes) else str(n)
        for n in _field(_unpickle(meta_path), names_key, meta_path)
    )
    if len(class_names) != num_classes:
        raise ValueError(f"{meta_path}: {len(class_names)} class names; expected {num_classes}")
    parts = [_cifar_batch(root / n, label_key, num_classes) for n in train_files]
    train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    test = _cifar_batch(root / test_file, label_key, num_classes)
    return from_uint8(key, _to_torch(*train), _to_torch(*test), class_names, source=str(root))


def load_cifar10(data_root: str, download: bool = False) -> ImageDataset:
    """CIFAR-10 from ``<data_root>/cifar-10-batches-py/``: 50,000 / 10,000, ``(N, 3, 32, 32)``."""
    batches = tuple(f"data_batch_{i}" for i in range(1, 6))
    return _cifar("cifar10", "cifar-10-batches-py", batches, "test_batch", "batches.meta",
                  "labels", "label_names", 10, data_root, download)


def load_cifar100(data_root: str, download: bool = False) -> ImageDataset:
    """CIFAR-100 (fine labels) from ``<data_root>/cifar-100-python/``: 50,000 / 10,000, ``(N, 3, 32, 32)``."""
    return _cifar("cifar100", "cifar-100-python", ("train",), "test", "meta",
                  "fine_labels", "fine_label_names", 100, data_root, download)


# ---------------------------------------------------------------- SVHN (.mat)
def _svhn_split(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path))
    except Exception as error:  # scipy raises several types for corrupt files
        raise ValueError(f"{path}: not a readable MATLAB file ({error})") from error
    if "X" not in mat or "y" not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"{path}: needs variables 'X' and 'y'; found {found}")
    x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).astype(np.int64).reshape(-1)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != len(y):
        raise ValueError(
            f"{path}: X shape {x.shape}, y length {len(y)}; expected X (32, 32, 3, N), y (N, 1)"
        )
    y = np.where(y == 10, 0, y)  # SVHN stores digit 0 as label 10
    return x.transpose(3, 2, 0, 1).astype(np.uint8), _check_labels(y, 10, path)


def load_svhn(data_root: str, download: bool = False) -> ImageDataset:
    """SVHN (cropped digits) from ``<data_root>/{train,test}_32x32.mat`` or ``<data_root>/svhn/``.

    73,257 train / 26,032 test, ``(N, 3, 32, 32)``; label 10 (digit 0) becomes 0.
    """
    roots = (Path(data_root), Path(data_root) / "svhn")
    names = ("train_32x32.mat", "test_32x32.mat")

    def folder() -> Path | None:
        return next((r for r in roots if all((r / n).is_file() for n in names)), None)

    if download and folder() is None:
        _fetch("svhn", data_root)
    root = folder()
    if root is None:
        absent = [r / n for r in roots for n in names if not (r / n).is_file()]
        raise _missing("svhn", absent, f"both splits must sit in one of these folders; {TORCHVISION_HINT}")
    train, test = (_svhn_split(root / n) for n in names)
    return from_uint8("svhn", _to_torch(*train), _to_torch(*test), DIGIT_NAMES, source=str(root))


# ---------------------------------------------------------------- Tiny ImageNet
def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise _missing("tinyimagenet", [path], TINY_HINT)
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_tinyimagenet(data_root: str, download: bool = False, class_order: str = "sorted") -> ImageDataset:
    """Tiny ImageNet from ``<data_root>/tiny-imagenet-200/``: 100,000 / 10,000 (val), ``(N, 3, 64, 64)``.

    Parameters
    ----------
    data_root : str
        Folder holding the extracted ``tiny-imagenet-200/``.
    download : bool
        Ignored: the archive is not fetched automatically.
    class_order : str
        ``"sorted"`` (default): class ``c`` is the ``c``-th wnid in sorted order, as
        MTT's ``ImageFolder(train)`` gives. ``"wnids"``: the line order of ``wnids.txt``.

    Notes
    -----
    Class names are the first lemma of each wnid's ``words.txt`` entry. The test
    split is ``val/``, labelled through ``val/val_annotations.txt`` (tab-separated
    file name, wnid, bounding box).
    """
    if class_order not in ("sorted", "wnids"):
        raise ValueError(f"class_order={class_order!r}; expected 'sorted' or 'wnids'")
    root = Path(data_root) / "tiny-imagenet-200"
    wnids = [line.strip() for line in _read_lines(root / "wnids.txt")]
    if len(set(wnids)) != len(wnids):
        raise ValueError(f"{root / 'wnids.txt'}: duplicate wnids")
    if class_order == "sorted":
        wnids = sorted(wnids)
    words = dict(line.split("\t", 1) for line in _read_lines(root / "words.txt") if "\t" in line)
    unnamed = [w for w in wnids if w not in words]
    if unnamed:
        raise ValueError(f"{root / 'words.txt'}: no entry for wnid(s) {unnamed[:5]}")
    class_names = tuple(words[w].split(",")[0].strip() for w in wnids)
    index = {w: c for c, w in enumerate(wnids)}

    train_paths: list[Path] = []
    train_labels: list[int] = []
    for wnid in wnids:
        folder = root / "train" / wnid / "images"
        if not folder.is_dir():
            raise _missing("tinyimagenet", [folder], TINY_HINT)
        files = list_images(folder)
        if not files:
            raise ValueError(f"tinyimagenet: {folder} holds no image files")
        train_paths += files
        train_labels += [index[wnid]] * len(files)

    annotations = root / "val" / "val_annotations.txt"
    val_paths: list[Path] = []
    val_labels: list[int] = []
    for number, line in enumerate(_read_lines(annotations), start=1):
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in index:
            raise ValueError(
                f"{annotations}, line {number}: {line!r}; "
                "expected '<file>\\t<wnid>\\t...' with a wnid from wnids.txt"
            )
        path = root / "val" / "images" / fields[0]
        if not path.is_file():
            raise _missing("tinyimagenet", [path], f"listed in {annotations}; {TINY_HINT}")
        val_paths.append(path)
        val_labels.append(index[fields[1]])

    train = read_images(train_paths, expect=(64, 64)), np.asarray(train_labels, dtype=np.int64)
    test = read_images(val_paths, expect=(64, 64)), np.asarray(val_labels, dtype=np.int64)
    return from_uint8("tinyimagenet", _to_torch(*train), _to_torch(*test), class_names, source=str(root))


LOADERS: Mapping[str, Callable[..., ImageDataset]] = MappingProxyType({
    "mnist": load_mnist,
    "fashionmnist": load_fashionmnist,
    "svhn": load_svhn,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "tinyimagenet": load_tinyimagenet,
    **SUBSET_LOADERS,
})
