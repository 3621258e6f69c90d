"""The evaluation protocol: train fresh networks on a (synthetic) set, test on real data.

Defaults follow MTT's ``evaluate_synset`` (Cazenavette et al., CVPR 2022), which DC,
DSA, DM and MCT share: ``num_eval = 5`` ConvNets trained from scratch for 1000 epochs
with SGD (momentum 0.9, weight decay 5e-4, batch 256) and DSA augmentation, the learning
rate being the set's learned ``syn_lr`` (0.01 when the method learns none) and
multiplied by 0.1 halfway through. The reported number is mean +/- ``np.std``
(population standard deviation, ``ddof=0``) of the final test accuracies. AST's and
TGDD's code evaluate differently (other schedules, best test point reported): their
protocols are ``EvalConfig.preset("ast")`` and ``EvalConfig.preset("tgdd")``
(:mod:`ddlib.evaluation.protocols`, which holds :class:`~ddlib.evaluation.protocols.EvalConfig` and
:class:`~ddlib.evaluation.protocols.EvalResult`).

Differences from the reference code, all deliberate:

* MTT loops over ``Epoch + 1`` epochs and decays after epoch ``Epoch // 2 + 1`` by
  rebuilding the optimizer (dropping the momentum buffer); here ``epochs`` epochs are
  run, the decay is a ``MultiStepLR`` milestone at ``int(epochs * lr_decay_at)`` and
  the momentum buffer is kept. The AST protocol does rebuild (``restart_at_decay``).
* Each run's initialisation and data/augmentation stream come from seeds derived with
  :func:`~ddlib.core.runtime.derive_seed`, so results do not depend on the global RNG.
* Besides the last-epoch accuracy, the best accuracy over the test points
  (``test_every``) is kept, for papers reporting the best checkpoint.
* With ``EvalConfig.batched`` (the default on CUDA) the ``num_eval`` networks are trained
  together (:mod:`ddlib.evaluation.batched`: stacked parameters, one vmapped
  forward/backward per step). Every network still uses its own seeds, batches and
  augmentations, so the result equals the sequential one up to floating-point rounding.
  Models with batch norm (or other buffers/dropout) fall back to sequential training.
  On CPU the default is sequential: measured on 2 cores, vmapped grouped convolutions
  ran at 0.4-0.6x the speed of training the networks one after another.
* With ``EvalConfig.compile`` each network's forward pass goes through ``torch.compile``
  (:mod:`ddlib.core.compiled`), which fuses the norm, ReLU and pooling after each convolution:
  measured on 2 CPU cores (ConvNet-128, IPC 10) 1.3x faster per network and epoch once
  compiled (the first network compiles, a few seconds); results equal eager ones up to
  rounding. Off by default; it applies to sequential training.

Accuracies are fractions in ``[0, 1]``.
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from ddlib.evaluation.batched import batching_unsupported
from ddlib.core.compiled import compiler_missing
from ddlib.data.dataset import ImageDataset
from ddlib.evaluation.protocols import DEFAULT_LR, PROTOCOLS, EvalConfig, EvalResult
from ddlib.evaluation.training import train_batched, train_sequential
from ddlib.core.runtime import derive_seed, make_generator, resolve_device
from ddlib.methods.synthetic import SyntheticSet

logger = logging.getLogger(__name__)

# EvalConfig, EvalResult, DEFAULT_LR and PROTOCOLS are importable from here too; they are documented
# (and listed in __all__) in ddlib.evaluation.protocols, so the API reference describes each once.
__all__ = ["evaluate_synthetic", "evaluate_cross_arch", "evaluate_full_dataset"]


def _build_net(config: EvalConfig, channel: int, num_classes: int, im_size: tuple[int, int], seed: int):
    from ddlib.models import build_model  # imported here: the model zoo is heavy and optional for I/O users

    kwargs: dict[str, Any] = {"norm": config.norm, "seed": seed}
    # Only ConvNets take width/depth; the other families reject them (fixed widths).
    if config.arch.lower().replace("-", "").replace("_", "").startswith("convnet"):
        kwargs.update(width=config.width, depth=config.depth)
    return build_model(config.arch, channel, num_classes, im_size, **kwargs)


def _run_protocol(
    images: torch.Tensor,
    labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    num_classes: int,
    lr: float,
    config: EvalConfig,
    seed: int,
    device: torch.device,
    progress: bool,
    desc: str,
    runs: Sequence[int] | None = None,
) -> EvalResult:
    """Train ``config.num_eval`` fresh networks (or those of ``runs``) on ``images`` and test them."""
    from ddlib.data.cutmix import training_augmentation

    if config.compile and (reason := compiler_missing(device)):
        raise ValueError(reason)
    channel, im_size = int(images.shape[1]), (int(images.shape[2]), int(images.shape[3]))
    images, labels = images.to(device), labels.to(device)
    test_images, test_labels = test_images.to(device), test_labels.to(device)
    augment, mix = training_augmentation(config.augmentation) if config.dsa else (None, None)
    opt_config = config.optimizer_config(lr)
    indices = range(config.num_eval) if runs is None else _checked_runs(runs, config.num_eval)
    runs = [(derive_seed(seed, "eval", run, "init"), derive_seed(seed, "eval", run, "data")) for run in indices]
    # In the images' dtype (float32 for every ddlib set; float64 only in precision tests).
    nets = [_build_net(config, channel, num_classes, im_size, init).to(device=device, dtype=images.dtype)
            for init, _ in runs]
    wanted = (config.batched if config.batched is not None
              else torch.device(device).type == "cuda" and not config.compile)
    batched = wanted and len(runs) > 1
    if batched and (reason := batching_unsupported(nets[0])) is not None:
        logger.info("batched evaluation not applicable (%s): training the %d %s networks one after another",
                    reason, len(runs), config.arch)
        batched = False
    test_points = {e for e in range(1, config.epochs + 1)
                   if e == config.epochs or (config.test_every and e % config.test_every == 0)}
    train = train_batched if batched else train_sequential
    bar = tqdm(total=len(runs) * config.epochs, desc=desc, disable=not progress, leave=False)
    try:
        last, best, best_epoch = train(nets, images, labels, test_images, test_labels,
                                       [make_generator(data) for _, data in runs], augment=augment, mix=mix,
                                       opt_config=opt_config, config=config, test_points=test_points,
                                       device=device, bar=bar)
    finally:
        bar.close()
    seeds = [init for init, _ in runs]
    return EvalResult(last=tuple(last), best=tuple(best), best_epoch=tuple(best_epoch), seeds=tuple(seeds),
                      arch=config.arch, lr=float(lr), epochs=config.epochs, protocol=config.protocol,
                      statistic=config.statistic)


def _checked_runs(runs: Sequence[int], num_eval: int) -> list[int]:
    runs = [int(r) for r in runs]
    if any(not 0 <= r < num_eval for r in runs) or len(set(runs)) != len(runs):
        raise ValueError(f"runs={runs}: expected distinct network indices in [0, {num_eval})")
    return runs


def _test_split(data: ImageDataset, zca) -> tuple[torch.Tensor, torch.Tensor]:
    images = data.images_test
    if zca is not None:
        with torch.no_grad():
            images = zca.transform(images.to(zca.device)).cpu()
    return images, data.labels_test


def _check_compatible(syn: SyntheticSet, data: ImageDataset, zca) -> None:
    expected = (data.channel, *data.im_size)
    if syn.image_shape != expected or syn.num_classes != data.num_classes:
        raise ValueError(
            f"synthetic set {syn.dataset!r} has images {syn.image_shape} and {syn.num_classes} classes; "
            f"data set {data.name!r} has images {expected} and {data.num_classes} classes"
        )
    if syn.zca and zca is None:
        raise ValueError("the synthetic set lives in ZCA space (zca=True): pass the fitted ZCA as zca=...")
    if not syn.zca and zca is not None:
        raise ValueError("zca was given but the synthetic set is not in ZCA space (zca=False)")
    if zca is not None and tuple(zca.feature_shape) != expected:
        raise ValueError(f"ZCA was fitted on images {tuple(zca.feature_shape)}; the data set has {expected}")


def evaluate_synthetic(
    syn: SyntheticSet,
    data: ImageDataset,
    config: EvalConfig = EvalConfig(),
    seed: int = 0,
    *,
    device: str | torch.device = "cpu",
    zca=None,
    progress: bool = True,
    runs: Sequence[int] | None = None,
) -> EvalResult:
    """Train ``config.num_eval`` fresh networks on ``syn`` and test them on ``data``'s test split.

    Parameters
    ----------
    syn : SyntheticSet
        Images ``(N, C, H, W)``; must match ``data`` in ``(C, H, W)`` and class count.
    data : ImageDataset
        Supplies the real test split ``(N_test, C, H, W)``.
    config : EvalConfig
    seed : int
        Run ``i`` initialises from ``derive_seed(seed, "eval", i, "init")`` and draws its
        batches and augmentations from ``derive_seed(seed, "eval", i, "data")``.
    device : str or torch.device
    zca : ZCA, optional
        The fitted whitening, required iff ``syn.zca``; the test images are whitened with it.
    progress : bool
        Show a tqdm bar.
    runs : sequence of int, optional
        Train only these of the ``num_eval`` networks (one process's share of a multi-process
        evaluation); the result then holds their accuracies in this order. Network ``i`` is seeded
        from ``seed`` and ``i`` alone, so its accuracy does not depend on which others run with it.

    Returns
    -------
    EvalResult

    Raises
    ------
    ValueError
        Before any training, if shapes/classes/ZCA do not match (naming both sides).
    """
    _check_compatible(syn, data, zca)
    lr = config.lr if config.lr is not None else (syn.syn_lr if syn.syn_lr is not None else DEFAULT_LR)
    test_images, test_labels = _test_split(data, zca)
    return _run_protocol(syn.images_syn, syn.labels_syn, test_images, test_labels,
                         num_classes=data.num_classes, lr=lr, config=config, seed=seed,
                         device=resolve_device(device), progress=progress,
                         desc=f"eval {config.arch} ipc={syn.ipc}", runs=runs)


def evaluate_cross_arch(
    syn: SyntheticSet,
    data: ImageDataset,
    archs: Sequence[str],
    config: EvalConfig = EvalConfig(),
    seed: int = 0,
    **kwargs: Any,
) -> dict[str, EvalResult]:
    """:func:`evaluate_synthetic` for each architecture in ``archs`` (same seeds for each).

    ``kwargs`` (``device``, ``zca``, ``progress``) are passed on. Every architecture name
    is checked by building it once before any training, so a typo fails fast.
    """
    _check_compatible(syn, data, kwargs.get("zca"))
    configs = {arch: config.replace(arch=arch) for arch in archs}
    for arch, arch_config in configs.items():
        _build_net(arch_config, data.channel, data.num_classes, data.im_size, seed=0)
    return {arch: evaluate_synthetic(syn, data, arch_config, seed, **kwargs) for arch, arch_config in configs.items()}


def evaluate_full_dataset(
    data: ImageDataset,
    config: EvalConfig = EvalConfig(epochs=50, lr=DEFAULT_LR),
    seed: int = 0,
    *,
    device: str | torch.device = "cpu",
    zca=None,
    progress: bool = True,
) -> EvalResult:
    """The same protocol on the whole real training split (the "Full dataset" row).

    ``config.lr=None`` means 0.01 (there is no learned lr); use
    ``ddlib.scale_settings(scale).eval_config(full_dataset=True)`` for the per-scale epochs. With
    ``zca`` both splits are whitened, matching a ZCA-space distillation.
    """
    lr = config.lr if config.lr is not None else DEFAULT_LR
    train_images = data.images_train
    if zca is not None:
        if tuple(zca.feature_shape) != (data.channel, *data.im_size):
            raise ValueError(f"ZCA was fitted on images {tuple(zca.feature_shape)}; "
                             f"the data set has {(data.channel, *data.im_size)}")
        with torch.no_grad():
            train_images = zca.transform(train_images.to(zca.device)).cpu()
    test_images, test_labels = _test_split(data, zca)
    return _run_protocol(train_images, data.labels_train, test_images, test_labels,
                         num_classes=data.num_classes, lr=lr, config=config, seed=seed,
                         device=resolve_device(device), progress=progress,
                         desc=f"eval {config.arch} full {data.name}")
