"""TGDD: trajectory guided dataset distillation with balanced distribution (Ran et al., AAAI 2026).

DM with trained encoders. One outer iteration draws an expert trajectory ``m ~ U{0..N-1}``,
an encoder epoch ``j ~ U{0..E}`` and an expert-region epoch ``k ~ U{j..min(j + L - 1, E)}``
(``E`` = the trajectory's ``num_epochs``, ``L`` = ``region_length`` = 7); loads snapshot
``(m, j)`` into the encoder ``f_j`` and ``(m, k)`` into the region network ``g_k`` (two
network objects, parameters copied in place; one trajectory in memory at a time) and
minimises

.. math::

    L = \\underbrace{\\sum_c \\| \\overline{f_j(A_c(S_c))} - \\overline{f_j(A_c(B_c))} \\|^2}_{L_{MMD}}
        + \\alpha \\, \\underbrace{\\sum_c \\mathrm{CE}(g_k(A_c(S_c)), c)}_{L_{SDC}}

with one shared augmentation draw ``A_c`` per class for the class's real and synthetic
images (real features without gradient; all classes batched as in :mod:`ddlib.methods.dm`). ``A``
is by default the authors' code's (``augmentation="idc"``): IDC's
``DiffAug('color_crop_cutout', batch=True)`` (:mod:`ddlib.data.diffaug`), which applies
EVERY op (brightness, saturation, contrast, crop, cutout) on each call; ``"dsa"`` is MTT's
DSA (one random op group per call), as in DM. The paper only says "augmentation".

``CE`` is the mean cross-entropy over the class's images, so ``L_SDC`` is summed over
classes like ``L_MMD``: the authors' code takes one image step per class on
``mmd_c + alpha * CE_c``, and the class sum keeps ``alpha``'s meaning
(``sdc_reduction="mean"`` gives the plain mean CE over all synthetic images instead).

Pixels: TGDD works on un-normalised pixels. ``TGDD.pixels`` holds the synthetic images
in ``[0, 1]``; they are clamped to ``[0, 1]`` after every image step (``clamp=True``) and
normalised with the data set's mean/std before augmentation and the networks (the real
images are already normalised, so both sides are augmented in the same space, as in the
authors' code). :meth:`TGDD.synthetic_set` returns NORMALISED images like every method.

Defaults (the TGDD paper and its public code): ``lr_img = 0.01 * ipc`` (``lr_img_per_ipc = 0.1`` for the
ImageNet subsets), SGD momentum 0.5, 10,000 iterations, ``alpha`` 2.5 at IPC 1 and 10 and
0.5 at IPC 50 (paper); the authors' code default is ``alpha = 1.0`` (``CODE_ALPHA``);
``batch_real = 128`` real images per class and iteration (``arg_condense.py``).

Not reproduced from the code: its per-class image steps (one SGD step per class; here one
step per iteration on the class-summed loss, the same gradient per image) and its clamp at
the start of each iteration rather than after each step.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ddlib.core.compiled import maybe_compile
from ddlib.core.config import Config
from ddlib.core.data_parallel import DataParallel, resolve_data_parallel
from ddlib.core.precision import autocast_float32_output, check_precision
from ddlib.data.augment import DSA
from ddlib.data.diffaug import DiffAug, DiffAugConfig
from ddlib.data.dataset import ImageDataset
from ddlib.methods.dm import augment_by_class, dm_loss, image_step, real_init, sample_real_by_class
from ddlib.methods.dm_embedding import check_real_chunk, resolve_real_chunk
from ddlib.methods.data_parallel import check_per_sample, owned_class_batches, sharded_image_step
from ddlib.methods.distill_loop import check_update, guard_bound, saturation_flags
from ddlib.core.functional import ParamLayout, load_flat_params
from ddlib.core.runtime import derive_seed, make_generator, resolve_device
from ddlib.methods.synthetic import SyntheticSet

__all__ = ["TGDDConfig", "TGDD", "sample_snapshot_epochs", "sdc_loss", "default_alpha", "CODE_ALPHA"]

#: ``alpha`` of the authors' code (``--alpha`` default); the paper uses :func:`default_alpha`.
CODE_ALPHA = 1.0


def default_alpha(ipc: int) -> float:
    """The paper's ``alpha``: 2.5 at IPC 1 and 10, 0.5 at IPC 50.

    Other IPCs are an extrapolation (not in the paper): 2.5 below 50, 0.5 from 50 on.
    """
    return 2.5 if ipc < 50 else 0.5


@dataclasses.dataclass(frozen=True)
class TGDDConfig(Config):
    """TGDD settings; defaults follow the paper for low-resolution data (the paper; the code where it is silent).

    Attributes
    ----------
    ipc : int
    iterations : int
        Outer iterations (10,000).
    lr_img : float, optional
        Learning rate of the pixels (SGD momentum 0.5); ``None``: ``lr_img_per_ipc * ipc``.
    lr_img_per_ipc : float
        0.01 for low resolution, 0.1 for the ImageNet subsets.
    alpha : float, optional
        Weight of ``L_SDC``; ``None``: :func:`default_alpha` (paper); the code uses 1.0.
    region_length : int
        ``L``: the region epoch ``k`` lies in ``[j, min(j + L - 1, E)]``.
    batch_real : int
        Real images per class and iteration (code, ``arg_condense.py``: 128).
    dsa : bool
        Augment real and synthetic images with one shared draw per class (ablation
        "+ augmentation"); ``augmentation`` says which.
    augmentation : {"idc", "dsa"}
        ``"idc"`` (the authors' code): IDC ``DiffAug('color_crop_cutout', batch=True)``, every
        op on every call; ``"dsa"``: MTT's siamese DSA, one random op group per call.
    init : {"real", "noise"}
        Random real images of the class, or ``clamp(N(0, 1) / 4 + 0.5, 0, 1)`` pixels (code).
    clamp : bool
        Clamp the pixels to ``[0, 1]`` after every step.
    use_mmd, use_sdc : bool
        The two loss terms (ablations "+ L_MMD", "+ L_SDC"); at least one must be on.
    sdc_reduction : {"class_sum", "mean"}
        ``L_SDC`` as the sum over classes of the per-class mean CE (default, see the module
        docstring), or the mean CE over all synthetic images.
    compile : bool
        Run the encoder's embedding (the ``L_MMD`` side, which embeds the real batch)
        through ``torch.compile`` (:mod:`ddlib.core.compiled`): faster, values equal to eager
        up to rounding; needs a C++ compiler on the CPU. Off by default.
    real_chunk : int or None
        Real images per forward pass of the ``L_MMD`` real embedding (``0``: one pass,
        ``None``: 16 on the CPU, one pass elsewhere); as ``DMConfig.real_chunk``.
    precision : {"fp32", "bf16"}
        ``"bf16"``: the ``L_MMD`` embedding's forward passes run under bfloat16 autocast (``L_SDC``
        stays float32; :mod:`ddlib.core.precision`; ddlib's option, the papers run float32); left out
        of ``to_dict()`` (cache keys) while ``"fp32"``.
    """

    _omit_when_default = ("precision",)  # cache keys of fp32 runs written before the field existed stay valid

    #: Synthetic images per class (a middle row of TGDD's tables, which run 1, 10 and 50).
    ipc: int = 10
    #: Outer iterations (the TGDD paper: 10,000).
    iterations: int = 10000
    #: Learning rate of the pixels (SGD momentum 0.5); ``None``: ``lr_img_per_ipc * ipc`` (the TGDD paper).
    lr_img: float | None = None
    #: Pixel lr per IPC when ``lr_img`` is ``None``: 0.01 at low resolution (the TGDD paper), 0.1 for ImageNet subsets.
    lr_img_per_ipc: float = 0.01
    #: Weight of ``L_SDC``; ``None``: ``default_alpha`` (the paper: 2.5 at IPC 1 and 10, 0.5 at 50); the code: 1.0.
    alpha: float | None = None
    #: ``L``: the region epoch ``k`` lies in ``[j, min(j + L - 1, E)]`` (TGDD: 7).
    region_length: int = 7
    #: Real images per class and iteration (TGDD's code, ``arg_condense.py --batch_real``: 128).
    batch_real: int = 128
    #: Augment real and synthetic images with one shared draw per class (ablation "+ augmentation"; the code: on).
    dsa: bool = True
    #: Initial pixels: random real images of the class (TGDD) or ``clamp(N(0, 1) / 4 + 0.5, 0, 1)`` (the code's noise).
    init: Literal["real", "noise"] = "real"
    #: Clamp the pixels to ``[0, 1]`` after every step (TGDD works on un-normalised pixels).
    clamp: bool = True
    #: Use the ``L_MMD`` term (ablation "+ L_MMD"); at least one of the two terms must be on.
    use_mmd: bool = True
    #: Use the ``L_SDC`` term (ablation "+ L_SDC"); at least one of the two terms must be on.
    use_sdc: bool = True
    #: ``L_SDC`` as the sum over classes of the per-class mean CE (default: ``alpha`` keeps its meaning in the
    #: code's per-class steps) or the mean CE over all synthetic images.
    sdc_reduction: Literal["class_sum", "mean"] = "class_sum"
    #: ``torch.compile`` the encoder's embedding on the ``L_MMD`` side (ddlib's choice: off; needs a C++ compiler).
    compile: bool = False
    #: Real images per pass of the ``L_MMD`` real embedding: ``0`` one pass, ``None`` (ddlib's choice) 16 on the CPU,
    #: one pass elsewhere; as ``DMConfig.real_chunk``.
    real_chunk: int | None = None
    #: ``"idc"`` (TGDD's ``common.py`` ``diffaug()``: IDC's DiffAug with ``batch=True``, every op on every call)
    #: or ``"dsa"`` (MTT's siamese DSA, one random op group per call).
    augmentation: Literal["idc", "dsa"] = "idc"
    #: ``"fp32"`` (the paper's and default) or ``"bf16"``: the ``L_MMD`` embedding under bfloat16 autocast, the
    #: distance in float32 (ddlib's option; ``L_SDC`` stays float32).
    precision: str = "fp32"

    def validate(self) -> None:
        check_real_chunk(self.real_chunk)
        check_precision(self.precision, "TGDDConfig.precision")
        for name in ("ipc", "region_length", "batch_real"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: expected >= 1")
        if self.iterations < 0:
            raise ValueError(f"iterations={self.iterations}: expected >= 0")
        if self.lr_img is not None and not self.lr_img > 0:
            raise ValueError(f"lr_img={self.lr_img}: expected > 0 or None")
        if not self.lr_img_per_ipc > 0:
            raise ValueError(f"lr_img_per_ipc={self.lr_img_per_ipc}: expected > 0")
        if self.alpha is not None and self.alpha < 0:
            raise ValueError(f"alpha={self.alpha}: expected >= 0 or None")
        if not (self.use_mmd or self.use_sdc):
            raise ValueError("use_mmd and use_sdc are both False: there is no loss to optimise")

    @property
    def effective_lr_img(self) -> float:
        """``lr_img``, or ``lr_img_per_ipc * ipc`` when it is ``None``."""
        return float(self.lr_img) if self.lr_img is not None else self.lr_img_per_ipc * self.ipc

    @property
    def effective_alpha(self) -> float:
        """``alpha``, or :func:`default_alpha` of ``ipc`` when it is ``None``."""
        return float(self.alpha) if self.alpha is not None else default_alpha(self.ipc)


def sample_snapshot_epochs(num_epochs: int, region_length: int, generator: torch.Generator) -> tuple[int, int]:
    """Draw the encoder epoch ``j ~ U{0..E}`` and the region epoch ``k ~ U{j..min(j + L - 1, E)}``.

    Parameters
    ----------
    num_epochs : int
        ``E``; the trajectory stores snapshots ``0..E``.
    region_length : int
        ``L >= 1``.
    generator : torch.Generator

    Returns
    -------
    (int, int)
        ``(j, k)`` with ``0 <= j <= k <= min(j + L - 1, E)``.
    """
    if num_epochs < 0 or region_length < 1:
        raise ValueError(f"num_epochs={num_epochs}, region_length={region_length}: expected >= 0 and >= 1")
    j = int(torch.randint(0, num_epochs + 1, (1,), generator=generator))
    last = min(j + region_length - 1, num_epochs)
    k = int(torch.randint(j, last + 1, (1,), generator=generator))
    return j, k


def sdc_loss(net: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Distribution-constraint loss: mean cross-entropy of ``net``'s logits on ``images``.

    Parameters
    ----------
    net : nn.Module
        The expert-region snapshot ``g_k`` (``(N, C, H, W) -> (N, K)`` logits).
    images : Tensor (N, C, H, W)
        (Augmented, normalised) synthetic images.
    labels : Tensor (N,)
        Their classes.

    Returns
    -------
    Tensor
        Scalar ``F.cross_entropy(net(images), labels)``.
    """
    return F.cross_entropy(net(images), labels)


class TGDD:
    """The TGDD distiller (implements the ``Distiller`` protocol of :mod:`ddlib.methods.distill_loop`).

    Parameters
    ----------
    data : ImageDataset
        The real data set (normalised).
    source : trajectory source
        ``len(source)`` experts; ``source.trajectory(m)`` loads one lazily, with
        ``num_epochs`` and ``snapshot(epoch) -> (P,)`` (e.g. a ``TrajectoryStore``).
    net : nn.Module
        The experts' architecture; used as the encoder ``f_j``. A deep copy (made once)
        is the region network ``g_k``.
    config : TGDDConfig
    seed : int
    device : str or torch.device
    data_parallel : bool or DataParallel
        ``True``: divide the classes among the processes of the initialised default process
        group (:mod:`ddlib.methods.data_parallel`); ``False`` (default), or no group of more
        than one process: one process.

    Attributes
    ----------
    pixels : Tensor (K * ipc, C, H, W)
        Synthetic images in pixel space (``[0, 1]`` with ``clamp``), grouped by class.
    labels : Tensor (K * ipc,)
    """

    def __init__(self, data: ImageDataset, source: Any, net: nn.Module, config: TGDDConfig, seed: int, *,
                 device: str | torch.device = "cpu", data_parallel: bool | DataParallel = False) -> None:
        self.config, self.seed, self.data, self.source = config, seed, data, source
        self.shard = resolve_data_parallel(data_parallel)
        check_per_sample(net, self.shard, "TGDD")
        if self.shard is not None:
            self.shard.classes(data.num_classes)  # ValueError now when a rank would own no class
        self.device = resolve_device(device)
        if len(source) < 1:
            raise ValueError("the trajectory source holds no experts")
        self.encoder = net.to(self.device).train()
        self.embed = autocast_float32_output(maybe_compile(self.encoder.embed, config.compile, self.device),
                                             config.precision, self.device)
        self.real_chunk = resolve_real_chunk(config.real_chunk, self.encoder, self.device)
        self.region_net = None if not config.use_sdc else _clone(self.encoder)
        self.layout = ParamLayout.of(self.encoder)
        self._current: tuple[int, Any] | None = None
        first = self._trajectory(0)
        if first.num_epochs < 0:
            raise ValueError(f"trajectory 0 has num_epochs={first.num_epochs}")
        self.layout.check(first.snapshot(0))
        self.generator = make_generator(derive_seed(seed, "distill"))
        self.augment = _matching_augmentation(config)
        if config.init == "noise":
            labels = torch.arange(data.num_classes).repeat_interleave(config.ipc)
            noise = torch.randn((len(labels), data.channel, *data.im_size), generator=self.generator)
            pixels = (noise / 4 + 0.5).clamp(0.0, 1.0)
        else:
            images, labels = real_init(data, config.ipc, self.generator)
            pixels = data.denormalize(images)
            pixels = pixels.clamp(0.0, 1.0) if config.clamp else pixels
        self.pixels = pixels.to(self.device).requires_grad_(True)
        self.labels = labels.to(self.device)
        self.opt_img = torch.optim.SGD([self.pixels], lr=config.effective_lr_img, momentum=0.5)
        self.pixel_bound = guard_bound(data, pixels=True)  # the update guard (distill_loop.check_update)

    # -- one outer iteration ---------------------------------------------------------------------
    def _trajectory(self, m: int) -> Any:
        if self._current is None or self._current[0] != m:
            self._current = None  # drop the previous expert before loading the next
            self._current = (m, self.source.trajectory(m))
        return self._current[1]

    def _load(self, net: nn.Module, trajectory: Any, epoch: int) -> None:
        flat = trajectory.snapshot(epoch)
        self.layout.check(flat)
        load_flat_params(net, flat.to(self.device))

    def step(self, iteration: int) -> dict[str, Any]:
        """One outer iteration; returns ``loss``, ``mmd``, ``sdc`` (as in the loss) and ``m``, ``j``, ``k``."""
        cfg, g, data = self.config, self.generator, self.data
        m = int(torch.randint(len(self.source), (1,), generator=g))
        trajectory = self._trajectory(m)
        j, k = sample_snapshot_epochs(trajectory.num_epochs, cfg.region_length, g)
        # Real batches are drawn in every ablation so the random stream does not depend on the switches.
        labels = self.labels
        if self.shard is None:
            real = sample_real_by_class(data, cfg.batch_real, g, self.device)
            if not cfg.use_mmd:
                real = [x[:0] for x in real]
            syn = list(torch.split(data.normalize(self.pixels), cfg.ipc))
            real, syn = augment_by_class(self.augment, real, syn, g)
        else:  # this rank's classes: both terms are sums over classes (module docstring of data_parallel)
            syn = list(torch.split(data.normalize(self.pixels), cfg.ipc))
            classes, real, syn = owned_class_batches(self.shard, data, cfg.batch_real, g, self.device, self.augment,
                                                     syn, real=cfg.use_mmd)
            labels = torch.cat([self.labels[c * cfg.ipc:(c + 1) * cfg.ipc] for c in classes])
        zero = self.pixels.new_zeros(())
        mmd, sdc = zero, zero
        if cfg.use_mmd:
            self._load(self.encoder, trajectory, j)
            mmd = dm_loss(self.embed, real, syn, real_chunk=self.real_chunk)
        if cfg.use_sdc:
            self._load(self.region_net, trajectory, k)
            sdc = sdc_loss(self.region_net, torch.cat(syn), labels)
            if self.shard is not None:  # this rank's share of the mean over all synthetic images
                sdc = sdc * (len(labels) / len(self.labels))
            if cfg.sdc_reduction == "class_sum":
                sdc = sdc * data.num_classes
        loss = mmd + cfg.effective_alpha * sdc
        what = f"TGDD (iteration {iteration}, expert {m}, epochs {j}/{k})"
        if self.shard is None:
            image_step(self.pixels, self.opt_img, loss, what)
            values = [float(loss.detach()), float(mmd.detach()), float(sdc.detach())]
        else:
            values = sharded_image_step(self.shard, self.pixels, self.opt_img, loss, what, extras=(mmd, sdc))
        if cfg.clamp:
            with torch.no_grad():
                self.pixels.clamp_(0.0, 1.0)
        check_update(f"TGDD pixels (iteration {iteration})", self.pixels, self.pixel_bound)
        return {"loss": values[0], "mmd": values[1], "sdc": values[2], "m": m, "j": j, "k": k}

    # -- Distiller protocol ----------------------------------------------------------------------
    def synthetic_set(self) -> SyntheticSet:
        """The synthetic set with NORMALISED images (``data.normalize(pixels)``)."""
        images = self.data.normalize(self.pixels.detach()).cpu().clone()
        config = {"method": "TGDD", **self.config.to_dict(), "effective_lr_img": self.config.effective_lr_img,
                  "effective_alpha": self.config.effective_alpha}
        return SyntheticSet(images_syn=images, labels_syn=self.labels.cpu().clone(), syn_lr=None, config=config,
                            provenance={"seed": self.seed, "experts": len(self.source)}, dataset=self.data.name,
                            ipc=self.config.ipc)

    def state_dict(self) -> dict[str, Any]:
        return {"pixels": self.pixels.detach().cpu().clone(), "opt_img": self.opt_img.state_dict(),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.pixels.copy_(state["pixels"].to(self.device))
        self.opt_img.load_state_dict(state["opt_img"])
        self.generator.set_state(state["generator"])

    def diagnose(self) -> dict[str, str]:
        """``{"saturated": ...}`` when the pixels diverged into the clamp (see ``distill_loop.saturation_flags``)."""
        return saturation_flags(self.pixels)

    def fingerprint(self) -> dict[str, Any]:
        return {"method": "tgdd", "config": self.config.to_dict(), "seed": self.seed, "dataset": self.data.name,
                "num_params": self.layout.numel, "experts": len(self.source)}


def _matching_augmentation(config: TGDDConfig) -> DiffAug | DSA | None:
    """The augmentation shared by a class's real and synthetic batch (``.siamese``), or ``None``."""
    if not config.dsa:
        return None
    return DiffAug(DiffAugConfig(strategy="color_crop_cutout", batch=True)) if config.augmentation == "idc" else DSA()


def _clone(net: nn.Module) -> nn.Module:
    """A second network object of the same architecture (deep copy, made once)."""
    return copy.deepcopy(net)
