import pytest
import torch

from ddlib.core.runtime import derive_seed, make_generator, resolve_device


def test_resolve_device_auto_and_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")


def test_resolve_device_rejects_unknown():
    with pytest.raises(ValueError, match="device='tpu'"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_resolve_device_cuda_without_cuda():
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")


def test_derive_seed_is_deterministic_and_key_sensitive():
    assert derive_seed(0, "eval", 1) == derive_seed(0, "eval", 1)
    assert derive_seed(0, "eval", 1) != derive_seed(0, "eval", 2)
    assert derive_seed(0, "eval", 1) != derive_seed(1, "eval", 1)
    assert 0 <= derive_seed(123, "x") < 2**63


def test_make_generator_reproducible_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a = torch.rand(3, generator=make_generator(7))
    b = torch.rand(3, generator=make_generator(7))
    assert torch.equal(a, b)
    assert torch.equal(state, torch.random.get_rng_state())
    with pytest.raises(ValueError, match="seed='7'"):
        make_generator("7")
