"""A chapter's dry run: every paper-scale shape and setting, with the counts cut to the minimum.

A paper-scale chapter costs GPU hours; a wrong shape, a missing file or a setting that only
breaks at 128-wide networks on 3x32x32 images should cost seconds instead. A dry run
(``dry_run=True`` with ``scale="paper"``) keeps everything the paper fixes: the data set and
its image shape, the 128-wide networks, ZCA, the MTT table's student steps, expert epochs
matched and learning rates per IPC, every row of every table and the cross-architecture
networks. It cuts only what is counted: one expert per kind, four epochs long, two distillation
iterations, one evaluation network trained for one epoch, one seed and two hundred real
training images and fifty test images (:func:`dry_run_overrides`). Its numbers mean nothing; every record of a dry run
carries ``dry_run: true`` in its run parameters. The ImageNet-subset tables (AST's Table 5,
TGDD's subsets) need their own files and 128x128 networks, and are not part of a dry run.

Without the real files, :func:`~ddlib.data.fake_files.write_fake_cifar` writes fake CIFAR-10/100 files in the exact
on-disk format, so the same loaders run (``scripts/build_book.py --dry-run`` does this).

Examples
--------
>>> dry_run_overrides("cifar10", (1, 10))["train_per_class"]
20
>>> dry_run_overrides("cifar100", (1, 10))["train_per_class"]
10
"""
from __future__ import annotations

from typing import Any, Iterable

__all__ = ["DRY_RUN_COUNTS", "DRY_RUN_TRAIN_IMAGES", "DRY_RUN_TEST_IMAGES", "dry_run_overrides", "probe_iterations"]

#: The counts a dry run cuts (fields of :class:`~ddlib.chapters.scales.ScaleSettings`). Experts
#: last four epochs: the MTT table's start epochs (up to 40) are cut to 1, and its longest window
#: (3 epochs matched, CIFAR-100 IPC 1) fits after it. A chapter whose rows sample longer windows
#: trains longer experts (MCT: :meth:`~ddlib.chapters.mct_chapter.ChapterPlan.expert_config`). TGDD's
#: experts last six, the fewest its schedule allows (learning-rate milestones at 2/3 and 5/6).
DRY_RUN_COUNTS: dict[str, Any] = {
    "num_experts": 1, "expert_epochs_total": 4, "tgdd_expert_epochs_total": 6, "max_start_epoch": 1,
    "iterations": 2, "ablation_iterations": 2, "dm_iterations": 2, "tgdd_iterations": 2,
    "eval_epochs": 1, "num_eval": 1, "eval_max_tests": 1, "eval_every": 1, "seeds": (0,),
}
#: Real training images of a dry run, unless an IPC needs more per class.
DRY_RUN_TRAIN_IMAGES = 200
#: Test images of a dry run, at least one per class: what an evaluation costs (a ResNet-18 on every
#: test image) does not grow with the number of classes.
DRY_RUN_TEST_IMAGES = 50
# Classes of the paper-scale data sets whose count is not 10.
_CLASSES = {"cifar100": 100, "tinyimagenet": 200}


def dry_run_overrides(dataset: str, ipcs: Iterable[int]) -> dict[str, Any]:
    """The :class:`~ddlib.chapters.scales.ScaleSettings` fields a dry run of ``dataset`` at ``ipcs`` sets.

    Parameters
    ----------
    dataset : str
        Canonical data set name (``"cifar10"``, ``"cifar100"``, ...).
    ipcs : iterable of int
        The IPCs the run distils; every class keeps at least ``max(ipcs)`` real images (the
        synthetic sets start from real images) and the split at least
        ``DRY_RUN_TRAIN_IMAGES`` in all; the test split keeps ``DRY_RUN_TEST_IMAGES``, at
        least one per class.

    Returns
    -------
    dict
        ``DRY_RUN_COUNTS`` plus ``train_per_class`` and ``test_per_class``.

    Raises
    ------
    ValueError
        If ``ipcs`` is empty.
    """
    ipcs = tuple(ipcs)
    if not ipcs:
        raise ValueError("ipcs=(): expected the IPCs of the run, e.g. (1, 10, 50)")
    classes = _CLASSES.get(dataset, 10)
    per_class = max(max(ipcs), -(-DRY_RUN_TRAIN_IMAGES // classes))
    return {**DRY_RUN_COUNTS, "train_per_class": per_class, "test_per_class": -(-DRY_RUN_TEST_IMAGES // classes)}


def probe_iterations(iterations: int, default: int = 3) -> int:
    """Iterations a probe times or compares after a distillation's first (its warm-up).

    ``default``, or fewer when the distillations run fewer than ``default + 1`` iterations (a
    dry run's two leave one), and never fewer than one.

    >>> probe_iterations(5000), probe_iterations(2), probe_iterations(1)
    (3, 1, 1)
    """
    return max(1, min(default, iterations - 1))
