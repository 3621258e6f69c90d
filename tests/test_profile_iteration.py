"""benchmarks/profile_report.py and profile_iteration.py: op categories, sums, tables, the hook window."""
import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module(name):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pr():
    return _module("profile_report")


@pytest.mark.parametrize("name, category", [
    ("aten::mkldnn_convolution", "convolution"), ("aten::convolution_backward", "convolution"),
    ("aten::_convolution_double_backward", "convolution"), ("aten::conv2d", "convolution"),
    ("aten::native_group_norm", "norm"), ("aten::native_batch_norm_backward", "norm"),
    ("aten::norm", "elementwise"),  # a vector norm, not a normalisation layer
    ("aten::add_", "elementwise"), ("aten::threshold_backward", "elementwise"),
    ("aten::avg_pool2d_backward", "elementwise"), ("aten::_log_softmax", "elementwise"),
    ("aten::_foreach_add_", "elementwise"), ("aten::addmm", "matmul"), ("aten::mm", "matmul"),
    ("aten::copy_", "bookkeeping"), ("aten::view", "bookkeeping"), ("aten::cat", "bookkeeping"),
    ("aten::_index_put_impl_", "bookkeeping"), ("detach", "bookkeeping"), ("MulBackward0", "bookkeeping"),
    ("autograd::engine::evaluate_function: ConvolutionBackward0", "bookkeeping"),
    ("Optimizer.step#SGD.step", "bookkeeping"), ("aten::grid_sampler_2d", "other"),
    ("aten::uniform_", "other"), ("aten::_convert_indices_from_coo_to_csr", "other"),
])
def test_categorise_puts_each_op_where_its_self_time_goes(pr, name, category):
    assert pr.categorise(name) == category


@pytest.mark.parametrize("name, category", [
    ("NativeGroupNormBackward0", "norm"), ("NativeGroupNormBackwardBackward0", "norm"),
    ("ConvolutionBackwardBackward0", "convolution"), ("AddmmBackward0", "matmul"),
    ("ThresholdBackwardBackward0", "elementwise"), ("AvgPool2DBackward0", "elementwise"),
    ("ViewBackward0", "bookkeeping"), ("autograd::engine::evaluate_function: MulBackward0", "elementwise"),
    ("torch::autograd::AccumulateGrad", "bookkeeping"), ("aten::group_norm", "norm"),
])
def test_owner_category_counts_autograd_nodes_as_their_forward_op(pr, name, category):
    assert pr.owner_category(name) == category


def _event(name, parent=None, self_us=0.0):
    return SimpleNamespace(name=name, cpu_parent=parent, self_cpu_time_total=self_us)


def test_owner_is_the_nearest_autograd_node_else_the_outermost_event(pr):
    engine = _event("autograd::engine::evaluate_function: NativeGroupNormBackward0", self_us=5)
    node = _event("NativeGroupNormBackward0", engine, self_us=7)
    mul = _event("aten::mul", node, self_us=100)  # the norm's backward under create_graph: plain elementwise ops
    copy = _event("aten::copy_", _event("aten::_to_copy", _event("aten::to", mul)), self_us=3)
    conv2d = _event("aten::conv2d", self_us=1)
    kernel = _event("aten::mkldnn_convolution", _event("aten::_convolution", _event("aten::convolution", conv2d)),
                    self_us=400)
    assert [pr.owner_of(e) for e in (engine, node, mul, copy, kernel)] == [
        engine.name, node.name, node.name, node.name, "aten::conv2d"]
    rows = {row["name"]: row for row in pr.owners([engine, node, mul, copy, conv2d, kernel])}
    assert rows["NativeGroupNormBackward0"] == {"name": "NativeGroupNormBackward0", "calls": 3,
                                                "self_s": pytest.approx(110e-6)}
    assert rows["aten::conv2d"]["self_s"] == pytest.approx(401e-6) and rows["aten::conv2d"]["calls"] == 2
    summary = pr.summarise([], 1e-3, by_owner=rows.values())
    # the node's 110 us and the engine's own 5 us around it: all the norm's, none elementwise
    assert summary["owner_categories"]["norm"]["seconds"] == pytest.approx(115e-6)
    assert summary["owner_categories"]["elementwise"]["seconds"] == 0.0
    assert summary["owner_categories"]["convolution"]["share"] == pytest.approx(0.401)


OPS = [  # one iteration of 2.0 s: 1.9 s inside ops, 0.1 s untraced
    {"name": "aten::mkldnn_convolution", "calls": 20, "self_s": 0.8},
    {"name": "aten::convolution_backward", "calls": 10, "self_s": 0.4},
    {"name": "aten::mul", "calls": 300, "self_s": 0.3},
    {"name": "aten::add_", "calls": 100, "self_s": 0.1},
    {"name": "aten::native_group_norm", "calls": 6, "self_s": 0.05},
    {"name": "aten::copy_", "calls": 50, "self_s": 0.15},
    {"name": "MulBackward0", "calls": 40, "self_s": 0.05},
    {"name": "aten::addmm", "calls": 2, "self_s": 0.02},
    {"name": "aten::grid_sampler_2d", "calls": 2, "self_s": 0.03},
]


def test_summarise_adds_self_times_per_category_and_keeps_the_untraced_rest(pr):
    s = pr.summarise(OPS, wall_s=2.0, top=3)
    cats = s["categories"]
    assert set(cats) == {*pr.CATEGORIES, pr.UNTRACED}
    assert cats["convolution"] == {"seconds": pytest.approx(1.2), "share": pytest.approx(0.6), "calls": 30}
    assert cats["elementwise"]["seconds"] == pytest.approx(0.4) and cats["elementwise"]["calls"] == 400
    assert cats["bookkeeping"]["seconds"] == pytest.approx(0.2)
    assert cats["norm"]["seconds"] == pytest.approx(0.05) and cats["matmul"]["seconds"] == pytest.approx(0.02)
    assert cats["other"]["seconds"] == pytest.approx(0.03)
    assert cats["untraced"]["seconds"] == pytest.approx(0.1) and s["traced_s"] == pytest.approx(1.9)
    assert sum(c["share"] for c in cats.values()) == pytest.approx(1.0)
    assert [op["name"] for op in s["top_ops"]] == ["aten::mkldnn_convolution", "aten::convolution_backward",
                                                    "aten::mul"]
    assert s["top_ops"][0]["share"] == pytest.approx(0.4) and s["top_ops"][0]["category"] == "convolution"
    assert len(s["ops"]) == len(OPS) and "owner_categories" not in s


@pytest.mark.parametrize("wall_s, top, ops, message", [
    (0.0, 3, OPS, "wall_s=0.0: expected a positive"),
    (float("nan"), 3, OPS, "wall_s=nan"),
    (1.0, -1, OPS, "top=-1: expected >= 0"),
    (1.0, 3, [{"name": "aten::mul", "calls": 1, "self_s": -0.5}], "'aten::mul' has self_s=-0.5"),
])
def test_summarise_rejects_bad_input_naming_it(pr, wall_s, top, ops, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        pr.summarise(ops, wall_s=wall_s, top=top)


def test_tables_put_sides_next_to_each_other(pr):
    ours = {**pr.summarise(OPS, 2.0), "flops_per_iter": 40e9, "warmup_s": 1.9}
    ref = {**pr.summarise(OPS[:2], 4.0), "flops_per_iter": None, "warmup_s": None}
    sides = {"ddlib_graph": ours, "reference": ref, "broken": {"status": "error", "reason": "exit code 1"}}
    table = pr.category_table(sides).splitlines()
    assert table[0] == "| category | ddlib_graph s | share | reference s | share |"  # the failed side is left out
    conv = next(line for line in table if line.startswith("| convolution"))
    assert conv == "| convolution fwd/bwd kernels | 1.200 | 60.0% | 1.200 | 30.0% |"
    untraced = next(line for line in table if line.startswith("| untraced"))
    assert untraced.endswith("| 0.100 | 5.0% | 2.800 | 70.0% |")
    assert table[-1] == "| **iteration (wall)** | **2.000** | 100% | **4.000** | 100% |"
    flops = pr.flops_table(sides).splitlines()
    assert flops[2] == "| ddlib_graph | 40.0 | 2.000 | 1.900 | 20.0 |"
    assert flops[3] == "| reference | - | 4.000 | - | - |"
    assert flops[4].startswith("| broken | failed: exit code 1 |")
    top = pr.top_ops_table(ours, n=2).splitlines()
    assert top[2] == "| `aten::mkldnn_convolution` | convolution | 20 | 0.800 | 40.0% |" and len(top) == 4
    by_layer = {"ddlib_graph": pr.summarise(OPS, 2.0, by_owner=[{"name": "NativeGroupNormBackward0", "calls": 9,
                                                                  "self_s": 0.5}]), "reference": ref}
    table = pr.category_table(by_layer, "owner_categories").splitlines()  # only sides with that grouping
    assert table[0] == "| category | ddlib_graph s | share |"
    assert next(line for line in table if line.startswith("| batch/instance")).endswith("| 0.500 | 25.0% |")
    assert "## The same time charged to the layer" in pr.report(by_layer)


def test_the_hook_window_profiles_one_iteration_and_counts_flops_in_another():
    pi = _module("profile_iteration")
    calls = []

    class Fake:
        def __init__(self, kind):
            self.kind = kind

        def start(self):
            calls.append(("start", self.kind))

        def stop(self):
            calls.append(("stop", self.kind))

        def __enter__(self):
            calls.append(("enter", self.kind))

        def __exit__(self, *exc):
            calls.append(("exit", self.kind))

        def get_total_flops(self):
            return 123

    window = pi.HookWindow(1, 2, make_profiler=lambda: Fake("profiler"), make_counter=lambda: Fake("counter"))
    hooked = window.wrap(lambda d, step: calls.append(("recorder", next(iter(d)))))
    for it in range(3):  # what distill.py logs per iteration
        hooked({"Progress": it}, step=it)
        hooked({"Synthetic_LR": 0.01}, step=it)
        hooked({"Grand_Loss": 0.5, "Start_Epoch": 3})
    assert calls == [
        ("recorder", "Progress"), ("recorder", "Synthetic_LR"), ("recorder", "Grand_Loss"),  # warm-up: untouched
        ("recorder", "Progress"), ("recorder", "Synthetic_LR"), ("start", "profiler"),  # after the clock starts
        ("stop", "profiler"), ("recorder", "Grand_Loss"),  # before the clock stops
        ("recorder", "Progress"), ("recorder", "Synthetic_LR"), ("enter", "counter"),
        ("exit", "counter"), ("recorder", "Grand_Loss")]
    assert window.flops == 123.0 and window.wall_s is not None and window.wall_s >= 0
    with pytest.raises(ValueError, match="profile_it == flops_it == 1"):
        pi.HookWindow(1, 1)


def test_a_tiny_real_profile_sums_to_its_wall_time():
    import torch

    pr_mod, pi = _module("profile_report"), _module("profile_iteration")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.GroupNorm(4, 4), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2))
    x = torch.randn(2, 3, 6, 6)
    # The legacy profiler records the same FunctionEvents (key_averages, cpu_parent) as torch.profiler,
    # without kineto's start-up (seconds on this machine).
    with torch.autograd.profiler.profile(use_kineto=False) as prof:
        grads = torch.autograd.grad(net(x).square().sum(), list(net.parameters()), create_graph=True)
        sum(g.square().sum() for g in grads).backward()
    ops = pi.ops_of(prof)
    by_owner = pr_mod.owners(prof.function_events)  # torch.profiler: prof.events()
    summary = pr_mod.summarise(ops, wall_s=10.0, by_owner=by_owner)
    # both groupings share out the same traced time; every layer kind of the net shows up
    assert sum(o["self_s"] for o in by_owner) == pytest.approx(summary["traced_s"])
    for key in ("categories", "owner_categories"):
        assert sum(c["seconds"] for c in summary[key].values()) == pytest.approx(10.0)
        assert summary[key]["convolution"]["seconds"] > 0 and summary[key]["matmul"]["seconds"] > 0
    assert summary["owner_categories"]["norm"]["calls"] > summary["categories"]["norm"]["calls"]


def test_least_disturbed_keeps_the_fastest_successful_repeat_and_all_wall_times():
    pi = _module("profile_iteration")
    runs = [{"status": "ok", "wall_s": 9.0}, {"status": "error", "reason": "x"}, {"status": "ok", "wall_s": 7.5}]
    assert pi.least_disturbed(runs) == {"status": "ok", "wall_s": 7.5, "walls_s": [9.0, None, 7.5], "repeat": 2}
    failed = [{"status": "error", "reason": "a"}, {"status": "error", "reason": "b"}]
    assert pi.least_disturbed(failed)["reason"] == "b"
    with pytest.raises(ValueError, match="no runs"):
        pi.least_disturbed([])
