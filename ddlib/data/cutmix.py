"""CutMix (Yun et al., ICCV 2019) as TGDD's code trains its experts and evaluation networks.

With probability ``p`` a batch is mixed: ``lam ~ Beta(beta, beta)``, a random partner
``index = randperm(B)`` and a box of side ``int(size * sqrt(1 - lam))`` around a uniform
centre, each half-side ``side // 2`` and clipped at the border (the reference CutMix code's
``rand_bbox``); the box of every image is replaced by its partner's. The label weight is
recomputed from the ACTUAL box area, ``lam = 1 - box_area / (H * W)``, and the loss is
``lam * CE(out, labels) + (1 - lam) * CE(out, labels[index])``
(:func:`ddlib.core.train.train_epoch` with ``mix=``).

TGDD (IDC code, ``train_epoch``): ``p = 0.5``, ``beta = 1`` (so ``lam ~ U(0, 1)``), applied
after the per-sample DiffAug. :func:`training_augmentation` builds that pair, or MTT's DSA.

Everything random comes from an explicit CPU ``torch.Generator``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Literal

import numpy as np
import torch

from ddlib.core.config import Config
from ddlib.data.augment import DSA
from ddlib.data.dsa_params import DSAConfig
from ddlib.data.diffaug import DiffAug, DiffAugConfig

__all__ = ["CutMixConfig", "CutMixParams", "CutMix", "MixedBatch", "training_augmentation", "TRAINING_AUGMENTATIONS"]

#: ``(images (B, C, H, W), labels_a (B,), labels_b (B,), lam)``: loss = lam * CE(a) + (1 - lam) * CE(b).
MixedBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]

#: Names accepted by :func:`training_augmentation` (``ExpertConfig.augmentation``, ``EvalConfig.augmentation``).
TRAINING_AUGMENTATIONS = ("dsa", "tgdd")


@dataclasses.dataclass(frozen=True)
class CutMixConfig(Config):
    """CutMix settings (TGDD/IDC code: ``mix_p = 0.5``, ``beta = 1.0``)."""

    #: Probability that a batch is mixed (the IDC/TGDD code, ``--mix_p``: 0.5).
    p: float = 0.5
    #: Parameter of the mixing ratio ``lam ~ Beta(beta, beta)`` (the IDC/TGDD code, ``--beta``: 1, i.e. ``U(0, 1)``).
    beta: float = 1.0

    def validate(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"p={self.p}: expected a probability in [0, 1]")
        if not self.beta > 0:
            raise ValueError(f"beta={self.beta}: expected > 0 (lam ~ Beta(beta, beta))")


@dataclasses.dataclass(frozen=True, eq=False)
class CutMixParams:
    """One CutMix draw.

    Attributes
    ----------
    index : Tensor (B,) int64
        Image ``i`` receives the box of image ``index[i]``.
    box : (int, int, int, int)
        ``(top, left, bottom, right)``, bottom/right exclusive, already clipped.
    im_size : (int, int)
        ``(H, W)`` the box was drawn for.
    """

    index: torch.Tensor
    box: tuple[int, int, int, int]
    im_size: tuple[int, int]

    @property
    def lam(self) -> float:
        """Weight of the original labels: ``1 - box_area / (H * W)``."""
        top, left, bottom, right = self.box
        return 1.0 - (bottom - top) * (right - left) / (self.im_size[0] * self.im_size[1])


class CutMix:
    """Draws and applies CutMix; ``cutmix(images, labels, generator)`` returns a :data:`MixedBatch`."""

    def __init__(self, config: CutMixConfig | None = None) -> None:
        self.config = config if config is not None else CutMixConfig()

    def __repr__(self) -> str:
        return f"CutMix({self.config!r})"

    def sample(self, batch_size: int, im_size: tuple[int, int], generator: torch.Generator) -> CutMixParams | None:
        """Draw one call's CutMix from ``generator``; ``None`` when the batch is not mixed.

        Draw order: ``u ~ U(0, 1)`` (mix iff ``u < p``); then ``lam``, the partner
        permutation, the box centre row and column.
        """
        h, w = (int(s) for s in im_size)
        if float(torch.rand((), generator=generator, dtype=torch.float64)) >= self.config.p:
            return None
        if self.config.beta == 1.0:  # Beta(1, 1) is U(0, 1): draw it directly
            lam = float(torch.rand((), generator=generator, dtype=torch.float64))
        else:  # torch's Beta sampler cannot take a generator: a numpy one seeded from ours
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
            lam = float(np.random.default_rng(seed).beta(self.config.beta, self.config.beta))
        index = torch.randperm(batch_size, generator=generator)
        cut = math.sqrt(1.0 - lam)
        cut_h, cut_w = int(h * cut), int(w * cut)
        cy = int(torch.randint(0, h, (1,), generator=generator))
        cx = int(torch.randint(0, w, (1,), generator=generator))
        box = (min(max(cy - cut_h // 2, 0), h), min(max(cx - cut_w // 2, 0), w),
               min(max(cy + cut_h // 2, 0), h), min(max(cx + cut_w // 2, 0), w))
        return CutMixParams(index=index, box=box, im_size=(h, w))

    @staticmethod
    def apply(images: torch.Tensor, labels: torch.Tensor, params: CutMixParams | None) -> MixedBatch:
        """Paste every image's partner box into it; differentiable w.r.t. ``images``.

        Parameters
        ----------
        images : Tensor (B, C, H, W)
        labels : Tensor (B,) int64
        params : CutMixParams or None
            ``None``: unchanged images, ``labels_b = labels``, ``lam = 1``.

        Returns
        -------
        MixedBatch
        """
        if params is None:
            return images, labels, labels, 1.0
        if tuple(images.shape[-2:]) != tuple(params.im_size) or len(params.index) != len(images):
            raise ValueError(f"CutMixParams drawn for {len(params.index)} images of {tuple(params.im_size)}; "
                             f"got images {tuple(images.shape)}")
        top, left, bottom, right = params.box
        h, w = params.im_size
        rows = torch.arange(h, device=images.device)
        cols = torch.arange(w, device=images.device)
        inside = ((rows >= top) & (rows < bottom))[:, None] & ((cols >= left) & (cols < right))[None, :]  # (H, W)
        index = params.index.to(images.device)
        mixed = torch.where(inside, images[index], images)
        return mixed, labels, labels[index], params.lam

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> MixedBatch:
        """Draw (see :meth:`sample`) and apply (see :meth:`apply`)."""
        return self.apply(images, labels, self.sample(len(images), tuple(images.shape[-2:]), generator))


def training_augmentation(kind: Literal["dsa", "tgdd"]) -> tuple[Callable | None, CutMix | None]:
    """The augmentation of networks trained on real or synthetic data: ``(augment, mix)``.

    Parameters
    ----------
    kind : {"dsa", "tgdd"}
        ``"dsa"``: MTT's per-sample DSA (one random group per call), no mixing.
        ``"tgdd"``: TGDD's code (IDC ``train_epoch``): per-sample ``color_crop`` DiffAug,
        then CutMix with ``p = 0.5``, ``beta = 1``.

    Returns
    -------
    (callable, CutMix or None)
        ``augment(batch, generator)`` and the ``mix`` of :func:`ddlib.core.train.train_epoch`.
    """
    if kind == "dsa":
        return DSA(DSAConfig()), None
    if kind == "tgdd":
        return DiffAug(DiffAugConfig(strategy="color_crop", batch=False)), CutMix(CutMixConfig())
    raise ValueError(f"training augmentation {kind!r}: expected one of {list(TRAINING_AUGMENTATIONS)}")
