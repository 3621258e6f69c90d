"""Model zoo of dataset distillation: ConvNet, AlexNet, VGG-11, ResNet-18/10, DenseNet-121.

Every model maps ``(N, C, H, W)`` images to ``(N, num_classes)`` logits, exposes
``embed(x) -> (N, D)`` (the penultimate features, input of the final layer) and
``classifier`` (that final ``nn.Linear``), so ``model(x) == model.classifier(model.embed(x))``.
Build them with :func:`build_model`; the names follow DC/MTT ``get_network``.

=================  ==========================================================
name               model
=================  ==========================================================
ConvNet            ConvNet, depth from resolution (:func:`default_depth`) or ``depth``
ConvNetD3/D4/D5    ConvNet with 3/4/5 blocks
AlexNet(BN)        DC AlexNet (no normalisation by default, as in DC; BN: batch norm)
VGG11(BN)          DC VGG-11
ResNet18(BN)       DC ResNet-18 (CIFAR stem)
ResNet10(BN)       ResNet with ``[1, 1, 1, 1]`` basic blocks
DenseNet121(BN)    DenseNet-121, growth 32, CIFAR stem
=================  ==========================================================

Names ending in ``BN`` fix ``norm="batch"``.
"""
from __future__ import annotations

import types
from typing import Any, Callable

import torch
from torch import nn

from ddlib.models._common import ACTS, NORMS, POOLS, DDModel, _pair, check_choice
from ddlib.models.alexnet import AlexNet
from ddlib.models.convnet import ConvNet, default_depth
from ddlib.models.densenet import DENSENET_BLOCKS, DenseNet
from ddlib.models.resnet import RESNET_BLOCKS, ResNet
from ddlib.models.vgg import VGG

__all__ = [
    "build_model", "MODEL_NAMES", "count_parameters", "NORMS", "ACTS", "POOLS", "default_depth",
    "DDModel", "ConvNet", "AlexNet", "VGG", "ResNet", "DenseNet",
]

_CONVNET_DEPTHS = types.MappingProxyType({"ConvNet": None, "ConvNetD3": 3, "ConvNetD4": 4, "ConvNetD5": 5})


def _family(name: str) -> tuple[Callable[..., DDModel], dict[str, Any]]:
    """Constructor and fixed keyword arguments of a (non-ConvNet) base name."""
    if name == "AlexNet":
        return AlexNet, {}
    if name == "VGG11":
        return VGG, {"config": "VGG11"}
    if name in RESNET_BLOCKS:
        return ResNet, {"blocks": RESNET_BLOCKS[name]}
    if name in DENSENET_BLOCKS:
        return DenseNet, {"blocks": DENSENET_BLOCKS[name]}
    raise KeyError(name)


_BASES = ("AlexNet", "VGG11", "ResNet18", "ResNet10", "DenseNet121")
MODEL_NAMES: tuple[str, ...] = tuple(_CONVNET_DEPTHS) + tuple(
    n for base in _BASES for n in (base, base + "BN")
)


def _canonical(name: str) -> str:
    """Registered spelling of ``name`` (case-insensitive), or ``ValueError`` listing the names."""
    if name in MODEL_NAMES:
        return name
    by_lower = {n.lower(): n for n in MODEL_NAMES}
    key = str(name).lower().replace("-", "").replace("_", "")
    if key not in by_lower:
        raise ValueError(f"unknown model {name!r}; expected one of {list(MODEL_NAMES)}")
    return by_lower[key]


def build_model(
    name: str,
    channel: int,
    num_classes: int,
    im_size: int | tuple[int, int],
    *,
    width: int = 128,
    depth: int | None = None,
    norm: str | None = None,
    act: str = "relu",
    pool: str = "avg",
    seed: int | None = None,
) -> DDModel:
    """Build a model of the zoo.

    Parameters
    ----------
    name : str
        One of ``MODEL_NAMES`` (case-insensitive; ``"ResNet-18"`` also works).
    channel : int
        Input channels ``C``.
    num_classes : int
        Number of logits.
    im_size : int or (int, int)
        Input resolution ``(H, W)``. ConvNet needs inputs of exactly this size; the
        other families only check it against their minimum size.
    width : int
        ConvNet channels (128). Other families have fixed widths and reject other values.
    depth : int, optional
        ConvNet blocks; ``None`` means :func:`default_depth` for ``"ConvNet"`` and the
        fixed depth for ``"ConvNetD3"``/``D4``/``D5``. Rejected for other families.
    norm : {"instance", "batch", "layer", "none"}, optional
        ``"instance"`` is ``GroupNorm(C, C)`` as in DC/MTT, ``"layer"`` ``GroupNorm(1, C)``.
        ``None`` takes the family's DC/MTT default: ``"none"`` for AlexNet (DC's AlexNet
        has no normalisation), ``"instance"`` for every other family.
        Names ending in ``BN`` force ``"batch"`` (and reject ``"layer"``/``"none"``).
    act : {"relu", "leakyrelu", "sigmoid", "swish"}
    pool : {"avg", "max", "none"}
        ConvNet downsampling. Other families have fixed pooling and reject other values.
    seed : int, optional
        If given, the weights are initialised from ``torch`` seeded with ``seed`` inside
        ``torch.random.fork_rng``, so the same seed gives the same weights and the global
        RNG state is left untouched. If ``None``, the global RNG is consumed as usual.

    Returns
    -------
    DDModel
        An ``nn.Module`` on the CPU in training mode, mapping ``(N, C, H, W)`` to
        ``(N, num_classes)``, with ``embed`` and ``classifier``.

    Raises
    ------
    ValueError
        Unknown name/norm/act/pool (naming the valid ones), options that do not apply
        to the family, or an ``im_size`` below the model's minimum (naming it).

    Examples
    --------
    >>> net = build_model("ConvNet", 3, 10, (32, 32), seed=0)
    >>> sum(p.numel() for p in net.parameters())
    320010
    """
    canonical = _canonical(name)
    if norm is None:
        norm = "none" if canonical == "AlexNet" else "instance"
    check_choice("norm", norm, NORMS)
    check_choice("activation", act, ACTS)
    check_choice("pool", pool, POOLS)
    for arg, value in (("channel", channel), ("num_classes", num_classes), ("width", width)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{arg}={value!r}: expected a positive int")
    im_size = _pair(im_size)
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise ValueError(f"seed={seed!r}: expected an int or None")

    if canonical in _CONVNET_DEPTHS:
        fixed = _CONVNET_DEPTHS[canonical]
        if fixed is not None and depth is not None and depth != fixed:
            raise ValueError(f"{canonical} fixes depth={fixed}; got depth={depth} (use name 'ConvNet')")
        constructor: Callable[..., DDModel] = ConvNet
        kwargs: dict[str, Any] = dict(width=width, depth=fixed if fixed is not None else depth, pool=pool)
    else:
        for arg, value, default in (("width", width, 128), ("depth", depth, None), ("pool", pool, "avg")):
            if value != default:
                raise ValueError(f"{arg}={value!r} only applies to ConvNet; {canonical} has a fixed {arg}")
        base = canonical[:-2] if canonical.endswith("BN") else canonical
        if base != canonical:
            if norm not in ("instance", "batch"):  # "instance" is the default: not a conflict
                raise ValueError(f"{canonical} uses batch norm; got norm={norm!r} (use name {base!r})")
            norm = "batch"
        constructor, kwargs = _family(base)

    def make() -> DDModel:
        return constructor(channel, num_classes, im_size, norm=norm, act=act, **kwargs)

    if seed is None:
        return make()
    # devices=[]: the model is built on the CPU, so only the CPU generator must be
    # forked; seeding it alone (not torch.manual_seed) leaves CUDA generators untouched.
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        return make()


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

