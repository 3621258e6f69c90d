"""The measurements of the "Protocol and baselines" chapter that are more than a few lines.

The chapter evaluates the coreset rows of AST's Table 3 (random, herding, k-center,
forgetting and the full data set) with MTT's protocol, once per seed of
``ScaleSettings.seeds``. Seed ``s`` picks the random coreset, k-center's first centers and
forgetting's training run, and is the evaluation seed of every set made with it, so all
rows of one seed are evaluated by the same networks (paired design,
:func:`ddlib.results.seeded.record_evaluation`). Herding's pick depends only on the feature network
(the first expert's final network, shared by every seed): its seeds differ only in their
evaluation networks.

The verdicts: "more images per class give a better random coreset" (paired over seeds,
:func:`ipc_growth_verdict`), "every coreset stays below the full data set" (per seed, the
best coreset against the full data set, :func:`below_full_verdict`) and "experts' test
accuracy rises with their epochs" (one slope per expert, :func:`expert_trend_verdict`).

Accuracies are percent in records and tables, fractions in ``[0, 1]`` in stores and
:class:`~ddlib.evaluation.protocols.EvalResult`.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from ddlib.core.config import Config
from ddlib.methods.coresets import forgetting_coreset, forgetting_counts, herding_coreset, kcenter_coreset, random_coreset
from ddlib.data.dataset import ImageDataset
from ddlib.evaluation.protocols import EvalConfig
from ddlib.evaluation.runner import evaluate_full_dataset, evaluate_synthetic
from ddlib.results.recorder import Recorder
from ddlib.results.records import paired_samples, paper_results
from ddlib.results.seeded import mean_text, record_evaluation
from ddlib.methods.synthetic import SyntheticSet
from ddlib.results.verdicts import Verdict, paired_verdict, trend_verdict

__all__ = ["CORESET_METHODS", "FULL", "EXPERIMENT", "NOT_IN_PAPER", "CoresetPlan", "coreset_ipcs", "make_coreset",
           "evaluate_coresets", "cost_table", "seed_means", "coreset_table", "ipc_growth_verdict", "below_full_verdict",
           "paper_growth_text", "paper_full_text", "expert_curves", "expert_trend_verdict"]

#: The coreset rows, in the order of the chapter's table (K-Center is not in AST's Table 3).
CORESET_METHODS = ("Random", "Herding", "K-Center", "Forgetting")
#: Method name of the full-data-set row.
FULL = "Full dataset"
#: Experiment name of the coreset records (the table of AST they reproduce).
EXPERIMENT = "Table 3"
#: A table cell the paper does not have (rendered in the book, so it reads as words).
NOT_IN_PAPER = "not in the paper"


@dataclasses.dataclass(frozen=True)
class CoresetPlan(Config):
    """Which coresets a run evaluates, at which IPCs, and how many full-data networks per seed.

    Every selected (method, IPC) cell is evaluated with every seed and ``num_eval`` networks;
    the cells, not the seeds, are what a small scale cuts.
    """

    #: IPCs the coresets are evaluated at (AST's Table 3: 1, 10, 50).
    ipcs: tuple[int, ...] = (1, 10, 50)
    #: Coreset methods evaluated (default: all of ``CORESET_METHODS``; K-Center is not in AST's Table 3).
    methods: tuple[str, ...] = CORESET_METHODS
    #: ``None``: every method at every IPC. Else methods other than Random run only at IPCs up to this one;
    #: Random runs at every IPC, because the growth claim compares its IPCs.
    every_method_up_to: int | None = None
    #: Networks trained on the whole training split per seed; ``None``: the protocol's ``num_eval``.
    full_num_eval: int | None = None

    def validate(self) -> None:
        bad = any(isinstance(i, bool) or i < 1 for i in self.ipcs) or len(set(self.ipcs)) != len(self.ipcs)
        if not self.ipcs or bad:
            raise ValueError(f"ipcs={self.ipcs!r}: expected distinct positive ints, e.g. (1, 10)")
        unknown = [m for m in self.methods if m not in CORESET_METHODS]
        if unknown or not self.methods:
            raise ValueError(f"methods={self.methods!r}: expected a non-empty subset of {CORESET_METHODS}")
        if self.every_method_up_to is not None and self.every_method_up_to < 1:
            raise ValueError(f"every_method_up_to={self.every_method_up_to}: expected an IPC >= 1 or None")
        if self.full_num_eval is not None and self.full_num_eval < 1:
            raise ValueError(f"full_num_eval={self.full_num_eval}: expected >= 1 or None")

    @classmethod
    def for_scale(cls, scale: str, ipcs: Iterable[int]) -> "CoresetPlan":
        """The chapter's plan: everything at ``paper`` scale; below it (one CPU thread) every
        method at the smallest IPC, Random at every IPC, one full-data network per seed."""
        ipcs = tuple(sorted(int(i) for i in ipcs))
        if scale == "paper":
            return cls(ipcs=ipcs)
        if scale in ("mini", "smoke"):
            return cls(ipcs=ipcs, every_method_up_to=ipcs[0] if ipcs else None, full_num_eval=1)
        raise ValueError(f"scale={scale!r}: expected 'smoke', 'mini' or 'paper'")

    def cells(self) -> list[tuple[str, int]]:
        """The evaluated (method, IPC) pairs, method-major in :data:`CORESET_METHODS` order."""
        limit = self.every_method_up_to
        return [(m, ipc) for m in CORESET_METHODS if m in self.methods for ipc in sorted(self.ipcs)
                if m == "Random" or limit is None or ipc <= limit]


def coreset_ipcs(params: Any) -> list[int]:
    """The IPCs the chapter evaluates coresets at, sorted: the notebook's ``ipcs`` if it names two or
    more; else IPC 1 and 10 (AST's Table 3) plus every IPC the notebook or the scale names.

    Coresets need no distillation, so IPC 1 and 10 cost little even where the scale distils at
    IPC 1 only, and the chapter's growth claim needs two IPCs. A dry run keeps few real images per
    class (CIFAR-100: 2), so there the added IPCs are capped at what it keeps.

    Parameters
    ----------
    params : ChapterParams
        The checked notebook parameters (:func:`~ddlib.chapters.notebook_params.chapter_params`);
        ``params.ipcs`` is empty when the notebook left ``ipcs`` to the scale.
    """
    if len(params.ipcs) >= 2:
        return sorted(params.ipcs)
    settings = params.settings()
    added = {1, 10}
    if params.dry_run:
        added = {min(ipc, settings.train_per_class) for ipc in added}
    return sorted({*settings.ipcs, *added})


def make_coreset(method: str, data: ImageDataset, ipc: int, seed: int, *, net: nn.Module,
                 forgetting_epochs: int | None = None, width: int = 128, counts: torch.Tensor | None = None,
                 device: str | torch.device = "cpu") -> SyntheticSet:
    """Coreset ``method`` of ``ipc`` images per class for seed ``seed``.

    ``net`` is the feature network of herding and k-center (k-center starts from a seeded
    random center: ``start="random"``). Forgetting trains a ConvNet of ``width`` for
    ``forgetting_epochs`` epochs from ``seed``, unless ``counts`` ``(N_train,)`` already holds
    that run's :func:`~ddlib.methods.coresets.forgetting_counts` (one training run serves every IPC).
    """
    if method == "Random":
        return random_coreset(data, ipc, seed)
    if method == "Herding":
        return herding_coreset(data, ipc, net)
    if method == "K-Center":
        return kcenter_coreset(data, ipc, net, seed, start="random")
    if method == "Forgetting":
        if forgetting_epochs is None:
            raise ValueError("method='Forgetting' needs forgetting_epochs (its training run's length)")
        return forgetting_coreset(data, ipc, epochs=forgetting_epochs, seed=seed, width=width, counts=counts,
                                  device=device)
    raise ValueError(f"method={method!r}: expected one of {CORESET_METHODS}")


def evaluate_coresets(recorder: Recorder, data: ImageDataset, plan: CoresetPlan, eval_config: EvalConfig,
                      full_config: EvalConfig, *, seeds: Sequence[int], net: nn.Module, forgetting_epochs: int,
                      device: str | torch.device = "cpu") -> Any:
    """Evaluate every cell of ``plan`` and the full data set once per seed; record them all.

    Per seed ``s``: forgetting's training run (``forgetting_epochs`` epochs, ConvNet of the
    protocol's width, seed ``s``) when planned, then every cell's coreset evaluated by
    :func:`~ddlib.evaluation.runner.evaluate_synthetic` with seed ``s``, then the full data set
    (``full_config`` with ``plan.full_num_eval`` networks, seed ``s``). Every network's last
    and best accuracy is recorded under :data:`EXPERIMENT` (``distill_seed=s``).

    Returns
    -------
    pandas.DataFrame
        Wall seconds per step: columns ``seed``, ``step`` (method, or forgetting's training
        run), ``ipc`` (None for the full data set and the training run), ``seconds``.
    """
    import pandas as pd

    if plan.full_num_eval is not None:
        full_config = full_config.replace(num_eval=plan.full_num_eval)
    timings = []

    def timed(step: str, ipc: int | None, seed: int, work):
        start = time.perf_counter()
        out = work()
        timings.append({"seed": seed, "step": step, "ipc": ipc, "seconds": time.perf_counter() - start})
        return out

    for s in seeds:
        counts = None
        if any(m == "Forgetting" for m, _ in plan.cells()):
            counts = timed("Forgetting (training run)", None, s, lambda: forgetting_counts(
                data, epochs=forgetting_epochs, seed=s, width=eval_config.width, device=device))
        for method, ipc in plan.cells():
            syn = make_coreset(method, data, ipc, s, net=net, forgetting_epochs=forgetting_epochs,
                               width=eval_config.width, counts=counts, device=device)
            result = timed(method, ipc, s, lambda: evaluate_synthetic(syn, data, eval_config, s, device=device,
                                                                      progress=False))
            record_evaluation(recorder, EXPERIMENT, method, result, distill_seed=s, ipc=ipc,
                              config={"eval": eval_config.to_dict(), "coreset": syn.config})
        full = timed(FULL, None, s, lambda: evaluate_full_dataset(data, full_config, s, device=device,
                                                                  progress=False))
        record_evaluation(recorder, EXPERIMENT, FULL, full, distill_seed=s, config={"eval": full_config.to_dict()})
    return pd.DataFrame(timings, columns=["seed", "step", "ipc", "seconds"]).astype({"ipc": "Int64"})


def cost_table(timings: Any) -> Any:
    """Wall seconds of each step of :func:`evaluate_coresets`, summed over the seeds.

    Returns
    -------
    pandas.DataFrame
        Index (``step``, ``ipc``); one column ``seconds (all seeds)``. ``ipc`` is ``"all"``
        for the steps that use the whole training split (the full data set, forgetting's
        training run), so the rendered table shows no missing value.
    """
    import pandas as pd

    grouped = timings.groupby(["step", "ipc"], dropna=False, sort=False)["seconds"]
    table = grouped.sum().round(1).rename("seconds (all seeds)").to_frame()
    steps, ipcs = table.index.get_level_values("step"), table.index.get_level_values("ipc")
    table.index = pd.MultiIndex.from_arrays([steps, ["all" if pd.isna(i) else int(i) for i in ipcs]],
                                            names=["step", "ipc"])
    return table


def seed_means(records: Any, metric: str = "test_acc") -> Any:
    """One row per (method, IPC, seed) of :data:`EXPERIMENT`: the mean over its networks.

    Returns
    -------
    pandas.DataFrame
        Columns ``method``, ``ipc`` (int, or ``"all"`` for the full data set),
        ``distill_seed``, ``value`` (percent), ``networks``.
    """
    rows = records[(records["experiment"] == EXPERIMENT) & (records["metric"] == metric)].copy()
    if rows.empty:
        raise ValueError(f"no {EXPERIMENT} records of metric {metric!r}: run evaluate_coresets first")
    rows["ipc"] = rows["ipc"].map(lambda v: "all" if v is None or v != v else int(v))
    grouped = rows.groupby(["method", "ipc", "distill_seed"], sort=False)["value"]
    out = grouped.agg(value="mean", networks="size").reset_index()
    out["distill_seed"] = out["distill_seed"].astype(int)
    return out


def _order(method: str) -> int:
    return CORESET_METHODS.index(method) if method in CORESET_METHODS else len(CORESET_METHODS)


def coreset_table(records: Any, *, metric: str = "test_acc", label: str = "ours",
                  paper_datasets: Sequence[str] = ("CIFAR-10", "CIFAR-100", "TinyImageNet")) -> Any:
    """Table 3's coreset rows: ours (mean ± sd over seeds of each seed's network mean) beside AST's.

    Parameters
    ----------
    label : str
        Header of our column, naming the statistic ("ours (last epoch, MTT's protocol)").

    Returns
    -------
    pandas.DataFrame
        One row per (method, ipc): ``label``, ``seeds``, ``networks per seed``, then one
        ``paper: <dataset>`` column per published data set (:data:`NOT_IN_PAPER` where the
        paper has no cell: K-Center, and IPCs the paper does not run).
    """
    import pandas as pd

    means = seed_means(records, metric)
    published = paper_results()
    published = published[(published["paper"] == "AST") & (published["table"] == EXPERIMENT)
                          & (published["metric"] == "test_acc")]
    rows = []
    for (method, ipc), group in means.groupby(["method", "ipc"], sort=False):
        row = {"method": method, "ipc": ipc, label: mean_text(group["value"].to_numpy(), "%"),
               "seeds": len(group), "networks per seed": int(group["networks"].max())}
        for name in paper_datasets:
            cell = published[(published["dataset"] == name) & (published["method"] == method)
                             & (published["ipc"] == str(ipc))]
            row[f"paper: {name}"] = (NOT_IN_PAPER if cell.empty
                                     else f"{cell.iloc[0]['value']:.1f} ± {cell.iloc[0]['std']:.1f}")
        rows.append(row)
    rows.sort(key=lambda r: (_order(r["method"]), r["ipc"] if isinstance(r["ipc"], int) else 10**9))
    return pd.DataFrame(rows)


def ipc_growth_verdict(records: Any, *, method: str = "Random", low: int = 1, high: int = 10,
                       metric: str = "test_acc") -> tuple[Verdict, str]:
    """Verdict on "more images per class give a better random coreset": IPC ``high`` vs ``low``.

    The effect of seed ``s`` is ``method``'s accuracy at ``high`` minus at ``low`` (each the
    mean of that seed's networks; both sets are evaluated with seed ``s``).

    Returns
    -------
    (Verdict, str)
        The verdict and the "ours" text (mean ± sd over seeds at each IPC).
    """
    if not low < high:
        raise ValueError(f"low={low}, high={high}: the growth claim compares two IPCs, low < high "
                         "(evaluate at least two IPCs)")
    rows = records[(records["experiment"] == EXPERIMENT) & (records["metric"] == metric)
                   & (records["method"] == method)]
    a, b = paired_samples(rows, high, low, by="ipc")
    verdict = paired_verdict("more images per class give a better random coreset", a, b,
                             names=(f"{method} IPC {high}", f"IPC {low}"), unit="points")
    return verdict, f"{method} IPC {low}: {mean_text(b, '%')}; IPC {high}: {mean_text(a, '%')}"


def below_full_verdict(records: Any, *, metric: str = "test_acc") -> tuple[Verdict, str]:
    """Verdict on "every coreset stays below the full data set", paired per seed.

    The effect of seed ``s`` is its best coreset (the highest network mean over every method
    and IPC of that seed) minus its full-data-set accuracy; the claim is that it is negative.
    Taking the best coreset per seed makes one verdict cover every coreset, and biases the
    effect towards the coresets (against the claim).

    Returns
    -------
    (Verdict, str)
        The verdict and the "ours" text (which coresets were best, both means).
    """
    means = seed_means(records, metric)
    full = means[means["method"] == FULL].set_index("distill_seed")["value"]
    cores = means[means["method"] != FULL]
    if full.empty or cores.empty:
        raise ValueError(f"below_full_verdict needs {FULL!r} and coreset records; found {sorted(means['method'])}")
    best = cores.loc[cores.groupby("distill_seed")["value"].idxmax()].set_index("distill_seed")
    if sorted(best.index) != sorted(full.index):
        raise ValueError(f"seeds of the coresets {sorted(best.index)} and of the full data set "
                         f"{sorted(full.index)} differ: evaluate both with the same seeds")
    seeds = sorted(full.index)
    a, b = best.loc[seeds, "value"].to_numpy(), full.loc[seeds].to_numpy()
    verdict = paired_verdict("every coreset stays below the full data set", a, b, direction="less",
                             names=("best coreset", "full data set"), unit="points")
    winners = ", ".join(sorted({f"{r.method} IPC {r.ipc}" for r in best.itertuples()}))
    return verdict, f"best coreset per seed ({winners}): {mean_text(a, '%')}; full data set: {mean_text(b, '%')}"


def _published(method: str | None = None, dataset: str = "CIFAR-10") -> Any:
    published = paper_results()
    published = published[(published["paper"] == "AST") & (published["table"] == EXPERIMENT)
                          & (published["dataset"] == dataset) & (published["metric"] == "test_acc")]
    return published if method is None else published[published["method"] == method]


def paper_growth_text(method: str = "Random", dataset: str = "CIFAR-10") -> str:
    """AST's Table 3 row of ``method`` on ``dataset``: ``"CIFAR-10, IPC 1: 14.4 %, IPC 10: ..."``."""
    rows = _published(method, dataset)
    return f"{dataset}, " + ", ".join(f"IPC {r.ipc}: {r.value} %" for r in rows.itertuples())


def paper_full_text(dataset: str = "CIFAR-10") -> str:
    """AST's full-data-set accuracy on ``dataset`` beside its best coreset row."""
    rows = _published(dataset=dataset)
    full = rows[rows["method"] == FULL]["value"].max()
    cores = rows[rows["method"].isin(CORESET_METHODS)]
    top = cores.loc[cores["value"].idxmax()]
    return f"{dataset}, full data set {full} % vs best coreset {top['value']} % ({top['method']}, IPC {top['ipc']})"


def expert_curves(accuracies: Sequence[Sequence[float]]) -> Any:
    """Long table of expert test accuracies: ``accuracies[k][e]`` is expert ``k`` after epoch ``e + 1``.

    Returns
    -------
    pandas.DataFrame
        Columns ``expert``, ``epoch`` (1-based), ``test accuracy (%)``.
    """
    import pandas as pd

    return pd.DataFrame([{"expert": k, "epoch": e, "test accuracy (%)": 100 * float(acc)}
                         for k, curve in enumerate(accuracies) for e, acc in enumerate(curve, 1)],
                        columns=["expert", "epoch", "test accuracy (%)"])


def expert_trend_verdict(accuracies: Sequence[Sequence[float]]) -> tuple[Verdict, str]:
    """Verdict on "experts' test accuracy rises with their epochs": one least-squares slope per expert.

    Parameters
    ----------
    accuracies : sequence of sequences, shape (experts, epochs)
        Test accuracy (fraction) of each expert after each epoch (``store.experts[k]["test_accuracy"]``).

    Returns
    -------
    (Verdict, str)
        The verdict (unit: the experts, each trained from its own seed) and the "ours" text
        (mean accuracy after the first and the last epoch).
    """
    curves = [100 * np.asarray(curve, dtype=np.float64) for curve in accuracies]
    x = [np.arange(1, len(curve) + 1, dtype=np.float64) for curve in curves]
    verdict = trend_verdict("experts' test accuracy rises with their epochs", x, curves,
                            names=("expert test accuracy", "epoch"), unit="points per epoch")
    # The units are the experts (each from its own seed), not distillation seeds.
    verdict = dataclasses.replace(verdict, n_unit="experts" if len(curves) != 1 else "expert")
    first = np.array([c[0] for c in curves])
    last = np.array([c[-1] for c in curves])
    unit = "expert" if len(curves) == 1 else "experts"
    return verdict, (f"{len(curves)} {unit}: after epoch 1 {first.mean():.1f} %, after epoch {len(curves[0])} "
                     f"{last.mean():.1f} % (mean over experts)")
