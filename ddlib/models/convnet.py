"""ConvNet, the default backbone of DC, DSA, DM, MTT and their successors.

``depth`` blocks of ``conv3x3(width) -> norm -> act -> pool2x2``, then one linear layer
on the flattened feature map. Layer order and ``nn.Sequential`` indices follow DC/MTT
``networks.py`` (``features.0`` conv, ``features.1`` norm, ...), so parameters come out
in the same order as the reference, which is what flat expert trajectories rely on.

As in the reference, the first convolution of a 1-channel network pads by 3 instead of 1,
so a 28x28 MNIST image is processed like a 32x32 one (ConvNet-3 gives 4x4 features).
"""
from __future__ import annotations

import torch
from torch import nn

from ddlib.models._common import (ACTS, NORMS, POOLS, AvgPool2x2, DDModel, _pair, check_choice, make_act, make_norm,
                      min_input_size)

__all__ = ["ConvNet", "default_depth"]


def default_depth(im_size: int | tuple[int, int]) -> int:
    """ConvNet depth for a resolution: 3 up to 32x32, 4 for 64x64, 5 for 128x128.

    The rule is ``max(3, floor(log2(min(H, W) / 4)))``: each block halves the map, so
    the final feature map is about 4x4 at 32, 64 and 128 pixels (the MTT settings),
    and small images (MNIST 28x28, 8x8 digits) keep the standard ConvNet-3
    (8x8 inputs give 1x1 features).

    Examples
    --------
    >>> [default_depth(s) for s in (8, 28, 32, 64, 128, 256)]
    [3, 3, 3, 4, 5, 6]
    """
    side = min(_pair(im_size))
    return max(3, side.bit_length() - 3)  # bit_length() - 1 == floor(log2(side))


class ConvNet(DDModel):
    """ConvNet of DC/MTT.

    Parameters
    ----------
    channel : int
        Input channels ``C``.
    num_classes : int
        Number of logits.
    im_size : int or (int, int)
        Input resolution ``(H, W)``; fixes the classifier's input size, so inputs must
        have exactly this size.
    width : int
        Channels of every convolution (128 in the papers).
    depth : int, optional
        Number of conv blocks; ``None`` picks :func:`default_depth` of ``im_size``.
    norm : {"instance", "batch", "layer", "none"}
    act : {"relu", "leakyrelu", "sigmoid", "swish"}
    pool : {"avg", "max", "none"}
        2x2/stride-2 pooling after each block, or none.

    Raises
    ------
    ValueError
        For an unknown norm/act/pool, a non-positive width/depth, or an ``im_size``
        that the blocks would pool down to nothing (naming the minimum size).
    """

    def __init__(
        self,
        channel: int,
        num_classes: int,
        im_size: int | tuple[int, int] = (32, 32),
        *,
        width: int = 128,
        depth: int | None = None,
        norm: str = "instance",
        act: str = "relu",
        pool: str = "avg",
    ) -> None:
        super().__init__()
        check_choice("norm", norm, NORMS)
        check_choice("activation", act, ACTS)
        check_choice("pool", pool, POOLS)
        im_size = _pair(im_size)
        depth = default_depth(im_size) if depth is None else depth
        if depth < 1 or width < 1:
            raise ValueError(f"ConvNet needs depth >= 1 and width >= 1; got depth={depth}, width={width}")
        self.im_size = im_size
        self.depth = depth
        first_pad = 3 if channel == 1 else 1  # DC/MTT: lets 28x28 MNIST behave like 32x32

        def out_side(side: int) -> int:
            side = side + 2 * first_pad - 2
            for _ in range(depth):
                side = side // 2 if pool != "none" else side
            return side

        # Norms act before pooling, so they see at least 2x2 unless pool="none"; then
        # instance norm needs a 2x2 final map.
        at_least = 2 if (pool == "none" and norm == "instance") else 1
        self.min_size = (min_input_size(out_side, at_least),) * 2
        if im_size[0] < self.min_size[0] or im_size[1] < self.min_size[1]:
            raise ValueError(
                f"ConvNet of depth {depth} needs inputs of at least {self.min_size[0]}x{self.min_size[1]} "
                f"pixels; im_size is {im_size[0]}x{im_size[1]} (use a smaller depth or pool='none')"
            )

        layers: list[nn.Module] = []
        in_channels = channel
        for d in range(depth):
            layers.append(nn.Conv2d(in_channels, width, kernel_size=3, padding=first_pad if d == 0 else 1))
            if norm != "none":  # omitted (not Identity) so module indices match DC's
                layers.append(make_norm(norm, width))
            layers.append(make_act(act))
            if pool == "avg":
                layers.append(AvgPool2x2())  # nn.AvgPool2d(2, 2), faster on the CPU
            elif pool == "max":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            in_channels = width
        self.features = nn.Sequential(*layers)
        feat_h, feat_w = out_side(im_size[0]), out_side(im_size[1])
        self.classifier = nn.Linear(width * feat_h * feat_w, num_classes)

    def _check_input(self, x: torch.Tensor) -> None:
        super()._check_input(x)
        if tuple(x.shape[-2:]) != self.im_size:
            raise ValueError(
                f"ConvNet was built for {self.im_size[0]}x{self.im_size[1]} inputs (its classifier size "
                f"depends on it); got {x.shape[-2]}x{x.shape[-1]}"
            )

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)
