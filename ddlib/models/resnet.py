"""ResNet-18 and ResNet-10 in the small-image (CIFAR) variant of DC/MTT ``networks.py``.

Stem: one 3x3/stride-1 convolution to 64 channels (no 7x7 conv, no max-pool), then four
stages of basic blocks with 64/128/256/512 channels, stages 2-4 downsampling by a
stride-2 convolution (and a 1x1/stride-2 projection shortcut). ResNet-18 has
``[2, 2, 2, 2]`` blocks, ResNet-10 ``[1, 1, 1, 1]`` (the TGDD cross-architecture model).
Norm "instance" (DC's ``ResNet18``) is ``GroupNorm(C, C)``; "batch" gives DC's
``ResNet18BN``.

The reference ends with ``avg_pool2d(out, 4)``, which is a global average at 32x32 (and
at 28x28) but leaves a 2x2 map at 64x64 and breaks the 512-wide classifier; here an
``AdaptiveAvgPool2d(1)`` always averages globally, identical at the reference sizes.
Padded 3x3 convolutions never shrink a map to nothing, so any input size is accepted,
except that instance norm needs a 2x2 map in the last stage (inputs of at least 9x9).
"""
from __future__ import annotations

import types

import torch
from torch import nn

from ddlib.models._common import ACTS, NORMS, DDModel, _pair, check_choice, make_act, make_norm, min_input_size

__all__ = ["ResNet", "BasicBlock", "RESNET_BLOCKS"]

RESNET_BLOCKS = types.MappingProxyType({"ResNet18": (2, 2, 2, 2), "ResNet10": (1, 1, 1, 1)})  # read-only
_STAGE_WIDTHS = (64, 128, 256, 512)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection.

    Parameters
    ----------
    in_planes, planes : int
        Input and output channels.
    stride : int
        Stride of the first convolution (2 downsamples); the shortcut becomes a strided
        1x1 convolution + norm whenever the shape changes.
    norm, act : str
        See :func:`ddlib.models._common.make_norm` and ``make_act``.
    """

    def __init__(self, in_planes: int, planes: int, stride: int, norm: str, act: str) -> None:
        super().__init__()
        # Parameter order (conv1, bn1, conv2, bn2, shortcut) matches the reference.
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = make_norm(norm, planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = make_norm(norm, planes)
        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
                make_norm(norm, planes),
            )
        self.act1 = make_act(act)
        self.act2 = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_planes, H, W) -> (N, planes, ceil(H / stride), ceil(W / stride))``."""
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        # Out-of-place add: an in-place one would clobber a tensor autograd may need
        # under functional/higher-order differentiation.
        return self.act2(out + self.shortcut(x))


class ResNet(DDModel):
    """CIFAR-style ResNet of DC/MTT.

    Parameters
    ----------
    channel : int
        Input channels ``C``.
    num_classes : int
        Number of logits.
    im_size : int or (int, int)
        Nominal input resolution; only checked against the minimum size (1x1, or 9x9
        with instance norm).
    blocks : tuple of 4 ints
        Basic blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
    norm : {"instance", "batch", "layer", "none"}
    act : {"relu", "leakyrelu", "sigmoid", "swish"}

    Notes
    -----
    ``embed`` returns the globally averaged ``(N, 512)`` features.
    """

    def __init__(
        self,
        channel: int,
        num_classes: int,
        im_size: int | tuple[int, int] = (32, 32),
        *,
        blocks: tuple[int, int, int, int] = (2, 2, 2, 2),
        norm: str = "instance",
        act: str = "relu",
    ) -> None:
        super().__init__()
        check_choice("norm", norm, NORMS)
        check_choice("activation", act, ACTS)
        if len(blocks) != 4 or min(blocks) < 1:
            raise ValueError(f"blocks={blocks!r}: expected 4 positive block counts")
        # Stride-2 3x3 convs with padding 1 never collapse a map (side -> ceil(side / 2)),
        # but instance norm needs at least 2x2 pixels in the last stage.
        n_down = len(_STAGE_WIDTHS) - 1
        at_least = 2 if norm == "instance" else 1
        self.min_size = (min_input_size(lambda side: -(-side // 2**n_down), at_least),) * 2
        im_size = _pair(im_size)
        if min(im_size) < self.min_size[0]:
            raise ValueError(
                f"ResNet with norm={norm!r} needs inputs of at least {self.min_size[0]}x{self.min_size[1]} "
                f"pixels; im_size is {im_size[0]}x{im_size[1]}"
            )
        self.conv1 = nn.Conv2d(channel, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = make_norm(norm, 64)
        self.act = make_act(act)
        in_planes = 64
        stages = []
        for i, (planes, count) in enumerate(zip(_STAGE_WIDTHS, blocks)):
            layers = []
            for j in range(count):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(BasicBlock(in_planes, planes, stride, norm, act))
                in_planes = planes
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(in_planes, num_classes)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.pool(out).flatten(1)
