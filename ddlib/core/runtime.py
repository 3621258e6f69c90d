"""Device resolution and explicit seeding.

ddlib never reads the clock for randomness and never reseeds global RNG state:
every stochastic function takes a ``torch.Generator`` (or a seed that is turned
into one here). Seeds of sub-runs (evaluation run ``i``, expert ``k``) are derived
from the run seed with :func:`derive_seed`, so runs are reproducible and
independent of the order in which they execute.
"""
from __future__ import annotations

import hashlib

import torch

__all__ = ["resolve_device", "make_generator", "derive_seed"]

_DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"`` into ``cuda`` when available, else ``cpu``.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Raises
    ------
    ValueError
        For an unknown device string, or ``cuda`` requested on a machine without CUDA.
    """
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str) or device.split(":")[0] not in _DEVICE_CHOICES:
        raise ValueError(f"device={device!r}: expected one of {_DEVICE_CHOICES} (or 'cuda:N')")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} requested but CUDA is not available here; use 'cpu' or 'auto'")
    return torch.device(device)


def derive_seed(seed: int, *keys: object) -> int:
    """Derive a 63-bit seed from a run seed and any number of keys.

    The derivation is a hash, so ``derive_seed(s, "eval", 0)`` and
    ``derive_seed(s, "eval", 1)`` are unrelated streams and independent of
    execution order.

    Examples
    --------
    >>> derive_seed(0, "eval", 1) == derive_seed(0, "eval", 1)
    True
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed={seed!r}: expected an int")
    text = repr((seed,) + tuple(keys)).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") & ((1 << 63) - 1)


def make_generator(seed: int | torch.Generator, device: str | torch.device = "cpu") -> torch.Generator:
    """Return a ``torch.Generator`` seeded with ``seed`` (a generator is passed through)."""
    if isinstance(seed, torch.Generator):
        return seed
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed={seed!r}: expected an int or a torch.Generator")
    generator = torch.Generator(device=torch.device(device))
    generator.manual_seed(seed)
    return generator
