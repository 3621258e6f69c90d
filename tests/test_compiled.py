"""The optional torch.compile switch: a pass-through when off, a clear error without a compiler."""
import shutil

import pytest
import torch

import ddlib
import ddlib.evaluation.training as eval_training
import ddlib.evaluation.runner as evaluation
from ddlib.core.compiled import compiler_missing, maybe_compile
from ddlib.methods.coresets import random_coreset
from ddlib.methods.dm import DistributionMatching, DMConfig
from ddlib.evaluation.runner import EvalConfig, evaluate_synthetic


def test_off_returns_the_function_itself():
    def fn(x):
        return x

    assert maybe_compile(fn, False, "cpu") is fn


def test_cpu_without_a_cpp_compiler_fails_before_any_compute(monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    reason = compiler_missing("cpu")
    assert "needs a C++ compiler" in reason and "g++" in reason and "compile=False" in reason
    data = ddlib.load_dataset("digits")
    with pytest.raises(ValueError, match="torch.compile on the CPU needs a C\\+\\+ compiler"):
        DistributionMatching(data, DMConfig(ipc=1, width=8, batch_real=4, compile=True), seed=0)


def test_cuda_needs_no_host_compiler(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert compiler_missing(torch.device("cuda")) is None


# -- compiled evaluation -------------------------------------------------------------------------
def _eval_run(monkeypatch, config):
    """evaluate_synthetic on a digits coreset; returns the result and the trained networks."""
    digits = ddlib.load_dataset("digits")
    nets = []
    build = evaluation._build_net
    monkeypatch.setattr(evaluation, "_build_net", lambda *a, **k: nets.append(build(*a, **k)) or nets[-1])
    result = evaluate_synthetic(random_coreset(digits, 5, seed=0), digits, config, seed=3, progress=False)
    monkeypatch.setattr(evaluation, "_build_net", build)
    return result, nets


def test_compiled_evaluation_matches_eager(monkeypatch):
    config = EvalConfig(epochs=6, num_eval=2, width=8, batch_size=32, test_every=3)
    calls = []
    compile_ = torch.compile
    monkeypatch.setattr(torch, "compile", lambda *a, **k: calls.append(k) or compile_(*a, **k))
    eager, eager_nets = _eval_run(monkeypatch, config)
    assert not calls
    compiled, compiled_nets = _eval_run(monkeypatch, config.replace(compile=True))
    assert calls == [{"dynamic": False}] * 2  # one per network; the second reuses the graphs
    assert compiled.seeds == eager.seeds and compiled.best_epoch == eager.best_epoch
    for x, y in zip(compiled.last + compiled.best, eager.last + eager.best):
        assert abs(x - y) <= 0.01  # a handful of the ~360 test images at most
    for a, b in zip(compiled_nets, eager_nets):  # the weights trained through the compiled graph
        for p, q in zip(a.parameters(), b.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-4)
    fresh = evaluation._build_net(config, 1, 10, (8, 8), compiled.seeds[0])
    assert not torch.allclose(next(fresh.parameters()), next(compiled_nets[0].parameters()))


def test_compiled_evaluation_config_and_compiler_errors(monkeypatch):
    with pytest.raises(ValueError, match=r"compile=True, batched=True.*sequential"):
        EvalConfig(compile=True, batched=True)
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(eval_training, "train_epoch", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(ValueError, match="torch.compile on the CPU needs a C\\+\\+ compiler"):
        _eval_run(monkeypatch, EvalConfig(epochs=1, num_eval=1, width=8, compile=True))
