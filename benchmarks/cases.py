"""The benchmark cases: each builds its workload on random data and measures it in THIS process.

``benchmarks/run.py`` starts one fresh Python process per case (``run.py --child NAME``), so
the peak memory a case reports (max RSS on the CPU, ``torch.cuda.max_memory_allocated`` on
a GPU) is that case's own. Timing: one warm-up iteration, then the median of ``repeats``
timed iterations; the peak memory is read then, and only after it one more iteration runs
under ``torch.utils.flop_counter.FlopCounterMode`` to count the iteration's FLOPs.

Timing and memory do not depend on the values, so the data are random: CIFAR-10-shaped
images (3x32x32, 10 classes) and a fake expert trajectory (a random walk from a real
initialisation, with the ConvNet's exact parameter count).
"""
from __future__ import annotations

import dataclasses
import itertools
import os
import statistics
import time
from typing import Any, Callable

import torch

# Per size: model width, image side, images held in memory, repeats... "full" mirrors the
# reference runs (ConvNet-128, CIFAR-10-sized training split in memory as the real runs keep
# it); "tiny" only proves that every case runs: inner steps x0.1 (at least 1) and one thread
# (OpenMP spin-waiting makes tiny kernels on a busy machine many times slower with two), and
# several cases at a time (process start-up, mostly importing torch, dominates).
SIZES: dict[str, dict[str, Any]] = {
    "full": dict(width=128, side=32, distill_train=50_000, distill_test=100, expert_train=5_000, expert_test=1_000,
                 expert_repeats=3, batch_real=256, repeats=3, fast_repeats=5, eval_epochs=10, eval_repeats=2,
                 eval_test=100, matmul_n=4096, conv_batch=256, traj_epochs=30, steps_scale=1.0, threads=2, jobs=1),
    "tiny": dict(width=8, side=8, distill_train=300, distill_test=20, expert_train=200, expert_test=20,
                 expert_repeats=1, batch_real=16, repeats=1, fast_repeats=2, eval_epochs=2, eval_repeats=1,
                 eval_test=20, matmul_n=128, conv_batch=16, traj_epochs=30, steps_scale=0.1, threads=1,
                 jobs=min(4, os.cpu_count() or 1)),
}
NUM_CLASSES, CHANNELS = 10, 3


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmark case: ``kind`` picks the runner, ``params`` its settings, ``ref`` a key of reference.json."""

    name: str
    kind: str
    label: str
    params: dict = dataclasses.field(default_factory=dict)
    ref: str | None = None


def _mtt(name, label, ref=None, **params):
    """A trajectory-matching case; ``memory=None`` runs MTTConfig's default mode."""
    return Case(name, "mtt", label, {"variant": "mtt", "memory": None, **params}, ref)


CASES: tuple[Case, ...] = (
    Case("expert_epoch", "expert", "expert: 1 epoch, batch 256, DSA"),
    Case("expert_epoch_bf16", "expert", "expert: 1 epoch, batch 256, DSA, bf16 autocast", {"precision": "bf16"}),
    _mtt("mtt_ipc1_s50", "IPC 1, 50 steps", "mtt_ipc1_s50", ipc=1, steps=50),
    _mtt("mtt_ipc10_s10", "IPC 10, 10 steps", "mtt_ipc10_s10", ipc=10, steps=10),
    _mtt("mtt_ipc10_s20", "IPC 10, 20 steps", "mtt_ipc10_s20", ipc=10, steps=20),
    _mtt("mtt_ipc10_s30", "IPC 10, 30 steps", "mtt_ipc10_s30", ipc=10, steps=30),
    _mtt("mtt_ipc10_s80", "IPC 10, 80 steps", None, ipc=10, steps=80),
    _mtt("mtt_graph_ipc1_s50", "IPC 1, 50 steps, graph", "mtt_ipc1_s50", ipc=1, steps=50, memory="graph"),
    _mtt("mtt_graph_ipc10_s10", "IPC 10, 10 steps, graph", "mtt_ipc10_s10", ipc=10, steps=10, memory="graph"),
    _mtt("mtt_graph_ipc10_s20", "IPC 10, 20 steps, graph", "mtt_ipc10_s20", ipc=10, steps=20, memory="graph"),
    _mtt("mtt_graph_ipc10_s30", "IPC 10, 30 steps, graph", "mtt_ipc10_s30", ipc=10, steps=30, memory="graph"),
    _mtt("ast_ipc10_s20", "AST, IPC 10, 20 steps (real init)", "mtt_ipc10_s20", ipc=10, steps=20, variant="ast"),
    _mtt("mct_ipc10_s20", "MCT, IPC 10, 20 steps", "mtt_ipc10_s20", ipc=10, steps=20, variant="mct"),
    Case("dm_ipc10", "dm", "DM, IPC 10, batch_real 256", {"ipc": 10}, "dm_ipc10"),
    Case("dm_ipc10_compiled", "dm", "DM, IPC 10, compile=True", {"ipc": 10, "compile": True}, "dm_ipc10"),
    Case("dm_ipc10_bf16", "dm", "DM, IPC 10, bf16 embedding", {"ipc": 10, "precision": "bf16"}, "dm_ipc10"),
    Case("dm_ipc10_one_pass", "dm", "DM, IPC 10, real batch in one pass", {"ipc": 10, "real_chunk": 0}, "dm_ipc10"),
    Case("tgdd_ipc10", "tgdd", "TGDD, IPC 10, batch_real 256", {"ipc": 10}),
    Case("tgdd_ipc10_compiled", "tgdd", "TGDD, IPC 10, compile=True", {"ipc": 10, "compile": True}),
    Case("eval_sequential", "eval", "5 ConvNets, IPC 10, sequential", {"batched": False}),
    Case("eval_batched", "eval", "5 ConvNets, IPC 10, batched", {"batched": True}),
    Case("eval_sequential_bf16", "eval", "5 ConvNets, IPC 10, sequential, bf16",
         {"batched": False, "precision": "bf16"}),
    Case("eval_batched_bf16", "eval", "5 ConvNets, IPC 10, batched, bf16", {"batched": True, "precision": "bf16"}),
    Case("eval_sequential_compiled", "eval", "5 ConvNets, IPC 10, sequential, compile=True",
         {"batched": False, "compile": True}),
    Case("peak_matmul", "matmul", "float32 matmul n x n"),
    Case("peak_conv", "conv", "conv3x3 of ConvNet layer 2, fwd+bwd"),
    Case("convnet_fwd_bwd", "convnet", "ConvNet-3 fwd+bwd, batch 256"),
    Case("convnet_fwd_bwd_compiled", "convnet", "ConvNet-3 fwd+bwd, torch.compile", {"compile": True}),
)
CASES_BY_NAME = {case.name: case for case in CASES}


# -- measuring ------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def memory_mb(device: torch.device) -> float:
    """Peak memory of this process so far (ddlib.results.measurement.peak_memory_mb: RSS / CUDA allocator)."""
    from ddlib.results.measurement import peak_memory_mb

    return float(peak_memory_mb(device))


def count_flops(fn: Callable[[], Any]) -> tuple[float | None, str | None]:
    """Run ``fn`` once under FlopCounterMode; returns (FLOPs, None) or (None, reason)."""
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError as err:  # older torch
        fn()
        return None, f"no FlopCounterMode: {err}"
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return float(counter.get_total_flops()), None


def measure(step: Callable[[], Any], device: torch.device, *, repeats: int, warmup: int = 1,
            flops: bool = True, warmup_step: Callable[[], Any] | None = None,
            count: Callable[[], Any] | None = None) -> dict[str, Any]:
    """Warm up, time ``repeats`` calls of ``step``, take the peak memory, then count FLOPs.

    The FLOPs are counted on one more call (of ``count``, else ``warmup_step``, else
    ``step``) under ``FlopCounterMode`` AFTER the peak memory is read: the counter's
    bookkeeping holds memory of its own, which must not inflate the case's peak. ``count``
    is an eager twin of a compiled ``step`` (the counter does not see inside compiled kernels).
    """
    baseline = memory_mb(device)
    for _ in range(warmup):
        (warmup_step or step)()
    _sync(device)
    times, cpu_times = [], []
    for _ in range(repeats):
        _sync(device)
        start, cpu_start = time.perf_counter(), time.process_time()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    peak = memory_mb(device)
    flop_count, flop_note = count_flops(count or warmup_step or step) if flops else (None, None)
    seconds = statistics.median(times)
    out = {"s_per_iter": seconds, "times_s": times, "cpu_s_per_iter": statistics.median(cpu_times),
           "repeats": repeats, "warmup": warmup, "baseline_mb": baseline, "peak_mb": peak,
           "flops_per_iter": flop_count,
           "gflops": flop_count / seconds / 1e9 if flop_count and seconds > 0 else None}
    if flop_note:
        out["flops_note"] = flop_note
    return out


# -- random workloads ---------------------------------------------------------------------------
def random_dataset(n_train: int, n_test: int, side: int, seed: int = 0):
    """A CIFAR-10-shaped ImageDataset of standard-normal images, classes balanced."""
    from ddlib.data.dataset import ImageDataset

    g = torch.Generator().manual_seed(seed)
    return ImageDataset(
        name="random-cifar10-shape",
        images_train=torch.randn(n_train, CHANNELS, side, side, generator=g),
        labels_train=torch.arange(n_train) % NUM_CLASSES,
        images_test=torch.randn(n_test, CHANNELS, side, side, generator=g),
        labels_test=torch.arange(n_test) % NUM_CLASSES,
        class_names=tuple(f"class{c}" for c in range(NUM_CLASSES)),
        mean=(0.0,) * CHANNELS, std=(1.0,) * CHANNELS, source="random (benchmarks/cases.py)",
    )


def convnet(data, width: int):
    from ddlib.trajectories.experts import ExpertConfig, build_expert_model

    return build_expert_model(data, ExpertConfig(width=width), seed=0)


def fake_trajectory(net: torch.nn.Module, epochs: int, seed: int = 0):
    """A random walk of ``epochs`` steps from ``net``'s parameters, as an expert Trajectory."""
    from ddlib.trajectories.experts import Trajectory
    from ddlib.core.functional import ParamLayout, flatten_params

    start = flatten_params(net).detach().cpu().float()
    g = torch.Generator().manual_seed(seed)
    steps = torch.randn(epochs, start.numel(), generator=g) * (0.01 * float(start.abs().mean()))
    snapshots = torch.cat([start[None], start[None] + steps.cumsum(0)])
    return Trajectory(snapshots=snapshots, layout=ParamLayout.of(net), train_loss=[0.0] * epochs,
                      test_accuracy=[0.0] * epochs, seed=seed)


class OneExpert:
    """Trajectory source holding one (fake) expert."""

    def __init__(self, trajectory: Any) -> None:
        self._trajectory = trajectory

    def __len__(self) -> int:
        return 1

    def trajectory(self, k: int) -> Any:
        return self._trajectory


def has_field(config_cls: type, name: str) -> bool:
    return name in {f.name for f in dataclasses.fields(config_cls)}


def skipped(reason: str) -> dict[str, Any]:
    return {"status": "skipped", "reason": reason}


def _counter(fn: Callable[[int], Any]) -> Callable[[], Any]:
    iterations = itertools.count()
    return lambda: fn(next(iterations))


# -- runners -------------------------------------------------------------------------------------
def run_expert(case: Case, S: dict, device: torch.device) -> dict[str, Any]:
    """``train_expert`` for 1 + repeats epochs; the first epoch is the warm-up (timestamps via on_epoch)."""
    import torch.nn.functional as F

    from ddlib.trajectories.experts import ExpertConfig, build_expert_model, train_expert

    data = random_dataset(S["expert_train"], S["expert_test"], S["side"])
    precision = case.params.get("precision")
    if precision and not has_field(ExpertConfig, "precision"):
        return skipped("ExpertConfig has no 'precision' option in this ddlib")
    config = ExpertConfig(width=S["width"], epochs=1 + S["expert_repeats"],
                          **({"precision": precision} if precision else {}))
    # FLOPs per epoch: per-image training (fwd+bwd) and test (fwd) FLOPs, counted on 2 images.
    net = build_expert_model(data, config, seed=0).to(device)
    x, y = data.images_train[:2].to(device), data.labels_train[:2].to(device)
    train_flops, _ = count_flops(lambda: F.cross_entropy(net(x), y).backward())
    with torch.no_grad():
        test_flops, _ = count_flops(lambda: net(x))
    epoch_flops = None
    if train_flops and test_flops:
        epoch_flops = (train_flops * len(data.labels_train) + test_flops * len(data.labels_test)) / 2
    del net
    baseline = memory_mb(device)
    stamps = [(time.perf_counter(), time.process_time())]
    train_expert(data, config, seed=0, device=device,
                 on_epoch=lambda state: stamps.append((time.perf_counter(), time.process_time())))
    times = [b[0] - a[0] for a, b in zip(stamps[1:-1], stamps[2:])]  # the first epoch is the warm-up
    cpu = [b[1] - a[1] for a, b in zip(stamps[1:-1], stamps[2:])]
    seconds = statistics.median(times)
    n = len(data.labels_train)
    return {"s_per_iter": seconds, "times_s": times, "cpu_s_per_iter": statistics.median(cpu),
            "repeats": len(times), "warmup": 1, "baseline_mb": baseline,
            "flops_per_iter": epoch_flops, "gflops": epoch_flops / seconds / 1e9 if epoch_flops else None,
            "s_per_image": seconds / n, "s_per_cifar10_epoch_estimate": seconds / n * 50_000,
            "settings": {"images_per_epoch": n, "test_images": len(data.labels_test), "batch_size": config.batch_size,
                         "width": S["width"], "image": f"3x{S['side']}x{S['side']}", "dsa": config.dsa,
                         "precision": getattr(config, "precision", "fp32"),
                         "iteration": "one epoch (train + test accuracy + snapshot)"}}


def run_mtt(case: Case, S: dict, device: torch.device) -> dict[str, Any]:
    from ddlib.methods.mtt import TrajectoryMatching
    from ddlib.methods.mtt_config import MTTConfig

    p = case.params
    steps = max(1, round(p["steps"] * S["steps_scale"]))
    overrides: dict[str, Any] = {"syn_steps": steps, "zca": False}
    if p["memory"] is not None:
        if not has_field(MTTConfig, "memory"):
            return skipped("MTTConfig has no 'memory' option in this ddlib")
        overrides["memory"] = p["memory"]
    if p["variant"] == "mct":
        try:
            from ddlib.trajectories.convexified import ConvexifiedTrajectory
        except ImportError:
            return skipped("ddlib.trajectories.convexified is not available")
    data = random_dataset(S["distill_train"], S["distill_test"], S["side"])
    net = convnet(data, S["width"])
    trajectory = fake_trajectory(net, S["traj_epochs"])
    config = MTTConfig.for_dataset("cifar10", p["ipc"], **overrides)
    if p["variant"] == "ast":  # the AST paper's components, minus representative init (KMeans)
        config = config.with_ast("paper", init="real")
    if p["variant"] == "mct":
        trajectory = ConvexifiedTrajectory.from_trajectory(trajectory)
        config = config.replace(sampling="continuous")
    distiller = TrajectoryMatching(data, OneExpert(trajectory), net, config, seed=0, device=device)
    # "warmup"/"flops" are set by benchmarks/cost_growth.py, which times one iteration per cell
    result = measure(_counter(distiller.step), device, repeats=S["repeats"], warmup=S.get("warmup", 1),
                     flops=S.get("flops", True))
    result["settings"] = {"ipc": p["ipc"], "syn_steps": config.syn_steps, "nominal_steps": p["steps"], "memory": getattr(config, "memory", "graph"),
                          "variant": p["variant"], "batch_syn": config.batch_syn or p["ipc"] * NUM_CLASSES,
                          "expert_epochs": config.expert_epochs, "dsa": config.dsa, "zca": config.zca,
                          "width": S["width"], "image": f"3x{S['side']}x{S['side']}",
                          "num_params": distiller.layout.numel, "train_images_in_memory": S["distill_train"]}
    return result


def _distribution_case(case: Case, S: dict, device: torch.device, config_cls: type,
                       make: Callable[[Any, dict], tuple[Any, Any]]) -> dict[str, Any]:
    """Time ``distiller.step`` of DM or TGDD; ``make(data, extra_config) -> (distiller, config)``.

    A compiled case warms up twice (the first calls compile) and counts no FLOPs: the
    counter does not see inside compiled kernels, and the eager case has the same work.
    """
    compiled = bool(case.params.get("compile"))
    extra = {"compile": True} if compiled else {}
    for name in ("real_chunk", "precision"):
        if name in case.params:
            extra[name] = case.params[name]
    missing = [name for name in extra if not has_field(config_cls, name)]
    if missing:
        return skipped(f"{config_cls.__name__} has no {missing[0]!r} option in this ddlib")
    data = random_dataset(S["distill_train"], S["distill_test"], S["side"])
    distiller, config = make(data, extra)
    result = measure(_counter(distiller.step), device, repeats=S["fast_repeats"], warmup=2 if compiled else 1,
                     flops=not compiled)
    result["settings"] = {"ipc": config.ipc, "batch_real": config.batch_real, "dsa": config.dsa, "width": S["width"],
                          "image": f"3x{S['side']}x{S['side']}", "train_images_in_memory": S["distill_train"],
                          "compile": compiled, "real_chunk": getattr(distiller, "real_chunk", None),
                          "precision": getattr(config, "precision", "fp32")}
    return result


def run_dm(case: Case, S: dict, device: torch.device) -> dict[str, Any]:
    from ddlib.methods.dm import DistributionMatching, DMConfig

    def make(data, extra):
        config = DMConfig(ipc=case.params["ipc"], batch_real=S["batch_real"], width=S["width"], **extra)
        return DistributionMatching(data, config, seed=0, device=device), config

    return _distribution_case(case, S, device, DMConfig, make)


def run_tgdd(case: Case, S: dict, device: torch.device) -> dict[str, Any]:
    from ddlib.methods.tgdd import TGDD, TGDDConfig

    def make(data, extra):
        net = convnet(data, S["width"])
        config = TGDDConfig(ipc=case.params["ipc"], batch_real=S["batch_real"], **extra)
        return TGDD(data, OneExpert(fake_trajectory(net, S["traj_epochs"])), net, config, seed=0, device=device), config

    return _distribution_case(case, S, device, TGDDConfig, make)


def run_eval(case: Case, S: dict, device: torch.device) -> dict[str, Any]:
    """evaluate_synthetic with 5 networks x E epochs; s/iter is seconds per epoch of all 5 networks."""
    from ddlib.evaluation.runner import EvalConfig, evaluate_synthetic
    from ddlib.methods.synthetic import SyntheticSet

    batched, compiled = case.params["batched"], bool(case.params.get("compile"))
    kwargs: dict[str, Any] = {"num_eval": 5, "width": S["width"]}
    for name, wanted in (("batched", batched), ("compile", compiled)):
        if has_field(EvalConfig, name):
            kwargs[name] = wanted
        elif wanted:
            return skipped(f"EvalConfig has no {name!r} option in this ddlib")
    if case.params.get("precision"):
        if not has_field(EvalConfig, "precision"):
            return skipped("EvalConfig has no 'precision' option in this ddlib")
        kwargs["precision"] = case.params["precision"]
    data = random_dataset(NUM_CLASSES, S["eval_test"], S["side"])
    g = torch.Generator().manual_seed(1)
    ipc = 10
    syn = SyntheticSet(images_syn=torch.randn(ipc * NUM_CLASSES, CHANNELS, S["side"], S["side"], generator=g),
                       labels_syn=torch.arange(NUM_CLASSES).repeat_interleave(ipc), syn_lr=0.01, config={},
                       provenance={}, dataset=data.name, ipc=ipc)
    epochs = S["eval_epochs"]

    def protocol(n_epochs: int) -> Callable[[], Any]:
        config = EvalConfig(epochs=n_epochs, **kwargs)
        return lambda: evaluate_synthetic(syn, data, config, seed=0, device=device, progress=False)

    # FLOPs: those of the one-epoch warm-up (training and the final test pass), counted for the
    # eager sequential case only (the counter is not used under vmap, nor inside compiled code).
    # The timed one-epoch call below is the warm-up (compiled: it compiles the graphs, which the
    # timed calls' fresh networks reuse), so measure() warms up no further.
    first = time.perf_counter()
    protocol(1)()
    first_call_s = time.perf_counter() - first
    result = measure(protocol(epochs), device, repeats=S["eval_repeats"], warmup=0, flops=not (batched or compiled),
                     warmup_step=protocol(1))
    per_call = result["s_per_iter"]
    flops_epoch = result.get("flops_per_iter")
    result.update(s_per_iter=per_call / epochs, s_per_call=per_call,
                  gflops=flops_epoch / (per_call / epochs) / 1e9 if flops_epoch else None,
                  s_protocol_1000_epochs_estimate=per_call / epochs * 1000)
    fallback = None
    if batched:  # evaluate_synthetic silently trains one after another when batching does not apply
        try:
            from ddlib.evaluation.batched import batching_unsupported

            fallback = batching_unsupported(convnet(data, S["width"]))
        except ImportError:
            pass
    result["first_call_s"] = first_call_s  # 1 epoch x 5 networks in a fresh process (compiling, if compiled)
    result["settings"] = {"num_eval": 5, "epochs_per_call": epochs, "ipc": ipc, "batched": batched,
                          "compile": compiled, "batching_not_applied": fallback,
                          "precision": kwargs.get("precision", "fp32"),
                          "test_images": S["eval_test"], "width": S["width"], "image": f"3x{S['side']}x{S['side']}",
                          "iteration": "one epoch of all 5 networks (call time / epochs)"}
    return result


def run_matmul(case: Case, S: dict, device: torch.device) -> dict[str, Any]:
    n = S["matmul_n"]
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=g).to(device) for _ in range(2))
    out = torch.empty(n, n, device=device)
    result = measure(lambda: torch.mm(a, b, out=out), device, repeats=S["fast_repeats"], warmup=2)
    result["flops_per_iter"] = 2.0 * n ** 3  # analytic (the counter agrees)
    result["gflops"] = result["flops_per_iter"] / result["s_per_iter"] / 1e9
    result["settings"] = {"n": n, "dtype": "float32"}
    return result


def run_conv(case: Case, S: dict, device: torch.device) -> dict[str, Any]:
    """The ConvNet's biggest layer alone: conv3x3 width->width on (side/2)^2 maps, forward + backward."""
    width, side, batch = S["width"], S["side"] // 2, S["conv_batch"]
    conv = torch.nn.Conv2d(width, width, 3, padding=1).to(device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, width, side, side, generator=g).to(device).requires_grad_(True)
    grad_out = torch.randn(batch, width, side, side, generator=g).to(device)

    def step():
        x.grad = None
        conv.zero_grad(set_to_none=True)
        conv(x).backward(grad_out)

    result = measure(step, device, repeats=S["fast_repeats"], warmup=2)
    result["settings"] = {"batch": batch, "channels": width, "map": f"{side}x{side}", "kernel": 3,
                          "work": "forward + input grad + weight grad"}
    return result


def conv_layer_throughput(net: torch.nn.Module, step: Callable[[], Any], repeats: int = 2) -> dict[str, Any]:
    """Per convolution of ``net``: FLOPs and time inside its forward and backward kernels over ``step``.

    FLOPs per layer come from ``FlopCounterMode`` (module-level counts); times from the
    profiler's ``aten::convolution`` and ``aten::convolution_backward`` events (host time,
    which on the CPU is the kernels' time), matched to layers by weight and input shape.
    Returns ``layers`` (one dict per conv: ``layer``, ``weight``, ``input``, ``gflop``,
    ``seconds``, ``gflops``) and ``conv_gflops``, all layers' FLOPs over all layers' time.
    """
    from torch.profiler import profile
    from torch.utils.flop_counter import FlopCounterMode

    shapes: dict[str, tuple] = {}

    def record(name):
        def hook(module, inputs, output):
            shapes.setdefault(name, (tuple(module.weight.shape), tuple(inputs[0].shape[1:])))
        return hook

    convs = [(name, m) for name, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)]
    hooks = [m.register_forward_hook(record(name)) for name, m in convs]
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    for h in hooks:
        h.remove()
    counts = counter.get_flop_counts()
    seconds: dict[tuple, float] = {}
    with profile(record_shapes=True) as prof:
        for _ in range(repeats):
            step()
    for event in prof.events():
        shape_index = {"aten::convolution": (1, 0), "aten::convolution_backward": (2, 1)}.get(event.name)
        if shape_index and len(event.input_shapes) > shape_index[0]:
            w, x = event.input_shapes[shape_index[0]], event.input_shapes[shape_index[1]]
            key = (tuple(w), tuple(x[1:]))
            seconds[key] = seconds.get(key, 0.0) + event.cpu_time_total / 1e6 / repeats
    layers = []
    for name, _ in convs:
        weight, inp = shapes[name]
        flops = sum(float(v) for op, v in counts.get(f"{type(net).__name__}.{name}", {}).items()
                    if "convolution" in str(op))
        t = seconds.get((weight, inp), 0.0)
        layers.append({"layer": name, "weight": list(weight), "input": list(inp), "gflop": flops / 1e9,
                       "seconds": t, "gflops": flops / t / 1e9 if t > 0 else None})
    total_t = sum(layer["seconds"] for layer in layers)
    total_flops = sum(layer["gflop"] for layer in layers)
    return {"layers": layers, "conv_gflops": total_flops / total_t if total_t > 0 else None,
            "conv_seconds": total_t}


def run_convnet(case: Case, S: dict, device: torch.device) -> dict[str, Any]:
    import torch.nn.functional as F

    data = random_dataset(S["conv_batch"], 1, S["side"])
    net = convnet(data, S["width"]).to(device)
    x, y = data.images_train.to(device), data.labels_train.to(device)
    compiled = bool(case.params.get("compile"))
    model = torch.compile(net, dynamic=False) if compiled else net

    def work(module):
        def step():
            net.zero_grad(set_to_none=True)
            F.cross_entropy(module(x), y).backward()
        return step

    result = measure(work(model), device, repeats=S["fast_repeats"], warmup=2,
                     count=work(net) if compiled else None)
    if not compiled and device.type == "cpu":  # host times are kernel times only on the CPU
        breakdown = conv_layer_throughput(net, work(net))
        result.update(conv_layers=breakdown["layers"], conv_gflops=breakdown["conv_gflops"],
                      conv_share_of_time=breakdown["conv_seconds"] / result["s_per_iter"])
    result["settings"] = {"batch": S["conv_batch"], "width": S["width"], "image": f"3x{S['side']}x{S['side']}",
                          "depth": net.depth, "norm": "instance", "work": "forward + backward (no input grad)",
                          "compile": compiled}
    return result


RUNNERS: dict[str, Callable[[Case, dict, torch.device], dict[str, Any]]] = {
    "expert": run_expert, "mtt": run_mtt, "dm": run_dm, "tgdd": run_tgdd, "eval": run_eval,
    "matmul": run_matmul, "conv": run_conv, "convnet": run_convnet,
}


def run_case(name: str, size: str, device: str, threads: int, case: Case | None = None,
             overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run case ``name`` in this process and return its result dict (the child side of run.py).

    ``case`` replaces the registered case of that name (a case built on the fly, as
    ``benchmarks/cost_growth.py`` builds its grid); ``overrides`` replace entries of the size's
    settings (:data:`SIZES`), e.g. ``{"repeats": 1}``.
    """
    from ddlib.core.runtime import resolve_device

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    dev = resolve_device(device)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    case = case or CASES_BY_NAME[name]
    start = time.perf_counter()
    result = RUNNERS[case.kind](case, {**SIZES[size], **(overrides or {})}, dev)
    result.setdefault("status", "ok")
    if result["status"] == "ok":
        result.setdefault("peak_mb", memory_mb(dev))  # measure() reads it before counting FLOPs
        result["memory_kind"] = "cuda max_memory_allocated" if dev.type == "cuda" else "max RSS of the process"
    result.update(wall_s=time.perf_counter() - start, threads=torch.get_num_threads(), device=str(dev),
                  thp_mem_alloc_enable=os.environ.get("THP_MEM_ALLOC_ENABLE"))
    return result
