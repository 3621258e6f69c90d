"""Op categories and markdown tables for ``benchmarks/profile_iteration.py``'s profiles.

A profiled iteration is a list of ops (``name``, ``calls``, ``self_s``: summed self CPU time);
:func:`categorise` puts each op in one of :data:`CATEGORIES` by its own kind, :func:`summarise`
adds them up with shares of the iteration's wall time (and the ``untraced`` rest: Python, time
between ops). A second grouping charges every event's self time to the layer it serves
(:func:`owner_of`: its autograd node, else its top-level op; :func:`owners`,
:func:`owner_category`), since under ``create_graph=True`` a norm's backward runs as plain
elementwise ops. :func:`category_table`, :func:`flops_table`, :func:`top_ops_table` and
:func:`report` print the sides next to each other as markdown. Functions of plain data (and of
objects shaped like the profiler's events), so tests give them hand-written op lists.
"""
from __future__ import annotations

import math
import re
from typing import Any, Callable, Iterable, Mapping

#: Categories of ops, in table order; ``untraced`` (time outside every op) is added after them.
CATEGORIES = ("convolution", "norm", "elementwise", "matmul", "bookkeeping", "other")
UNTRACED = "untraced"
LABELS = {"convolution": "convolution fwd/bwd kernels", "norm": "batch/instance/group norm",
          "elementwise": "elementwise, activation, pooling, loss", "matmul": "matmul/linear",
          "bookkeeping": "autograd bookkeeping, copies, views", "other": "other (RNG, augmentation, ...)",
          UNTRACED: "untraced (Python, between ops)"}

# Autograd nodes ("ConvolutionBackward0"), the engine's scopes and the optimizers' record_function
# scopes: their SELF time is bookkeeping, since the kernels they run are events of their own.
_BOOKKEEPING_SCOPE = re.compile(r"^(autograd::|torch::autograd::|Optimizer\.|[A-Z]\w*Backward\d*$|AccumulateGrad$)")
# An autograd node's name: the forward op's, CamelCase, + "Backward<n>" once per order of differentiation.
_NODE = re.compile(r"^[A-Z]\w*Backward\d*$")
_ENGINE_SCOPE = "autograd::engine::evaluate_function: "
_CONVOLUTION = re.compile(r"conv(?!ert)")  # convolution, conv2d, mkldnn_convolution, _convolution_double_backward
_NORM = re.compile(r"(batch|group|instance|layer)_norm")  # not aten::norm, a vector norm
_MATMUL = frozenset({"mm", "addmm", "bmm", "baddbmm", "addbmm", "matmul", "linear", "mv", "addmv", "dot", "vdot",
                     "einsum", "_addmm_activation"})
_COPIES = frozenset({
    "copy", "clone", "contiguous", "to", "_to_copy", "empty", "empty_like", "empty_strided", "zeros", "zeros_like",
    "ones", "ones_like", "full", "full_like", "new_empty", "new_empty_strided", "new_zeros", "new_ones", "new_full",
    "scalar_tensor", "fill", "zero", "view", "view_as", "reshape", "reshape_as", "_reshape_alias", "_unsafe_view",
    "as_strided", "slice", "select", "select_backward", "slice_backward", "split", "split_with_sizes", "unbind",
    "chunk", "narrow", "unsqueeze", "squeeze", "flatten", "unflatten", "t", "transpose", "permute", "expand",
    "expand_as", "detach", "alias", "lift_fresh", "cat", "stack", "index", "index_select", "index_put",
    "_index_put_impl", "index_add", "gather", "scatter", "scatter_add", "set", "resize", "resize_as", "item",
    "_local_scalar_dense", "is_nonzero", "unsafe_view", "reshape_alias", "to_copy", "result_type", "resolve_conj",
    "resolve_neg", "requires_grad", "repeat", "type_as", "unfold"})
_ELEMENTWISE = frozenset({
    "add", "sub", "rsub", "mul", "div", "neg", "abs", "sign", "sgn", "pow", "sqrt", "rsqrt", "square", "exp", "exp2",
    "expm1", "log", "log1p", "log2", "reciprocal", "sum", "mean", "prod", "var", "std", "var_mean", "std_mean",
    "norm", "linalg_vector_norm", "max", "min", "amax", "amin", "maximum", "minimum", "clamp", "clamp_min",
    "clamp_max", "clip", "where", "lerp", "addcmul", "addcdiv", "sigmoid", "tanh", "gelu", "silu", "hardtanh", "elu",
    "softplus", "sin", "cos", "floor", "ceil", "round", "trunc", "frac", "fmod", "remainder", "eq", "ne", "lt", "le",
    "gt", "ge", "isfinite", "isnan", "isinf", "all", "any", "logical_and", "logical_or", "logical_not",
    "bitwise_and", "bitwise_or", "cumsum", "masked_fill", "nan_to_num", "sigmoid_backward", "tanh_backward"})
_ELEMENTWISE_PARTS = ("relu", "threshold", "pool", "loss", "softmax", "_foreach_")


def categorise(name: str) -> str:
    """The category (one of :data:`CATEGORIES`) of a profiler event named ``name``, by its own kind.

    ``"aten::mkldnn_convolution"`` -> ``"convolution"``, ``"aten::native_group_norm"`` ->
    ``"norm"`` (the reference's and ddlib's ConvNet use GroupNorm as instance norm),
    ``"aten::add_"`` -> ``"elementwise"`` (in-place variants count as their op),
    ``"aten::addmm"`` -> ``"matmul"``, ``"aten::copy_"`` / ``"aten::view"`` /
    ``"MulBackward0"`` / ``"autograd::engine::evaluate_function: ..."`` -> ``"bookkeeping"``,
    anything unknown (``"aten::grid_sampler_2d"``, ``"aten::uniform_"``) -> ``"other"``.
    This puts an op where its SELF time goes: the elementwise ops that a norm's backward runs
    under ``create_graph=True`` count as elementwise here; :func:`owner_category` counts them
    as the norm's.
    """
    if _BOOKKEEPING_SCOPE.match(name):
        return "bookkeeping"
    op = name.split("::")[-1]
    if op.endswith("_") and not op.endswith("__"):  # add_ -> add, _index_put_impl_ -> _index_put_impl
        op = op[:-1]
    if _CONVOLUTION.search(op):
        return "convolution"
    if _NORM.search(op):
        return "norm"
    if op in _MATMUL:
        return "matmul"
    if op in _COPIES:
        return "bookkeeping"
    if op in _ELEMENTWISE or any(part in op for part in _ELEMENTWISE_PARTS):
        return "elementwise"
    return "other"


def owner_category(name: str) -> str:
    """The category of the layer an op serves, given its owner's name (see :func:`owner_of`).

    An autograd node counts as the forward op it differentiates, to any order:
    ``"NativeGroupNormBackward0"`` and ``"NativeGroupNormBackwardBackward0"`` -> ``"norm"``,
    ``"ConvolutionBackwardBackward0"`` -> ``"convolution"``, ``"AddmmBackward0"`` ->
    ``"matmul"``, ``"ViewBackward0"`` -> ``"bookkeeping"``; the engine's scope around a node
    (``"autograd::engine::evaluate_function: MulBackward0"``) counts as that node. Other names
    (top-level ops such as ``"aten::conv2d"``) are categorised by :func:`categorise`.
    """
    name = name.removeprefix(_ENGINE_SCOPE)
    if _NODE.match(name):
        forward = re.sub(r"(Backward\d*)+$", "", name)
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", forward).lower()  # NativeGroupNorm -> native_group_norm
        return categorise("aten::" + snake)
    return categorise(name)


def owner_of(event: Any) -> str:
    """Name of the autograd node or top-level op that ``event`` runs under (itself included).

    ``event`` has ``name`` and ``cpu_parent`` (``None`` at the top), as the profiler's
    ``FunctionEvent`` does. The nearest autograd node wins (a conv kernel under
    ``ConvolutionBackward0``), else the outermost event (``aten::conv2d`` over
    ``aten::mkldnn_convolution``).
    """
    outer = event
    while event is not None:
        if _NODE.match(event.name):
            return event.name
        outer, event = event, event.cpu_parent
    return outer.name


def owners(events: Iterable[Any]) -> list[dict[str, Any]]:
    """Self times summed per owner (:func:`owner_of`): ``name``, ``calls`` (events), ``self_s``.

    ``events`` are profiler events with ``name``, ``cpu_parent`` and ``self_cpu_time_total``
    (microseconds).
    """
    totals: dict[str, list] = {}
    for event in events:
        entry = totals.setdefault(owner_of(event), [0, 0.0])
        entry[0] += 1
        entry[1] += event.self_cpu_time_total / 1e6
    return [{"name": name, "calls": calls, "self_s": seconds} for name, (calls, seconds) in totals.items()]


def _rows(ops: Iterable[Mapping[str, Any]], wall_s: float, classify: Callable[[str], str]) -> list[dict[str, Any]]:
    rows = []
    for op in ops:
        seconds = float(op["self_s"])
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"op {op['name']!r} has self_s={op['self_s']!r}: expected a finite time >= 0")
        rows.append({"name": op["name"], "category": classify(op["name"]), "calls": int(op["calls"]),
                     "self_s": seconds, "share": seconds / wall_s})
    return sorted(rows, key=lambda row: -row["self_s"])


def _grouped(rows: list[dict[str, Any]], wall_s: float) -> dict[str, dict[str, Any]]:
    categories = {c: {"seconds": 0.0, "share": 0.0, "calls": 0} for c in CATEGORIES}
    for row in rows:
        categories[row["category"]]["seconds"] += row["self_s"]
        categories[row["category"]]["calls"] += row["calls"]
    categories[UNTRACED] = {"seconds": wall_s - sum(row["self_s"] for row in rows), "share": 0.0, "calls": 0}
    for entry in categories.values():
        entry["share"] = entry["seconds"] / wall_s
    return categories


def summarise(ops: Iterable[Mapping[str, Any]], wall_s: float, top: int = 15,
              by_owner: Iterable[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Group one profiled iteration's ops into categories, with shares of its wall time.

    Parameters
    ----------
    ops : iterable of mapping
        One per op name: ``name`` (str), ``calls`` (int) and ``self_s`` (float, its summed self
        CPU time in seconds), as ``profile_iteration.ops_of`` gives them.
    wall_s : float
        Wall time of the profiled span, seconds.
    top : int
        How many ops ``top_ops`` lists.
    by_owner : iterable of mapping, optional
        The same self times summed per owner instead of per op (:func:`owners`); they give
        ``owner_categories`` (by :func:`owner_category`) and ``owners``.

    Returns
    -------
    dict
        ``wall_s``; ``traced_s``, the ops' summed self time; ``categories``: for every entry of
        :data:`CATEGORIES` and :data:`UNTRACED` a dict of ``seconds``, ``share`` (of ``wall_s``)
        and ``calls`` (``untraced`` = ``wall_s - traced_s``, negative if the ops' times overlap);
        ``top_ops``: the ``top`` largest ops by self time, each with ``name``, ``category``,
        ``calls``, ``self_s`` and ``share``; ``ops``: all ops so, largest first; with
        ``by_owner`` also ``owner_categories`` and ``owners``, shaped alike.

    Raises
    ------
    ValueError
        For a ``wall_s`` that is not a positive finite number, a negative ``top``, or an op
        with a negative or non-finite self time.
    """
    if not (isinstance(wall_s, (int, float)) and math.isfinite(wall_s) and wall_s > 0):
        raise ValueError(f"wall_s={wall_s!r}: expected a positive number of seconds")
    if top < 0:
        raise ValueError(f"top={top}: expected >= 0")
    rows = _rows(ops, wall_s, categorise)
    out = {"wall_s": wall_s, "traced_s": sum(row["self_s"] for row in rows), "categories": _grouped(rows, wall_s),
           "top_ops": rows[:top], "ops": rows}
    if by_owner is not None:
        owner_rows = _rows(by_owner, wall_s, owner_category)
        out.update(owner_categories=_grouped(owner_rows, wall_s), owners=owner_rows)
    return out


# -- markdown -------------------------------------------------------------------------------------
def category_table(sides: Mapping[str, Mapping[str, Any]], key: str = "categories") -> str:
    """Markdown: one row per category, for every side its seconds and share of the iteration.

    ``sides`` maps a side's name to its :func:`summarise` result; ``key`` picks the grouping
    (``"categories"``: by op, ``"owner_categories"``: by the layer served). Sides without it
    (failed ones) are left out. The last row is the profiled iteration's wall time.
    """
    names = [name for name, s in sides.items() if key in s]
    lines = ["| category | " + " | ".join(f"{n} s | share" for n in names) + " |",
             "|---|" + "---:|---:|" * len(names)]
    for category in (*CATEGORIES, UNTRACED):
        cells = [f"{sides[n][key][category]['seconds']:.3f} | {100 * sides[n][key][category]['share']:.1f}%"
                 for n in names]
        lines.append(f"| {LABELS[category]} | " + " | ".join(cells) + " |")
    lines.append("| **iteration (wall)** | " + " | ".join(f"**{sides[n]['wall_s']:.3f}** | 100%" for n in names)
                 + " |")
    return "\n".join(lines)


def flops_table(sides: Mapping[str, Mapping[str, Any]]) -> str:
    """Markdown: per side its FLOPs per iteration, profiled and unprofiled seconds, and GFLOP/s."""
    def num(value: Any, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    lines = ["| side | GFLOP / iteration | profiled s | unprofiled s (warm-up) | GFLOP/s (profiled) |",
             "|---|---:|---:|---:|---:|"]
    for name, s in sides.items():
        if "wall_s" not in s:
            lines.append(f"| {name} | failed: {s.get('reason', '?')} | | | |")
            continue
        flops = s.get("flops_per_iter")
        gflop = flops / 1e9 if flops else None
        lines.append(f"| {name} | {num(gflop, '.1f')} | {s['wall_s']:.3f} | {num(s.get('warmup_s'), '.3f')} | "
                     f"{num(gflop / s['wall_s'] if gflop else None, '.1f')} |")
    return "\n".join(lines)


def top_ops_table(summary: Mapping[str, Any], n: int = 10) -> str:
    """Markdown: the ``n`` ops of ``summary`` (a :func:`summarise` result) with the most self time."""
    lines = ["| op | category | calls | self s | share |", "|---|---|---:|---:|---:|"]
    for op in summary["ops"][:n]:
        lines.append(f"| `{op['name']}` | {op['category']} | {op['calls']} | {op['self_s']:.3f} | "
                     f"{100 * op['share']:.1f}% |")
    return "\n".join(lines)


def report(sides: Mapping[str, Mapping[str, Any]]) -> str:
    """The markdown printed at the end: both groupings side by side, FLOPs, each side's top ops."""
    parts = ["## Time per category, one iteration: each op's self time by the op's kind", category_table(sides),
             "## The same time charged to the layer each op serves (its autograd node, else its top-level op)",
             category_table(sides, "owner_categories"), "## FLOPs", flops_table(sides)]
    parts += [f"## Top ops: {name}\n{top_ops_table(s)}" for name, s in sides.items() if "ops" in s]
    return "\n\n".join(parts)
