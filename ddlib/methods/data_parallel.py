"""Data-parallel pieces of the distillers: class-divided DM/TGDD steps, checks, rank-0 checkpoints.

The distillers take ``data_parallel=True`` (the initialised default process group) or a
:class:`ddlib.core.data_parallel.DataParallel`; with no process group, or one process, they run
their single-process code unchanged. In a data-parallel run every rank holds the same images,
optimizer state and random generator and takes the same step:

* MTT/AST/MCT (:class:`ddlib.methods.mtt.TrajectoryMatching`): each inner step's mini-batch is
  divided among the ranks (:mod:`ddlib.core.unroll`, ``shard=``), in both memory modes; the
  image gradient is summed over the ranks at the end of the outer step (:func:`sum_image_grad`);
* DM and TGDD: rank ``r`` takes the classes ``c % world == r`` (:func:`owned_class_batches`):
  both losses are sums over classes (TGDD's ``L_SDC`` too, with either reduction, since every
  class has ``ipc`` images), so the all-reduced image gradient is the full one
  (:func:`sharded_image_step`). Every rank still draws the real batches and augmentation
  parameters of all classes, so the random stream is the single-process one.

Only per-sample networks give the single-process result (instance, layer or no norm):
:func:`check_per_sample` rejects batch norm. :func:`ddlib.methods.distill_loop.run_distillation`
writes the (single) checkpoint file on rank 0 only (it reads ``method.shard``); every rank
resumes from it.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ddlib.core.data_parallel import DataParallel
from ddlib.data.dataset import ImageDataset
from ddlib.methods.distill_loop import NonFiniteLoss

__all__ = ["apply_image_gradient", "check_per_sample", "owned_class_batches", "sharded_image_step", "sum_image_grad"]


def check_per_sample(net: nn.Module, shard: DataParallel | None, what: str) -> None:
    """Raise ValueError when ``net`` has a batch norm and the run is data parallel.

    A batch norm normalises with the statistics of the whole pass, so a part of the batch
    (or of the classes) would see other statistics than in one process.
    """
    if shard is None:
        return
    name = next((n for n, m in net.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)), None)
    if name is not None:
        raise ValueError(f"{what}: data_parallel needs a network without batch norm, but layer {name!r} is one "
                         "(its batch statistics would differ per rank); use norm='instance' (the papers' "
                         "ConvNet) or data_parallel=False")


def owned_class_batches(shard: DataParallel, data: ImageDataset, batch_real: int, generator: torch.Generator,
                        device: torch.device, augment: Any, syn_by_class: Sequence[torch.Tensor], *,
                        real: bool = True) -> tuple[list[int], list[torch.Tensor], list[torch.Tensor]]:
    """This rank's classes and their augmented real and synthetic batches.

    Consumes ``generator`` exactly as :func:`ddlib.methods.dm.sample_real_by_class` followed by
    :func:`ddlib.methods.dm.augment_by_class` do for all classes (every class's real draw,
    then one siamese draw per class in class order), so every rank stays on the
    single-process random stream; only this rank's classes are moved to ``device`` and
    augmented in full.

    Parameters
    ----------
    shard : DataParallel
    data : ImageDataset
    batch_real : int
        Real images per class.
    augment : DSA or DiffAug or None
        Siamese augmentation (``None``: none).
    syn_by_class : sequence of Tensor
        Per class, the synthetic images ``(ipc, C, H, W)`` (differentiable).
    real : bool
        ``False``: real images are drawn (to keep the stream) but returned empty
        ``(0, C, H, W)``, as TGDD without ``L_MMD``.

    Returns
    -------
    (list of int, list of Tensor, list of Tensor)
        The classes, their augmented real ``(min(batch_real, N_c), C, H, W)`` (or empty) and synthetic
        ``(ipc, C, H, W)`` batches.
    """
    classes = shard.classes(data.num_classes)
    drawn = [data.draw_class(c, batch_real, generator) for c in range(data.num_classes)]
    real_out, syn_out = [], []
    for c in range(data.num_classes):
        syn = syn_by_class[c]
        if c not in classes:
            if augment is not None:  # a siamese draw does not depend on the batch sizes: consume it cheaply
                augment.siamese(syn[:1].detach(), generator=generator)
            continue
        batch = drawn[c].to(device) if real else drawn[c][:0].to(device)
        if augment is not None:
            batch, syn = augment.siamese(batch, syn, generator=generator) if len(batch) else \
                (batch, *augment.siamese(syn, generator=generator))
        real_out.append(batch)
        syn_out.append(syn)
    return classes, real_out, syn_out


def sharded_image_step(shard: DataParallel, images: torch.Tensor, optimizer: torch.optim.Optimizer,
                       loss: torch.Tensor, what: str, extras: Sequence[torch.Tensor] = ()) -> list[float]:
    """:func:`ddlib.methods.dm.image_step` for a loss divided among the ranks.

    ``loss`` is this rank's part (its classes); its image gradient and the loss (with the
    ``extras``, e.g. loss terms to report) are summed over the ranks, then every rank checks
    them and takes the same step (all raise together, so no rank waits in a collective).

    Returns
    -------
    list of float
        The summed ``[loss, *extras]``.

    Raises
    ------
    NonFiniteLoss
        If the summed loss or gradient is NaN/Inf; nothing has been updated then.
    """
    (grad,) = torch.autograd.grad(loss, [images])
    shard.all_reduce_(grad)
    totals = shard.all_reduce_(torch.stack([loss.detach(), *[e.detach() for e in extras]]).to(torch.float64))
    if not torch.isfinite(totals[0]):
        raise NonFiniteLoss(f"{what} loss is {float(totals[0])}")
    apply_image_gradient(images, optimizer, grad, what)
    return totals.tolist()


def apply_image_gradient(images: torch.Tensor, optimizer: torch.optim.Optimizer, grad: torch.Tensor,
                         what: str) -> None:
    """Check ``grad`` (shaped like ``images``), then take one optimizer step on ``images`` with it.

    Raises
    ------
    NonFiniteLoss
        If the gradient is NaN/Inf; nothing has been updated then.
    """
    if not torch.isfinite(grad).all():
        raise NonFiniteLoss(f"gradient of the {what} loss is not finite")
    optimizer.zero_grad(set_to_none=True)
    images.grad = grad
    optimizer.step()
    images.grad = None


def sum_image_grad(shard: DataParallel | None, images: torch.Tensor) -> None:
    """Sum ``images.grad`` (each rank's parts of the inner batches) over the ranks, in place."""
    if shard is not None and images.grad is not None:
        shard.all_reduce_(images.grad)

