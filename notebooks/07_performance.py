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
# The public MTT and DM code is compared with ddlib only side by side: one invocation runs
# the reference code and ddlib's case at the same shapes, interleaved (reference, ddlib,
# reference, ddlib, ...), each in a fresh process with the same threads and huge-page setting,
# and the page shows each ratio as its median with the range over the repeats, with the date
# and the machine. A time measured on one machine divided by one measured elsewhere, or on the
# same machine on another day, mixes the code with the machine and its load, so no such ratio
# is shown. Two settings of ours are named where they matter:
# `THP_MEM_ALLOC_ENABLE=1` (PyTorch backs CPU tensors of 2 MB and more with
# transparent huge pages; `make` and the benchmark set it, `--huge-pages off` measures
# without; the side-by-side run gives both sides the same setting) and, in the `_compiled` cases only,
# `torch.compile` (`compile=True` of DM, TGDD and the evaluation, off by default). The DM and
# TGDD cases embed the real batch in chunks of 16 images on the CPU (`real_chunk=None`, the
# default); `dm_ipc10_one_pass` embeds it in one pass, as the DM code does. This page reads
# the benchmark's JSON files; the only timing it does itself is the bf16 study at the end
# (and the tiny benchmark, when no benchmark has been run on this machine).

# %% tags=["parameters"]
scale: str = "mini"  # smoke (seconds: proves the code runs) | mini (2 CPU cores) | paper (GPU)
seed: int = 0  # run seed: experts and evaluation networks derive from it
device: str = "auto"  # auto | cpu | cuda | cuda:N
data_root: str = ""  # folder holding CIFAR etc. (paper scale); empty: embedded data only
out_dir: str = "results/07_performance"  # this run's records (one file per run)
artifacts_dir: str = "artifacts"  # caches shared by chapters: experts, checkpoints
dry_run: bool = False  # paper scale only: every paper shape, minimal counts (a rehearsal)
bench_json: str = ""  # benchmark results to show; empty: benchmarks/results/bench.json

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import seaborn as sns
from IPython.display import Markdown, display

import ddlib
from ddlib.chapters import performance_cost_growth as cost_growth, performance_page as page
from ddlib.chapters import performance_gpu as gpu_page, performance_profile as perf_profile
from ddlib.chapters import performance_side_by_side as side_by_side, performance_tables as tables
from ddlib.chapters import precision_study as bf16

sns.set_theme(style="whitegrid")
# every parameter checked before any compute
params = ddlib.chapter_params(scale, seed=seed, device=device, data_root=data_root, out_dir=out_dir,
                                   artifacts_dir=artifacts_dir, dry_run=dry_run)

# %% tags=["hide-input"]
benchmarks = page.load_benchmarks(bench_json, out_dir, device)  # runs the tiny one if none exists
bench, reference, size = benchmarks.bench, benchmarks.reference, benchmarks.size
machine = benchmarks.machine
if benchmarks.note:
    display(Markdown(benchmarks.note))
display(Markdown(page.machine_text(benchmarks)))

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
# `torch.utils.flop_counter`) by its time. The reference code's numbers are in the next
# section, measured beside ours.

# %% tags=["hide-input"]
table = tables.benchmark_table(bench)
display(table.style.format(tables.BENCHMARK_FORMATS, na_rep="-"))
display(Markdown(tables.benchmark_caption(size)))

# %% [markdown]
# ## Side by side with the reference code
#
# `make bench` with the two public repositories checked out runs the MTT code at IPC 1 with 50
# inner steps and at IPC 10 with 10 (20 and 30 where asked), and the DM code at IPC 10, each
# against ddlib's case of the same shapes (ConvNet-128, CIFAR-10-shaped random images, no
# ZCA). Each repeat runs the reference and then ddlib back to back, so the two share the
# machine's state; the ratio of a repeat is ddlib's time (or peak memory) over the reference's,
# and the table gives the median over the repeats with the smallest and largest. The page reads
# the measurement of this build if there is one, else the measurement committed with the book,
# and says which.

# %% tags=["hide-input"]
side = side_by_side.load_side_by_side(page.ROOT)
display(Markdown(side_by_side.side_by_side_text(side)))
if side is not None:
    display(side_by_side.side_by_side_table(side).style.format(
        {"ref s/iter": "{:.3g}", "ddlib s/iter": "{:.3g}"}, na_rep="-"))
    display(Markdown(side_by_side.side_by_side_caption(side)))

# %% [markdown]
# ## Speed targets
#
# Reported, not asserted: a benchmark is not a test, and a shared or busy machine moves the
# times. The targets against the reference code (MTT, AST and MCT iterations at most 0.6x its
# time and 0.35x its peak memory; DM and TGDD at most 0.5x its time) are judged from the
# side-by-side medians only; the others from this benchmark, and not at the tiny size.

# %% tags=["hide-input"]
targets = side_by_side.targets_frame(bench, reference, side)
display(targets.style.format({"value": "{:.3g}", "threshold": "{:.3g}"}, na_rep="-")
        .hide(axis="index"))
display(Markdown(tables.targets_caption(size)))

# %% [markdown]
# ## Where an iteration's time goes
#
# Why is ddlib about as fast as the reference code rather than much faster? A profile of one
# MTT iteration on each side answers it: `torch.profiler` records every operator's own time,
# and each operator is charged to the layer it serves (a convolution's double backward counts as
# convolution, a normalisation layer's backward, made of elementwise operators when the graph is
# differentiated twice, as normalisation). The table gives seconds and the share of the
# iteration per category, with the arithmetic each side does.

# %% tags=["hide-input"]
profile = perf_profile.load_profile(page.ROOT)
if profile is None:
    display(Markdown("No profile was measured for this build."))
else:
    display(perf_profile.profile_table(profile).style.format("{:.3g}", na_rep="-"))
    display(Markdown(perf_profile.profile_caption(profile)))
    display(Markdown(perf_profile.profile_text(profile)))

# %% [markdown]
# ## Inner steps: keeping the graph versus recomputing
#
# Trajectory matching differentiates through `syn_steps` student updates. `memory="graph"`
# (the MTT code's way) keeps the autograd graph of every step, so memory grows with the
# number of steps; `memory="recompute"` (ddlib's default) replays the steps and keeps one
# step's graph at a time, for the same gradients at the cost of replaying each step's forward
# and first-order backward (a third more arithmetic per iteration, as the profile above shows).

# %% tags=["hide-input"]
mtt = page.mtt_steps_frame(bench)
if mtt.empty:
    display(Markdown("No MTT IPC 10 case in this benchmark file."))
else:
    page.mtt_steps_figure(mtt)
    plt.show()
    display(Markdown(page.mtt_steps_caption(size)))

# %% [markdown]
# ## How cost grows with the student's steps and the images per class
#
# The figure below widens the grid: IPC 1, 10 and 50 (10, 100 and 500 synthetic images, all of
# them in every inner step, as in MTT's CIFAR-10 runs) against 10, 20, 40 and 80 inner steps,
# for the public MTT code and for ddlib in both memory modes. Each cell runs one warm-up and one
# timed iteration, the three sides back to back, each in a fresh process; the left panel is the
# time of the iteration, the right one the peak memory of its process.
#
# Each inner step is a forward and backward pass of the student over the synthetic images. To
# differentiate the final matching loss with respect to the images, the MTT code keeps the
# autograd graph of every step, that is every step's activations of every image, so its peak
# memory grows linearly in the number of steps, with a slope proportional to the images;
# `memory="graph"` does the same. `memory="recompute"` keeps only the student's parameters of
# each step and rebuilds one step's graph at a time on the way back, so its memory stays flat
# in the number of steps, for one more first-order pass per step. A cell whose estimated peak
# would not fit in the machine's memory, or that would take too long on this machine, is not
# run: it is missing from the figure, and the caption names it and says why.

# %% tags=["hide-input"]
growth = cost_growth.load_cost_growth(page.ROOT)
if growth is None:
    display(Markdown(cost_growth.NOT_MEASURED))
else:
    frame = cost_growth.cost_growth_frame(growth)
    cost_growth.cost_growth_figure(frame)
    plt.show()
    display(Markdown(cost_growth.cost_growth_caption(growth)))
    display(Markdown(cost_growth.cost_growth_text(frame)))

# %% [markdown]
# ## On a GPU
#
# The papers ran on GPUs, and so does a paper-scale run of this book. The GPU check
# (`benchmarks/gpu_check.sh`, one command on a GPU machine) first tests that the CPU and CUDA
# give the same distillation steps and evaluation on a small problem, then times the cases
# below on the device, then runs every chapter's paper-scale dry run there. Ratios are taken
# only between cases of the same check. PyTorch's defaults apply: cuDNN convolutions in float32
# may use TF32 tensor cores, so bf16 autocast may have less to gain there than on a CPU; the
# ratios below measure it, and what the graph mode of the MTT code buys on a GPU, where memory
# is plentiful, against ddlib's default of recomputing, and at what memory cost.

# %% tags=["hide-input"]
gpu = gpu_page.load_gpu_check(page.ROOT)
if gpu is None:
    display(Markdown("No GPU check has been run for this build."))
else:
    display(Markdown(gpu_page.gpu_text(gpu)))
    display(gpu_page.gpu_table(gpu).style.format(gpu_page.GPU_FORMATS, na_rep="-"))
    display(Markdown(gpu_page.gpu_caption(gpu)))
    ratios = gpu_page.gpu_ratios(gpu).style.format(gpu_page.RATIO_FORMATS, na_rep="-")
    display(ratios.hide(axis="index"))
    display(Markdown(gpu_page.gpu_ratios_caption()))

# %% [markdown]
# ## Achieved arithmetic throughput
#
# The machine's own ceilings are measured in the same run: a large float32 matrix product
# and the ConvNet's biggest convolution alone (forward and backward at batch 256). The
# ConvNet forward and backward pass adds instance norm, ReLU and pooling, which move memory
# rather than compute; the distillation iterations add the augmentation and, for trajectory
# matching, second-order terms.

# %% tags=["hide-input"]
flops = page.flops_frame(bench)
if flops.empty:
    display(Markdown("No FLOP counts in this benchmark file."))
else:
    page.flops_figure(flops, size, machine["threads"])
    plt.show()
    display(Markdown(page.FLOPS_CAPTION))

# %% [markdown]
# Where the ConvNet's time goes: the eager `convnet_fwd_bwd` case also times its convolution
# kernels alone (the profiler's forward and backward convolution calls, matched to the layers
# by shape), so the whole-network rate splits into the rate of each convolution and the share
# of time spent outside them (instance norm, ReLU, pooling and the loss, which stream whole
# activations through memory and do few FLOPs).

# %% tags=["hide-input"]
layers, text = tables.conv_layers(bench, size)
if layers is not None:
    display(layers.style.format(tables.CONV_FORMATS, na_rep="-"))
display(Markdown(text))

# %% [markdown]
# ## Huge pages on and off
#
# Every case above ran with `THP_MEM_ALLOC_ENABLE=1`, as `make` runs the chapters and the
# tests; the side-by-side run gives the reference code the same setting. `make bench` also
# times a few cases with it off (`--huge-pages off`, written to `bench_huge_pages_off.json`):
# the difference is what the setting alone buys.

# %% tags=["hide-input"]
pairs, text = page.huge_pages_comparison(benchmarks)
if pairs is not None:
    display(pairs.style.format(tables.HUGE_PAGES_FORMATS))
display(Markdown(text))

# %% [markdown]
# ## bf16 mixed precision
#
# Expert training, evaluation and the DM and TGDD embeddings take `precision="bf16"` (float32
# is the default). It runs each forward pass under `torch.autocast` with bfloat16: matrix
# products and convolutions read and write 16-bit numbers with float32's range and an 8-bit
# mantissa, while the parameters, their gradients, the optimizer state and the loss stay
# float32 (logits and embeddings are cast back before the loss or the distance is summed).
# The MTT unroll is not offered in bf16: on a small problem (ConvNet width 16, IPC 2, 10 inner
# steps) the gradient of the images differs from float32's by about 5 %, measured, and that
# gradient is what the distillation follows. bf16 pays only on processors with bf16 units:
# AMX on recent Xeons, `avx512_bf16` on AMD Zen 4, tensor cores on GPUs; elsewhere it emulates
# and is slower.
#
# The study below runs at this chapter's scale, paired by seed: (a) one expert per seed
# trained in float32 and in bf16 from the same seed (final test accuracy, time per epoch);
# (b) one float32 DM set per seed evaluated with the MTT protocol in float32 and in bf16 (the
# same networks); (c) the same DM distillation with a bf16 embedding, its set evaluated in
# float32. Each verdict asks whether bf16 raises accuracy, read both ways: "holds" means it
# raises it, "does not hold" that it lowers it, and "inconclusive at this scale" that no change
# was detected; the interval then bounds the change this scale could have detected
# (*detectable*). The time ratio is bf16 over float32, median over the seeds, measured in one
# process with the two run back to back per seed.

# %% tags=["hide-input"]
run = ddlib.start_chapter("Performance", params)  # one CPU thread, as in every chapter
study = bf16.precision_study(run.settings, run.data, run.recorder, seed=seed, device=run.device,
                             artifacts_dir=artifacts_dir)
display(study.table().style.format(bf16.TABLE_FORMATS, na_rep="-"))
display(Markdown(study.caption(scale, run.data.name)))
run.recorder.finish();  # the run is complete
