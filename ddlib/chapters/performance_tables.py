"""Tables of the Performance chapter, built from the benchmark's JSON results (``benchmarks/run.py``)."""
from __future__ import annotations

from typing import Any, Mapping

__all__ = ["BENCHMARK_FORMATS", "CONV_FORMATS", "HUGE_PAGES_FORMATS", "case_note", "benchmark_table",
           "benchmark_caption", "targets_table", "targets_caption", "conv_layers", "huge_pages_table"]

# How the page prints each column of its tables (pandas ``Styler.format`` specifications).
BENCHMARK_FORMATS = {"s/iter": "{:.4g}", "CPU s/iter": "{:.4g}", "peak MB": "{:.0f}", "base MB": "{:.0f}",
                     "GFLOP/s": "{:.1f}"}
CONV_FORMATS = {"GFLOP": "{:.2f}", "ms": "{:.1f}", "GFLOP/s": "{:.0f}", "of conv peak": "{:.2f}"}
HUGE_PAGES_FORMATS = {"s/iter, off": "{:.4g}", "s/iter, on": "{:.4g}", "speed-up": "{:.2f}x",
                      "peak MB, off": "{:.0f}", "peak MB, on": "{:.0f}"}


def case_note(result: Mapping[str, Any]) -> str:
    """What a case's time means in words: per image and per epoch, per protocol, or a shortened unroll."""
    if "s_per_cifar10_epoch_estimate" in result:
        return (f"{result['s_per_image'] * 1e3:.2f} ms/image; "
                f"{result['s_per_cifar10_epoch_estimate']:.0f} s per 50k-image epoch")
    if "s_protocol_1000_epochs_estimate" in result:
        return f"{result['s_protocol_1000_epochs_estimate'] / 60:.1f} min for 1000 epochs x 5 networks"
    settings = result.get("settings", {})
    if "syn_steps" in settings and settings["syn_steps"] != settings.get("nominal_steps"):
        return f"{settings['syn_steps']} inner steps (tiny)"
    return ""


def benchmark_table(bench: Mapping[str, Any]):
    """One row per benchmark case: our time, CPU time, memory and GFLOP/s.

    No reference column: the reference code is compared only side by side
    (:mod:`ddlib.chapters.performance_side_by_side`).

    Returns
    -------
    pandas.DataFrame
        Indexed by case; ``None`` where a value does not exist.
    """
    import pandas as pd

    rows = []
    for name, result in bench["cases"].items():
        ok = result.get("status") == "ok"
        rows.append({
            "case": name, "status": result.get("status"), "s/iter": result["s_per_iter"] if ok else None,
            "CPU s/iter": result.get("cpu_s_per_iter") if ok else None,
            "peak MB": result["peak_mb"] if ok else None,
            "base MB": result.get("baseline_mb") if ok else None,
            "GFLOP/s": result.get("gflops") if ok else None,
            "note": case_note(result) if ok else result.get("reason", ""),
        })
    return pd.DataFrame(rows).set_index("case")


def benchmark_caption(size: str) -> str:
    """The caption of :func:`benchmark_table` at benchmark size ``size``."""
    return (f"*Table: our measurements (size {size}). `mtt_*` cases use the recompute memory mode (the "
            f"default), `mtt_graph_*` the graph-keeping one of the MTT code; AST and MCT run at the inner "
            f"steps of the MTT settings they build on. \"-\": a value the case does not have, or a case "
            f"that did not run.*")


def targets_table(bench: Mapping[str, Any]):
    """The speed targets of a benchmark run, one row each, with their verdict in words.

    Parameters
    ----------
    bench : mapping
        The benchmark's results; ``targets`` is a list of ``{text, cases, value, op, threshold, met}``
        where ``met`` is ``True``, ``False`` or ``None`` (no verdict: not comparable, or a case failed).

    Returns
    -------
    pandas.DataFrame
        Columns ``text, cases, value, op, threshold, verdict`` (``"met"``, ``"not met"`` or ``"n/a"``).
    """
    import pandas as pd

    targets = pd.DataFrame(bench["targets"])
    targets["verdict"] = targets["met"].map({True: "met", False: "not met"}).fillna("n/a")
    return targets[["text", "cases", "value", "op", "threshold", "verdict"]]


def targets_caption(size: str) -> str:
    """The caption of the targets table (:func:`targets_table`, or
    :func:`~ddlib.chapters.performance_side_by_side.targets_frame`) at benchmark size ``size``."""
    return (f"*Table: the speed targets: the measured value of the named cases, the comparison and the "
            f"threshold it must meet. Targets against the reference code are judged from the side-by-side "
            f"median (its range beside it), the others from this benchmark (size {size}). \"not "
            f"measured\": no side-by-side measurement of the case; \"n/a\": no verdict, because the "
            f"benchmark is not of full size or a case did not run.*")


def conv_layers(bench: Mapping[str, Any], size: str):
    """The per-layer convolution timings of the ``convnet_fwd_bwd`` case and the text shown with them.

    Parameters
    ----------
    bench : mapping
        The benchmark's results. ``cases.convnet_fwd_bwd`` holds ``conv_layers`` (each ``layer, weight,
        input, gflop, seconds, gflops``), ``conv_share_of_time``, ``conv_gflops``, ``s_per_iter`` and
        ``settings.batch``; ``cases.peak_conv.gflops`` (optional) is the measured convolution peak.
    size : str
        The benchmark's size, for the caption.

    Returns
    -------
    table : pandas.DataFrame or None
        Indexed by layer: ``weight, input, GFLOP, ms, GFLOP/s`` and, with a measured peak, ``of conv
        peak``. ``None`` when the case did not run or has no per-layer timings (they are CPU-only).
    text : str
        The table's caption, or the reason there is no table.
    """
    import pandas as pd

    convnet = bench["cases"].get("convnet_fwd_bwd", {})
    peak_conv = bench["cases"].get("peak_conv", {}).get("gflops")
    if convnet.get("status") != "ok" or not convnet.get("conv_layers"):
        return None, ("No per-layer convolution timings in this benchmark file (they are taken "
                      "on the CPU only).")
    layers = pd.DataFrame([{"layer": layer["layer"], "weight": "x".join(map(str, layer["weight"])),
                            "input": "x".join(map(str, layer["input"])), "GFLOP": layer["gflop"],
                            "ms": layer["seconds"] * 1e3, "GFLOP/s": layer["gflops"]}
                           for layer in convnet["conv_layers"]]).set_index("layer")
    if peak_conv:
        layers["of conv peak"] = layers["GFLOP/s"] / peak_conv
    outside = 1 - convnet["conv_share_of_time"]
    text = (f"*Table: the convolutions of one ConvNet forward and backward pass at batch "
            f"{convnet['settings']['batch']} (size {size}): FLOPs (forward, weight gradient and, "
            f"except for the first layer, input gradient), time inside the convolution calls and "
            f"their rate"
            + (f", against the measured conv peak of {peak_conv:.0f} GFLOP/s" if peak_conv else "")
            + f". All convolutions together: {convnet['conv_gflops']:.0f} GFLOP/s; "
            f"{100 * outside:.0f} % of the pass's {convnet['s_per_iter'] * 1e3:.0f} ms is spent "
            f"outside them. The profiler's own overhead is included in the per-layer times.*")
    return layers, text


def huge_pages_table(bench: Mapping[str, Any], off: Mapping[str, Any]):
    """The cases that ran both with huge pages on (``bench``) and off (``off``), side by side.

    Parameters
    ----------
    bench, off : mapping
        Benchmark results of the same size, with ``THP_MEM_ALLOC_ENABLE=1`` and without.

    Returns
    -------
    pandas.DataFrame
        Indexed by case (those ``ok`` in both, in ``off``'s order): ``s/iter, off``, ``s/iter, on``,
        ``speed-up`` (off over on) and ``peak MB, off``, ``peak MB, on``; empty when none is shared.
    """
    import pandas as pd

    columns = ["case", "s/iter, off", "s/iter, on", "speed-up", "peak MB, off", "peak MB, on"]
    pairs = []
    for name, r_off in off["cases"].items():
        r_on = bench["cases"].get(name, {})
        if r_off.get("status") == "ok" and r_on.get("status") == "ok":
            pairs.append({"case": name, "s/iter, off": r_off["s_per_iter"],
                          "s/iter, on": r_on["s_per_iter"],
                          "speed-up": r_off["s_per_iter"] / r_on["s_per_iter"],
                          "peak MB, off": r_off["peak_mb"], "peak MB, on": r_on["peak_mb"]})
    return pd.DataFrame(pairs, columns=columns).set_index("case")
