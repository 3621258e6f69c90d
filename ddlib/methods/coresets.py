"""Coreset baselines: random, herding, k-center and forgetting selection of real images.

Each returns a :class:`~ddlib.methods.synthetic.SyntheticSet` of ``ipc`` real training images per
class (``syn_lr=None``; ``config["method"]`` names the method; ``provenance["indices"]``
lists the chosen indices into ``data.images_train``, class by class), so coresets are
evaluated exactly like distilled sets. Ties are always broken by the lower index, so the
feature-based selections are deterministic given the network.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ddlib.data.dataset import ImageDataset
from ddlib.core.runtime import derive_seed, make_generator, resolve_device
from ddlib.methods.synthetic import SyntheticSet
from ddlib.core.train import OptimizerConfig, make_optimizer, train_epoch

__all__ = [
    "random_coreset", "herding_coreset", "kcenter_coreset", "forgetting_coreset",
    "feature_extractor", "herding_select", "kcenter_select", "count_forgetting_events",
    "forgetting_counts", "select_most_forgotten",
]


def _check_ipc(data: ImageDataset, ipc: int) -> None:
    if not isinstance(ipc, int) or isinstance(ipc, bool) or ipc < 1:
        raise ValueError(f"ipc={ipc!r}: expected a positive int")
    sizes = [int(idx.numel()) for idx in data.class_indices]
    short = {c: n for c, n in enumerate(sizes) if n < ipc}
    if short:
        raise ValueError(f"ipc={ipc} exceeds the training images of class(es) {short} in {data.name!r}")


def _as_set(data: ImageDataset, indices: list[torch.Tensor], ipc: int, config: dict, provenance: dict) -> SyntheticSet:
    """Build the SyntheticSet from per-class index tensors into the training split."""
    flat = torch.cat([i.cpu() for i in indices])
    labels = torch.arange(data.num_classes).repeat_interleave(ipc)
    return SyntheticSet(
        images_syn=data.images_train[flat.to(data.images_train.device)].cpu(), labels_syn=labels,
        syn_lr=None, config={"ipc": ipc, **config}, provenance={"indices": flat.tolist(), **provenance},
        dataset=data.name, ipc=ipc, zca=False,
    )


def random_coreset(data: ImageDataset, ipc: int, seed: int) -> SyntheticSet:
    """``ipc`` training images per class drawn uniformly without replacement.

    Class ``c`` draws from ``derive_seed(seed, "random_coreset", c)``, so its pick does
    not depend on the other classes.
    """
    _check_ipc(data, ipc)
    chosen = []
    for c, idx in enumerate(data.class_indices):
        generator = make_generator(derive_seed(seed, "random_coreset", c))
        chosen.append(idx[torch.randperm(idx.numel(), generator=generator)[:ipc]])
    return _as_set(data, chosen, ipc, {"method": "random"}, {"seed": seed})


@torch.no_grad()
def feature_extractor(net: nn.Module, images: torch.Tensor, *, batch_size: int = 512) -> torch.Tensor:
    """Penultimate features ``net.embed(x)`` of ``images`` ``(N, C, H, W)`` in batches, without grad.

    The network runs in eval mode (restored afterwards) on its own device (the images'
    device if it has no parameters). Returns a CPU float64 tensor ``(N, D)``; float64 so
    the greedy selections below do not flip on float32 rounding.
    """
    param = next(net.parameters(), None)
    device = param.device if param is not None else images.device
    was_training = net.training
    net.eval()
    try:
        parts = [net.embed(images[s : s + batch_size].to(device)).flatten(1).to("cpu", torch.float64)
                 for s in range(0, len(images), batch_size)]
    finally:
        net.train(was_training)
    return torch.cat(parts) if parts else torch.zeros(0, 0, dtype=torch.float64)


def herding_select(features: torch.Tensor, k: int) -> list[int]:
    """Greedy herding (Welling 2009; Chen et al. 2010 kernel herding; as used by DC).

    At step ``t = 1..k`` pick the unselected row ``x`` minimising
    ``|| mu - (s_{t-1} + f(x)) / t ||``, with ``mu`` the mean of all rows and ``s_{t-1}``
    the sum of the features already picked, so the running mean of the picks tracks ``mu``.

    Parameters
    ----------
    features : torch.Tensor
        ``(n, D)`` features of one class.
    k : int
        Number of picks, ``k <= n``.

    Returns
    -------
    list of int
        Row indices in pick order.
    """
    features = features.to(torch.float64)
    mu = features.mean(0)
    total = torch.zeros_like(mu)
    free = torch.ones(len(features), dtype=torch.bool)
    picks = []
    for t in range(1, k + 1):
        dist = torch.linalg.vector_norm(mu - (total + features) / t, dim=1)
        dist[~free] = float("inf")
        j = int(_argmin_first(dist))
        picks.append(j)
        free[j] = False
        total += features[j]
    return picks


def kcenter_select(features: torch.Tensor, k: int, *, first: int | None = None) -> list[int]:
    """Greedy k-center (Sener & Savarese 2018): start at row ``first`` (default: the row
    nearest the mean), then repeatedly add the row farthest from its nearest chosen center.

    Parameters
    ----------
    features : torch.Tensor
        ``(n, D)`` features of one class.
    k : int
        Number of centers, ``k <= n``.
    first : int, optional
        Row of the first center, ``0 <= first < n``; ``None``: the row nearest the mean.

    Returns
    -------
    list of int
        Row indices in pick order.
    """
    features = features.to(torch.float64)
    if first is None:
        first = int(_argmin_first(torch.linalg.vector_norm(features - features.mean(0), dim=1)))
    elif isinstance(first, bool) or not isinstance(first, int) or not 0 <= first < len(features):
        raise ValueError(f"first={first!r}: expected a row index in [0, {len(features)}) or None")
    picks = [first]
    nearest = torch.linalg.vector_norm(features - features[first], dim=1)
    free = torch.ones(len(features), dtype=torch.bool)
    free[first] = False
    for _ in range(k - 1):
        # Chosen rows are masked out: duplicates of a center also have distance 0.
        j = int(_argmin_first(-torch.where(free, nearest, torch.tensor(-float("inf"), dtype=nearest.dtype))))
        picks.append(j)
        free[j] = False
        nearest = torch.minimum(nearest, torch.linalg.vector_norm(features - features[j], dim=1))
    return picks


def _argmin_first(values: torch.Tensor) -> int:
    """Index of the smallest value, the lowest index among ties (torch.argmin does not promise it)."""
    return int(np.argmin(values.numpy()))


def _feature_coreset(data, ipc, net, batch_size, select, method, provenance) -> SyntheticSet:
    """``select(features, ipc, c)`` picks rows of class ``c``'s features ``(n_c, D)``."""
    _check_ipc(data, ipc)
    chosen = []
    for c, idx in enumerate(data.class_indices):
        features = feature_extractor(net, data.images_train[idx.to(data.images_train.device)], batch_size=batch_size)
        chosen.append(idx[torch.tensor(select(features, ipc, c), dtype=torch.int64, device=idx.device)])
    return _as_set(data, chosen, ipc, {"method": method}, provenance)


def herding_coreset(data: ImageDataset, ipc: int, net: nn.Module, *, batch_size: int = 512) -> SyntheticSet:
    """Per class, :func:`herding_select` in the feature space ``net.embed`` of a trained ``net``."""
    return _feature_coreset(data, ipc, net, batch_size, lambda f, k, c: herding_select(f, k), "herding", {})


def kcenter_coreset(data: ImageDataset, ipc: int, net: nn.Module, seed: int = 0, *,
                    start: str = "mean", batch_size: int = 512) -> SyntheticSet:
    """Per class, :func:`kcenter_select` in the feature space ``net.embed`` of a trained ``net``.

    The greedy algorithm needs a first center. ``start="mean"`` (default) takes the image
    nearest the class mean: the selection is then deterministic (ties to the lower index)
    and ``seed`` is only recorded in the provenance. ``start="random"`` draws class ``c``'s
    first center uniformly from ``derive_seed(seed, "kcenter", c)``, so replicates with
    different seeds differ; the rest of the greedy selection stays deterministic.
    """
    if start not in ("mean", "random"):
        raise ValueError(f"start={start!r}: expected 'mean' (nearest the class mean) or 'random' (seeded)")

    def select(features: torch.Tensor, k: int, c: int) -> list[int]:
        if start == "mean":
            return kcenter_select(features, k)
        generator = make_generator(derive_seed(seed, "kcenter", c))
        return kcenter_select(features, k, first=int(torch.randint(len(features), (1,), generator=generator)))

    return _feature_coreset(data, ipc, net, batch_size, select, "kcenter", {"seed": seed, "start": start})


# ---------------------------------------------------------------------- forgetting
def count_forgetting_events(correct: torch.Tensor) -> torch.Tensor:
    """Forgetting events per example (Toneva et al., ICLR 2019).

    Parameters
    ----------
    correct : torch.Tensor
        ``(T, N)`` bool: was example ``n`` classified correctly at its ``t``-th presentation.

    Returns
    -------
    torch.Tensor
        ``(N,)`` float64: number of transitions correct -> incorrect between consecutive
        presentations; ``inf`` for an example never classified correctly (the paper counts
        never-learned examples as forgotten infinitely often).
    """
    correct = torch.as_tensor(correct, dtype=torch.bool)
    if correct.dim() != 2:
        raise ValueError(f"correct must be (T, N) presentations x examples; got shape {tuple(correct.shape)}")
    events = (correct[:-1] & ~correct[1:]).sum(0).to(torch.float64)
    events[~correct.any(0)] = float("inf")
    return events


def select_most_forgotten(counts: torch.Tensor, labels: torch.Tensor, ipc: int, num_classes: int) -> list[torch.Tensor]:
    """Per class, the indices of the ``ipc`` examples with the most forgetting events.

    Ties go to the lower index. ``counts`` and ``labels`` are ``(N,)``; returns one int64
    index tensor ``(ipc,)`` per class, most forgotten first.
    """
    counts_np, labels_np = counts.cpu().numpy(), labels.cpu().numpy()
    order = np.lexsort((np.arange(len(counts_np)), -counts_np))  # last key is primary
    return [torch.from_numpy(order[labels_np[order] == c][:ipc].copy()) for c in range(num_classes)]


def forgetting_counts(
    data: ImageDataset,
    *,
    epochs: int,
    seed: int,
    arch: str = "ConvNet",
    width: int = 128,
    depth: int | None = None,
    norm: str = "instance",
    lr: float = 0.01,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Train a network on the real training split with :func:`~ddlib.core.train.train_epoch`
    (SGD momentum 0.9, weight decay 5e-4, no augmentation) and count each example's
    forgetting events from the logits of the mini-batch it was presented in.

    Returns
    -------
    torch.Tensor
        ``(N_train,)`` float64 counts (see :func:`count_forgetting_events`).
    """
    from ddlib.models import build_model

    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs={epochs!r}: expected a positive int")
    device = resolve_device(device)
    kwargs: dict[str, Any] = {"norm": norm, "seed": derive_seed(seed, "forgetting", "init")}
    if arch.lower().startswith("convnet"):
        kwargs.update(width=width, depth=depth)
    net = build_model(arch, data.channel, data.num_classes, data.im_size, **kwargs).to(device)
    images, labels = data.images_train.to(device), data.labels_train.to(device)
    optimizer = make_optimizer(net.parameters(), OptimizerConfig(kind="momentum", lr=lr, weight_decay=5e-4))
    generator = make_generator(derive_seed(seed, "forgetting", "data"))
    correct = torch.zeros(epochs, len(images), dtype=torch.bool)
    for epoch in range(epochs):
        # train_epoch's first draw from the generator is its shuffle; replaying it on a copy
        # tells which examples each mini-batch holds. The hook checks this against the batch
        # it receives, so a change of train_epoch fails loudly instead of mislabelling.
        replay = torch.Generator().set_state(generator.get_state())
        order = torch.randperm(len(images), generator=replay)
        state = {"start": 0}

        def hook(net_, batch, target, *, epoch, raw_images):
            index = order[state["start"] : state["start"] + len(target)]
            state["start"] += len(target)
            on_device = index.to(device)
            if not (torch.equal(labels[on_device], target) and torch.equal(images[on_device], raw_images)):
                raise RuntimeError("forgetting: mini-batch order differs from the replayed shuffle of train_epoch")
            logits = net_(batch)
            correct[epoch, index] = (logits.detach().argmax(1) == target).cpu()
            return F.cross_entropy(logits, target)

        train_epoch(net, optimizer, images, labels, batch_size=batch_size, generator=generator,
                    loss_hook=hook, epoch=epoch)
    return count_forgetting_events(correct)


def forgetting_coreset(
    data: ImageDataset,
    ipc: int,
    *,
    epochs: int,
    seed: int,
    arch: str = "ConvNet",
    width: int = 128,
    depth: int | None = None,
    norm: str = "instance",
    lr: float = 0.01,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    counts: torch.Tensor | None = None,
) -> SyntheticSet:
    """The ``ipc`` most-forgotten training images per class (Toneva et al., ICLR 2019).

    See :func:`forgetting_counts` for the training run and :func:`select_most_forgotten`
    for the selection (ties to the lower index).

    Parameters
    ----------
    counts : torch.Tensor, optional
        ``(N_train,)`` forgetting events already counted by :func:`forgetting_counts` with
        these arguments (one training run serves every IPC); ``None``: train and count here.
    """
    _check_ipc(data, ipc)
    if counts is None:
        counts = forgetting_counts(data, epochs=epochs, seed=seed, arch=arch, width=width, depth=depth,
                                   norm=norm, lr=lr, batch_size=batch_size, device=device)
    elif tuple(counts.shape) != (len(data.labels_train),):
        raise ValueError(f"counts has shape {tuple(counts.shape)}: expected ({len(data.labels_train)},), "
                         "one count per training image of the data set")
    chosen = select_most_forgotten(counts, data.labels_train, ipc, data.num_classes)
    config = {"method": "forgetting", "epochs": epochs, "arch": arch, "width": width, "depth": depth,
              "norm": norm, "lr": lr, "batch_size": batch_size}
    return _as_set(data, chosen, ipc, config, {"seed": seed})
