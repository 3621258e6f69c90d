"""The 10-class ImageNet subsets of MTT/AST/TGDD, read from an ImageNet folder tree.

MTT (Cazenavette et al., 2022, ``utils.py``, class ``Config``) defines each subset
as a list of ImageNet-1k class indices; class ``c`` of the subset is the ``c``-th
index of that list. ImageNet-1k class index ``i`` is the ``i``-th WordNet ID
(wnid) of the 1,000 ILSVRC-2012 wnids in sorted order (the order
``torchvision.datasets.ImageNet``/``ImageFolder`` gives), so each subset is stored
here as its MTT indices, the matching wnids and readable names.

Sources of the tables
---------------------
* MTT indices: ``GeorgeCazenavette/mtt-distillation``, ``utils.py`` (identical in
  every stored revision checked).
* index -> wnid: the sorted ILSVRC-2012 synset list (as shipped in timm,
  ``timm/data/_info/imagenet_synsets.txt``). Cross-checks: for all 60 entries the
  name of index ``i`` in an independent index -> name table (the common
  ``imagenet_class_index.json``/"imagenet1000_clsidx_to_labels" list that MTT's
  readme points to) equals the lemma of the wnid used here; the entries with
  index 281-292 or >= 683 also match index -> wnid tables in copies of Keras'
  ``imagenet_class_index.json``; the ImageNette wnids equal fastai's and
  torchvision's ``Imagenette`` lists, the ImageWoof wnids fastai's list.
* names: the first WordNet lemma of each synset (ILSVRC-2012 ``words``).

Notes
-----
* ImageNette's parachute is ``n03888257`` (index 701); ``n03888605`` is *parallel
  bars* (index 702).
* MTT's comments call index 282 "bengal_cat" (ImageNet: *tiger cat*), 89
  "cockatoo" (*sulphur-crested cockatoo*), 72 "garden_spider" (*black and gold
  garden spider*; ImageNet's *garden spider* is index 74). The indices, not the
  comments, define the subsets, so the ImageNet names are used here.
* MTT's code resizes with ``transforms.Resize((128, 128))`` (a tuple: both sides
  to 128, aspect ratio not kept) before a no-op ``CenterCrop(128)``. The default
  here, ``resize="shorter_side"``, scales the shorter side to 128 and centre-crops;
  ``resize="squash"`` reproduces MTT's code.
"""
from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from ddlib.data.dataset import ImageDataset, from_uint8

__all__ = [
    "ImageNetSubset", "IMAGENET_SUBSETS", "IMAGE_EXTENSIONS", "SUBSET_LOADERS",
    "list_images", "load_image", "read_images", "load_imagenet_subset",
]

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")
RESIZE_MODES = ("shorter_side", "squash")
IMAGENET_HINT = (
    "the ImageNet subsets are read from the standard ILSVRC-2012 ImageFolder layout "
    "<data_root>/imagenet/{train,val}/<wnid>/*.JPEG (train: ILSVRC2012_img_train.tar, "
    "one folder per wnid; val: ILSVRC2012_img_val.tar sorted into wnid folders, e.g. by "
    "torchvision.datasets.ImageNet). Only the 10 wnid folders of the subset are needed. "
    "ImageNet needs registration at image-net.org, so download=True cannot fetch it"
)


@dataclasses.dataclass(frozen=True)
class ImageNetSubset:
    """One 10-class ImageNet subset; class ``c`` is ``wnids[c]``.

    Attributes
    ----------
    name : str
        Registry key, e.g. ``"imagenette"``.
    mtt_indices : tuple of int
        ImageNet-1k class indices in MTT's order (``utils.py``, ``Config``).
    wnids : tuple of str
        WordNet IDs, ``wnids[c]`` = sorted ILSVRC-2012 wnid number ``mtt_indices[c]``.
    class_names : tuple of str
        Readable names (first WordNet lemma).
    """

    name: str
    mtt_indices: tuple[int, ...]
    wnids: tuple[str, ...]
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        if not len(self.mtt_indices) == len(self.wnids) == len(self.class_names) == 10:
            raise ValueError(f"subset {self.name!r} needs 10 indices, wnids and names")


IMAGENET_SUBSETS: Mapping[str, ImageNetSubset] = MappingProxyType({
    "imagenette": ImageNetSubset(
        "imagenette",
        (0, 217, 482, 491, 497, 566, 569, 571, 574, 701),
        ("n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
         "n03394916", "n03417042", "n03425413", "n03445777", "n03888257"),
        ("tench", "English springer", "cassette player", "chain saw", "church",
         "French horn", "garbage truck", "gas pump", "golf ball", "parachute"),
    ),
    "imagewoof": ImageNetSubset(
        "imagewoof",
        (193, 182, 258, 162, 155, 167, 159, 273, 207, 229),
        ("n02096294", "n02093754", "n02111889", "n02088364", "n02086240",
         "n02089973", "n02087394", "n02115641", "n02099601", "n02105641"),
        ("Australian terrier", "Border terrier", "Samoyed", "beagle", "Shih-Tzu",
         "English foxhound", "Rhodesian ridgeback", "dingo", "golden retriever",
         "Old English sheepdog"),
    ),
    "imagefruit": ImageNetSubset(
        "imagefruit",
        (953, 954, 949, 950, 951, 957, 952, 945, 943, 948),
        ("n07753275", "n07753592", "n07745940", "n07747607", "n07749582",
         "n07768694", "n07753113", "n07720875", "n07718472", "n07742313"),
        ("pineapple", "banana", "strawberry", "orange", "lemon",
         "pomegranate", "fig", "bell pepper", "cucumber", "Granny Smith"),
    ),
    "imagemeow": ImageNetSubset(
        "imagemeow",
        (281, 282, 283, 284, 285, 291, 292, 290, 289, 287),
        ("n02123045", "n02123159", "n02123394", "n02123597", "n02124075",
         "n02129165", "n02129604", "n02128925", "n02128757", "n02127052"),
        ("tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat",
         "lion", "tiger", "jaguar", "snow leopard", "lynx"),
    ),
    "imagesquawk": ImageNetSubset(
        "imagesquawk",
        (84, 130, 88, 144, 145, 22, 96, 9, 100, 89),
        ("n01806143", "n02007558", "n01818515", "n02051845", "n02056570",
         "n01614925", "n01843383", "n01518878", "n01860187", "n01819313"),
        ("peacock", "flamingo", "macaw", "pelican", "king penguin",
         "bald eagle", "toucan", "ostrich", "black swan", "sulphur-crested cockatoo"),
    ),
    "imageyellow": ImageNetSubset(
        "imageyellow",
        (309, 986, 954, 951, 987, 779, 599, 291, 72, 11),
        ("n02206856", "n12057211", "n07753592", "n07749582", "n12144580",
         "n04146614", "n03530642", "n02129165", "n01773157", "n01531178"),
        ("bee", "yellow lady's slipper", "banana", "lemon", "corn",
         "school bus", "honeycomb", "lion", "black and gold garden spider", "goldfinch"),
    ),
})


def list_images(folder: Path) -> list[Path]:
    """Image files (``IMAGE_EXTENSIONS``, any case) directly inside ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def _resize(image, size: int, mode: str):
    """Resize a PIL image: shorter side to ``size`` then centre crop, or squash to ``size``."""
    from PIL import Image

    bilinear = Image.Resampling.BILINEAR
    w, h = image.size
    if mode == "squash":
        return image.resize((size, size), bilinear) if (w, h) != (size, size) else image
    short, long = min(w, h), max(w, h)
    new_long = int(size * long / short)  # torchvision's rounding (truncation)
    new_w, new_h = (size, new_long) if w <= h else (new_long, size)
    if (new_w, new_h) != (w, h):
        image = image.resize((new_w, new_h), bilinear)
    top = int(round((new_h - size) / 2.0))
    left = int(round((new_w - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def load_image(path: Path, size: int | None = None, resize: str = "shorter_side",
               expect: tuple[int, int] | None = None) -> np.ndarray:
    """Decode one image file to RGB uint8.

    Parameters
    ----------
    size : int, optional
        Output side length; ``None`` keeps the stored size.
    resize : str
        ``"shorter_side"`` (scale shorter side to ``size``, centre crop) or ``"squash"``.
    expect : tuple of int, optional
        Required stored ``(H, W)`` when ``size`` is None.

    Returns
    -------
    numpy.ndarray
        uint8, shape ``(3, H, W)``.

    Raises
    ------
    ValueError
        If the file is not a readable image or has the wrong size, naming the file.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{path}: not a readable image file ({error})") from error
    if size is not None:
        image = _resize(image, size, resize)
    elif expect is not None and image.size != (expect[1], expect[0]):
        raise ValueError(
            f"{path}: image is {image.size[1]}x{image.size[0]} (HxW); expected {expect[0]}x{expect[1]}"
        )
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)


def read_images(paths: Sequence[Path], size: int | None = None, resize: str = "shorter_side",
                expect: tuple[int, int] | None = None, workers: int | None = None) -> np.ndarray:
    """Decode many image files in a thread pool (see :func:`load_image`).

    Returns
    -------
    numpy.ndarray
        uint8, shape ``(N, 3, H, W)``; ``H = W = size`` when ``size`` is given,
        else ``expect``.
    """
    if size is None and expect is None:
        raise ValueError("read_images needs size= or expect= so all images share one shape")
    h, w = (size, size) if size is not None else expect
    out = np.empty((len(paths), 3, h, w), dtype=np.uint8)

    def work(i: int) -> None:
        out[i] = load_image(paths[i], size, resize, expect)

    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(work, range(len(paths))))
    return out


def _split_files(split_dir: Path, subset: ImageNetSubset) -> tuple[list[Path], list[int]]:
    paths: list[Path] = []
    labels: list[int] = []
    for c, (wnid, class_name) in enumerate(zip(subset.wnids, subset.class_names)):
        folder = split_dir / wnid
        if not folder.is_dir():
            raise FileNotFoundError(
                f"{subset.name}: ImageNet class folder {folder} (wnid {wnid}, {class_name!r}) "
                f"not found; {IMAGENET_HINT}"
            )
        files = list_images(folder)
        if not files:
            raise ValueError(
                f"{subset.name}: class folder {folder} holds no image file "
                f"(extensions {IMAGE_EXTENSIONS})"
            )
        paths += files
        labels += [c] * len(files)
    return paths, labels


def load_imagenet_subset(subset: str, data_root: str, download: bool = False,
                         size: int = 128, resize: str = "shorter_side") -> ImageDataset:
    """Load one MTT ImageNet subset from ``<data_root>/imagenet/{train,val}/<wnid>/``.

    Parameters
    ----------
    subset : str
        A key of ``IMAGENET_SUBSETS``, e.g. ``"imagenette"``.
    data_root : str
        Folder holding ``imagenet/``.
    download : bool
        Ignored: ImageNet cannot be fetched automatically (a missing folder raises
        ``FileNotFoundError`` explaining the layout).
    size : int
        Output side length (MTT: 128).
    resize : str
        ``"shorter_side"`` (default) or ``"squash"`` (MTT's ``Resize((128, 128))``).

    Returns
    -------
    ImageDataset
        Train ``(N, 3, size, size)`` from ``train/``, test from ``val/``, 10 classes
        in MTT's order, ``name`` = ``subset``.

    Raises
    ------
    FileNotFoundError
        A split or class folder is missing (the message names it and the layout).
    ValueError
        Unknown subset or resize mode, an empty class folder or an unreadable image.
    """
    if subset not in IMAGENET_SUBSETS:
        raise ValueError(f"unknown ImageNet subset {subset!r}; expected one of {list(IMAGENET_SUBSETS)}")
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize={resize!r}; expected one of {RESIZE_MODES}")
    spec = IMAGENET_SUBSETS[subset]
    root = Path(data_root) / "imagenet"
    splits = []
    for split in ("train", "val"):
        split_dir = root / split
        if not split_dir.is_dir():
            raise FileNotFoundError(f"{subset}: ImageNet folder {split_dir} not found; {IMAGENET_HINT}")
        paths, labels = _split_files(split_dir, spec)
        images = torch.from_numpy(read_images(paths, size=size, resize=resize))
        splits.append((images, torch.tensor(labels, dtype=torch.int64)))
    return from_uint8(subset, splits[0], splits[1], spec.class_names, source=str(root))


SUBSET_LOADERS: Mapping[str, Callable[..., ImageDataset]] = MappingProxyType(
    {name: partial(load_imagenet_subset, name) for name in IMAGENET_SUBSETS}
)
