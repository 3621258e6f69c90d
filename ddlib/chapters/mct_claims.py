"""The MCT chapter's claims: which comparisons each section makes, and its sentences about them.

Each section of the chapter ends with verdicts on the paper's claims
(:func:`~ddlib.results.recorder.record_claim`) and a sentence of what this run measured. This
module holds the claims, the paper's side of each (``PAPER_A``, ...: the paper's words or
its numbers, never ours) and the functions that turn the run's records into those sentences:

* :func:`path_claims`: Figure (a), the SGD and convexified paths' drops;
* :func:`storage_note`, :func:`storage_claim_texts`: Table (b), ours beside the authors' figures;
* :class:`Comparison`, :func:`record_comparisons`: a paired "``a`` beats ``b``" verdict per
  comparison, with :func:`convergence_comparisons` (Figure (c)), :func:`accuracy_comparisons`
  (Table (d)) and :func:`ablation_comparisons` (Table (e));
* :func:`record_waypoint_claim`, :func:`skipped_text`: Table (e)'s threshold claim and its
  rows left out;
* :func:`agreement_text`: Table (f) in one sentence.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, NamedTuple, Sequence

from ddlib.chapters.mct_runs import checkpoint_label, describe_methods, smoothness_verdicts
from ddlib.results.recorder import Recorder, record_claim
from ddlib.results.seeded import compare_methods, method_values
from ddlib.results.verdicts import Verdict, threshold_verdict

__all__ = ["PAPER_A", "PAPER_C", "PAPER_MTT", "PAPER_E", "PAPER_WAYPOINTS", "WAYPOINT_MARGIN", "path_claims",
           "storage_note", "storage_claim_texts", "Comparison", "record_comparisons", "convergence_comparisons",
           "accuracy_comparisons", "ablation_comparisons", "record_waypoint_claim", "skipped_text",
           "agreement_text"]

PAPER_A = ("validation accuracy along the convexified trajectory increases monotonically, while "
           "the SGD trajectory oscillates (a figure, no numbers)")
PAPER_C = ("under the same accuracy threshold MCT needs far fewer distillation iterations than "
           "MTT (a figure, no numbers)")
PAPER_MTT = "MCT above MTT at IPC 1, 10 and 50 on CIFAR-10, CIFAR-100 and Tiny ImageNet"
#: Table (e)'s paper column: the paper gives directions, no numbers.
PAPER_E = {"MTT": "below MCT", "MCT": "best", "MCT w/o continuous sampling": "below MCT",
           "MCT, uniform lambda": "an ablation of MCT's path-length lambda",
           "MCT, authors' waypoints": "the code's default; the paper stores 2 models"}
PAPER_WAYPOINTS = "2 stored models suffice (the paper); the authors' code stores 4 waypoints"
#: "2 models suffice": the authors' waypoints gain less than this many points.
WAYPOINT_MARGIN = 1.0
# Table (e)'s paired claims against MCT's main row: row -> (claim, the paper's side).
_ABLATION_CLAIMS = {
    "MCT w/o continuous sampling": (
        "continuous sampling beats integer start epochs on the convexified trajectory",
        "convexified trajectory + continuous sampling is best; without it, fewer sampling points"),
    "MCT, uniform lambda": (
        "the path-length lambda beats uniform lambda = t/K",
        "MCT maps epoch t to the cumulative share of each layer's path length; uniform lambda is one of its "
        "ablations (a summary of the paper reads the ablation the other way: uniform 'most effective')")}
_WAYPOINTS = "MCT, authors' waypoints"


def path_claims(stats: Any, per_expert: Any, curves: Any, resolution: float, *, sgd: str, convex: str,
                epochs: int) -> list[tuple[Verdict, str]]:
    """Figure (a)'s verdicts (:func:`~ddlib.chapters.mct_runs.smoothness_verdicts`) and what we measured.

    Parameters
    ----------
    stats, per_expert, curves : pandas.DataFrame
        :func:`~ddlib.chapters.mct_tables.path_statistics`' frames.
    resolution : float
        One test image, in points (100 / number of test images).
    sgd, convex : str
        The method names of the SGD and the convexified paths in the records.
    epochs : int
        ``K``, the last epoch of each path.

    Returns
    -------
    list of (Verdict, str)
        ``"smoother"``'s, then ``"monotone"``'s verdict with its ``ours`` text: each path's
        drops and total drop, and the epochs the convexified path falls into.
    """
    drops = per_expert["total_drop"].unstack("method")  # one row per expert
    verdicts = smoothness_verdicts(drops[sgd], drops[convex], resolution)
    falls = curves.sort_values("epoch").groupby(["method", "expert"])["value"].diff() < 0
    conv_falls = sorted(set(curves.loc[falls & (curves["method"] == convex), "epoch"]))
    num_experts = len(drops)

    def describe(method: str) -> str:
        return (f"{stats.loc[method, 'drops']:.0f} drop(s) totalling {stats.loc[method, 'total_drop']:.1f} "
                f"points over {num_experts} experts x {epochs} epochs")

    ours = {"monotone": f"convexified: {describe(convex)}"
                        + (f", falling into epoch(s) {conv_falls}" if conv_falls else "")
                        + f"; one test image is {resolution:.2g} points",
            "smoother": f"convexified: {describe(convex)}; SGD: {describe(sgd)}"}
    return [(verdict, ours[key]) for key, verdict in verdicts.items()]


def _storage_frames(records: Any, experiment: str, published: Any):
    rows = records[records["experiment"] == experiment]
    authors = published.set_index(["method", "dataset"])["value"]
    ours = rows[rows["metric"] == "buffer_storage_mb"]
    ours = ours.assign(name=ours["config"].str["for_dataset"]).set_index(["method", "name"])["value"]
    return rows, authors, ours


def storage_note(records: Any, experiment: str, published: Any, full: str) -> str:
    """Table (b)'s note on the authors' figures: their file framing, and their Tiny ImageNet net.

    Parameters
    ----------
    records : pandas.DataFrame
        The run's records with :func:`~ddlib.chapters.mct_chapter.record_storage`'s rows.
    published : pandas.DataFrame
        The authors' figures (MB): columns ``method``, ``dataset``, ``value``.
    full : str
        The row name of MTT's full buffer.
    """
    _, authors, ours = _storage_frames(records, experiment, published)
    framing_kb = (authors["MTT", "CIFAR-10"] - ours[full, "CIFAR-10"]) / 100 * 1024
    return (f"The authors' figures are file sizes: on CIFAR-10 their MTT buffer exceeds the raw tensors by "
            f"{framing_kb:.0f} KB per expert (`torch.save` framing). Their Tiny ImageNet figure "
            f"({authors['MTT', 'TinyImageNet']:.0f} MB) matches a depth-3 ConvNet on 64x64 images "
            f"({ours[full, 'TinyImageNet (depth 3)']:.0f} MB computed), not the depth-4 ConvNet MTT "
            f"trains on Tiny ImageNet ({ours[full, 'TinyImageNet']:.0f} MB): the table shows both.")


def storage_claim_texts(records: Any, experiment: str, published: Any, kinds: Mapping[str, str], *,
                        num_experts: int, epochs: int) -> tuple[str, str]:
    """The ``ours`` and ``paper`` texts of Table (b)'s storage verdict.

    ``kinds`` maps ``"full"``, ``"convexified"`` and ``"waypoints"`` to their row names
    (:func:`~ddlib.chapters.mct_chapter.record_storage`); ``epochs`` is ``K``. Ours: the sizes on
    disk and the ratios computed for CIFAR-10; the paper's: its ratio and the authors' figures.
    """
    rows, authors, _ = _storage_frames(records, experiment, published)
    measured = rows[rows["metric"] == "measured_mb"].set_index("method")["value"]
    computed = rows[rows["metric"] == "buffer_storage_mb"]
    c10 = computed[computed["config"].str["for_dataset"] == "CIFAR-10"].set_index("method")["value"]
    full, two, four = kinds["full"], kinds["convexified"], kinds["waypoints"]
    mtt_mb, mct_mb = authors["MTT", "CIFAR-10"], authors["MCT", "CIFAR-10"]
    ours = (f"on disk, {num_experts} experts x {epochs} epochs: {measured[full]:.2f} MB vs {measured[two]:.2f} MB "
            f"(ideal ratio (K+1)/2 = {(epochs + 1) / 2:.1f}); computed for CIFAR-10 at 50 epochs: "
            f"{c10[full] / c10[two]:.1f}x with 2 models, {c10[full] / c10[four]:.1f}x with 4 waypoints")
    paper = (f"~50 models to 2, about 25x; authors' code with 4 waypoints on CIFAR-10: "
             f"{mtt_mb:.0f} MB vs {mct_mb:.0f} MB, {mtt_mb / mct_mb:.1f}x")
    return ours, paper


class Comparison(NamedTuple):
    """One paired claim "``a`` beats ``b``" at ``ipc``, with the paper's side of it."""

    claim: str
    a: str
    b: str
    paper: str
    ipc: int


def record_comparisons(recorder: Recorder, experiment: str, comparisons: Iterable[Comparison]) -> list[str]:
    """Decide and record every comparison, paired over seeds; return the page's sentences.

    Each is :func:`~ddlib.results.seeded.compare_methods` on the last epoch's test accuracy of
    ``experiment``'s records at its IPC, recorded with
    :func:`~ddlib.results.recorder.record_claim`, ``ours`` giving both methods' means
    (:func:`~ddlib.chapters.mct_runs.describe_methods`). One sentence per comparison, in order.
    """
    texts = []
    for c in comparisons:
        verdict = compare_methods(recorder, experiment, c.claim, c.a, c.b, ipc=c.ipc)
        ours = f"IPC {c.ipc}, last-epoch accuracy: " + describe_methods(recorder, experiment, [c.a, c.b], ipc=c.ipc)
        texts.append(record_claim(recorder, experiment, verdict, ours=ours, paper=c.paper, ipc=c.ipc))
    return texts


def convergence_comparisons(ipc: int, early: int, iterations: int) -> list[Comparison]:
    """Figure (c)'s two claims at ``ipc``: MCT above MTT at the ``early`` checkpoint, and MCT
    early above MTT at the end (``iterations``), on :func:`~ddlib.chapters.mct_runs.checkpoint_label`
    names."""
    mct_early = checkpoint_label("MCT", early)
    return [Comparison("MCT is more accurate than MTT early in distillation", mct_early,
                       checkpoint_label("MTT", early), PAPER_C, ipc),
            Comparison("MCT reaches MTT's final accuracy in fewer iterations", mct_early,
                       checkpoint_label("MTT", iterations), PAPER_C, ipc)]


def accuracy_comparisons(ipcs: Sequence[int], published: Mapping[tuple[str, int], float]) -> list[Comparison]:
    """Table (d)'s claims at every IPC: MCT beats MTT, MCT and MTT each beat the random real images.

    ``published`` maps ``(method, ipc)`` to AST's Table 3 on CIFAR-10 (needs ``("MTT", 1)`` and
    ``("Random", 1)``), quoted as the paper's side of the comparisons with random images.
    """
    random = ("every distiller of the papers far above random real images at IPC 1 (AST's "
              f"Table 3 on CIFAR-10: MTT {published['MTT', 1]:.1f} %, random {published['Random', 1]:.1f} %)")
    return [Comparison(f"{a} beats {'random real images' if b == 'Random' else b} at IPC {ipc}", a, b, paper, ipc)
            for ipc in ipcs
            for a, b, paper in (("MCT", "MTT", PAPER_MTT), ("MCT", "Random", random), ("MTT", "Random", random))]


def ablation_comparisons(rows: Iterable[str], ipc: int) -> list[Comparison]:
    """Table (e)'s paired claims of MCT against each of ``rows`` that has one (integer sampling,
    uniform lambda), in that order; the waypoints row has a threshold claim instead
    (:func:`record_waypoint_claim`)."""
    rows = set(rows)
    return [Comparison(claim, "MCT", row, paper, ipc) for row, (claim, paper) in _ABLATION_CLAIMS.items()
            if row in rows]


def record_waypoint_claim(recorder: Recorder, experiment: str, *, ipc: int, margin: float = WAYPOINT_MARGIN,
                          row: str = _WAYPOINTS) -> str:
    """Decide and record "the authors' waypoints gain less than ``margin`` points over 2 models".

    The unit is the seed: each seed's gain of ``row`` over ``"MCT"`` (last epoch, each seed's
    networks averaged), against ``margin`` (:func:`~ddlib.results.verdicts.threshold_verdict`).
    Returns the page's sentence.
    """
    gain = (method_values(recorder, experiment, row, ipc=ipc) - method_values(recorder, experiment, "MCT", ipc=ipc))
    verdict = threshold_verdict(f"the authors' waypoints gain less than {margin:g} point over 2 stored models",
                                gain, margin, direction="less", name="MCT (waypoints) - MCT (2 models)",
                                unit="points")
    ours = f"IPC {ipc}, last-epoch accuracy: " + describe_methods(recorder, experiment, ["MCT", row], ipc=ipc)
    return record_claim(recorder, experiment, verdict, ours=ours, ipc=ipc, paper=PAPER_WAYPOINTS)


def skipped_text(skipped: Sequence[str]) -> str:
    """The page's note on the ablation rows a scale left out (empty when none was)."""
    if not skipped:
        return ""
    return (f"Not run at this scale, to fit its time budget: {', '.join(skipped)}; "
            "their claims are checked at `paper` scale.")


def agreement_text(table: Any, syn_steps: int, ipc: int) -> str:
    """Table (f) in one sentence: the range of the cosine and of the relative difference per start.

    ``table`` is :func:`~ddlib.chapters.mct_tables.agreement_table`'s (index ``images``,
    ``iteration``); starts in the order of the table.
    """
    spread = table.groupby(level="images", sort=False)[["cosine", "relative_difference"]].agg(["min", "max"])
    return (f"With {syn_steps} inner steps at IPC {ipc}, the TESLA image gradient has "
            + "; ".join(f"cosine {r[('cosine', 'min')]:.3f} to {r[('cosine', 'max')]:.3f} with the exact "
                        f"one and differs from it by {r[('relative_difference', 'min')]:.0%} to "
                        f"{r[('relative_difference', 'max')]:.0%} of its norm from the {name}"
                        for name, r in spread.iterrows()) + ".")
