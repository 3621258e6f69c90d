"""The configuration of a ``python -m ddlib`` run (:mod:`ddlib.cli`): :class:`RunConfig`, checked before any compute."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ddlib.chapters.scales import SCALES, ScaleSettings, scale_settings
from ddlib.core.config import Config
from ddlib.evaluation.protocols import PROTOCOLS
from ddlib.quickstart_checks import METHODS

__all__ = ["RunConfig", "STAGES", "EXPERT_KINDS"]

STAGES = ("experts", "distill", "evaluate")
#: Expert kinds of the ``experts`` stage: the chapters' MTT (SGD), AST (momentum, gradient penalty,
#: clipped loss, as AST's code trains them) and TGDD experts.
EXPERT_KINDS = ("mtt", "ast", "tgdd")


@dataclasses.dataclass(frozen=True)
class RunConfig(Config):
    """Everything a command-line run needs; a ``--config`` file holds any of these keys.

    ``settings`` overrides :class:`~ddlib.chapters.scales.ScaleSettings` fields of the ``scale``
    preset (``--set key=value`` adds to it). ``None`` means the scale's value or the default path.
    """

    #: Scale preset: ``smoke``, ``mini`` or ``paper``.
    scale: str = "smoke"
    #: ScaleSettings overrides, e.g. ``{"num_experts": 8}``.
    settings: dict = dataclasses.field(default_factory=dict)
    #: Run seed (the notebooks' ``seed``): experts, distillation and evaluation networks derive from it.
    seed: int = 0
    #: ``auto``, ``cpu`` or ``cuda`` (pinned to ``cuda:LOCAL_RANK`` under torchrun).
    device: str = "auto"
    #: Where the stores go; ``None``: ``artifacts/<scale>``, the folder ``make book`` uses.
    artifacts_dir: str | None = None
    #: Folder with the data sets (CIFAR etc.); ``None``: the embedded ones only.
    data_root: str | None = None
    #: ``experts``: which experts (``mtt``, ``ast``, ``tgdd``).
    kind: str = "mtt"
    #: ``distill``/``evaluate``: the distillation method.
    method: str = "mtt"
    #: ``distill``/``evaluate``: images per class; ``None``: the scale's first IPC.
    ipc: int | None = None
    #: ``distill``: outer iterations; ``None``: the scale's count for the method.
    iterations: int | None = None
    #: ``evaluate``: protocol (``mtt``, ``ast``, ``tgdd``).
    protocol: str = "mtt"
    #: ``evaluate``: networks; ``None``: the scale's ``num_eval``.
    num_eval: int | None = None
    #: ``evaluate``: epochs per network; ``None``: the protocol at this scale.
    epochs: int | None = None
    #: ``evaluate``: folder of the set to evaluate; ``None``: the ``distill`` stage's output.
    synthetic: str | None = None
    #: CPU threads per process; ``None``: 1 on the CPU. PyTorch's CPU sums depend on the thread count, so
    #: the same count in every process keeps a store bit-identical for any number of processes.
    threads: int | None = None
    #: Output: the set's folder (``distill``) or the result JSON (``evaluate``); ``None``: under artifacts_dir.
    out: str | None = None

    def validate(self) -> None:
        for name, value, valid in (("scale", self.scale, tuple(SCALES)), ("kind", self.kind, EXPERT_KINDS),
                                   ("method", self.method, METHODS), ("protocol", self.protocol, tuple(PROTOCOLS))):
            if value not in valid:
                raise ValueError(f"{name}={value!r}: expected one of {list(valid)}")
        for name in ("ipc", "iterations", "num_eval", "epochs", "threads"):
            if (value := getattr(self, name)) is not None and value < 1:
                raise ValueError(f"{name}={value}: expected an int >= 1 (or omit it for the scale's value)")
        if self.seed < 0:
            raise ValueError(f"seed={self.seed}: expected >= 0")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device={self.device!r}: expected 'auto', 'cpu' or 'cuda'")
        scale_settings(self.scale, **self.settings)  # names a bad key and lists the valid ones

    @property
    def scale_settings(self) -> ScaleSettings:
        """The scale preset with ``settings`` applied."""
        return scale_settings(self.scale, **self.settings)

    @property
    def artifacts(self) -> Path:
        """``artifacts_dir``, or ``artifacts/<scale>`` (the folder the book build gives the notebooks)."""
        return Path(self.artifacts_dir) if self.artifacts_dir is not None else Path("artifacts") / self.scale

    @property
    def run_ipc(self) -> int:
        """``ipc``, or the scale's first IPC."""
        return self.ipc if self.ipc is not None else self.scale_settings.ipcs[0]
