"""Re-draw a network's weights in place from a seed, on the CPU whatever the network's device.

DM re-initialises its embedding network every iteration (:class:`ddlib.methods.dm.DistributionMatching`);
doing it in place avoids building a module per iteration, and drawing on the CPU makes a seed
give the same weights on every device (on CUDA, ``reset_parameters`` would draw from the CUDA
generator: other weights than on the CPU).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["reinitialize_"]


def reinitialize_(net: nn.Module, seed: int, *, cpu_twin: nn.Module | None = None) -> None:
    """Re-draw the parameters of ``net`` in place from ``seed`` (``reset_parameters`` of every layer).

    The weights are always drawn on the CPU, from the CPU generator seeded with ``seed``
    inside ``torch.random.fork_rng`` (the global RNG state is untouched), so a seed gives the
    same weights on every device, equal to those of ``build_model(..., seed=seed)`` (layers
    are reset in construction order; checked for ConvNet in the tests). This is also what
    the DM code gets: it builds each iteration's network on the CPU and moves it to the GPU.
    Batch-norm running statistics are reset too.

    Parameters
    ----------
    net : nn.Module
        The network, on any device.
    seed : int
    cpu_twin : nn.Module, optional
        A CPU module of the same architecture as ``net``. When given, the weights are drawn
        into it and copied into ``net`` (how a network on another device is re-initialised
        without a CPU copy per call). When ``None`` and ``net`` is not on the CPU, a
        temporary CPU copy is made.

    Raises
    ------
    ValueError
        If ``cpu_twin`` is not on the CPU or its tensors do not match ``net``'s names and shapes.
    """
    on_cpu = all(t.device.type == "cpu" for t in (*net.parameters(), *net.buffers()))
    if cpu_twin is None and not on_cpu:
        cpu_twin = copy.deepcopy(net).cpu()
    target = net if cpu_twin is None else cpu_twin
    if cpu_twin is not None:
        _check_twin(net, cpu_twin)
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        for module in target.modules():
            if module is not target and callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()
    if target is not net:
        drawn = target.state_dict()
        with torch.no_grad():
            for name, value in net.state_dict().items():
                value.copy_(drawn[name])


def _check_twin(net: nn.Module, cpu_twin: nn.Module) -> None:
    wanted = {name: tuple(t.shape) for name, t in net.state_dict().items()}
    got = {name: tuple(t.shape) for name, t in cpu_twin.state_dict().items()}
    if got != wanted:
        raise ValueError(f"cpu_twin does not match the network: tensors {sorted(got.items())}, "
                         f"expected {sorted(wanted.items())}")
    devices = {t.device.type for t in cpu_twin.state_dict().values()}
    if devices - {"cpu"}:
        raise ValueError(f"cpu_twin is on {sorted(devices)}; expected the CPU")
