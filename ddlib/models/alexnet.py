"""AlexNet in the small-image variant of DC/MTT ``networks.py``.

Five convolutions (128-5x5, 192-5x5, 256-3x3, 192-3x3, 192-3x3, all stride 1) with three
2x2 max-pools, then one linear layer on the ``192 x 4 x 4`` feature map. A 32x32 input
ends as a 4x4 map; 1-channel networks pad the first convolution by 4 (reference) so that
28x28 MNIST also ends at 4x4.

Norm: DC's ``AlexNet`` has no normalisation (``norm="none"`` reproduces it exactly,
module indices included) and ``AlexNetBN`` puts ``BatchNorm2d`` after every convolution
(``norm="batch"``). ddlib's default ``norm="instance"`` uses the AlexNetBN layout with
``GroupNorm(C, C)``, in line with the other families.

Larger inputs (64x64, 128x128) would break the reference's fixed ``192*4*4`` classifier;
here an ``AdaptiveAvgPool2d(4)`` brings every feature map to 4x4 (it is the identity at
the reference resolution).
"""
from __future__ import annotations

import torch
from torch import nn

from ddlib.models._common import ACTS, NORMS, DDModel, _pair, check_choice, make_act, make_norm, min_input_size

__all__ = ["AlexNet"]

# (out_channels, kernel, padding, max-pool after) of the five convolutions.
_CFG = ((128, 5, 2, True), (192, 5, 2, True), (256, 3, 1, False), (192, 3, 1, False), (192, 3, 1, True))
_FEAT_SIDE = 4  # side of the pooled feature map fed to the classifier


class AlexNet(DDModel):
    """AlexNet of DC/MTT for small images.

    Parameters
    ----------
    channel : int
        Input channels ``C``.
    num_classes : int
        Number of logits.
    im_size : int or (int, int)
        Nominal input resolution; only checked against the minimum size (any input at
        least that large is accepted).
    norm : {"instance", "batch", "layer", "none"}
    act : {"relu", "leakyrelu", "sigmoid", "swish"}

    Notes
    -----
    ``embed`` returns the flattened ``(N, 192 * 4 * 4)`` map.
    """

    def __init__(
        self,
        channel: int,
        num_classes: int,
        im_size: int | tuple[int, int] = (32, 32),
        *,
        norm: str = "instance",
        act: str = "relu",
    ) -> None:
        super().__init__()
        check_choice("norm", norm, NORMS)
        check_choice("activation", act, ACTS)
        im_size = _pair(im_size)
        first_pad = 4 if channel == 1 else 2  # reference: 28x28 MNIST -> 32x32 after conv1

        def out_side(side: int) -> int:
            for i, (_, kernel, pad, pool) in enumerate(_CFG):
                side = side + 2 * (first_pad if i == 0 else pad) - kernel + 1
                side = side // 2 if pool else side
            return side

        self.min_size = (min_input_size(out_side),) * 2
        if min(im_size) < self.min_size[0]:
            raise ValueError(
                f"AlexNet needs inputs of at least {self.min_size[0]}x{self.min_size[1]} pixels; "
                f"im_size is {im_size[0]}x{im_size[1]}"
            )

        layers: list[nn.Module] = []
        in_channels = channel
        for i, (out_channels, kernel, pad, pool) in enumerate(_CFG):
            layers.append(nn.Conv2d(in_channels, out_channels, kernel, padding=first_pad if i == 0 else pad))
            if norm != "none":  # omitted (not Identity) so indices match DC's AlexNet
                layers.append(make_norm(norm, out_channels))
            layers.append(make_act(act))
            if pool:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(_FEAT_SIDE)
        self.classifier = nn.Linear(in_channels * _FEAT_SIDE * _FEAT_SIDE, num_classes)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)
