"""DM: dataset condensation with distribution matching (Zhao & Bilen, WACV 2023).

One outer iteration re-initialises a ConvNet at random (no training), embeds a real batch
of ``batch_real`` images and the synthetic images of every class with ``f = net.embed``,
and moves the synthetic images so that their class means match the real class means:

.. math::

    L = \\sum_c \\big\\| \\tfrac{1}{|S_c|} \\sum_{s \\in S_c} f(A_c(s))
        - \\tfrac{1}{|B_c|} \\sum_{x \\in B_c} f(A_c(x)) \\big\\|^2

where ``A_c`` is one siamese DSA draw per class, applied to the real batch ``B_c`` and the
synthetic images ``S_c`` alike. Real features carry no gradient. The images are updated
with SGD momentum 0.5 (``lr_img`` 1 on CIFAR-10/100, 20,000 iterations, as in the DM code).

Batching: the augmented per-class batches are concatenated and go through the network in
ONE forward pass for the synthetic side and one for the real side; the features are split
by class afterwards. With instance norm (the default) this equals the per-class loop of
the DM code (see :func:`dm_loss` with ``batched=False``); with batch norm the batch
statistics span all classes, which is what the DM code does for its BN models. On the
CPU the real pass is split into chunks of 16 images (``DMConfig.real_chunk``) so that each
chunk's activations stay in cache; features are per image, so the loss is unchanged.

The same network object is re-initialised in place every iteration (:func:`~ddlib.models.reinit.reinitialize_`,
seeded from the run's generator, weights drawn on the CPU), so a run is deterministic per seed,
the same on every device up to rounding, and no module is built per iteration.
:mod:`ddlib.methods.tgdd` reuses :func:`dm_loss` and :func:`augment_by_class`.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Callable, Literal, Sequence

import torch
from torch import nn

from ddlib.core.compiled import maybe_compile
from ddlib.core.config import Config
from ddlib.core.data_parallel import DataParallel, resolve_data_parallel
from ddlib.core.precision import autocast_float32_output, check_precision
from ddlib.data.augment import DSA
from ddlib.data.dataset import ImageDataset
from ddlib.methods.data_parallel import (apply_image_gradient, check_per_sample, owned_class_batches,
                                         sharded_image_step)
from ddlib.methods.distill_loop import NonFiniteLoss, check_update, guard_bound
from ddlib.methods.dm_embedding import check_real_chunk, embed_without_grad, resolve_real_chunk
from ddlib.core.functional import ParamLayout
from ddlib.models import build_model
from ddlib.models.reinit import reinitialize_
from ddlib.core.runtime import derive_seed, make_generator, resolve_device
from ddlib.methods.synthetic import SyntheticSet

__all__ = [
    "DMConfig", "DistributionMatching", "dm_loss", "augment_by_class", "sample_real_by_class",
    "real_init", "image_step",
]


@dataclasses.dataclass(frozen=True)
class DMConfig(Config):
    """DM settings; defaults are the paper's CIFAR-10/100 values.

    Attributes
    ----------
    ipc : int
        Synthetic images per class.
    iterations : int
        Outer iterations (20,000 in the paper).
    lr_img : float
        Learning rate of the images (SGD momentum 0.5); 1.0 on CIFAR-10/100.
    batch_real : int
        Real images per class and iteration (all of a class's images when it has fewer, as in
        the DM code).
    dsa : bool
        Siamese DSA on real and synthetic images (one draw per class and iteration).
    init : {"real", "noise"}
        Random real images of the class, or standard normal noise (normalised space).
    arch, width, depth, norm
        The randomly initialised embedding network (:func:`ddlib.models.build_model`);
        ``depth=None`` picks the resolution's default.
    compile : bool
        Run the embedding through ``torch.compile`` (:mod:`ddlib.core.compiled`): about 1.3x
        faster on the CPU (0.91 s -> 0.70 s per IPC 10 iteration), values equal to eager up
        to rounding; needs a C++ compiler on the CPU. Off by default, as in the DM code.
    real_chunk : int or None
        Real images per forward pass of the (gradient-free) real embedding: ``0`` embeds
        the whole real batch in one pass, ``k > 0`` in passes of ``k`` images, ``None``
        (default) picks :func:`~ddlib.methods.dm_embedding.resolve_real_chunk`'s rule (16 on the CPU, one pass
        elsewhere). Only speed and rounding change; see :func:`~ddlib.methods.dm_embedding.embed_without_grad`.
    precision : {"fp32", "bf16"}
        ``"bf16"``: the embedding's forward passes run under bfloat16 autocast (:mod:`ddlib.core.precision`; ddlib's
        option, the papers run float32); left out of ``to_dict()`` (cache keys) while ``"fp32"``.
    """

    _omit_when_default = ("precision",)  # cache keys of fp32 runs written before the field existed stay valid

    #: Synthetic images per class (a middle row of the papers' tables, which run 1, 10 and 50; DM's code: 50).
    ipc: int = 10
    #: Outer iterations (the DM paper and code: 20,000).
    iterations: int = 20000
    #: Learning rate of the images, SGD momentum 0.5 (DM: 1.0 on CIFAR-10/100).
    lr_img: float = 1.0
    #: Real images per class and iteration (DM's paper and code: 256).
    batch_real: int = 256
    #: Siamese DSA on real and synthetic images, one draw per class and iteration (DM: on).
    dsa: bool = True
    #: Initial images: random real images of the class (DM's code default, ``--init real``) or standard
    #: normal noise in the normalised space (the code's ``noise``).
    init: Literal["real", "noise"] = "real"
    #: The randomly initialised embedding network, a ``ddlib.models.build_model`` name (DM: ConvNet).
    arch: str = "ConvNet"
    #: Width of the embedding network (the papers' ConvNet: 128).
    width: int = 128
    #: Depth of the embedding network; ``None``: ConvNet's default for the resolution (3 at 32x32).
    depth: int | None = None
    #: Normalisation of the embedding network (the papers' ConvNet: instance norm).
    norm: str = "instance"
    #: ``torch.compile`` the embedding (about 1.3x faster on the CPU, needs a C++ compiler); off, as in the DM code.
    compile: bool = False
    #: Real images per pass of the gradient-free real embedding: ``0`` one pass, ``k > 0`` passes of ``k``,
    #: ``None`` (ddlib's choice) 16 on the CPU, one pass elsewhere; only speed and rounding change.
    real_chunk: int | None = None
    #: ``"fp32"`` (the papers' and default) or ``"bf16"``: the embedding under bfloat16 autocast, the class-mean
    #: distance in float32 (ddlib's option).
    precision: str = "fp32"

    def validate(self) -> None:
        check_real_chunk(self.real_chunk)
        check_precision(self.precision, "DMConfig.precision")
        for name in ("ipc", "batch_real", "width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: expected >= 1")
        if self.iterations < 0:
            raise ValueError(f"iterations={self.iterations}: expected >= 0")
        if not self.lr_img > 0:
            raise ValueError(f"lr_img={self.lr_img}: expected > 0")
        if self.depth is not None and self.depth < 1:
            raise ValueError(f"depth={self.depth}: expected >= 1 or None")


# -- pure pieces (shared with TGDD) ------------------------------------------------------------


def dm_loss(embed_fn: Callable[[torch.Tensor], torch.Tensor], real_by_class: Sequence[torch.Tensor],
            syn_by_class: Sequence[torch.Tensor], *, batched: bool = True, real_chunk: int = 0) -> torch.Tensor:
    """Sum over classes of the squared distance between the class means of the embeddings.

    Parameters
    ----------
    embed_fn : callable
        ``(N, C, H, W) -> (N, D)``, e.g. ``net.embed``.
    real_by_class : sequence of Tensor
        Per class ``c``, the (augmented) real batch ``(B_c, C, H, W)``; embedded under
        ``torch.no_grad()``.
    syn_by_class : sequence of Tensor
        Per class ``c``, the (augmented) synthetic images ``(S_c, C, H, W)``.
    batched : bool
        ``True``: one forward pass over the concatenated synthetic batches and one over
        the real ones, features split by class. ``False``: one pass per class and side
        (the DM code's loop; equal to the batched value for per-sample norms).
    real_chunk : int
        Real images per forward pass (:func:`~ddlib.methods.dm_embedding.embed_without_grad`); ``0`` is one pass.

    Returns
    -------
    Tensor
        Scalar ``sum_c || mean f(syn_c) - mean f(real_c) ||^2``, differentiable w.r.t.
        the synthetic images.
    """
    if len(real_by_class) != len(syn_by_class) or not real_by_class:
        raise ValueError(f"need one real and one synthetic batch per class; got {len(real_by_class)} real and "
                         f"{len(syn_by_class)} synthetic batches")
    if batched:
        real_feats = torch.split(embed_without_grad(embed_fn, torch.cat(list(real_by_class)), real_chunk),
                                 [len(x) for x in real_by_class])
        syn_feats = torch.split(embed_fn(torch.cat(list(syn_by_class))), [len(x) for x in syn_by_class])
    else:
        real_feats = [embed_without_grad(embed_fn, x, real_chunk) for x in real_by_class]
        syn_feats = [embed_fn(x) for x in syn_by_class]
    terms = [((s.mean(0) - r.mean(0)) ** 2).sum() for s, r in zip(syn_feats, real_feats)]
    return torch.stack(terms).sum()


def augment_by_class(augment: DSA | None, real_by_class: Sequence[torch.Tensor],
                     syn_by_class: Sequence[torch.Tensor], generator: torch.Generator
                     ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Apply one siamese DSA draw per class to that class's real and synthetic batch.

    Draws happen in class order from ``generator`` (one draw per class whatever the batch
    sizes). ``augment=None`` returns the batches unchanged. A class whose real batch is
    empty (``(0, C, H, W)``, as TGDD uses when it does not need real images) still
    consumes its draw.

    Returns
    -------
    (list of Tensor, list of Tensor)
        Augmented real ``(B_c, C, H, W)`` and synthetic ``(S_c, C, H, W)`` batches per class.
    """
    if augment is None:
        return list(real_by_class), list(syn_by_class)
    real_out, syn_out = [], []
    for real, syn in zip(real_by_class, syn_by_class):
        if len(real):
            real, syn = augment.siamese(real, syn, generator=generator)
        else:
            (syn,) = augment.siamese(syn, generator=generator)
        real_out.append(real)
        syn_out.append(syn)
    return real_out, syn_out


def sample_real_by_class(data: ImageDataset, batch_real: int, generator: torch.Generator,
                         device: torch.device) -> list[torch.Tensor]:
    """Per class ``c``, ``min(batch_real, N_c)`` normalised training images ``(B_c, C, H, W)`` on ``device``
    (:meth:`~ddlib.data.dataset.ImageDataset.draw_class`: as the DM code, never an image twice)."""
    return [data.draw_class(c, batch_real, generator).to(device) for c in range(data.num_classes)]


def real_init(data: ImageDataset, ipc: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``ipc`` distinct random real images per class (normalised) and their labels.

    Returns
    -------
    (Tensor, Tensor)
        Images ``(K * ipc, C, H, W)`` grouped by class and labels ``(K * ipc,)``.
    """
    picks = []
    for c in range(data.num_classes):
        index = data.class_indices[c]
        if ipc > len(index):
            raise ValueError(f"ipc={ipc} exceeds the {len(index)} images of class {c}")
        picks.append(index[torch.randperm(len(index), generator=generator)[:ipc]])
    labels = torch.arange(data.num_classes).repeat_interleave(ipc)
    return data.images_train[torch.cat(picks).to(data.images_train.device)].detach().clone().cpu(), labels


def image_step(images: torch.Tensor, optimizer: torch.optim.Optimizer, loss: torch.Tensor, what: str) -> None:
    """Check ``loss`` and its gradient, then take one optimizer step on ``images``.

    Only ``images`` is differentiated (``torch.autograd.grad``), so network parameters
    never accumulate gradients.

    Raises
    ------
    NonFiniteLoss
        If the loss or the gradient is NaN/Inf; nothing has been updated then.
    """
    if not torch.isfinite(loss):
        raise NonFiniteLoss(f"{what} loss is {float(loss.detach())}")
    (grad,) = torch.autograd.grad(loss, [images])
    apply_image_gradient(images, optimizer, grad, what)


# -- the distiller -------------------------------------------------------------------------------
class DistributionMatching:
    """The DM distiller (implements the ``Distiller`` protocol of :mod:`ddlib.methods.distill_loop`).

    Parameters
    ----------
    data : ImageDataset
        The real data set (normalised); the synthetic images live in the same space.
    config : DMConfig
    seed : int
        Run seed; the distillation generator is ``derive_seed(seed, "distill")``.
    device : str or torch.device
    data_parallel : bool or DataParallel
        ``True``: divide the classes among the processes of the initialised default process
        group (:mod:`ddlib.methods.data_parallel`; same images as one process up to rounding);
        ``False`` (default), or no group of more than one process: one process.

    Attributes
    ----------
    images : Tensor (K * ipc, C, H, W)
        The synthetic images (leaf, requires grad), grouped by class.
    labels : Tensor (K * ipc,)
    net : nn.Module
        The one embedding network, re-initialised in place every iteration.
    real_chunk : int
        Real images per forward pass, resolved from ``config.real_chunk`` (``0``: one pass).
    """

    def __init__(self, data: ImageDataset, config: DMConfig, seed: int, *,
                 device: str | torch.device = "cpu", data_parallel: bool | DataParallel = False) -> None:
        self.config, self.seed, self.data = config, seed, data
        self.shard = resolve_data_parallel(data_parallel)
        if self.shard is not None:
            self.shard.classes(data.num_classes)  # ValueError now when a rank would own no class
        self.device = resolve_device(device)
        net = build_model(config.arch, data.channel, data.num_classes, data.im_size, width=config.width,
                          depth=config.depth, norm=config.norm)
        # Off the CPU, each iteration's weights are drawn into this CPU copy and copied over (reinitialize_).
        self._cpu_twin = None if self.device.type == "cpu" else copy.deepcopy(net)
        self.net = net.to(self.device)
        self.net.train()  # as in the DM code (batch norm, if any, uses batch statistics)
        check_per_sample(self.net, self.shard, "DistributionMatching")
        self.embed = autocast_float32_output(maybe_compile(self.net.embed, config.compile, self.device),
                                             config.precision, self.device)
        self.real_chunk = resolve_real_chunk(config.real_chunk, self.net, self.device)
        self.num_params = ParamLayout.of(self.net).numel
        self.generator = make_generator(derive_seed(seed, "distill"))
        self.augment = DSA() if config.dsa else None
        if config.init == "noise":
            labels = torch.arange(data.num_classes).repeat_interleave(config.ipc)
            images = torch.randn((len(labels), data.channel, *data.im_size), generator=self.generator)
        else:
            images, labels = real_init(data, config.ipc, self.generator)
        self.images = images.to(self.device).requires_grad_(True)
        self.labels = labels.to(self.device)
        self.opt_img = torch.optim.SGD([self.images], lr=config.lr_img, momentum=0.5)
        self.image_bound = guard_bound(data)  # the update guard (distill_loop.check_update)

    def syn_by_class(self) -> list[torch.Tensor]:
        """Views ``(ipc, C, H, W)`` of ``images``, one per class (differentiable)."""
        return list(torch.split(self.images, self.config.ipc))

    def step(self, iteration: int) -> dict[str, Any]:
        """One outer iteration: re-initialise the net, match class means, update the images.

        Returns
        -------
        dict
            ``loss`` and ``net_seed`` (the seed the network was re-initialised with).
        """
        net_seed = int(torch.randint(0, 2**63 - 1, (1,), generator=self.generator))
        reinitialize_(self.net, net_seed, cpu_twin=self._cpu_twin)
        if self.shard is not None:  # this rank's classes; the loss is a sum over classes
            _, real, syn = owned_class_batches(self.shard, self.data, self.config.batch_real, self.generator,
                                               self.device, self.augment, self.syn_by_class())
            loss = dm_loss(self.embed, real, syn, real_chunk=self.real_chunk)
            (total,) = sharded_image_step(self.shard, self.images, self.opt_img, loss, f"DM (iteration {iteration})")
            check_update(f"DM images (iteration {iteration})", self.images, self.image_bound)
            return {"loss": total, "net_seed": net_seed}
        real = sample_real_by_class(self.data, self.config.batch_real, self.generator, self.device)
        real, syn = augment_by_class(self.augment, real, self.syn_by_class(), self.generator)
        loss = dm_loss(self.embed, real, syn, real_chunk=self.real_chunk)
        image_step(self.images, self.opt_img, loss, f"DM (iteration {iteration})")
        check_update(f"DM images (iteration {iteration})", self.images, self.image_bound)
        return {"loss": float(loss.detach()), "net_seed": net_seed}

    # -- Distiller protocol ----------------------------------------------------------------------
    def synthetic_set(self) -> SyntheticSet:
        return SyntheticSet(images_syn=self.images.detach().cpu().clone(), labels_syn=self.labels.cpu().clone(),
                            syn_lr=None, config={"method": "DM", **self.config.to_dict()},
                            provenance={"seed": self.seed}, dataset=self.data.name, ipc=self.config.ipc)

    def state_dict(self) -> dict[str, Any]:
        return {"images": self.images.detach().cpu().clone(), "opt_img": self.opt_img.state_dict(),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.images.copy_(state["images"].to(self.device))
        self.opt_img.load_state_dict(state["opt_img"])
        self.generator.set_state(state["generator"])

    def fingerprint(self) -> dict[str, Any]:
        return {"method": "dm", "config": self.config.to_dict(), "seed": self.seed, "dataset": self.data.name,
                "num_params": self.num_params}
