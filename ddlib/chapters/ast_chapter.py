"""The AST chapter's cells that do more than one call: its set-up, groups of claims and Table 5.

``notebooks/03_ast.py`` keeps each code cell to a few lines; what a cell used to compute in a loop
lives here, unchanged: the chapter's run objects (:func:`start_ast`), the claims of Tables 3 and 6
and Figure 7 (each function records its verdicts in the order the chapter shows them and returns
their sentences), and Table 5 on the ImageNet subsets (:func:`table5`, run at paper scale only).
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Mapping

from ddlib.chapters.ast_claims import BEST, LAST, paired_claim, record_outcomes, record_per_seed, strongest
from ddlib.chapters.ast_claims import expert_claim, values_at
from ddlib.chapters.ast_experiments import IMAGENET_SUBSETS, fit_zca, run_subset
from ddlib.chapters.ast_seeded import ASTPlan, ASTRuns
from ddlib.chapters.ast_tables import published_value, table3_cells, table5_not_run
from ddlib.chapters.notebook_params import ChapterParams
from ddlib.chapters.session import ChapterRun
from ddlib.data import load_dataset
from ddlib.data.zca import ZCA
from ddlib.evaluation.protocols import EvalConfig
from ddlib.results.recorder import Recorder
from ddlib.results.records import read_records, side_by_side

__all__ = ["ASTSetup", "start_ast", "table3_claims", "table6_claims", "figure7_claim", "record_table5",
           "table5_records_table", "table5", "COMPARED_IN_TABLE3"]

#: Table 3's coresets and DM: AST is tested against the strongest of them at the run's scale.
COMPARED_IN_TABLE3 = ("Random", "Herding", "Forgetting", "DM")


@dataclasses.dataclass(frozen=True)
class ASTSetup:
    """The AST chapter's own run objects, beside :class:`~ddlib.chapters.session.ChapterRun`'s.

    Attributes
    ----------
    plan : ASTPlan
        The rows this scale runs (:meth:`~ddlib.chapters.ast_seeded.ASTPlan.for_scale`).
    eval_config : EvalConfig
        AST's evaluation protocol at this scale (``settings.eval_config("ast")``).
    ablation_ipc : int
        The IPC of the ablations (Tables 1, 2, 6, 7; Figs. 2, 9): 10 at paper scale (the paper's
        CIFAR-100 IPC 10), else the run's first IPC.
    cross_ipc : int
        Table 4's IPC: 50 at paper scale (the paper's), else the run's first IPC.
    zca : ZCA or None
        The whitening fitted on the training images, where MTT's settings whiten at any IPC used.
    runs : ASTRuns
        Every expert, distillation and baseline of the chapter (the authors' code preset).
    """

    plan: ASTPlan
    eval_config: EvalConfig
    ablation_ipc: int
    cross_ipc: int
    zca: ZCA | None
    runs: ASTRuns


def start_ast(run: ChapterRun) -> ASTSetup:
    """The chapter's plan, protocol, IPCs, ZCA and runs for a started chapter.

    Parameters
    ----------
    run : ChapterRun
        From :func:`~ddlib.chapters.session.start_chapter` (``"AST"``).

    Returns
    -------
    ASTSetup
        Its runs train experts from ``run.params.seed`` (cached under ``artifacts_dir``) and keep
        their distillations under ``artifacts_dir/ast-runs``; nothing is trained by this call
        except the ZCA fit (on ``data.images_train``, shape ``(N, C, H, W)``).
    """
    params, settings, data = run.params, run.settings, run.data
    plan = ASTPlan.for_scale(params.scale)
    eval_config = settings.eval_config("ast")
    # The paper's ablations run at IPC 10 (on CIFAR-100) and Table 4 at IPC 50: at paper scale when the run
    # distils that IPC, else (a run restricted to other IPCs, the smaller scales) at the run's first IPC.
    ablation_ipc = 10 if params.scale == "paper" and 10 in settings.ipcs else settings.ipcs[0]
    cross_ipc = 50 if params.scale == "paper" and 50 in settings.ipcs else settings.ipcs[0]
    used_ipcs = {*settings.ipcs, ablation_ipc, cross_ipc}
    zca = fit_zca(data) if any(settings.mtt_config(i).zca for i in used_ipcs) else None
    runs = ASTRuns(data, settings, plan, seed=params.seed, eval_config=eval_config,
                   artifacts_dir=params.artifacts_dir, run_dir=Path(params.artifacts_dir) / "ast-runs", zca=zca,
                   device=run.device, preset="code")
    return ASTSetup(plan=plan, eval_config=eval_config, ablation_ipc=ablation_ipc, cross_ipc=cross_ipc, zca=zca,
                    runs=runs)


def table3_claims(recorder: Recorder, published, dataset: str, ipc: int) -> list[str]:
    """Table 3's claims at ``ipc``, recorded in this order: AST beats MTT; MTT, AST and DM beat random
    real images; AST beats the strongest of :data:`COMPARED_IN_TABLE3` (by mean, best of tests);
    MTT beats DM.

    Parameters
    ----------
    published : pandas.DataFrame
        The AST rows of :func:`~ddlib.results.records.paper_results` (the sentences' paper cells).
    dataset : str
        This run's data set name (picks the paper's column, :func:`~ddlib.chapters.ast_tables.table3_cells`).

    Returns
    -------
    list of str
        The six sentences (markdown), in the order recorded.
    """
    sentences = []
    for a, b in (("AST", "MTT"), ("MTT", "Random"), ("AST", "Random"), ("DM", "Random")):
        what = "random real images" if b == "Random" else b
        sentences.append(paired_claim(recorder, "Table 3", f"{a} beats {what} at IPC {ipc}", a, b, ipc=ipc,
                                      paper=table3_cells(published, dataset, a, b, ipc)))
    best = strongest(recorder, "Table 3", list(COMPARED_IN_TABLE3), ipc=ipc)
    sentences.append(paired_claim(
        recorder, "Table 3", f"AST beats the coresets and DM at IPC {ipc}", "AST", best,
        ipc=ipc, paper="AST is above every coreset and DM in every column; tested here against "
                       f"the strongest of them at this scale ({best}, by mean)"))
    sentences.append(paired_claim(recorder, "Table 3", f"MTT beats DM at IPC {ipc}", "MTT", "DM", ipc=ipc,
                                  paper=table3_cells(published, dataset, "MTT", "DM", ipc)))
    return sentences


def table6_claims(recorder: Recorder, published, names: Mapping[str, str], ipc: int) -> list[str]:
    """Table 6's claims, recorded in this order: momentum multiplies Avg Var more than 2x over SGD
    (experts as units, log ratios); each planned penalised kind is smoother than momentum; the smooth
    experts are more accurate than SGD's; the smooth experts distil better (seeds as units, at ``ipc``).

    Parameters
    ----------
    published : pandas.DataFrame
        The AST rows of :func:`~ddlib.results.records.paper_results` (CIFAR-100 cells beside ours).
    names : mapping
        Expert variant -> Table 6 row name, for the variants this run recorded; needs ``"SGD"``,
        ``"SGD+momentum"`` and ``"momentum+GP+clip"``.

    Returns
    -------
    list of str
        The sentences (markdown), in the order recorded.
    """
    missing = [v for v in ("SGD", "SGD+momentum", "momentum+GP+clip") if v not in names]
    if missing:
        raise ValueError(f"names={dict(names)!r}: expected Table 6 rows of {missing} too")
    sgd, mom, smooth = names["SGD"], names["SGD+momentum"], names["momentum+GP+clip"]
    p6 = functools.partial(published_value, published, "Table 6", dataset="CIFAR-100")  # p6(method, metric)
    sentences = [expert_claim(
        recorder, "Table 6", "momentum alone multiplies Avg Var more than 2x over SGD", mom, sgd,
        "avg_var", ratio=2.0, paper=f"x{p6(mom, 'avg_var') / p6(sgd, 'avg_var'):.0f} (CIFAR-100)")]
    for variant in (v for v in ("momentum+GP", "momentum+GP+clip") if v in names):
        sentences.append(expert_claim(
            recorder, "Table 6", f"{variant} experts are smoother than SGD+momentum experts",
            names[variant], mom, "avg_var", ratio=1.0, direction="less",
            paper=f"Avg Var {p6(names[variant], 'avg_var'):.4g} vs {p6(mom, 'avg_var'):.4g} (CIFAR-100)"))
    sentences.append(expert_claim(
        recorder, "Table 6", "smooth experts are more accurate than SGD experts", smooth, sgd, "expert_acc",
        paper=f"{p6(smooth, 'expert_acc'):.1f} % vs {p6(sgd, 'expert_acc'):.1f} % (CIFAR-100)"))
    sentences.append(paired_claim(
        recorder, "Table 6", "smooth experts distil better than SGD experts", smooth, sgd, ipc=ipc,
        paper=f"{p6(smooth, 'test_acc'):.1f} % vs {p6(sgd, 'test_acc'):.1f} % (CIFAR-100)"))
    return sentences


def figure7_claim(recorder: Recorder, ipc: int, every: int, iterations: int) -> str:
    """Figure 7's claim at ``ipc``: AST's best-so-far accuracy after ``every`` iterations beats MTT's
    after all ``iterations``, paired over seeds.

    Reads the recorded ``best_test_acc`` series (``iteration`` in the config) at those two points,
    records them per seed as ``best_so_far`` (methods ``"AST after <every> iterations"`` and
    ``"MTT after <iterations> iterations"``), then records and returns the verdict's sentence.
    """
    points = {"AST": (f"AST after {every} iterations", every),
              "MTT": (f"MTT after {iterations} iterations", iterations)}
    for method, (name, iteration) in points.items():
        values = values_at(recorder, "Figure 7", method, "best_test_acc", x_name="iteration", x=iteration, ipc=ipc)
        record_per_seed(recorder, "Figure 7", name, "best_so_far", values, ipc=ipc)
    return paired_claim(
        recorder, "Figure 7", f"AST reaches MTT's final accuracy within {every} of "
        f"{iterations} iterations (IPC {ipc})", points["AST"][0], points["MTT"][0],
        metric="best_so_far", ipc=ipc,
        paper="on CIFAR-100, AST matches MTT's final accuracy after a small fraction of its "
              "iterations (Fig. 7)")


def record_table5(params: ChapterParams, runs: ASTRuns, ipcs: tuple[int, ...] = (1, 10)) -> None:
    """Table 5: MTT and AST (:func:`~ddlib.chapters.ast_experiments.run_subset`) on every ImageNet
    subset at ``ipcs``, from the run seed only, each subset recorded under ``out_dir/<subset>``.

    The subsets are loaded from ``params.data_root``; the runs share ``runs``' settings, protocol,
    expert cache and checkpoint folder.
    """
    for subset in IMAGENET_SUBSETS:
        sub = load_dataset(subset, data_root=params.data_root or None).to(runs.device)
        sub_recorder = Recorder(Path(params.out_dir) / subset, "AST", params.scale, sub.name, runs.device,
                                params={"seed": params.seed})
        for ipc in ipcs:
            outcomes = run_subset(sub, runs.settings, ipc, params.seed, artifacts_dir=runs.artifacts_dir,
                                  eval_config=runs.eval_config, folder=runs.run_dir, device=runs.device)
            for method, outcome in outcomes.items():
                record_outcomes(sub_recorder, "Table 5", method, {params.seed: outcome}, ipc=ipc)
        sub_recorder.finish()


def table5_records_table(out_dir: str | Path):
    """Every Table 5 record under ``out_dir`` beside the published cells (one row per data set,
    method and IPC): best of tests compared with the paper's accuracy (its code's statistic), the
    last epoch as ``test_acc_last``.

    Returns
    -------
    pandas.DataFrame
        :func:`~ddlib.results.records.side_by_side` of the records.
    """
    records = read_records(Path(out_dir))
    records = records[records["experiment"] == "Table 5"]
    as_published = {BEST: "test_acc", LAST: "test_acc_last"}  # the paper reports the best of tests
    records = records.assign(metric=records["metric"].replace(as_published))
    return side_by_side(records, "AST", "Table 5", by=("dataset", "method", "ipc"))


def table5(params: ChapterParams, runs: ASTRuns, published):
    """Table 5 as the chapter shows it: run and recorded at paper scale (:func:`record_table5`,
    :func:`table5_records_table`); at any other scale, and in a paper-scale dry run (the ImageNet
    subsets need their own files), the published table alone
    (:func:`~ddlib.chapters.ast_tables.table5_not_run`), with nothing run."""
    if params.scale != "paper" or params.dry_run:
        return table5_not_run(published, "paper dry run" if params.dry_run else params.scale)
    record_table5(params, runs)
    return table5_records_table(params.out_dir)
