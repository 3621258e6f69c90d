"""The optional torch.compile switch: a pass-through when off, a clear error without a compiler."""
import shutil

import pytest
import torch

import ddlib
from ddlib.compiled import compiler_missing, maybe_compile
from ddlib.dm import DistributionMatching, DMConfig


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
