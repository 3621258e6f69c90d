"""DenseNet-121, small-image (CIFAR) variant.

Growth rate 32, dense blocks ``[6, 12, 24, 16]``, bottleneck layers
``norm-act-conv1x1(4k) -> norm-act-conv3x3(k)`` whose output is concatenated in front of
their input, transitions ``norm-act-conv1x1(C/2) -> avgpool2x2`` between blocks, then
``norm-act`` and a global average before the linear classifier (1024 features).

Adapted to small images as in the common CIFAR variant: the ImageNet stem
(7x7/stride-2 conv + max-pool) is replaced by one 3x3/stride-1 convolution to 2k = 64
channels. The CIFAR variant ends with ``avg_pool2d(out, 4)``; here an
``AdaptiveAvgPool2d(1)`` averages globally at every resolution (identical at 32x32).
The three transitions halve the map, so inputs need at least 8x8 pixels (16x16 with
instance norm, which needs a 2x2 map for its statistics).
"""
from __future__ import annotations

import types

import torch
from torch import nn

from ddlib.models._common import ACTS, NORMS, DDModel, _pair, check_choice, make_act, make_norm, min_input_size

__all__ = ["DenseNet", "DENSENET_BLOCKS"]

DENSENET_BLOCKS = types.MappingProxyType({"DenseNet121": (6, 12, 24, 16)})  # read-only


class _DenseLayer(nn.Module):
    """Bottleneck layer: ``(N, C, H, W) -> (N, C + growth, H, W)``."""

    def __init__(self, in_planes: int, growth: int, norm: str, act: str) -> None:
        super().__init__()
        self.bn1 = make_norm(norm, in_planes)
        self.act1 = make_act(act)
        self.conv1 = nn.Conv2d(in_planes, 4 * growth, kernel_size=1, bias=False)
        self.bn2 = make_norm(norm, 4 * growth)
        self.act2 = make_act(act)
        self.conv2 = nn.Conv2d(4 * growth, growth, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.act1(self.bn1(x)))
        out = self.conv2(self.act2(self.bn2(out)))
        return torch.cat([out, x], dim=1)


class _Transition(nn.Module):
    """``(N, C, H, W) -> (N, C_out, H // 2, W // 2)``."""

    def __init__(self, in_planes: int, out_planes: int, norm: str, act: str) -> None:
        super().__init__()
        self.bn = make_norm(norm, in_planes)
        self.act = make_act(act)
        self.conv = nn.Conv2d(in_planes, out_planes, kernel_size=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(self.act(self.bn(x))))


class DenseNet(DDModel):
    """CIFAR-style DenseNet.

    Parameters
    ----------
    channel : int
        Input channels ``C``.
    num_classes : int
        Number of logits.
    im_size : int or (int, int)
        Nominal input resolution; only checked against the minimum size (8x8, or 16x16
        with instance norm).
    blocks : tuple of 4 ints
        Dense layers per block (``(6, 12, 24, 16)`` for DenseNet-121).
    growth : int
        Growth rate ``k`` (32).
    reduction : float
        Channel compression of the transitions (0.5).
    norm : {"instance", "batch", "layer", "none"}
    act : {"relu", "leakyrelu", "sigmoid", "swish"}

    Notes
    -----
    ``embed`` returns ``(N, 1024)`` features for DenseNet-121.
    """

    def __init__(
        self,
        channel: int,
        num_classes: int,
        im_size: int | tuple[int, int] = (32, 32),
        *,
        blocks: tuple[int, ...] = (6, 12, 24, 16),
        growth: int = 32,
        reduction: float = 0.5,
        norm: str = "instance",
        act: str = "relu",
    ) -> None:
        super().__init__()
        check_choice("norm", norm, NORMS)
        check_choice("activation", act, ACTS)
        im_size = _pair(im_size)
        n_transitions = len(blocks) - 1
        # The final norm sees the last map: instance norm needs 2x2 there, others 1x1.
        at_least = 2 if norm == "instance" else 1
        self.min_size = (min_input_size(lambda side: side // 2 ** n_transitions, at_least),) * 2
        if min(im_size) < self.min_size[0]:
            raise ValueError(
                f"DenseNet with norm={norm!r} needs inputs of at least "
                f"{self.min_size[0]}x{self.min_size[1]} pixels; "
                f"im_size is {im_size[0]}x{im_size[1]}"
            )
        planes = 2 * growth
        self.conv1 = nn.Conv2d(channel, planes, kernel_size=3, padding=1, bias=False)
        stages: list[nn.Module] = []
        for i, count in enumerate(blocks):
            layers = []
            for _ in range(count):
                layers.append(_DenseLayer(planes, growth, norm, act))
                planes += growth
            stages.append(nn.Sequential(*layers))
            if i < n_transitions:
                out_planes = int(planes * reduction)  # floor, as in the reference
                stages.append(_Transition(planes, out_planes, norm, act))
                planes = out_planes
        self.stages = nn.Sequential(*stages)
        self.bn = make_norm(norm, planes)
        self.act = make_act(act)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(planes, num_classes)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stages(self.conv1(x))
        return self.pool(self.act(self.bn(out))).flatten(1)
