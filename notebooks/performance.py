# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Performance
#
# How long one iteration of each method takes, how much memory it needs, and how close the
# arithmetic gets to what the machine can do. The numbers come from `benchmarks/run.py`
# (`make bench`), which runs every case in its own fresh Python process (so a case's peak
# memory is its own: the process's maximum resident set size on the CPU,
# `torch.cuda.max_memory_allocated` on a GPU), warms it up once and reports the median of a
# few timed iterations. The workloads are those of the papers' CIFAR-10 runs (ConvNet-128,
# 3x32x32 images, 10 classes) on random data and random expert trajectories: time and memory
# do not depend on the values.
#
# The reference columns are the public MTT and DM code measured once, separately, on the
# same kind of machine with 2 threads; they are read from `benchmarks/reference.json`, not
# typed here. Two settings of ours are not in the reference runs, and each case says which
# it used: `THP_MEM_ALLOC_ENABLE=1` (PyTorch backs CPU tensors of 2 MB and more with
# transparent huge pages; `make` and the benchmark set it, `--huge-pages off` measures
# without; it speeds the reference code up too) and, in the `_compiled` cases only,
# `torch.compile` (`compile=True` of DM, TGDD and the evaluation, off by default). The DM and
# TGDD cases embed the real batch in chunks of 16 images on the CPU (`real_chunk=None`, the
# default); `dm_ipc10_one_pass` embeds it in one pass, as the DM code does. This page reads
# the benchmark's JSON file; it does not time anything itself unless no benchmark has been
# run on this machine.

# %% tags=["parameters"]
scale = "mini"
seed = 0
device = "auto"
data_root = ""
out_dir = "results/performance"
artifacts_dir = "artifacts"
bench_json = ""

# %%
import json
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

import ddlib

sns.set_theme(style="whitegrid")
ROOT = Path(ddlib.__file__).resolve().parent.parent
reference = json.loads((ROOT / "benchmarks" / "reference.json").read_text())
path = Path(bench_json) if bench_json else ROOT / "benchmarks" / "results" / "bench.json"
path = path if path.is_absolute() else ROOT / path
if not path.exists():
    path = Path(out_dir).resolve() / "bench.json"
    display(Markdown(
        f"**No benchmark has been run on this machine**: there is no `benchmarks/results/bench.json`. "
        f"Run `make bench` (or `python benchmarks/run.py --size full`, tens of minutes on 2 CPU threads) and "
        f"rebuild the book. So that this page still shows measured numbers, the tiny benchmark "
        f"(`python benchmarks/run.py --size tiny`: width 8, 8x8 images, one iteration) runs now into "
        f"`{path.parent.name}/`. Its numbers only show that every case runs; they are not comparable "
        f"with the reference."))
    path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--size", "tiny", "--out", str(path),
               "--device", str(device)]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if not path.exists():
        raise RuntimeError(f"the tiny benchmark wrote no results (exit code {run.returncode}):\n"
                           + run.stdout[-2000:] + run.stderr[-2000:])
bench = json.loads(path.read_text())
size, machine = bench["size"], bench["machine"]
comparable = size == "full"
display(Markdown(
    f"Benchmark size **{size}**, read from `{path.name}` ({machine['date']}): {machine['cpu_model']}, "
    f"{machine['threads']} threads on {machine['logical_cpus']} logical CPUs, device `{machine['device']}`, "
    f"torch {machine['torch_version']}, huge pages {machine.get('huge_pages', 'off')}, ddlib commit `{(machine.get('git_sha') or 'unknown')[:10]}`"
    f"{' (uncommitted changes)' if machine.get('git_dirty') else ''}. Load average at the start "
    f"{', '.join(f'{x:.1f}' for x in machine.get('load_average_start') or [])}: a busy machine inflates the times."
    + ("" if comparable else
       f"\n\n**These are `{size}`-size numbers** (width {bench['size_settings']['width']}, "
       f"{bench['size_settings']['side']}x{bench['size_settings']['side']} images, fewer inner steps): they prove "
       f"the cases run, and are **not** comparable with the reference column, so no ratio is shown.")))

# %% [markdown]
# ## Seconds per iteration and peak memory
#
# One row per case. *s/iter* is the median time of one outer iteration (for the expert: one
# epoch; for the evaluation: one epoch of all five networks). *peak MB* is the whole
# process, including the Python interpreter, PyTorch and the data held in memory (the
# distillation cases keep a CIFAR-10-sized training split of 50,000 images, about 600 MB,
# as the real runs and the reference code do); *base MB* is the same measure just before the
# first iteration. *CPU s/iter* is the process's CPU time per iteration (all threads): on a
# busy machine it is less inflated than the wall-clock *s/iter*. *GFLOP/s* divides the FLOPs of one iteration (counted with
# `torch.utils.flop_counter`) by its time. Ratios are ours over the reference (below 1 is
# better) and are given only for the full size.

# %%
def reference_of(result):
    entry = reference["cases"].get(result.get("ref") or "")
    if not entry:
        return None, None
    gb = entry.get("peak_gb")
    return entry.get("s_per_iter"), None if gb is None else gb * 1024


def note(result):
    if "s_per_cifar10_epoch_estimate" in result:
        return f"{result['s_per_image'] * 1e3:.2f} ms/image; {result['s_per_cifar10_epoch_estimate']:.0f} s per 50k-image epoch"
    if "s_protocol_1000_epochs_estimate" in result:
        return f"{result['s_protocol_1000_epochs_estimate'] / 60:.1f} min for 1000 epochs x 5 networks"
    settings = result.get("settings", {})
    if "syn_steps" in settings and settings["syn_steps"] != settings.get("nominal_steps"):
        return f"{settings['syn_steps']} inner steps (tiny)"
    return ""


rows = []
for name, result in bench["cases"].items():
    ref_s, ref_mb = reference_of(result)
    ok = result.get("status") == "ok"
    s, mb = (result["s_per_iter"], result["peak_mb"]) if ok else (None, None)
    rows.append({
        "case": name, "status": result.get("status"), "s/iter": s,
        "CPU s/iter": result.get("cpu_s_per_iter") if ok else None, "peak MB": mb,
        "base MB": result.get("baseline_mb") if ok else None, "GFLOP/s": result.get("gflops") if ok else None,
        "ref s/iter": ref_s, "ref MB": ref_mb,
        "time / ref": s / ref_s if comparable and ok and ref_s else None,
        "memory / ref": mb / ref_mb if comparable and ok and ref_mb else None,
        "note": note(result) if ok else result.get("reason", ""),
    })
table = pd.DataFrame(rows).set_index("case")
display(table.style.format({"s/iter": "{:.4g}", "CPU s/iter": "{:.4g}", "peak MB": "{:.0f}", "base MB": "{:.0f}", "GFLOP/s": "{:.1f}",
                            "ref s/iter": "{:.1f}", "ref MB": "{:.0f}", "time / ref": "{:.2f}",
                            "memory / ref": "{:.2f}"}, na_rep="-"))
display(Markdown(f"*Table: our measurements (size {size}) beside the reference "
                 f"({reference['source']}). AST and MCT are compared with the MTT code at the same number "
                 f"of inner steps, the code they build on; both our memory modes (`mtt_*`: recompute, the default; "
                 f"`mtt_graph_*`: graph) with the MTT code in its only (graph-keeping) mode; the `_compiled` "
                 f"DM case with the DM code, which does not compile.*"))

# %% [markdown]
# ## The issue's targets
#
# Reported, not asserted: a benchmark is not a test, and a shared or busy machine moves the
# times. At the tiny size no verdict is given.

# %%
targets = pd.DataFrame(bench["targets"])
targets["verdict"] = targets["met"].map({True: "met", False: "not met"}).fillna("n/a")
display(targets[["text", "cases", "value", "op", "threshold", "verdict"]].style.format(
    {"value": "{:.3g}"}, na_rep="-").hide(axis="index"))

# %% [markdown]
# ## Inner steps: keeping the graph versus recomputing
#
# Trajectory matching differentiates through `syn_steps` student updates. `memory="graph"`
# (the MTT code's way) keeps the autograd graph of every step, so memory grows with the
# number of steps; `memory="recompute"` (ddlib's default) replays the steps and keeps one
# step's graph at a time, for the same gradients at the cost of one more first-order pass
# per step.

# %%
mtt = []
for name, result in bench["cases"].items():
    settings = result.get("settings", {})
    if result.get("status") == "ok" and settings.get("variant") == "mtt" and settings.get("ipc") == 10:
        mtt.append({"inner steps": settings["syn_steps"], "mode": f"ddlib, {settings['memory']}",
                    "s/iter": result["s_per_iter"], "peak MB": result["peak_mb"]})
if comparable:
    for key, entry in reference["cases"].items():
        if entry.get("ipc") == 10 and entry.get("syn_steps"):
            mtt.append({"inner steps": entry["syn_steps"], "mode": "reference (public MTT code)",
                        "s/iter": entry["s_per_iter"], "peak MB": entry["peak_gb"] * 1024})
mtt = pd.DataFrame(mtt)
if mtt.empty:
    display(Markdown("No MTT IPC 10 case in this benchmark file."))
else:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, column in zip(axes, ["s/iter", "peak MB"]):
        sns.lineplot(data=mtt, x="inner steps", y=column, hue="mode", style="mode", markers=True, dashes=False, ax=ax)
        ax.set_ylim(bottom=0)
        ax.set_title(f"MTT iteration at IPC 10: {column}")
    axes[1].get_legend().remove()
    fig.tight_layout()
    plt.show()
    display(Markdown(
        f"*Figure: seconds per iteration (left) and peak memory (right) of one MTT iteration at IPC 10 against "
        f"the number of inner steps, size {size}. Graph mode grows linearly in both; recompute mode should stay "
        f"flat in memory (its target: 80 steps within 1.2x its own 10-step peak) while costing more time per step."
        + ("" if comparable else " The reference is left out: tiny-size numbers are not comparable with it.")
        + "*"))

# %% [markdown]
# ## Achieved arithmetic throughput
#
# The machine's own ceilings are measured in the same run: a large float32 matrix product
# and the ConvNet's biggest convolution alone (forward and backward at batch 256). The
# ConvNet forward and backward pass adds instance norm, ReLU and pooling, which move memory
# rather than compute; the distillation iterations add the augmentation and, for trajectory
# matching, second-order terms.

# %%
flops = pd.DataFrame([{"case": name, "GFLOP/s": r["gflops"],
                       "kind": "measured peak" if name.startswith("peak_") else "achieved"}
                      for name, r in bench["cases"].items() if r.get("status") == "ok" and r.get("gflops")])
if flops.empty:
    display(Markdown("No FLOP counts in this benchmark file."))
else:
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(flops) + 1.2))
    sns.barplot(data=flops, y="case", x="GFLOP/s", hue="kind", dodge=False, ax=ax)
    ax.set_title(f"GFLOP/s per case (size {size}, {machine['threads']} thread{'s' if machine['threads'] != 1 else ''})")
    fig.tight_layout()
    plt.show()
    display(Markdown(
        "*Figure: achieved GFLOP/s of each case beside the measured matmul and convolution peaks of the same "
        "machine and run. FLOPs are those of the convolutions, matrix products and other operations "
        "`torch.utils.flop_counter` knows; element-wise work (norms, augmentation) is not counted, so the "
        "achieved rate understates the work done.*"))

# %% [markdown]
# Where the ConvNet's time goes: the eager `convnet_fwd_bwd` case also times its convolution
# kernels alone (the profiler's forward and backward convolution calls, matched to the layers
# by shape), so the whole-network rate splits into the rate of each convolution and the share
# of time spent outside them (instance norm, ReLU, pooling and the loss, which stream whole
# activations through memory and do few FLOPs).

# %%
convnet = bench["cases"].get("convnet_fwd_bwd", {})
peak_conv = bench["cases"].get("peak_conv", {}).get("gflops")
if convnet.get("status") != "ok" or not convnet.get("conv_layers"):
    display(Markdown("No per-layer convolution timings in this benchmark file (they are taken on the CPU only)."))
else:
    layers = pd.DataFrame([{"layer": layer["layer"], "weight": "x".join(map(str, layer["weight"])),
                            "input": "x".join(map(str, layer["input"])), "GFLOP": layer["gflop"],
                            "ms": layer["seconds"] * 1e3, "GFLOP/s": layer["gflops"]}
                           for layer in convnet["conv_layers"]]).set_index("layer")
    if peak_conv:
        layers["of conv peak"] = layers["GFLOP/s"] / peak_conv
    display(layers.style.format({"GFLOP": "{:.2f}", "ms": "{:.1f}", "GFLOP/s": "{:.0f}", "of conv peak": "{:.2f}"},
                                na_rep="-"))
    outside = 1 - convnet["conv_share_of_time"]
    display(Markdown(
        f"*Table: the convolutions of one ConvNet forward and backward pass at batch {convnet['settings']['batch']} "
        f"(size {size}): FLOPs (forward, weight gradient and, except for the first layer, input gradient), time "
        f"inside the convolution calls and their rate"
        + (f", against the measured conv peak of {peak_conv:.0f} GFLOP/s" if peak_conv else "")
        + f". All convolutions together: {convnet['conv_gflops']:.0f} GFLOP/s; "
        f"{100 * outside:.0f} % of the pass's {convnet['s_per_iter'] * 1e3:.0f} ms is spent outside them. The "
        f"profiler's own overhead is included in the per-layer times.*"))

# %% [markdown]
# ## Huge pages on and off
#
# Every case above ran with `THP_MEM_ALLOC_ENABLE=1`, as `make` runs the chapters and the
# tests. The reference code was measured without it, and it would speed that code up too, so
# `make bench` also times a few cases with it off (`--huge-pages off`, written to
# `bench_huge_pages_off.json`): the difference is what the setting alone buys; the rest of the
# distance to the reference is the code's.

# %%
off_path = path.with_name("bench_huge_pages_off.json")
off = json.loads(off_path.read_text()) if off_path.exists() else None
if off is None or off.get("size") != size:
    display(Markdown(f"No `{off_path.name}` of size {size} beside `{path.name}`: run `python benchmarks/run.py "
                     f"--size {size} --huge-pages off --out {off_path.name}` for the comparison."))
else:
    pairs = []
    for name, r_off in off["cases"].items():
        r_on = bench["cases"].get(name, {})
        if r_off.get("status") == "ok" and r_on.get("status") == "ok":
            pairs.append({"case": name, "s/iter, off": r_off["s_per_iter"], "s/iter, on": r_on["s_per_iter"],
                          "speed-up": r_off["s_per_iter"] / r_on["s_per_iter"],
                          "peak MB, off": r_off["peak_mb"], "peak MB, on": r_on["peak_mb"]})
    if not pairs:
        display(Markdown(f"`{off_path.name}` shares no successful case with `{path.name}`."))
    else:
        display(pd.DataFrame(pairs).set_index("case").style.format(
            {"s/iter, off": "{:.4g}", "s/iter, on": "{:.4g}", "speed-up": "{:.2f}x", "peak MB, off": "{:.0f}",
             "peak MB, on": "{:.0f}"}))
        display(Markdown(
            f"*Table: the same cases with PyTorch's huge-page switch off ({off['machine']['date']}, commit "
            f"`{(off['machine'].get('git_sha') or 'unknown')[:10]}`) and on ({machine['date']}). Values do not "
            f"change; a fresh activation of 2 MB or more is faulted in as a few 2 MB pages instead of thousands "
            f"of 4 kB ones.*"))
