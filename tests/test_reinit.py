"""Re-initialisation in place (ddlib.models.reinit): CPU draws, the same weights for every device."""
import copy

import pytest
import torch

from ddlib.core.functional import flatten_params
from ddlib.models import build_model
from ddlib.models.reinit import reinitialize_


def _net(seed=5, width=8):
    return build_model("ConvNet", 1, 10, (8, 8), width=width, seed=seed)


def test_in_place_draw_equals_build_model_and_keeps_global_rng():
    net = _net()
    state = torch.get_rng_state()
    reinitialize_(net, 123)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(flatten_params(net), flatten_params(_net(seed=123)))


def test_twin_draw_is_copied_into_the_network_in_its_dtype():
    # A float64 network stands in for one on another device: its weights must be the CPU float32 draw,
    # not a draw in its own dtype (which takes other random numbers, as a CUDA generator would).
    net, twin = _net().double(), _net(seed=9)
    reinitialize_(net, 123, cpu_twin=twin)
    expected = flatten_params(_net(seed=123))
    assert flatten_params(net).dtype == torch.float64
    assert torch.equal(flatten_params(net), expected.double())
    assert torch.equal(flatten_params(twin), expected)
    own_dtype = _net().double()
    reinitialize_(own_dtype, 123)
    assert not torch.equal(flatten_params(own_dtype), expected.double())


def test_batch_norm_running_statistics_are_reset_through_the_twin():
    net = build_model("ConvNet", 1, 10, (8, 8), width=8, norm="batch", seed=0)
    net(torch.randn(4, 1, 8, 8))  # training mode: running statistics move away from (0, 1)
    twin = copy.deepcopy(net)
    reinitialize_(net, 1, cpu_twin=twin)
    for name, buffer in net.named_buffers():
        if name.endswith("running_mean"):
            assert torch.equal(buffer, torch.zeros_like(buffer)), name
        if name.endswith("running_var"):
            assert torch.equal(buffer, torch.ones_like(buffer)), name


def test_mismatched_twin_is_rejected_before_drawing():
    net = _net()
    before = flatten_params(net)
    with pytest.raises(ValueError, match="cpu_twin does not match"):
        reinitialize_(net, 1, cpu_twin=_net(width=16))
    assert torch.equal(flatten_params(net), before)


def test_twin_off_the_cpu_is_rejected():
    with pytest.raises(ValueError, match=r"cpu_twin is on \['meta'\]; expected the CPU"):
        reinitialize_(_net(), 1, cpu_twin=_net().to("meta"))
