"""DSA's parameters: the strategy string, its hyper-parameters and one draw's parameters.

:func:`parse_strategy` splits a strategy such as ``"color_crop_cutout_flip_scale_rotate"``
into the operation groups of :data:`GROUPS`; :class:`DSAConfig` holds the hyper-parameters of
``ParamDiffAug`` (DC/DSA/DM/MTT); :class:`DSAParams` is one draw of
:meth:`ddlib.data.augment.DSA.sample`, validated for shape, which
:meth:`ddlib.data.augment.DSA.apply` turns into a transformation.
"""
from __future__ import annotations

import dataclasses

import torch

from ddlib.core.config import Config

__all__ = ["DSAConfig", "DSAParams", "GROUPS", "parse_strategy"]

#: Valid operation groups of a strategy string, in the canonical DSA order.
GROUPS = ("color", "crop", "cutout", "flip", "scale", "rotate")

# Which DSAParams fields each group needs (color needs at least one of its three).
_GROUP_FIELDS = {
    "color": ("brightness", "saturation", "contrast"),
    "crop": ("crop",),
    "cutout": ("cutout",),
    "flip": ("flip",),
    "scale": ("scale",),
    "rotate": ("rotate",),
}
_PARAM_FIELDS = ("brightness", "saturation", "contrast", "crop", "cutout", "flip", "scale", "rotate")
# Trailing shape of each parameter tensor (leading dim is the parameter batch B).
_PARAM_TAIL = {"crop": (2,), "cutout": (4,), "scale": (2,)}


def parse_strategy(strategy: str) -> tuple[str, ...]:
    """Split a DSA strategy string into its operation groups.

    ``""`` and ``"none"`` mean no augmentation (empty tuple).

    Raises
    ------
    ValueError
        For an unknown or repeated operation, naming it and the valid ones.
    """
    if strategy.strip().lower() in ("", "none"):
        return ()
    groups = tuple(strategy.split("_"))
    for g in groups:
        if g not in GROUPS:
            raise ValueError(
                f"unknown DSA operation {g!r} in strategy {strategy!r}; valid operations are {list(GROUPS)}"
            )
    if len(set(groups)) != len(groups):
        raise ValueError(f"DSA strategy {strategy!r} repeats an operation")
    return groups


@dataclasses.dataclass(frozen=True)
class DSAConfig(Config):
    """Hyper-parameters of DSA; defaults are those of ``ParamDiffAug`` in DC/DSA/DM/MTT."""

    #: Operation groups joined by ``_`` (``ParamDiffAug`` in DC/DSA/DM/MTT: all six groups).
    strategy: str = "color_crop_cutout_flip_scale_rotate"
    #: Apply one randomly chosen group per call (MTT/DM ``aug_mode`` 'S'); ``False``: every group, in order ('M').
    one_group_per_call: bool = True
    #: Probability of a horizontal flip (``ParamDiffAug``: 0.5).
    flip_prob: float = 0.5
    #: Scale factors are drawn in ``[1/scale_ratio, scale_ratio]`` per axis (``ParamDiffAug``: 1.2).
    scale_ratio: float = 1.2
    #: Rotation angle drawn in ``[-rotate_degrees, rotate_degrees]`` degrees (``ParamDiffAug``: 15).
    rotate_degrees: float = 15.0
    #: Maximum translation of the crop as a fraction of the side (``ParamDiffAug``: 0.125).
    crop_ratio: float = 0.125
    #: Cutout side as a fraction of the image side (``ParamDiffAug``: 0.5).
    cutout_ratio: float = 0.5
    #: Brightness jitter: ``x + (r - 0.5) * brightness`` (``ParamDiffAug``: 1.0).
    brightness: float = 1.0
    #: Saturation jitter: deviations from the channel mean scaled by ``r * saturation`` (``ParamDiffAug``: 2.0).
    saturation: float = 2.0
    #: Contrast jitter: deviations from the image mean scaled by ``r + contrast`` (``ParamDiffAug``: 0.5).
    contrast: float = 0.5

    def validate(self) -> None:
        parse_strategy(self.strategy)
        checks = {
            "flip_prob": 0.0 <= self.flip_prob <= 1.0,
            "scale_ratio": self.scale_ratio >= 1.0,
            "rotate_degrees": 0.0 <= self.rotate_degrees <= 180.0,
            "crop_ratio": 0.0 <= self.crop_ratio < 1.0,
            "cutout_ratio": 0.0 <= self.cutout_ratio <= 1.0,
            "brightness": self.brightness >= 0.0,
            "saturation": self.saturation >= 0.0,
            "contrast": self.contrast >= 0.0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(
                f"DSAConfig out of range: {', '.join(f'{k}={getattr(self, k)!r}' for k in bad)} "
                "(need 0<=flip_prob<=1, scale_ratio>=1, 0<=rotate_degrees<=180, 0<=crop_ratio<1, "
                "0<=cutout_ratio<=1, brightness/saturation/contrast >= 0)"
            )

    @property
    def groups(self) -> tuple[str, ...]:
        """Operation groups of :attr:`strategy`."""
        return parse_strategy(self.strategy)


@dataclasses.dataclass(frozen=True, eq=False)
class DSAParams:
    """One draw of DSA parameters, already in their effective form.

    ``B`` is ``1`` for siamese parameters (broadcast to any batch) and the batch
    size for per-sample ones. A field is ``None`` when its op is not applied.

    Attributes
    ----------
    groups : tuple of str
        Groups applied, in order (one group unless ``one_group_per_call=False``).
    im_size : (int, int)
        ``(H, W)`` the parameters were drawn for.
    siamese : bool
        Whether one parameter row is shared by every image.
    brightness : Tensor (B,), optional
        Additive shift.
    saturation, contrast : Tensor (B,), optional
        Multiplicative factors around the channel mean / image mean.
    crop : Tensor (B, 2) int64, optional
        ``(dy, dx)``: output pixel ``(i, j)`` reads input ``(i + dy, j + dx)``, zero
        outside, i.e. the content moves by ``(-dy, -dx)``.
    cutout : Tensor (B, 4) int64, optional
        Zeroed box ``(top, left, bottom, right)``, bottom/right exclusive, clipped.
    flip : Tensor (B,) bool, optional
        Whether to reverse the width axis.
    scale : Tensor (B, 2), optional
        ``(sx, sy)`` diagonal of the sampling affine matrix (x = width axis).
    rotate : Tensor (B,), optional
        Angle in radians of the sampling affine matrix.
    """

    groups: tuple[str, ...]
    im_size: tuple[int, int]
    siamese: bool
    brightness: torch.Tensor | None = None
    saturation: torch.Tensor | None = None
    contrast: torch.Tensor | None = None
    crop: torch.Tensor | None = None
    cutout: torch.Tensor | None = None
    flip: torch.Tensor | None = None
    scale: torch.Tensor | None = None
    rotate: torch.Tensor | None = None

    def __post_init__(self) -> None:
        for g in self.groups:
            if g not in GROUPS:
                raise ValueError(f"unknown DSA operation {g!r}; valid operations are {list(GROUPS)}")
            if all(getattr(self, f) is None for f in _GROUP_FIELDS[g]):
                raise ValueError(
                    f"DSAParams lists group {g!r} but holds none of its fields {_GROUP_FIELDS[g]}"
                )
        sizes = set()
        for name in _PARAM_FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            tail = _PARAM_TAIL.get(name, ())
            if value.dim() != 1 + len(tail) or tuple(value.shape[1:]) != tail:
                want = "(B" + "".join(f", {t}" for t in tail) + ")"
                raise ValueError(f"DSAParams.{name} must have shape {want}; got {tuple(value.shape)}")
            sizes.add(int(value.shape[0]))
        if len(sizes) > 1:
            raise ValueError(f"DSAParams fields disagree on the parameter batch size: {sorted(sizes)}")
        if self.siamese and sizes - {1}:
            raise ValueError(f"siamese DSAParams must hold one parameter row; got {sorted(sizes)}")

    @property
    def batch_size(self) -> int | None:
        """Rows of parameters ``B`` (``None`` when no op is drawn)."""
        for name in _PARAM_FIELDS:
            value = getattr(self, name)
            if value is not None:
                return int(value.shape[0])
        return None
