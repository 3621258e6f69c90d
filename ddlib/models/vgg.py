"""VGG-11 in the small-image variant of DC/MTT ``networks.py``.

Eight 3x3 convolutions ``[64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M]`` (``M`` a
2x2 max-pool), each followed by a norm and an activation, then a single linear layer on
the 512 channels (no 4096-wide fully connected head). A 32x32 input ends as a 1x1 map;
1-channel networks pad the first convolution by 3 so that 28x28 MNIST does too.

The reference flattens the final map, which breaks above 32x32; here an
``AdaptiveAvgPool2d(1)`` averages it (the identity at 32x32, where DC has an
``AvgPool2d(1)`` no-op in the same place).
"""
from __future__ import annotations

import types

import torch
from torch import nn

from ddlib.models._common import ACTS, NORMS, DDModel, _pair, check_choice, make_act, make_norm, min_input_size

__all__ = ["VGG", "VGG_CONFIGS"]

# Read-only: layer plans, ints are conv widths and "M" a 2x2 max-pool.
VGG_CONFIGS = types.MappingProxyType({
    "VGG11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
})


class VGG(DDModel):
    """VGG of DC/MTT for small images.

    Parameters
    ----------
    channel : int
        Input channels ``C``.
    num_classes : int
        Number of logits.
    im_size : int or (int, int)
        Nominal input resolution; only checked against the minimum size.
    config : str
        Key of ``VGG_CONFIGS`` (``"VGG11"``).
    norm : {"instance", "batch", "layer", "none"}
        DC's ``VGG11`` uses instance norm, ``VGG11BN`` batch norm.
    act : {"relu", "leakyrelu", "sigmoid", "swish"}

    Notes
    -----
    ``embed`` returns ``(N, 512)`` features.
    """

    def __init__(
        self,
        channel: int,
        num_classes: int,
        im_size: int | tuple[int, int] = (32, 32),
        *,
        config: str = "VGG11",
        norm: str = "instance",
        act: str = "relu",
    ) -> None:
        super().__init__()
        check_choice("VGG config", config, tuple(VGG_CONFIGS))
        check_choice("norm", norm, NORMS)
        check_choice("activation", act, ACTS)
        cfg = VGG_CONFIGS[config]
        im_size = _pair(im_size)
        first_pad = 3 if channel == 1 else 1  # reference: 28x28 MNIST -> 32x32 after conv1

        def out_side(side: int) -> int:
            side = side + 2 * first_pad - 2
            return side // (2 ** cfg.count("M"))

        self.min_size = (min_input_size(out_side),) * 2
        if min(im_size) < self.min_size[0]:
            raise ValueError(
                f"{config} needs inputs of at least {self.min_size[0]}x{self.min_size[1]} pixels "
                f"(it max-pools {cfg.count('M')} times); im_size is {im_size[0]}x{im_size[1]}"
            )

        layers: list[nn.Module] = []
        in_channels = channel
        for i, item in enumerate(cfg):
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                continue
            layers += [
                nn.Conv2d(in_channels, item, kernel_size=3, padding=first_pad if i == 0 else 1),
                make_norm(norm, item),  # Identity for "none" keeps DC's module indices
                make_act(act),
            ]
            in_channels = item
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(in_channels, num_classes)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)
