"""The cluster page's measured section, rendered from ``benchmarks/cluster_check.py``'s JSON.

The page ``book/cluster.md`` types no number of its correctness run: the book build
(``scripts/build_book.py``) writes :func:`cluster_markdown` of the stored measurement
(``benchmarks/measured/cluster_check.json``) into ``cluster_measured.md``, which the page includes.
The Markdown names the machine and date, shows the commands as they ran, and has three tables:
the expert stores of 1 and 2 processes, the distilled sets of 1 and 2 processes, and the rise of
resident memory of one MTT iteration per memory mode.
"""
from __future__ import annotations

from typing import Any, Mapping

__all__ = ["REQUIRED_KEYS", "cluster_markdown"]

#: Every key :func:`cluster_markdown` reads, as dotted paths into the measurement.
REQUIRED_KEYS = (
    "date", "machine.cpu_model", "machine.cores", "torch_version", "python_version", "command",
    "experts.num_experts", "experts.one.command", "experts.one.wall_s", "experts.two.command", "experts.two.wall_s",
    "experts.count", "experts.manifest_equal", "experts.tensors_equal",
    "distill.one.command", "distill.one.wall_s", "distill.two.command", "distill.two.wall_s", "distill.ipc",
    "distill.experts_reused", "distill.labels_equal", "distill.max_abs_pixel", "distill.max_abs_difference",
    *(f"memory.{mode}.{key}" for mode in ("graph", "recompute")
      for key in ("command", "one_process_mb", "per_process_mb", "ratio_largest", "settings.width",
                  "settings.ipc", "settings.steps")),
)

_MODES = {"graph": "graph (the unroll's whole graph kept)",
          "recompute": "recompute (one inner step's graph at a time)"}


def _get(measured: Mapping[str, Any], key: str) -> Any:
    value: Any = measured
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise ValueError(f"cluster measurement: missing key {key!r}; expected the JSON that "
                             "benchmarks/cluster_check.py writes (rerun it)")
        value = value[part]
    return value


def _seconds(value: float) -> str:
    return f"{value:.1f} s"


def _mb(value: float) -> str:
    return f"{value:+,.0f} MB"


def _small(value: float) -> str:
    """``4.8e-7`` (no exponent padding); ``0`` for an exact zero."""
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _code(*commands: str) -> str:
    return "```bash\n" + "\n".join(commands) + "\n```"


def _store_cell(m: Mapping[str, Any]) -> str:
    n = _get(m, "experts.count")
    same = _get(m, "experts.manifest_equal") and _get(m, "experts.tensors_equal")
    if same:
        return f"the same {n} experts: manifest byte for byte, every tensor equal"
    parts = [("manifest", _get(m, "experts.manifest_equal")), ("tensors", _get(m, "experts.tensors_equal"))]
    return "**not the same store**: " + ", ".join(f"{name} differ" for name, equal in parts if not equal)


def cluster_markdown(measured: Mapping[str, Any]) -> str:
    """The Markdown of the cluster page's correctness run, from a ``cluster_check.py`` measurement.

    Parameters
    ----------
    measured : mapping
        The JSON of ``benchmarks/cluster_check.py``: it must hold every key of :data:`REQUIRED_KEYS`
        (wall times in seconds, memory rises in MB, pixel values as stored).

    Returns
    -------
    str
        A sentence naming the machine and date; the experts commands and their table (processes,
        wall time, store); the distillation commands and their table (processes, wall time,
        synthetic images); the memory table (mode, 1 process, each of 2 processes) and the sentence
        with the largest process's share of one process's memory.

    Raises
    ------
    ValueError
        A key of :data:`REQUIRED_KEYS` is missing (naming it).
    """
    for key in REQUIRED_KEYS:
        _get(measured, key)
    m = measured
    n, ipc = _get(m, "experts.num_experts"), _get(m, "distill.ipc")
    graph = _get(m, "memory.graph")
    width, mem_ipc, steps = (_get(m, f"memory.graph.settings.{k}") for k in ("width", "ipc", "steps"))
    reused = "already trained" if _get(m, "distill.experts_reused") else "**trained again**"
    labels = "" if _get(m, "distill.labels_equal") else " (**labels differ**)"
    per_process = {mode: " and ".join(_mb(v) for v in _get(m, f"memory.{mode}.per_process_mb")) for mode in _MODES}
    lines = [
        f"The numbers below come from one run of each command on {_get(m, 'machine.cores')} CPU cores "
        f"({_get(m, 'machine.cpu_model')}; {str(_get(m, 'date'))[:10]}, PyTorch {_get(m, 'torch_version')}, "
        f"Python {_get(m, 'python_version')}), with the Gloo backend, all by `{_get(m, 'command')}`.",
        "",
        _code(_get(m, "experts.one.command"), _get(m, "experts.two.command")),
        "",
        "| processes | wall time | store |",
        "|---|---|---|",
        f"| 1 (`python -m ddlib`) | {_seconds(_get(m, 'experts.one.wall_s'))} | {_get(m, 'experts.count')} experts |",
        f"| 2 (`torchrun`, Gloo) | {_seconds(_get(m, 'experts.two.wall_s'))} | {_store_cell(m)} |",
        "",
        f"The same for one MTT distillation at smoke scale (IPC {ipc}, on the {n} experts above, {reused}), "
        "in the same run:",
        "",
        _code(_get(m, "distill.one.command"), _get(m, "distill.two.command")),
        "",
        "| processes | wall time | synthetic images |",
        "|---|---|---|",
        f"| 1 (`python -m ddlib`) | {_seconds(_get(m, 'distill.one.wall_s'))} | pixel values up to "
        f"{_get(m, 'distill.max_abs_pixel'):.1f} in absolute value |",
        f"| 2 (`torchrun`, Gloo, data-parallel) | {_seconds(_get(m, 'distill.two.wall_s'))} | largest difference "
        f"from one process: {_small(_get(m, 'distill.max_abs_difference'))}{labels} |",
        "",
        f"What data parallelism divides is memory. One MTT iteration at CIFAR-10 shapes (ConvNet-{width}, "
        f"IPC {mem_ipc}, {steps} inner steps, random CIFAR-shaped images), measured in the same run with "
        f"`{graph['command']}` and `{_get(m, 'memory.recompute.command')}` (each process on one thread; the "
        "highest rise of each process's resident memory over a warm-up and a timed iteration, above what it "
        "held before them: the data set and the libraries, which every process holds whole, are not counted):",
        "",
        "| memory mode | 1 process | 2 processes (each) |",
        "|---|---|---|",
        *(f"| {label} | {_mb(_get(m, f'memory.{mode}.one_process_mb'))} | {per_process[mode]} |"
          for mode, label in _MODES.items()),
        "",
        "In graph mode each process keeps the graph of its own part of every inner step's mini-batch, so the "
        f"largest process needs {_get(m, 'memory.graph.ratio_largest'):.2f} of one process's memory for the "
        f"iteration (in recompute mode {_get(m, 'memory.recompute.ratio_largest'):.2f}).",
    ]
    return "\n".join(lines) + "\n"
