"""The trajectory-matching settings (MTT with AST's and MCT's switches) and MTT's published table.

:class:`MTTConfig` configures :class:`ddlib.methods.mtt.TrajectoryMatching`;
``MTT_TABLE`` holds MTT's published hyper-parameters per data set and IPC, which
:meth:`MTTConfig.for_dataset` reads, and :meth:`MTTConfig.with_ast` switches on AST's
components as the authors' code or as the paper has them.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Literal

from ddlib.core.config import Config

__all__ = ["MTTConfig", "MTT_TABLE"]


# MTT's published hyper-parameters (its appendix and readme): (syn_steps, expert_epochs, max_start_epoch,
# lr_img, lr_lr, lr_teacher, batch_syn, zca) per (dataset, ipc).
MTT_TABLE = {
    ("cifar10", 1): (50, 2, 2, 100.0, 1e-7, 0.01, None, True),
    ("cifar10", 10): (30, 2, 20, 100.0, 1e-5, 0.001, None, True),
    ("cifar10", 50): (30, 2, 40, 1000.0, 1e-5, 0.001, None, False),
    ("cifar100", 1): (20, 3, 20, 1000.0, 1e-5, 0.01, None, True),
    ("cifar100", 10): (20, 2, 20, 1000.0, 1e-5, 0.01, None, False),
    ("cifar100", 50): (80, 2, 40, 1000.0, 1e-5, 0.01, 125, True),
    ("tinyimagenet", 1): (10, 2, 10, 1e4, 1e-4, 0.01, None, False),
    ("tinyimagenet", 10): (20, 2, 40, 1e4, 1e-4, 0.01, 200, False),
    ("tinyimagenet", 50): (20, 2, 40, 1e4, 1e-4, 0.01, 300, False),
}


@dataclasses.dataclass(frozen=True)
class MTTConfig(Config):
    """Trajectory-matching settings; defaults are MTT's CIFAR-10 IPC 10 row (MTT's published table).

    AST switches (each independent, all off = plain MTT): ``balanced_inner_loss`` (Eq. 2),
    ``intermediate_matching`` (Eq. 4), ``perturbation`` (Eq. 5: ``"paper"`` or the authors'
    ``"code"`` formula, see :func:`ddlib.methods.ast_perturbation.perturb_weights`; ``"none"`` = off),
    ``init="representative"``, ``inner_momentum`` (the AST code's heavy-ball student);
    :meth:`with_ast` turns them on as the code or as the paper has them. MCT:
    ``sampling="continuous"``, and its code's ``gradient="tesla"`` (``"exact"``, the default,
    is the papers' unrolled gradient).

    ``memory="recompute"`` (the default) differentiates through the ``syn_steps`` inner
    steps by exact recomputation: one step's autograd graph at a time (see
    :func:`ddlib.core.unroll_recompute.matching_gradients`), so memory stays flat in ``syn_steps``, at the
    price of one extra first-order pass per step (about 20 % more time on the CPU).
    ``memory="graph"`` keeps the graph of every step, as the MTT code does (memory linear
    in ``syn_steps``, about 0.33 GB per step for ConvNet-128 at IPC 10 on CIFAR-10). Both
    give the same image and ``syn_lr`` gradients up to floating-point rounding.
    ``memory="auto"`` measures one step's graph and keeps the whole graph when ``syn_steps`` of
    them fit in half the device's free memory, else recomputes (``TrajectoryMatching.memory``
    says which it chose).
    """

    #: Synthetic images per class (MTT's CIFAR-10 IPC 10 row).
    ipc: int = 10
    #: Distillation (outer) iterations (MTT: 5000).
    iterations: int = 5000
    #: Student SGD steps ``N`` per iteration (MTT's CIFAR-10 IPC 10 row: 30).
    syn_steps: int = 30
    #: Expert epochs ``M`` from the start snapshot to the target one (MTT's CIFAR-10 IPC 10 row: 2).
    expert_epochs: int = 2
    #: Start epochs are drawn from ``[0, max_start_epoch)`` (MTT's CIFAR-10 IPC 10 row: 20).
    max_start_epoch: int = 20
    #: Learning rate of the images, SGD momentum 0.5 (MTT's CIFAR-10 IPC 10 row: 100).
    lr_img: float = 100.0
    #: Learning rate of the learnable step size ``syn_lr``, SGD momentum 0.5 (MTT's CIFAR-10 IPC 10 row: 1e-5).
    lr_lr: float = 1e-5
    #: Initial ``syn_lr``, the student's step size (MTT's CIFAR-10 IPC 10 row: 0.001).
    lr_teacher: float = 0.001
    #: Synthetic images per inner step; ``None``: the whole synthetic set (MTT's CIFAR-10 IPC 10 row: all).
    batch_syn: int | None = None
    #: DSA augmentation of the student's batches (MTT: on).
    dsa: bool = True
    #: Distil in ZCA-whitened space (as the experts were trained); off by default, although MTT's CIFAR-10
    #: IPC 10 row whitens (``for_dataset`` sets it per row).
    zca: bool = False
    #: Initial images: random real images of the class (default), standard normal noise, or AST's representative init.
    init: Literal["real", "noise", "representative"] = "real"
    #: Clusters of representative init when not ``ipc``; ``None``: ``ipc`` clusters, one image each
    #: (AST's IPC 50 variant: 10 clusters x 5 nearest).
    representative_clusters: int | None = None
    #: Features of representative init: ``"embed"`` (the paper's penultimate features) or ``"logits"`` (AST code).
    representative_features: Literal["embed", "logits"] = "embed"
    #: Start-epoch sampling: ``"integer"`` epochs (MTT) or ``"continuous"`` real-valued ones (MCT).
    sampling: Literal["integer", "continuous"] = "integer"
    #: AST's balanced inner-loop loss (Eq. 2); off: plain MTT.
    balanced_inner_loss: bool = False
    #: ``theta`` of the balanced inner-loop loss (the AST paper, Eq. 2: 8).
    balance_theta: float = 8.0
    #: Log base of the balanced inner-loop loss; ``None``: natural log (the AST paper); 5: the AST code.
    balance_log_base: float | None = None
    #: AST's intermediate matching (Eq. 4); off: plain MTT.
    intermediate_matching: bool = False
    #: Weights of the intermediate terms: ``"equal"`` (beta 1, the AST paper's better choice, Fig. 5) or
    #: ``"adaptive"`` (``i / M``).
    intermediate_beta: Literal["equal", "adaptive"] = "equal"
    #: AST's weight perturbation: Eq. 5 (``"paper"``), the formula of ``distill.py`` (``"code"``), or ``"none"`` (MTT).
    perturbation: Literal["none", "paper", "code"] = "none"
    #: Perturbation strength; ``None``: 0.1 for ``"paper"`` (the AST paper, Sec. 4.1), 1.0 for ``"code"``
    #: (the AST code, ``distill.py``).
    perturbation_alpha: float | None = None
    #: Heavy-ball momentum of the student; 0: plain SGD (MTT, the AST paper); the AST code: 0.9.
    inner_momentum: float = 0.0
    #: ``"recompute"`` (ddlib's choice): one inner step's graph at a time, memory flat in ``syn_steps``;
    #: ``"graph"``: the MTT code's full graph, memory growing per step; ``"auto"``: the graph when
    #: ``syn_steps`` steps of it fit in half the device's free memory, measured on one step
    #: (:mod:`ddlib.core.unroll_memory`), else recomputation.
    memory: Literal["graph", "recompute", "auto"] = "recompute"
    #: ``"exact"``: differentiate through every inner step (MTT, the papers); ``"tesla"``: per-step gradients at
    #: detached student weights scaled by ``syn_lr.item()`` (TESLA; MCT's code), dropping the cross-step terms.
    gradient: Literal["exact", "tesla"] = "exact"
    #: Lower clamp of the learned ``syn_lr`` (ddlib's choice, a deviation logged per iteration): MTT's code has
    #: no bound, and a step size driven to ``<= 0`` makes the student stand still or ascend.
    min_syn_lr: float = 1e-6

    def validate(self) -> None:
        for name in ("ipc", "syn_steps", "expert_epochs", "max_start_epoch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: expected >= 1")
        if self.min_syn_lr <= 0:
            raise ValueError(f"min_syn_lr={self.min_syn_lr}: expected > 0")
        if self.iterations < 0:
            raise ValueError(f"iterations={self.iterations}: expected >= 0")
        for name in ("lr_img", "lr_lr", "lr_teacher"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}={getattr(self, name)}: expected > 0")
        if self.batch_syn is not None and self.batch_syn < 1:
            raise ValueError(f"batch_syn={self.batch_syn}: expected >= 1 or None")
        if not 0.0 <= self.inner_momentum < 1.0:
            raise ValueError(f"inner_momentum={self.inner_momentum}: expected 0 <= inner_momentum < 1")
        if self.perturbation_alpha is not None:
            if self.perturbation == "none":
                raise ValueError(f"perturbation_alpha={self.perturbation_alpha} is set but perturbation='none'; "
                                 "expected perturbation='paper' or 'code' (or perturbation_alpha=None)")
            if self.perturbation_alpha <= 0:
                raise ValueError(f"perturbation_alpha={self.perturbation_alpha}: expected > 0 (or None for the "
                                 "variant's default)")
        if self.representative_clusters is not None and self.ipc % self.representative_clusters:
            raise ValueError(f"ipc={self.ipc} is not a multiple of representative_clusters="
                             f"{self.representative_clusters}")

    @classmethod
    def for_dataset(cls, dataset: str, ipc: int, **overrides: Any) -> "MTTConfig":
        """MTT's published settings for ``dataset`` at ``ipc`` (its appendix and readme), then ``overrides``."""
        from ddlib.data import canonical_name

        key = (canonical_name(dataset), ipc)
        if key not in MTT_TABLE:
            raise ValueError(f"no MTT settings for {key}; known: {sorted(MTT_TABLE)}. Pass the values explicitly.")
        steps, epochs, max_start, lr_img, lr_lr, lr_teacher, batch_syn, zca = MTT_TABLE[key]
        base = cls(ipc=ipc, syn_steps=steps, expert_epochs=epochs, max_start_epoch=max_start, lr_img=lr_img,
                   lr_lr=lr_lr, lr_teacher=lr_teacher, batch_syn=batch_syn, zca=zca)
        return base.replace(**overrides)

    def with_ast(self, variant: Literal["code", "paper"] = "code", **overrides: Any) -> "MTTConfig":
        """AST's full distiller on top of this config, as the authors' code or as the paper has it.

        Both turn on representative initialisation, the balanced inner-loop loss (Eq. 2),
        intermediate matching (Eq. 4) and the weight perturbation (Eq. 5). They differ where
        the code and the paper disagree (AST's paper and its public code):

        * ``"code"`` (the default; the book's main rows): the code's perturbation formula
          (conv weights only, whole-tensor norm, alpha 1), ``log`` base 5 in the balanced
          loss, a heavy-ball student with momentum 0.9, and the expert's logits as the
          features of representative initialisation;
        * ``"paper"``: Eq. 5's filter-wise perturbation with alpha 0.1, the natural log, a
          plain SGD student, and the penultimate features.

        (The code's ``int(ipc / 10)`` images per cluster, i.e. none at IPC 1, is not copied.)

        ``overrides`` are applied last.
        """
        common = dict(init="representative", balanced_inner_loss=True, intermediate_matching=True)
        variants = {"code": dict(perturbation="code", balance_log_base=5.0, inner_momentum=0.9,
                                 representative_features="logits"),
                    "paper": dict(perturbation="paper", balance_log_base=None, inner_momentum=0.0,
                                  representative_features="embed")}
        if variant not in variants:
            raise ValueError(f"variant={variant!r}: expected 'code' (the authors' code) or 'paper'")
        return self.replace(**{**common, **variants[variant], **overrides})
