"""Small tables the notebooks show (derived from code, never typed in)."""
from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import torch

__all__ = ["model_zoo_table", "DEFAULT_ZOO", "dataset_table", "settings_table", "SETTING_MEANINGS"]

#: What each :class:`~ddlib.chapters.scales.ScaleSettings` field sets, in the reader's words (the
#: values come from the settings themselves). Read-only: a module constant, not state.
SETTING_MEANINGS: Mapping[str, str] = MappingProxyType({
    "dataset": "data set",
    "train_per_class": "training images per class",
    "test_per_class": "test images per class",
    "width": "ConvNet width (channels per layer)",
    "num_experts": "expert trajectories trained",
    "expert_epochs_total": "epochs per expert",
    "expert_batch": "expert batch size",
    "ipcs": "images per class distilled",
    "iterations": "distillation iterations",
    "ablation_iterations": "iterations of an ablation row",
    "syn_steps": "student steps per iteration (N)",
    "expert_epochs": "expert epochs matched (M)",
    "max_start_epoch": "latest expert start epoch",
    "batch_syn": "synthetic images per student step",
    "lr_img": "learning rate of the images",
    "lr_lr": "learning rate of the student's step size",
    "lr_teacher": "initial student step size",
    "eval_epochs": "evaluation epochs (MTT's protocol)",
    "num_eval": "evaluation networks per set and seed",
    "eval_max_tests": "tests per evaluation run, at most",
    "seeds": "distillation seeds",
    "eval_every": "iterations between evaluations",
    "dm_iterations": "DM iterations",
    "tgdd_iterations": "TGDD iterations",
    "tgdd_expert_epochs_total": "epochs per TGDD expert",
})
# Settings that None leaves to MTT's published table (per data set and IPC): ScaleSettings.mtt_config.
_MTT_TABLE_FIELDS = ("syn_steps", "expert_epochs", "max_start_epoch", "batch_syn", "lr_img", "lr_lr", "lr_teacher")


def _value_text(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ", ".join(_value_text(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _setting_text(settings: Any, name: str) -> str:
    """The value of setting ``name``, with what ``None`` stands for spelled out."""
    value = getattr(settings, name)
    if value is not None:
        return _value_text(value)
    if name in ("train_per_class", "test_per_class"):
        return "all"
    if name == "ablation_iterations":
        return f"{settings.iterations} (as iterations)"
    if name == "eval_max_tests":
        return "no limit"
    if name in _MTT_TABLE_FIELDS:
        # Resolved the way the distillation resolves it; "all" is a batch of the whole set.
        per_ipc = [getattr(settings.mtt_config(ipc), name) for ipc in settings.ipcs]
        texts = ["all" if v is None else _value_text(v) for v in per_ipc]
        if len(set(texts)) == 1:
            return texts[0]
        return f"{', '.join(texts)} (IPC {_value_text(tuple(settings.ipcs))})"
    return "–"


def settings_table(settings: Any, scale: str, paper: Any = None):
    """Every scale setting: what it sets, the paper scale's value and this run's.

    ``None`` in a setting is spelled out: "all" images per class, the iterations an ablation
    row inherits, "no limit" on tests, and the values MTT's table gives per IPC for the
    distillation settings left to it (``ScaleSettings.mtt_config``), so no cell reads "None".

    Parameters
    ----------
    settings : ScaleSettings
        This run's settings.
    scale : str
        Its scale's name, for the column header.
    paper : ScaleSettings, optional
        The paper scale's settings; ``None``: ``ddlib.chapters.scales.SCALES["paper"]``.

    Returns
    -------
    pandas.DataFrame
        Index ``setting``; columns ``what it sets``, ``paper``, ``this run (<scale>)``.
    """
    import pandas as pd

    from ddlib.chapters.scales import SCALES

    paper = SCALES["paper"] if paper is None else paper
    names = [f.name for f in dataclasses.fields(settings)]
    return pd.DataFrame({"setting": names,
                         "what it sets": [SETTING_MEANINGS.get(n, "") for n in names],
                         "paper": [_setting_text(paper, n) for n in names],
                         f"this run ({scale})": [_setting_text(settings, n) for n in names]}).set_index("setting")


def dataset_table(datasets: Sequence[Any]):
    """One row per data set: split sizes, classes, image shape, normalisation and source.

    Parameters
    ----------
    datasets : sequence of ImageDataset
        E.g. the embedded ``mnist5k`` and ``digits``.

    Returns
    -------
    pandas.DataFrame
        Index ``data set``; columns ``train``, ``test``, ``classes``, ``shape`` (``"CxHxW"``),
        ``mean``, ``std`` (first channel, 4 decimals) and ``source``.
    """
    import pandas as pd

    return pd.DataFrame([{"data set": d.name, "train": len(d.labels_train), "test": len(d.labels_test),
                          "classes": d.num_classes, "shape": f"{d.channel}x{d.im_size[0]}x{d.im_size[1]}",
                          "mean": round(d.mean[0], 4), "std": round(d.std[0], 4), "source": d.source}
                         for d in datasets]).set_index("data set")

# The networks of the papers' cross-architecture tables (MTT/AST: ConvNet, AlexNet, VGG11,
# ResNet18; TGDD adds ResNet-10 and DenseNet-121).
DEFAULT_ZOO = ("ConvNet", "AlexNet", "VGG11", "ResNet18", "ResNet10", "DenseNet121")


def model_zoo_table(channel: int, num_classes: int, im_size: tuple[int, int], names: Sequence[str] | None = None):
    """One row per network: parameter count and output shape at the given input shape.

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, ``parameters``, ``embedding dim``, ``output shape``; a network
        that cannot take the input size shows the reason instead.
    """
    import pandas as pd

    from ddlib.models import build_model

    rows = []
    x = torch.zeros(2, channel, *im_size)
    for name in names or DEFAULT_ZOO:
        try:
            net = build_model(name, channel, num_classes, im_size, seed=0).eval()
            with torch.no_grad():
                out, emb = net(x), net.embed(x)
            rows.append({"model": name, "parameters": sum(p.numel() for p in net.parameters()),
                         "embedding dim": emb.shape[1], "output shape": tuple(out.shape)})
        except ValueError as err:
            rows.append({"model": name, "parameters": None, "embedding dim": None, "output shape": str(err)})
    return pd.DataFrame(rows)
