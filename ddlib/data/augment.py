"""Differentiable Siamese Augmentation (DSA; Zhao & Bilen, ICML 2021).

Every operation is differentiable with respect to the images, so a loss computed
on augmented synthetic images back-propagates into their pixels. The operation
groups of the strategy string ``"color_crop_cutout_flip_scale_rotate"`` are

* ``color``  -- brightness ``x + (r - 0.5) * 1.0``, then saturation
  ``(x - mean_C) * (r * 2.0) + mean_C``, then contrast
  ``(x - mean_CHW) * (r + 0.5) + mean_CHW`` (``r ~ U[0, 1)``, fresh per op);
* ``crop``   -- translation by up to ``round(0.125 * size)`` pixels with zero padding;
* ``cutout`` -- one square of side ``round(0.5 * size)`` zeroed (clipped at the border);
* ``flip``   -- horizontal flip with probability 0.5;
* ``scale``  -- independent x/y factors in ``[1/1.2, 1.2]`` (``affine_grid``/``grid_sample``);
* ``rotate`` -- angle in ``[-15, 15]`` degrees (``affine_grid``/``grid_sample``).

As in the MTT/DM code (``aug_mode='S'``), by default each call applies ONE group
chosen uniformly at random; ``one_group_per_call=False`` applies every group in
strategy order (``aug_mode='M'``). The chosen group is shared by the whole call.

Randomness is split from computation: :meth:`DSA.sample` draws a :class:`~ddlib.data.dsa_params.DSAParams`
on the CPU from an explicit ``torch.Generator`` (never the global RNG), and
:meth:`DSA.apply` is a pure function of images and parameters. Per-sample params
give each image its own transformation; siamese params (one row) broadcast to
any batch, so real and synthetic batches of different sizes are transformed
identically, which is what DM/TGDD rely on. The strategy string, :class:`~ddlib.data.dsa_params.DSAConfig` and
:class:`~ddlib.data.dsa_params.DSAParams` are in :mod:`ddlib.data.dsa_params`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ddlib.data.dsa_params import DSAConfig, DSAParams

__all__ = ["DSA"]


class DSA:
    """Differentiable Siamese Augmentation; stateless apart from its frozen config.

    Examples
    --------
    >>> dsa = DSA()
    >>> g = torch.Generator().manual_seed(0)
    >>> out = dsa(torch.randn(8, 3, 32, 32), g)  # per-sample parameters
    >>> real, syn = dsa.siamese(torch.randn(256, 3, 32, 32), torch.randn(10, 3, 32, 32), generator=g)
    """

    def __init__(self, config: DSAConfig | None = None) -> None:
        self.config = config if config is not None else DSAConfig()
        self.groups = self.config.groups

    def __repr__(self) -> str:
        return f"DSA({self.config!r})"

    # ------------------------------------------------------------------ sampling
    def sample(
        self, batch_size: int, im_size: tuple[int, int], generator: torch.Generator, siamese: bool = False
    ) -> DSAParams:
        """Draw augmentation parameters from ``generator`` (CPU), never the global RNG.

        Parameters
        ----------
        batch_size : int
            Images the parameters are for (ignored when ``siamese``: one row is drawn).
        im_size : (int, int)
            ``(H, W)``, each at least 4.
        generator : torch.Generator
            A CPU generator; drawing on the CPU keeps results device independent.
        siamese : bool
            Draw one parameter set shared by every image.

        Returns
        -------
        DSAParams
        """
        if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
            raise ValueError(f"DSA.sample needs a CPU torch.Generator; got {generator!r}")
        h, w = (int(s) for s in im_size)
        if h < 4 or w < 4:
            raise ValueError(f"DSA needs images of at least 4x4 pixels; got im_size={tuple(im_size)}")
        if not siamese and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive int; got {batch_size!r}")
        b = 1 if siamese else batch_size
        cfg = self.config

        groups = self.groups
        if cfg.one_group_per_call and groups:
            groups = (groups[int(torch.randint(len(groups), (1,), generator=generator))],)

        def rand(*shape: int) -> torch.Tensor:
            return torch.rand(shape, generator=generator, dtype=torch.float64)

        def randint(low: int, high: int, *shape: int) -> torch.Tensor:
            return torch.randint(low, high, shape, generator=generator, dtype=torch.int64)

        fields: dict[str, torch.Tensor] = {}
        for g in groups:
            if g == "color":
                fields["brightness"] = (rand(b) - 0.5) * cfg.brightness
                fields["saturation"] = rand(b) * cfg.saturation
                fields["contrast"] = rand(b) + cfg.contrast
            elif g == "crop":
                # int(size * ratio + 0.5) rounds half up, as in the DSA code.
                sy, sx = int(h * cfg.crop_ratio + 0.5), int(w * cfg.crop_ratio + 0.5)
                fields["crop"] = torch.stack([randint(-sy, sy + 1, b), randint(-sx, sx + 1, b)], dim=1)
            elif g == "cutout":
                ch, cw = int(h * cfg.cutout_ratio + 0.5), int(w * cfg.cutout_ratio + 0.5)
                # Centre range [0, size + 1 - side % 2) as in DSA: an even side may
                # reach one past the last pixel so the box covers edges symmetrically.
                cy = randint(0, h + 1 - ch % 2, b)
                cx = randint(0, w + 1 - cw % 2, b)
                top, left = cy - ch // 2, cx - cw // 2
                fields["cutout"] = torch.stack(
                    [top.clamp(0, h), left.clamp(0, w), (top + ch).clamp(0, h), (left + cw).clamp(0, w)], dim=1
                )
            elif g == "flip":
                fields["flip"] = rand(b) < cfg.flip_prob
            elif g == "scale":
                lo, hi = 1.0 / cfg.scale_ratio, cfg.scale_ratio
                fields["scale"] = torch.stack([rand(b) * (hi - lo) + lo, rand(b) * (hi - lo) + lo], dim=1)
            elif g == "rotate":
                fields["rotate"] = (rand(b) - 0.5) * 2.0 * math.radians(cfg.rotate_degrees)
        return DSAParams(groups=groups, im_size=(h, w), siamese=bool(siamese), **fields)

    # ------------------------------------------------------------------ applying
    def apply(self, images: torch.Tensor, params: DSAParams) -> torch.Tensor:
        """Transform ``images`` with ``params``; differentiable w.r.t. ``images``.

        Parameters
        ----------
        images : Tensor (N, C, H, W), floating point
        params : DSAParams
            Drawn for ``(H, W)``; siamese params broadcast to any ``N``, per-sample
            params need ``B == N``.

        Returns
        -------
        Tensor (N, C, H, W), same dtype and device as ``images``.
        """
        if images.dim() != 4 or not images.is_floating_point():
            raise ValueError(
                f"DSA expects float images (N, C, H, W); got {images.dtype} of shape {tuple(images.shape)}"
            )
        n, _, h, w = images.shape
        if (h, w) != tuple(params.im_size):
            raise ValueError(f"DSAParams were drawn for im_size {tuple(params.im_size)} but images are {(h, w)}")
        b = params.batch_size
        if b is not None and not params.siamese and b != n:
            raise ValueError(
                f"per-sample DSAParams hold {b} parameter rows but the batch has {n} images; "
                "draw params for this batch or use siamese=True to share one draw"
            )
        x = images
        for g in params.groups:
            x = getattr(self, f"_apply_{g}")(x, params)
        return x

    def __call__(self, images: torch.Tensor, generator: torch.Generator, siamese: bool = False) -> torch.Tensor:
        """Sample parameters for ``images`` and apply them (see :meth:`sample`, :meth:`apply`)."""
        if images.dim() != 4:
            raise ValueError(f"DSA expects images (N, C, H, W); got shape {tuple(images.shape)}")
        params = self.sample(int(images.shape[0]), tuple(images.shape[-2:]), generator, siamese=siamese)
        return self.apply(images, params)

    def siamese(self, *batches: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """Apply one siamese draw to every batch (e.g. real ``(256, C, H, W)`` and synthetic ``(10, C, H, W)``).

        Raises
        ------
        ValueError
            If no batch is given or the batches differ in ``(H, W)``.
        """
        if not batches:
            raise ValueError("DSA.siamese needs at least one batch")
        sizes = {tuple(x.shape[-2:]) for x in batches}
        if len(sizes) != 1 or any(x.dim() != 4 for x in batches):
            raise ValueError(
                "DSA.siamese needs (N, C, H, W) batches of one image size; "
                f"got {[tuple(x.shape) for x in batches]}"
            )
        params = self.sample(1, sizes.pop(), generator, siamese=True)
        return tuple(self.apply(x, params) for x in batches)

    # ------------------------------------------------------------------ the ops
    @staticmethod
    def _rows(value: torch.Tensor, x: torch.Tensor, n_dims: int = 3) -> torch.Tensor:
        """Parameter ``(B,)`` -> ``(B, 1, 1, 1)`` in ``x``'s dtype/device (broadcasts over N when B == 1)."""
        v = value.to(device=x.device, dtype=x.dtype if value.is_floating_point() else value.dtype)
        return v.view(-1, *([1] * n_dims))

    def _apply_color(self, x: torch.Tensor, p: DSAParams) -> torch.Tensor:
        if p.brightness is not None:
            x = x + self._rows(p.brightness, x)
        if p.saturation is not None:
            mean = x.mean(dim=1, keepdim=True)
            x = (x - mean) * self._rows(p.saturation, x) + mean
        if p.contrast is not None:
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * self._rows(p.contrast, x) + mean
        return x

    def _apply_crop(self, x: torch.Tensor, p: DSAParams) -> torch.Tensor:
        n, _, h, w = x.shape
        shift = p.crop.to(x.device).expand(n, 2)
        pad = int(shift.abs().max()) if shift.numel() else 0
        # Zero padding by the largest shift, then one gather: every output pixel
        # reads a padded-input pixel, so gradients reach exactly the pixels used.
        xp = F.pad(x, (pad, pad, pad, pad))
        rows = torch.arange(h, device=x.device).view(1, h) + shift[:, :1] + pad  # (N, H)
        cols = torch.arange(w, device=x.device).view(1, w) + shift[:, 1:] + pad  # (N, W)
        batch = torch.arange(n, device=x.device).view(n, 1, 1)
        out = xp.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
        # Standard NCHW strides: a channels-last batch runs the ConvNet's slower channels-last kernels. For
        # one channel `.contiguous()` is a no-op (the permuted view already counts as contiguous, with
        # channels-last strides), so copy into the standard layout explicitly.
        return out.permute(0, 3, 1, 2).clone(memory_format=torch.contiguous_format)

    def _apply_cutout(self, x: torch.Tensor, p: DSAParams) -> torch.Tensor:
        _, _, h, w = x.shape
        box = p.cutout.to(x.device)
        r = torch.arange(h, device=x.device).view(1, h)
        c = torch.arange(w, device=x.device).view(1, w)
        in_rows = (r >= box[:, 0:1]) & (r < box[:, 2:3])  # (B, H)
        in_cols = (c >= box[:, 1:2]) & (c < box[:, 3:4])  # (B, W)
        keep = ~(in_rows[:, :, None] & in_cols[:, None, :])  # (B, H, W)
        return x * keep.unsqueeze(1).to(x.dtype)

    def _apply_flip(self, x: torch.Tensor, p: DSAParams) -> torch.Tensor:
        return torch.where(self._rows(p.flip, x), x.flip(3), x)

    def _apply_scale(self, x: torch.Tensor, p: DSAParams) -> torch.Tensor:
        s = p.scale.to(device=x.device, dtype=x.dtype)
        zero = torch.zeros_like(s[:, 0])
        theta = torch.stack(
            [torch.stack([s[:, 0], zero, zero], dim=1), torch.stack([zero, s[:, 1], zero], dim=1)], dim=1
        )
        return self._warp(x, theta)

    def _apply_rotate(self, x: torch.Tensor, p: DSAParams) -> torch.Tensor:
        a = p.rotate.to(device=x.device, dtype=x.dtype)
        cos, sin, zero = torch.cos(a), torch.sin(a), torch.zeros_like(a)
        theta = torch.stack(
            [torch.stack([cos, -sin, zero], dim=1), torch.stack([sin, cos, zero], dim=1)], dim=1
        )
        return self._warp(x, theta)

    @staticmethod
    def _warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Bilinear resampling with sampling matrices ``theta`` (B, 2, 3), zeros outside.

        ``align_corners=True`` as in DSA, which makes the identity matrix an exact identity.
        """
        n = x.shape[0]
        grid = F.affine_grid(theta, [theta.shape[0], *x.shape[1:]], align_corners=True)
        grid = grid.expand(n, -1, -1, -1)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
