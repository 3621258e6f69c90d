"""IDC's differentiable augmentation ``DiffAug``, as TGDD's code uses it (Kim et al., ICML 2022).

TGDD's authors build on the IDC code base, whose ``DiffAug`` differs from MTT's DSA
(:mod:`ddlib.data.augment`) in which operations a call applies:

* DSA (MTT/DM, ``aug_mode='S'``) applies ONE randomly chosen group per call;
* IDC's ``DiffAug`` applies ``flip`` and ``color`` (brightness, saturation, contrast)
  first, then one of the geometric groups ``crop``/``scale``/``rotate`` (chosen per call
  when several are listed, IDC's ``single_aug=True``), then ``cutout`` -- so for TGDD's
  matching strategy ``"color_crop_cutout"`` EVERY listed op runs on every call.

``batch=True`` (IDC ``DiffAug(batch=True)``, TGDD's matching augmentation) draws ONE set
of parameters shared by every image of the call; real and synthetic images augmented
together therefore see the same transformation (:meth:`DiffAug.siamese`).
``batch=False`` gives every image its own draw (TGDD's expert and evaluation training,
strategy ``"color_crop"``).

The operations themselves, their magnitudes (brightness 1.0, saturation 2.0, contrast
0.5, crop 0.125 of the side, cutout 0.5 of the side; IDC uses DSA's values) and the
parameter sampling are DSA's: this module only decides which groups a call applies and
how the draw is shared. Parameters come from an explicit CPU ``torch.Generator``; the
output is differentiable with respect to the images.
"""
from __future__ import annotations

import dataclasses

import torch

from ddlib.core.config import Config
from ddlib.data.augment import DSA
from ddlib.data.dsa_params import DSAConfig, DSAParams, parse_strategy

__all__ = ["DiffAugConfig", "DiffAug"]

# IDC applies these before the geometric choice and cutout after it, whatever the strategy order.
_FIRST = ("flip", "color")
_CHOICE = ("crop", "scale", "rotate")  # one of these per call when several are listed
_LAST = ("cutout",)
_META = ("groups", "im_size", "siamese")  # DSAParams fields that are not drawn values


@dataclasses.dataclass(frozen=True)
class DiffAugConfig(Config):
    """IDC ``DiffAug`` settings.

    Attributes
    ----------
    strategy : str
        Operation groups joined by ``_`` (those of :data:`ddlib.data.dsa_params.GROUPS`).
        TGDD: ``"color_crop_cutout"`` for matching, ``"color_crop"`` for training networks
        (cutout dropped because CutMix is on).
    batch : bool
        One parameter draw per call shared by the whole batch (IDC ``batch=True``), or one
        draw per image (``False``).
    """

    #: Operation groups joined by ``_`` (TGDD's ``common.py``: ``args.aug_type`` for matching, ``"color_crop_cutout"``).
    strategy: str = "color_crop_cutout"
    #: One parameter draw per call shared by the batch (TGDD's ``common.py``: ``DiffAug(strategy=aug_type, batch=True)``
    #: for matching); ``False``: one draw per image.
    batch: bool = True

    def validate(self) -> None:
        parse_strategy(self.strategy)  # ValueError naming an unknown or repeated op


class DiffAug:
    """IDC's ``DiffAug``: colour first, one geometric group, cutout last; shared or per-sample draws.

    Examples
    --------
    >>> aug = DiffAug()  # TGDD matching: color_crop_cutout, one draw per call
    >>> g = torch.Generator().manual_seed(0)
    >>> real, syn = aug.siamese(torch.randn(128, 3, 32, 32), torch.randn(10, 3, 32, 32), generator=g)
    >>> per_sample = DiffAug(DiffAugConfig(strategy="color_crop", batch=False))
    >>> out = per_sample(torch.randn(64, 3, 32, 32), g)
    """

    def __init__(self, config: DiffAugConfig | None = None) -> None:
        self.config = config if config is not None else DiffAugConfig()
        groups = parse_strategy(self.config.strategy)
        self._first = tuple(g for g in _FIRST if g in groups)
        self._choice = tuple(g for g in groups if g in _CHOICE)  # strategy order, as IDC keeps it
        self._last = tuple(g for g in _LAST if g in groups)
        # One single-group DSA per group draws that group's parameters with DSA's magnitudes;
        # one all-groups DSA applies a merged draw (DSA.apply follows params.groups).
        self._samplers = {g: DSA(DSAConfig(strategy=g, one_group_per_call=False)) for g in groups}
        self._applier = DSA(DSAConfig(strategy=self.config.strategy, one_group_per_call=False))

    def __repr__(self) -> str:
        return f"DiffAug({self.config!r})"

    def sample(self, batch_size: int, im_size: tuple[int, int], generator: torch.Generator) -> DSAParams:
        """Draw the parameters of one call from ``generator`` (CPU).

        Parameters
        ----------
        batch_size : int
            Images the parameters are for (one row is drawn when ``config.batch``).
        im_size : (int, int)
            ``(H, W)``, each at least 4.
        generator : torch.Generator

        Returns
        -------
        DSAParams
            ``groups`` in IDC's order; ``siamese`` (one row) when ``config.batch``.
        """
        choice = self._choice
        if len(choice) > 1:
            choice = (choice[int(torch.randint(len(choice), (1,), generator=generator))],)
        groups = self._first + choice + self._last
        fields: dict[str, torch.Tensor] = {}
        for g in groups:
            drawn = self._samplers[g].sample(batch_size, im_size, generator, siamese=self.config.batch)
            fields.update({f.name: getattr(drawn, f.name) for f in dataclasses.fields(drawn)
                           if f.name not in _META and getattr(drawn, f.name) is not None})
        h, w = (int(s) for s in im_size)
        return DSAParams(groups=groups, im_size=(h, w), siamese=self.config.batch, **fields)

    def apply(self, images: torch.Tensor, params: DSAParams) -> torch.Tensor:
        """Transform ``images`` ``(N, C, H, W)`` with ``params`` (DSA's ops); differentiable w.r.t. ``images``."""
        return self._applier.apply(images, params)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Draw parameters for ``images`` ``(N, C, H, W)`` and apply them (shared when ``config.batch``)."""
        if images.dim() != 4:
            raise ValueError(f"DiffAug expects images (N, C, H, W); got shape {tuple(images.shape)}")
        return self.apply(images, self.sample(int(images.shape[0]), tuple(images.shape[-2:]), generator))

    def siamese(self, *batches: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """Apply ONE draw to every batch, e.g. real ``(B, C, H, W)`` and synthetic ``(S, C, H, W)``.

        This is IDC/TGDD augmenting real and synthetic images in one ``batch=True`` call.

        Raises
        ------
        ValueError
            With ``batch=False`` (per-sample draws cannot be shared), without batches, or
            for batches of different image sizes.
        """
        if not self.config.batch:
            raise ValueError("DiffAug(batch=False) draws one parameter set per image; sharing a draw between "
                             "batches needs DiffAugConfig(batch=True)")
        if not batches:
            raise ValueError("DiffAug.siamese needs at least one batch")
        sizes = {tuple(x.shape[-2:]) for x in batches}
        if len(sizes) != 1 or any(x.dim() != 4 for x in batches):
            raise ValueError("DiffAug.siamese needs (N, C, H, W) batches of one image size; "
                             f"got {[tuple(x.shape) for x in batches]}")
        params = self.sample(1, sizes.pop(), generator)
        return tuple(self.apply(x, params) for x in batches)
