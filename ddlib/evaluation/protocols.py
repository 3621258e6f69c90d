"""The papers' evaluation protocols: :class:`EvalConfig` (with one preset per paper) and :class:`EvalResult`.

Every paper trains fresh networks on the synthetic set and tests them on real data, but
each authors' code does it differently (MTT's, AST's and TGDD's public code):

========  ======  =====================  ====  =====  ============================  =====================  ========
protocol  epochs  lr                     wd    batch  schedule                      augmentation           reported
========  ======  =====================  ====  =====  ============================  =====================  ========
``mtt``   1000    learned ``syn_lr``     5e-4  256    x0.1 after half               DSA                    last
``ast``   1000    learned ``syn_lr``     1e-3  256    x0.5 two epochs after half,   DSA                    best of
                                                      SGD rebuilt, momentum 0.8                            every 20
``tgdd``  1500    0.01                   5e-4  64     x0.2 at 2/3 and 5/6           colour+crop DiffAug    best of
                                                                                    per sample + CutMix    every 250
========  ======  =====================  ====  =====  ============================  =====================  ========

All use SGD with momentum 0.9. :meth:`EvalConfig.preset` builds a protocol at any length
(the test interval shrinks with the epochs, at least 1); ``ddlib.scale_settings(scale).eval_config(protocol)``
gives it at a book scale, from the one scale table ``ddlib.chapters.scales.SCALES``. :class:`EvalResult` keeps both the last-epoch and the
best-test-point accuracies and names the protocol's reported statistic
(:attr:`EvalResult.statistic`, :attr:`EvalResult.paper_mean`).

AST's schedule in its code (``utils.py evaluate_synset``) loops over epoch indices
``0..E`` and halves the lr after index ``E // 2 + 1``, i.e. once ``E // 2 + 2`` epochs are
finished (``lr_decay_offset = 2``), rebuilding the SGD optimizer with momentum 0.8; ddlib
runs ``E`` epochs, not ``E + 1``, for every protocol. Reporting the maximum test accuracy is
what the AST and TGDD code do: it selects on the test set, so it is an optimistic number.
"""
from __future__ import annotations

import dataclasses
from fractions import Fraction
from types import MappingProxyType
from typing import Any, Literal, Mapping

import numpy as np

from ddlib.core.config import Config
from ddlib.core.precision import check_precision
from ddlib.core.train import OptimizerConfig

__all__ = ["EvalConfig", "EvalResult", "PROTOCOLS", "PAPER_EPOCHS", "DEFAULT_LR", "protocol_epochs"]

# Learning rate when nothing is learned (DC/DM's lr_net, MTT's full-data experts, TGDD's code).
DEFAULT_LR = 0.01

#: The named protocols, one per paper family.
PROTOCOLS = ("mtt", "ast", "tgdd")

#: Training epochs of each protocol at paper scale (MTT: 1000, AST: 1000, TGDD: 1500).
PAPER_EPOCHS: Mapping[str, int] = MappingProxyType({"mtt": 1000, "ast": 1000, "tgdd": 1500})

# Test interval at paper length (0: only after the last epoch): AST tests every 20 epochs,
# TGDD every 250 (their code); shrunk in proportion at shorter lengths.
_PAPER_TEST_EVERY: Mapping[str, int] = MappingProxyType({"mtt": 0, "ast": 20, "tgdd": 250})


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol={protocol!r}: expected one of {list(PROTOCOLS)}")


def protocol_epochs(mtt_epochs: int, protocol: str) -> int:
    """Epochs of ``protocol`` at a scale where MTT's protocol runs ``mtt_epochs`` (same ratio as in the papers).

    >>> protocol_epochs(1000, "tgdd"), protocol_epochs(150, "tgdd"), protocol_epochs(150, "ast")
    (1500, 225, 150)
    """
    _check_protocol(protocol)
    return max(1, round(mtt_epochs * PAPER_EPOCHS[protocol] / PAPER_EPOCHS["mtt"]))


def _protocol_fields(protocol: str) -> dict[str, Any]:
    """The fields a protocol fixes (everything except its length and test interval)."""
    _check_protocol(protocol)
    if protocol == "mtt":  # MTT evaluate_synset
        return dict(protocol="mtt", lr=None, momentum=0.9, weight_decay=5e-4, lr_decay_at=0.5, lr_decay_offset=0,
                    lr_factor=0.1, restart_at_decay=False, momentum_after_decay=None, batch_size=256, dsa=True,
                    augmentation="dsa", statistic="last")
    if protocol == "ast":  # AST utils.py evaluate_synset
        return dict(protocol="ast", lr=None, momentum=0.9, weight_decay=1e-3, lr_decay_at=0.5, lr_decay_offset=2,
                    lr_factor=0.5, restart_at_decay=True, momentum_after_decay=0.8, batch_size=256, dsa=True,
                    augmentation="dsa", statistic="best")
    # TGDD (IDC) train.py: SGD lr 0.01, MultiStepLR [2E // 3, 5E // 6] gamma 0.2, DiffAug + CutMix
    return dict(protocol="tgdd", lr=DEFAULT_LR, momentum=0.9, weight_decay=5e-4, lr_decay_at=(2 / 3, 5 / 6),
                lr_decay_offset=0, lr_factor=0.2, restart_at_decay=False, momentum_after_decay=None, batch_size=64,
                dsa=True, augmentation="tgdd", statistic="best")


@dataclasses.dataclass(frozen=True)
class EvalConfig(Config):
    """Hyper-parameters of the evaluation protocol (defaults: MTT ``evaluate_synset``).

    Build a paper's protocol with :meth:`preset` (``EvalConfig.preset("ast")``) or, at a
    book scale, ``ddlib.scale_settings("mini").eval_config("tgdd")``.

    ``lr=None`` means the set's learned ``syn_lr`` (0.01 if it has none, and for
    :func:`~ddlib.evaluation.runner.evaluate_full_dataset`). ``test_every=k > 0`` also tests
    every ``k`` epochs, for the best-checkpoint accuracy; ``0`` tests only after the last
    epoch. ``batched=True`` trains the ``num_eval`` networks together (same result up to
    rounding; batch-norm models are trained one after another regardless); ``None``
    (default) batches on CUDA and trains sequentially on CPU, where batching is slower.
    ``compile=True`` trains each network through ``torch.compile`` (sequential training
    only, so ``batched=None`` then means sequential; needs a C++ compiler on the CPU).

    The lr schedule: after each finished-epoch count in :attr:`milestones` (one per
    fraction in ``lr_decay_at``: ``int(fraction * epochs)``, at least 1, plus
    ``lr_decay_offset``) the lr is multiplied by ``lr_factor``; with ``restart_at_decay``
    the SGD optimizer is rebuilt there instead (momentum buffers dropped) with momentum
    ``momentum_after_decay`` (AST's code). ``dsa`` switches the training augmentation on;
    ``augmentation`` picks it: ``"dsa"`` (MTT's DSA) or ``"tgdd"`` (per-sample colour+crop
    DiffAug, then CutMix p 0.5; :func:`ddlib.data.cutmix.training_augmentation`).
    ``statistic`` is the accuracy the protocol's paper reports (``"last"`` epoch or
    ``"best"`` test point); ``protocol`` names the preset the values came from (recorded
    with the results, it does not itself change training).
    ``precision="bf16"`` runs the networks' forward passes (training and testing) under
    bfloat16 autocast, parameters and loss in float32 (:mod:`ddlib.core.precision`; ddlib's
    option, the papers evaluate in float32); left out of ``to_dict()`` while ``"fp32"``.
    """

    _omit_when_default = ("precision",)  # cache keys of fp32 runs written before the field existed stay valid

    #: Training epochs of each evaluation network (MTT's ``epoch_eval_train``: 1000; TGDD's code: 1500).
    epochs: int = 1000
    #: Initial lr; ``None``: the set's learned ``syn_lr``, 0.01 if it has none (MTT's ``evaluate_synset``).
    lr: float | None = None
    #: SGD momentum (MTT's ``evaluate_synset``: 0.9, as in AST's and TGDD's code).
    momentum: float = 0.9
    #: SGD weight decay (MTT's ``evaluate_synset``: 5e-4; AST's code: 1e-3).
    weight_decay: float = 5e-4
    #: Fraction(s) of ``epochs`` after which the lr is multiplied by ``lr_factor`` (MTT: 0.5; TGDD: 2/3 and 5/6).
    lr_decay_at: float | tuple[float, ...] = 0.5
    #: Factor of each lr decay (MTT: 0.1 at ``epochs // 2``; AST: 0.5; TGDD: 0.2, twice).
    lr_factor: float = 0.1
    #: Mini-batch size of the evaluation training (MTT's ``evaluate_synset``: 256; TGDD's code: 64).
    batch_size: int = 256
    #: Augment the training batches (MTT: on); ``augmentation`` picks which augmentation.
    dsa: bool = True
    #: Networks trained and tested per evaluation (MTT: 5 runs, mean and std reported).
    num_eval: int = 5
    #: Also test every ``k`` epochs, for the best-checkpoint accuracy; ``0`` (MTT): only after the last epoch.
    test_every: int = 0
    #: Architecture of the evaluation networks (MTT: ConvNet).
    arch: str = "ConvNet"
    #: Width of the evaluation networks (MTT's ConvNet: 128).
    width: int = 128
    #: Depth of the evaluation networks; ``None``: ConvNet's default for the resolution (3 at 32x32).
    depth: int | None = None
    #: Normalisation layer of the evaluation networks (MTT's ConvNet: instance norm).
    norm: str = "instance"
    #: Train the ``num_eval`` networks together; ``None`` (ddlib's choice): batched on CUDA, sequential on CPU
    #: (``ddlib.evaluation.batched``); same result up to rounding.
    batched: bool | None = None
    #: ``torch.compile`` each network (``ddlib.core.compiled``); sequential training only. ddlib's choice: off.
    compile: bool = False
    #: Name of the preset the values came from (default: MTT's); recorded with the results, changes no training.
    protocol: Literal["mtt", "ast", "tgdd"] = "mtt"
    #: Accuracy the protocol's paper reports: MTT's the ``"last"`` epoch (default); AST's and TGDD's the ``"best"``
    #: test point.
    statistic: Literal["last", "best"] = "last"
    #: Training augmentation with ``dsa`` on: ``"dsa"`` (MTT's DSA, default) or ``"tgdd"`` (DiffAug, then CutMix).
    augmentation: Literal["dsa", "tgdd"] = "dsa"
    #: Epochs added to each decay milestone (MTT: 0; AST's code: 2, decay after epoch index ``E // 2 + 1`` of ``0..E``).
    lr_decay_offset: int = 0
    #: Rebuild the SGD optimizer at the decay, dropping its momentum buffers (AST's code); MTT keeps it.
    restart_at_decay: bool = False
    #: Momentum of the rebuilt optimizer; ``None``: unchanged (AST's code: 0.8 after the rebuild).
    momentum_after_decay: float | None = None
    #: ``"fp32"`` (the papers' and default) or ``"bf16"``: forward passes under bfloat16 autocast (ddlib's option).
    precision: str = "fp32"

    def validate(self) -> None:
        check_precision(self.precision, "EvalConfig.precision")
        if isinstance(self.lr_decay_at, list):  # from JSON: keep the config hashable and comparable
            object.__setattr__(self, "lr_decay_at", tuple(self.lr_decay_at))
        fractions = self._fractions()
        checks = {
            "epochs": self.epochs >= 1,
            "lr": self.lr is None or self.lr > 0,
            "momentum": 0 <= self.momentum < 1,
            "weight_decay": self.weight_decay >= 0,
            "lr_decay_at": bool(fractions) and all(0 < f <= 1 for f in fractions)
                           and list(fractions) == sorted(fractions),
            "lr_decay_offset": self.lr_decay_offset >= 0,
            "lr_factor": self.lr_factor > 0,
            "batch_size": self.batch_size >= 1,
            "num_eval": self.num_eval >= 1,
            "test_every": self.test_every >= 0,
            "width": self.width >= 1,
            "momentum_after_decay": self.momentum_after_decay is None or 0 <= self.momentum_after_decay < 1,
        }
        if self.compile and self.batched:
            raise ValueError("EvalConfig(compile=True, batched=True): compile applies to sequential training; "
                             "use batched=None or False with compile=True, or compile=False")
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(
                f"EvalConfig out of range: {', '.join(f'{k}={getattr(self, k)!r}' for k in bad)} "
                "(need epochs>=1, lr>0 or None, 0<=momentum<1, weight_decay>=0, lr_decay_at one fraction or "
                "increasing fractions in (0, 1], lr_decay_offset>=0, lr_factor>0, batch_size>=1, num_eval>=1, "
                "test_every>=0, width>=1, 0<=momentum_after_decay<1 or None)"
            )
        if self.momentum_after_decay is not None and not self.restart_at_decay:
            raise ValueError(f"momentum_after_decay={self.momentum_after_decay} needs restart_at_decay=True "
                             "(only a rebuilt optimizer changes its momentum)")

    def _fractions(self) -> tuple[float, ...]:
        value = self.lr_decay_at
        return (float(value),) if isinstance(value, (int, float)) else tuple(float(v) for v in value)

    @property
    def milestones(self) -> tuple[int, ...]:
        """Finished-epoch counts after which the lr decays (``int(fraction * epochs)``, at least 1, + offset).

        A fraction is read as the nearest fraction with denominator <= 1000, so ``2 / 3`` of
        1500 epochs is exactly 1000 (TGDD's ``2 * E // 3``), not 999 from float rounding.
        """
        return tuple(max(1, int(Fraction(f).limit_denominator(1000) * self.epochs)) + self.lr_decay_offset
                     for f in self._fractions())

    @property
    def decay_epoch(self) -> int:
        """The first of :attr:`milestones` (MTT's and AST's only one)."""
        return self.milestones[0]

    def optimizer_config(self, lr: float) -> OptimizerConfig:
        """The SGD and lr schedule of one evaluation run starting at ``lr`` (drive it with ``ScheduledOptimizer``)."""
        return OptimizerConfig(kind="momentum", lr=lr, momentum=self.momentum, weight_decay=self.weight_decay,
                               milestones=self.milestones, lr_factor=self.lr_factor,
                               restart_at_milestones=self.restart_at_decay,
                               momentum_after_restart=self.momentum_after_decay)

    @classmethod
    def preset(cls, protocol: str = "mtt", *, epochs: int | None = None, **overrides: Any) -> "EvalConfig":
        """The evaluation protocol of a paper (see the module docstring's table).

        Parameters
        ----------
        protocol : {"mtt", "ast", "tgdd"}
        epochs : int, optional
            Training length; ``None``: the paper's (1000, 1000, 1500). The test interval
            (AST: 20, TGDD: 250 at paper length) shrinks in proportion, at least 1.
        **overrides
            Any other field, e.g. ``num_eval=3`` (unknown keys raise ``ValueError``).
        """
        _check_protocol(protocol)
        epochs = PAPER_EPOCHS[protocol] if epochs is None else epochs
        every = _PAPER_TEST_EVERY[protocol]
        test_every = 0 if every == 0 else max(1, round(every * epochs / PAPER_EPOCHS[protocol]))
        return cls(epochs=epochs, test_every=test_every, **_protocol_fields(protocol)).replace(**overrides)


@dataclasses.dataclass(frozen=True)
class EvalResult:
    """Accuracies of the ``num_eval`` runs of one evaluation.

    Attributes
    ----------
    last : tuple of float
        Test accuracy after the last epoch, per run.
    best : tuple of float
        Best test accuracy over the test points, per run (``>= last``).
    best_epoch : tuple of int
        Number of finished epochs at which ``best`` was reached, per run.
    seeds : tuple of int
        Initialisation seed of each run.
    arch : str
    lr : float
        Learning rate the runs started with.
    epochs : int
    protocol : str
        The :class:`EvalConfig` protocol name.
    statistic : {"last", "best"}
        Which of ``last``/``best`` the protocol's paper reports (:attr:`paper_mean`).
    """

    last: tuple[float, ...]
    best: tuple[float, ...]
    best_epoch: tuple[int, ...]
    seeds: tuple[int, ...]
    arch: str
    lr: float
    epochs: int
    protocol: str = "mtt"
    statistic: Literal["last", "best"] = "last"

    def __post_init__(self) -> None:
        if self.statistic not in ("last", "best"):
            raise ValueError(f"statistic={self.statistic!r}: expected 'last' or 'best'")

    @property
    def num_eval(self) -> int:
        return len(self.last)

    # np.std with its default ddof=0 (population), as MTT reports it.
    @property
    def last_mean(self) -> float:
        return float(np.mean(self.last))

    @property
    def last_std(self) -> float:
        return float(np.std(self.last))

    @property
    def best_mean(self) -> float:
        return float(np.mean(self.best))

    @property
    def best_std(self) -> float:
        return float(np.std(self.best))

    @property
    def paper(self) -> tuple[float, ...]:
        """Per-run accuracies of the protocol's reported statistic (``last`` or ``best``)."""
        return self.best if self.statistic == "best" else self.last

    @property
    def paper_mean(self) -> float:
        """Mean of :attr:`paper`: the number to put beside the paper's."""
        return float(np.mean(self.paper))

    @property
    def paper_std(self) -> float:
        return float(np.std(self.paper))

    # The short names of the front door (ddlib.evaluate): the protocol's reported statistic.
    @property
    def values(self) -> tuple[float, ...]:
        """Per-network accuracies of the reported statistic (:attr:`paper`)."""
        return self.paper

    @property
    def mean(self) -> float:
        """Mean of :attr:`values` (:attr:`paper_mean`)."""
        return self.paper_mean

    @property
    def std(self) -> float:
        """Population standard deviation (``ddof=0``, as MTT) of :attr:`values` (:attr:`paper_std`)."""
        return self.paper_std

    def to_dict(self) -> dict[str, Any]:
        """Flat, JSON-friendly record (one row of a results table)."""
        return {
            "arch": self.arch, "lr": self.lr, "epochs": self.epochs, "num_eval": self.num_eval,
            "protocol": self.protocol, "statistic": self.statistic,
            "paper_mean": self.paper_mean, "paper_std": self.paper_std,
            "last_mean": self.last_mean, "last_std": self.last_std,
            "best_mean": self.best_mean, "best_std": self.best_std,
            "last": list(self.last), "best": list(self.best), "best_epoch": list(self.best_epoch),
            "seeds": list(self.seeds),
        }

    def __str__(self) -> str:
        return (f"{self.arch} ({self.protocol} protocol, reports {self.statistic}): "
                f"{100 * self.paper_mean:.2f} +/- {100 * self.paper_std:.2f} % "
                f"(last {100 * self.last_mean:.2f} +/- {100 * self.last_std:.2f} %, "
                f"best {100 * self.best_mean:.2f} +/- {100 * self.best_std:.2f} %, {self.num_eval} runs)")
