"""The in-memory image data set every ddlib method consumes.

One :class:`ImageDataset` holds the train and test splits as float tensors
``(N, C, H, W)``, normalised with the per-channel train ``mean``/``std`` (the
MTT convention), plus the class names and a per-class index for fast class
sampling. Methods that work on raw pixels in ``[0, 1]`` (TGDD) use
:meth:`ImageDataset.denormalize`.
"""
from __future__ import annotations

import dataclasses
from functools import cached_property

import torch

__all__ = ["ImageDataset"]


@dataclasses.dataclass(frozen=True, eq=False)
class ImageDataset:
    """A labelled image classification data set held in memory.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"mnist5k"`` or ``"cifar10"``.
    images_train, images_test : torch.Tensor
        Float32 images, shape ``(N, C, H, W)``, normalised with ``mean``/``std``.
    labels_train, labels_test : torch.Tensor
        Int64 labels in ``[0, num_classes)``, shape ``(N,)``.
    class_names : tuple of str
        One human-readable name per class.
    mean, std : tuple of float
        Per-channel statistics used for normalisation (length ``C``).
    source : str
        Where the data came from (package, file path), for provenance.
    """

    name: str
    images_train: torch.Tensor
    labels_train: torch.Tensor
    images_test: torch.Tensor
    labels_test: torch.Tensor
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str = ""

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            images, labels = getattr(self, f"images_{split}"), getattr(self, f"labels_{split}")
            if images.dim() != 4:
                raise ValueError(f"images_{split} must be (N, C, H, W); got shape {tuple(images.shape)}")
            if labels.shape != (images.shape[0],):
                raise ValueError(
                    f"labels_{split} shape {tuple(labels.shape)} does not match {images.shape[0]} images"
                )
            if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= len(self.class_names)):
                raise ValueError(
                    f"labels_{split} must lie in [0, {len(self.class_names)}); "
                    f"got range [{int(labels.min())}, {int(labels.max())}]"
                )
        if len(self.mean) != self.channel or len(self.std) != self.channel:
            raise ValueError(f"mean/std need {self.channel} entries; got {self.mean} / {self.std}")

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    @property
    def channel(self) -> int:
        """Number of image channels ``C``."""
        return int(self.images_train.shape[1])

    @property
    def im_size(self) -> tuple[int, int]:
        """Image size ``(H, W)``."""
        return int(self.images_train.shape[2]), int(self.images_train.shape[3])

    @cached_property
    def class_indices(self) -> tuple[torch.Tensor, ...]:
        """Per class ``c``, the int64 indices of its training images."""
        order = torch.argsort(self.labels_train, stable=True)
        counts = torch.bincount(self.labels_train, minlength=self.num_classes).tolist()
        return tuple(torch.split(order, counts))

    def images_of_class(self, c: int) -> torch.Tensor:
        """All training images of class ``c``, shape ``(N_c, C, H, W)``."""
        return self.images_train[self.class_indices[self._check_class(c)]]

    def sample_class(self, c: int, n: int, generator: torch.Generator) -> torch.Tensor:
        """Draw ``n`` training images of class ``c`` without replacement (with it if ``n > N_c``).

        Returns
        -------
        torch.Tensor
            Shape ``(n, C, H, W)``.
        """
        index = self.class_indices[self._check_class(c)]
        if n <= index.numel():
            chosen = index[torch.randperm(index.numel(), generator=generator)[:n]]
        else:
            chosen = index[torch.randint(index.numel(), (n,), generator=generator)]
        return self.images_train[chosen]

    def draw_class(self, c: int, n: int, generator: torch.Generator) -> torch.Tensor:
        """Draw ``min(n, N_c)`` training images of class ``c`` without replacement.

        The DC/DM code's ``get_images(c, n)``: a shuffle of the class cut to ``n``, so a class
        with fewer than ``n`` images gives all of them. For ``n <= N_c`` it consumes ``generator``
        and returns exactly as :meth:`sample_class`.

        Returns
        -------
        torch.Tensor
            Shape ``(min(n, N_c), C, H, W)``.
        """
        index = self.class_indices[self._check_class(c)]
        return self.sample_class(c, min(int(n), index.numel()), generator)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Map raw pixels in ``[0, 1]`` to the normalised space."""
        mean, std = self._stats(images)
        return (images - mean) / std

    def denormalize(self, images: torch.Tensor) -> torch.Tensor:
        """Map normalised images back to raw pixels (roughly ``[0, 1]``)."""
        mean, std = self._stats(images)
        return images * std + mean

    def to(self, device: str | torch.device) -> "ImageDataset":
        """Copy of the data set with all tensors on ``device``."""
        return dataclasses.replace(
            self,
            images_train=self.images_train.to(device),
            labels_train=self.labels_train.to(device),
            images_test=self.images_test.to(device),
            labels_test=self.labels_test.to(device),
        )

    def _stats(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, -1, 1, 1)
        mean = torch.tensor(self.mean, dtype=images.dtype, device=images.device).view(shape)
        std = torch.tensor(self.std, dtype=images.dtype, device=images.device).view(shape)
        return mean, std

    def _check_class(self, c: int) -> int:
        if not 0 <= int(c) < self.num_classes:
            raise ValueError(f"class {c} out of range: expected 0 <= c < {self.num_classes}")
        return int(c)

    def __repr__(self) -> str:
        c, (h, w) = self.channel, self.im_size
        return (
            f"ImageDataset(name={self.name!r}, train={len(self.labels_train)}, "
            f"test={len(self.labels_test)}, num_classes={self.num_classes}, "
            f"shape=({c}, {h}, {w}), source={self.source!r})"
        )


def from_uint8(
    name: str,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    class_names: tuple[str, ...] | list[str],
    source: str,
    scale: float = 255.0,
) -> ImageDataset:
    """Build a normalised :class:`ImageDataset` from raw pixel tensors.

    Parameters
    ----------
    train, test : tuple of (images, labels)
        Images shape ``(N, C, H, W)`` of any numeric dtype with values in
        ``[0, scale]``; labels shape ``(N,)``.
    scale : float
        Maximum raw pixel value (255 for 8-bit images, 16 for scikit-learn digits).

    Notes
    -----
    ``mean`` and ``std`` are computed on the training split only.
    """
    images_train = train[0].to(torch.float32) / scale
    images_test = test[0].to(torch.float32) / scale
    mean = images_train.mean(dim=(0, 2, 3))
    std = images_train.std(dim=(0, 2, 3))
    view = (1, -1, 1, 1)
    return ImageDataset(
        name=name,
        images_train=((images_train - mean.view(view)) / std.view(view)).contiguous(),
        labels_train=train[1].to(torch.int64),
        images_test=((images_test - mean.view(view)) / std.view(view)).contiguous(),
        labels_test=test[1].to(torch.int64),
        class_names=tuple(class_names),
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
        source=source,
    )
