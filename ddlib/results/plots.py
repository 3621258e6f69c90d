"""Figures shared by the notebooks (matplotlib; seaborn styles are set by the caller)."""
from __future__ import annotations

import math
from typing import Sequence

import torch

__all__ = ["image_grid", "show_images", "class_samples"]


def image_grid(images: torch.Tensor, ncol: int, pad: int = 1) -> torch.Tensor:
    """Tile images into one picture.

    Parameters
    ----------
    images : torch.Tensor
        Shape ``(N, C, H, W)`` with values in ``[0, 1]`` (C = 1 or 3).
    ncol : int
        Images per row.

    Returns
    -------
    torch.Tensor
        Shape ``(rows * (H + pad) - pad, ncol * (W + pad) - pad, C)``, ready for ``imshow``.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W); got shape {tuple(images.shape)}")
    n, c, h, w = images.shape
    rows = math.ceil(n / ncol)
    grid = torch.ones(c, rows * (h + pad) - pad, ncol * (w + pad) - pad)
    for i, image in enumerate(images.detach().float().cpu().clamp(0, 1)):
        r, k = divmod(i, ncol)
        grid[:, r * (h + pad) : r * (h + pad) + h, k * (w + pad) : k * (w + pad) + w] = image
    return grid.permute(1, 2, 0)


def show_images(
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    class_names: Sequence[str] | None = None,
    ncol: int = 10,
    ax=None,
    title: str | None = None,
):
    """Show images ``(N, C, H, W)`` in ``[0, 1]`` as a grid on a matplotlib axis.

    With ``labels`` and ``class_names`` and one image per column group, the
    column titles name the classes of the first row.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(ncol * 0.8, math.ceil(len(images) / ncol) * 0.8))
    grid = image_grid(images, ncol)
    ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    if labels is not None and class_names is not None:
        width = images.shape[-1] + 1
        for k, label in enumerate(labels[:ncol].tolist()):
            ax.text(k * width + width / 2 - 0.5, -1.5, class_names[label], ha="center", fontsize=7)
    return ax


def class_samples(datasets: Sequence, per_class: int, generator: torch.Generator, axes: Sequence | None = None):
    """Show ``per_class`` random training images of every class, one row of axes per data set.

    Each data set's picks are drawn class by class from ``generator`` (in the order of
    ``datasets``) and laid out with one column per class, so row ``r`` of a panel shows the
    ``r``-th pick of each class.

    Parameters
    ----------
    datasets : sequence of ImageDataset
        Data sets to show, one panel each, titled with the data set's name.
    per_class : int
        Images drawn per class.
    generator : torch.Generator
        Source of the draws (the chapter's seed).
    axes : sequence of matplotlib.axes.Axes, optional
        One per data set; ``None``: a new figure, 2 inches high per data set.

    Returns
    -------
    list of matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(len(datasets), 1, figsize=(8, 2 * len(datasets)), squeeze=False)
        axes = list(axes[:, 0])
    for ax, data in zip(axes, datasets):
        picks = torch.cat([data.sample_class(c, per_class, generator) for c in range(data.num_classes)])
        # picks are class-major; the grid fills row by row, so put the r-th pick of every class in row r
        order = torch.arange(len(picks)).view(data.num_classes, per_class).T.reshape(-1)
        show_images(data.denormalize(picks[order]), ncol=data.num_classes, ax=ax, title=data.name)
    plt.tight_layout()
    return list(axes)
