"""Tables of the Performance chapter, built from the benchmark's JSON results (``benchmarks/run.py``)."""
from __future__ import annotations

from typing import Any, Mapping

__all__ = ["reference_of", "case_note", "benchmark_table"]


def reference_of(result: Mapping[str, Any], reference: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """The reference code's seconds per iteration and peak memory in MB of a case (``None`` where absent).

    Parameters
    ----------
    result : mapping
        One case of the benchmark's ``cases`` (its ``ref`` names the reference case).
    reference : mapping
        The reference figures (``benchmarks/reference.json``): ``cases -> {s_per_iter, peak_gb}``.
    """
    entry = reference["cases"].get(result.get("ref") or "")
    if not entry:
        return None, None
    gb = entry.get("peak_gb")
    return entry.get("s_per_iter"), None if gb is None else gb * 1024


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


def benchmark_table(bench: Mapping[str, Any], reference: Mapping[str, Any], comparable: bool):
    """One row per benchmark case: our time, CPU time, memory and GFLOP/s beside the reference's,
    with the ratios only when ``comparable`` (a full-size run).

    Returns
    -------
    pandas.DataFrame
        Indexed by case; ``None`` where a value does not exist.
    """
    import pandas as pd

    rows = []
    for name, result in bench["cases"].items():
        ref_s, ref_mb = reference_of(result, reference)
        ok = result.get("status") == "ok"
        s, mb = (result["s_per_iter"], result["peak_mb"]) if ok else (None, None)
        rows.append({
            "case": name, "status": result.get("status"), "s/iter": s,
            "CPU s/iter": result.get("cpu_s_per_iter") if ok else None, "peak MB": mb,
            "base MB": result.get("baseline_mb") if ok else None,
            "GFLOP/s": result.get("gflops") if ok else None,
            "ref s/iter": ref_s, "ref MB": ref_mb,
            "time / ref": s / ref_s if comparable and ok and ref_s else None,
            "memory / ref": mb / ref_mb if comparable and ok and ref_mb else None,
            "note": case_note(result) if ok else result.get("reason", ""),
        })
    return pd.DataFrame(rows).set_index("case")
