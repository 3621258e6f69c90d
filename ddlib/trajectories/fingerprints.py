"""What an expert store records about its inputs, so a cache hit can be checked against a request.

:func:`dataset_fingerprint` hashes a data set's tensors (not its name), :func:`describe_loss_hook`
names a training loss, and ``_differences`` lists where a stored manifest and a request
differ, for error messages that name both values.
"""
from __future__ import annotations

import hashlib
import types
from typing import Any

from ddlib.core.config import Config
from ddlib.data.dataset import ImageDataset
from ddlib.core.train import LossHook

__all__ = ["dataset_fingerprint", "describe_loss_hook"]


def _differences(stored: Any, wanted: Any, prefix: str = "") -> list[str]:
    """Human-readable list of the leaves where two JSON-like values differ."""
    if isinstance(stored, dict) and isinstance(wanted, dict):
        out = []
        for key in sorted(set(stored) | set(wanted), key=str):
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in stored:
                out.append(f"{name}: missing in the stored manifest, requested {wanted[key]!r}")
            elif key not in wanted:
                out.append(f"{name}: stored {stored[key]!r}, not part of the request")
            else:
                out.extend(_differences(stored[key], wanted[key], name))
        return out
    return [] if stored == wanted else [f"{prefix}: stored {stored!r}, requested {wanted!r}"]


def describe_loss_hook(hook: LossHook) -> dict[str, Any]:
    """``{"name": function or class name, "config": hook.to_dict() if the hook is a Config else None}``."""
    if isinstance(hook, (types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
        name = hook.__qualname__
    else:
        name = type(hook).__qualname__
    return {"name": name, "config": hook.to_dict() if isinstance(hook, Config) else None}


_FINGERPRINT_ATTR = "_ddlib_fingerprint"


def dataset_fingerprint(data: ImageDataset) -> str:
    """sha256 (hex) of the train and test images and labels (their bytes, dtypes and shapes).

    It detects a different data set under one name (flipped, re-normalised, other subset).
    Hashing CIFAR-10 takes about a second, so the digest is kept on ``data`` together with
    the tensors' storage pointers and version counters: an in-place edit of a tensor bumps
    its version, so the digest is recomputed after one.
    """
    tensors = (data.images_train, data.labels_train, data.images_test, data.labels_test)
    try:
        state = tuple((t.data_ptr(), t._version) for t in tensors)
    except RuntimeError:  # inference-mode tensors have no version counter: no caching
        state = None
    cached = data.__dict__.get(_FINGERPRINT_ATTR)
    if state is not None and cached is not None and cached[0] == state:
        return cached[1]
    digest = hashlib.sha256()
    for tensor in tensors:
        array = tensor.detach().to("cpu").contiguous().numpy()
        digest.update(repr((str(array.dtype), array.shape)).encode())
        digest.update(memoryview(array).cast("B"))
    if state is not None:  # ImageDataset is frozen: write __dict__ directly, as functools.cached_property does
        data.__dict__[_FINGERPRINT_ATTR] = (state, digest.hexdigest())
    return digest.hexdigest()
