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
scale: str = "mini"  # smoke (seconds: proves the code runs) | mini (2 CPU cores) | paper (GPU)
seed: int = 0  # run seed: experts and evaluation networks derive from it
device: str = "auto"  # auto | cpu | cuda | cuda:N
data_root: str = ""  # folder holding CIFAR etc. (paper scale); empty: embedded data only
out_dir: str = "results/07_performance"  # this run's records (one file per run)
artifacts_dir: str = "artifacts"  # caches shared by chapters: experts, checkpoints
bench_json: str = ""  # benchmark results to show; empty: benchmarks/results/bench.json

# %% tags=["hide-input"]
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

import ddlib
from ddlib.chapters.performance_tables import benchmark_table

sns.set_theme(style="whitegrid")
# every parameter checked before any compute
params = ddlib.chapter_params(scale, seed=seed, device=device, data_root=data_root, out_dir=out_dir,
                              artifacts_dir=artifacts_dir)
ROOT = Path(ddlib.__file__).resolve().parent.parent
reference = ddlib.read_json(ROOT / "benchmarks" / "reference.json", "reference benchmark figures",
                            fix="restore it with git checkout")
path = Path(bench_json) if bench_json else ROOT / "benchmarks" / "results" / "bench.json"
path = path if path.is_absolute() else ROOT / path
if not path.exists():
    path = Path(out_dir).resolve() / "bench.json"
    display(Markdown(
        f"**No benchmark has been run on this machine**: there is no "
        f"`benchmarks/results/bench.json`. Run `make bench` (or `python benchmarks/run.py --size "
        f"full`, tens of minutes on 2 CPU threads) and rebuild the book. So that this page still "
        f"shows measured numbers, the tiny benchmark (`python benchmarks/run.py --size tiny`: "
        f"width 8, 8x8 images, one iteration) runs now into `{path.parent.name}/`. Its numbers "
        f"only show that every case runs; they are not comparable with the reference."))
    path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--size", "tiny",
               "--out", str(path), "--device", str(device)]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if not path.exists():
        raise RuntimeError(f"the tiny benchmark wrote no results (exit code {run.returncode}):\n"
                           + run.stdout[-2000:] + run.stderr[-2000:])
bench = ddlib.read_json(path, "benchmark results", fix="rerun make bench")
size, machine = bench["size"], bench["machine"]
comparable = size == "full"
sha = (machine.get("git_sha") or "unknown")[:10]
load = ", ".join(f"{x:.1f}" for x in machine.get("load_average_start") or [])
side = bench.get("size_settings", {}).get("side")  # read only below the full size
display(Markdown(
    f"Benchmark size **{size}**, read from `{path.name}` ({machine['date']}): "
    f"{machine['cpu_model']}, {machine['threads']} threads on {machine['logical_cpus']} logical "
    f"CPUs, device `{machine['device']}`, torch {machine['torch_version']}, huge pages "
    f"{machine.get('huge_pages', 'off')}, ddlib commit `{sha}`"
    f"{' (uncommitted changes)' if machine.get('git_dirty') else ''}. Load average at the start "
    f"{load}: a busy machine inflates the times."
    + ("" if comparable else
       f"\n\n**These are `{size}`-size numbers** (width {bench['size_settings']['width']}, "
       f"{side}x{side} images, fewer inner steps): they prove the cases run, and are **not** "
       f"comparable with the reference column, so no ratio is shown.")))

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

# %% tags=["hide-input"]
table = benchmark_table(bench, reference, comparable)
display(table.style.format({"s/iter": "{:.4g}", "CPU s/iter": "{:.4g}", "peak MB": "{:.0f}",
                            "base MB": "{:.0f}", "GFLOP/s": "{:.1f}", "ref s/iter": "{:.1f}",
                            "ref MB": "{:.0f}", "time / ref": "{:.2f}", "memory / ref": "{:.2f}"},
                           na_rep="-"))
display(Markdown(
    f"*Table: our measurements (size {size}) beside the reference ({reference['source']}). AST "
    f"and MCT are compared with the MTT code at the same number of inner steps, the code they "
    f"build on; both our memory modes (`mtt_*`: recompute, the default; `mtt_graph_*`: graph) "
    f"with the MTT code in its only (graph-keeping) mode; the `_compiled` DM case with the DM "
    f"code, which does not compile. \"-\": no reference run of the case, a ratio not given at "
    f"this size, or a case that did not run.*"))

# %% [markdown]
# ## Speed targets
#
# Reported, not asserted: a benchmark is not a test, and a shared or busy machine moves the
# times. At the tiny size no verdict is given.

# %% tags=["hide-input"]
targets = pd.DataFrame(bench["targets"])
targets["verdict"] = targets["met"].map({True: "met", False: "not met"}).fillna("n/a")
display(targets[["text", "cases", "value", "op", "threshold", "verdict"]].style.format(
    {"value": "{:.3g}", "threshold": "{:.3g}"}, na_rep="-").hide(axis="index"))
display(Markdown(
    f"*Table: the speed targets (size {size}): the measured value of the named cases, the "
    f"comparison and the threshold it must meet. \"n/a\" and \"-\": no verdict, because the "
    f"size is not comparable or a case did not run.*"))

# %% [markdown]
# ## Inner steps: keeping the graph versus recomputing
#
# Trajectory matching differentiates through `syn_steps` student updates. `memory="graph"`
# (the MTT code's way) keeps the autograd graph of every step, so memory grows with the
# number of steps; `memory="recompute"` (ddlib's default) replays the steps and keeps one
# step's graph at a time, for the same gradients at the cost of one more first-order pass
# per step.

# %% tags=["hide-input"]
mtt = []
for name, result in bench["cases"].items():
    settings = result.get("settings", {})
    is_mtt10 = settings.get("variant") == "mtt" and settings.get("ipc") == 10
    if result.get("status") == "ok" and is_mtt10:
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
        sns.lineplot(data=mtt, x="inner steps", y=column, hue="mode", style="mode", markers=True,
                     dashes=False, ax=ax)
        ax.set_ylim(bottom=0)
        ax.set_title(f"MTT iteration at IPC 10: {column}")
    axes[1].get_legend().remove()
    fig.tight_layout()
    plt.show()
    display(Markdown(
        f"*Figure: seconds per iteration (left) and peak memory (right) of one MTT iteration at "
        f"IPC 10 against the number of inner steps, size {size}. Graph mode grows linearly in "
        f"both; recompute mode should stay flat in memory (its target: 80 steps within 1.2x its "
        f"own 10-step peak) while costing more time per step."
        + ("" if comparable else
           " The reference is left out: tiny-size numbers are not comparable with it.")
        + "*"))

# %% [markdown]
# ## Achieved arithmetic throughput
#
# The machine's own ceilings are measured in the same run: a large float32 matrix product
# and the ConvNet's biggest convolution alone (forward and backward at batch 256). The
# ConvNet forward and backward pass adds instance norm, ReLU and pooling, which move memory
# rather than compute; the distillation iterations add the augmentation and, for trajectory
# matching, second-order terms.

# %% tags=["hide-input"]
flops = pd.DataFrame([{"case": name, "GFLOP/s": r["gflops"],
                       "kind": "measured peak" if name.startswith("peak_") else "achieved"}
                      for name, r in bench["cases"].items()
                      if r.get("status") == "ok" and r.get("gflops")])
if flops.empty:
    display(Markdown("No FLOP counts in this benchmark file."))
else:
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(flops) + 1.2))
    sns.barplot(data=flops, y="case", x="GFLOP/s", hue="kind", dodge=False, ax=ax)
    threads = machine["threads"]
    ax.set_title(f"GFLOP/s per case (size {size}, {threads} thread{'s' if threads != 1 else ''})")
    fig.tight_layout()
    plt.show()
    display(Markdown(
        "*Figure: achieved GFLOP/s of each case beside the measured matmul and convolution peaks "
        "of the same machine and run. FLOPs are those of the convolutions, matrix products and "
        "other operations `torch.utils.flop_counter` knows; element-wise work (norms, "
        "augmentation) is not counted, so the achieved rate understates the work done.*"))

# %% [markdown]
# Where the ConvNet's time goes: the eager `convnet_fwd_bwd` case also times its convolution
# kernels alone (the profiler's forward and backward convolution calls, matched to the layers
# by shape), so the whole-network rate splits into the rate of each convolution and the share
# of time spent outside them (instance norm, ReLU, pooling and the loss, which stream whole
# activations through memory and do few FLOPs).

# %% tags=["hide-input"]
convnet = bench["cases"].get("convnet_fwd_bwd", {})
peak_conv = bench["cases"].get("peak_conv", {}).get("gflops")
if convnet.get("status") != "ok" or not convnet.get("conv_layers"):
    display(Markdown("No per-layer convolution timings in this benchmark file (they are taken "
                     "on the CPU only)."))
else:
    layers = pd.DataFrame([{"layer": layer["layer"], "weight": "x".join(map(str, layer["weight"])),
                            "input": "x".join(map(str, layer["input"])), "GFLOP": layer["gflop"],
                            "ms": layer["seconds"] * 1e3, "GFLOP/s": layer["gflops"]}
                           for layer in convnet["conv_layers"]]).set_index("layer")
    if peak_conv:
        layers["of conv peak"] = layers["GFLOP/s"] / peak_conv
    display(layers.style.format({"GFLOP": "{:.2f}", "ms": "{:.1f}", "GFLOP/s": "{:.0f}",
                                 "of conv peak": "{:.2f}"}, na_rep="-"))
    outside = 1 - convnet["conv_share_of_time"]
    display(Markdown(
        f"*Table: the convolutions of one ConvNet forward and backward pass at batch "
        f"{convnet['settings']['batch']} (size {size}): FLOPs (forward, weight gradient and, "
        f"except for the first layer, input gradient), time inside the convolution calls and "
        f"their rate"
        + (f", against the measured conv peak of {peak_conv:.0f} GFLOP/s" if peak_conv else "")
        + f". All convolutions together: {convnet['conv_gflops']:.0f} GFLOP/s; "
        f"{100 * outside:.0f} % of the pass's {convnet['s_per_iter'] * 1e3:.0f} ms is spent "
        f"outside them. The profiler's own overhead is included in the per-layer times.*"))

# %% [markdown]
# ## Huge pages on and off
#
# Every case above ran with `THP_MEM_ALLOC_ENABLE=1`, as `make` runs the chapters and the
# tests. The reference code was measured without it, and it would speed that code up too, so
# `make bench` also times a few cases with it off (`--huge-pages off`, written to
# `bench_huge_pages_off.json`): the difference is what the setting alone buys; the rest of the
# distance to the reference is the code's.

# %% tags=["hide-input"]
off_path = path.with_name("bench_huge_pages_off.json")
off = (ddlib.read_json(off_path, "benchmark results without huge pages", fix="rerun make bench")
       if off_path.exists() else None)
if off is None or off.get("size") != size:
    display(Markdown(f"No `{off_path.name}` of size {size} beside `{path.name}`: run "
                     f"`python benchmarks/run.py --size {size} --huge-pages off --out "
                     f"{off_path.name}` for the comparison."))
else:
    pairs = []
    for name, r_off in off["cases"].items():
        r_on = bench["cases"].get(name, {})
        if r_off.get("status") == "ok" and r_on.get("status") == "ok":
            pairs.append({"case": name, "s/iter, off": r_off["s_per_iter"],
                          "s/iter, on": r_on["s_per_iter"],
                          "speed-up": r_off["s_per_iter"] / r_on["s_per_iter"],
                          "peak MB, off": r_off["peak_mb"], "peak MB, on": r_on["peak_mb"]})
    if not pairs:
        display(Markdown(f"`{off_path.name}` shares no successful case with `{path.name}`."))
    else:
        display(pd.DataFrame(pairs).set_index("case").style.format(
            {"s/iter, off": "{:.4g}", "s/iter, on": "{:.4g}", "speed-up": "{:.2f}x",
             "peak MB, off": "{:.0f}", "peak MB, on": "{:.0f}"}))
        off_sha = (off["machine"].get("git_sha") or "unknown")[:10]
        display(Markdown(
            f"*Table: the same cases with PyTorch's huge-page switch off "
            f"({off['machine']['date']}, commit `{off_sha}`) and on ({machine['date']}). Values "
            f"do not change; a fresh activation of 2 MB or more is faulted in as a few 2 MB pages "
            f"instead of thousands of 4 kB ones.*"))
