"""Which models of an expert trajectory MCT stores, and how it smooths them.

MCT (Zhong et al., CVPR 2025) keeps a few *waypoint* models of each SGD expert trajectory
``theta_0 .. theta_K`` (:mod:`ddlib.trajectories.convexified` draws straight lines between them). Two
choices are made here, each selectable by name because the paper and the authors' code
differ:

* the waypoint epochs (:func:`waypoint_epochs`): the stride rule of the authors'
  ``exps/trajectory_compression.py`` or evenly spaced epochs;
* the smoothing of the stored models (:func:`smoothed_waypoints`, :data:`SMOOTHINGS`):
  the paper stores the end point as ``mean(theta_{K-1}, theta_K)``; the authors' code
  smooths only when it stores more than two waypoints (then every interior waypoint
  *and* the end point).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

__all__ = ["waypoint_epochs", "smoothed_waypoints", "SMOOTHINGS"]

#: Names accepted by :func:`smoothed_waypoints`.
SMOOTHINGS = ("code", "paper", "none")


def waypoint_epochs(num_epochs: int, waypoints: int, rule: str = "authors") -> tuple[int, ...]:
    """Epochs at which the waypoint models are stored.

    ``"authors"`` follows the authors' ``exps/trajectory_compression.py``: stride
    ``(K + 1) // (n - 1)``, epochs ``0, stride, 2 stride, ... <= K``, plus ``K`` if missing
    (``K = 50, n = 4``: 0, 17, 34, 50). For some ``(K, n)`` this gives more than ``n``
    epochs (``K = 50, n = 5``: 0, 12, 24, 36, 48, 50). ``"even"`` gives exactly ``n``:
    ``round(i K / (n - 1))`` with halves rounded up (``K = 50, n = 4``: 0, 17, 33, 50).
    Returns a strictly increasing tuple from 0 to ``num_epochs``.
    """
    K, n = int(num_epochs), int(waypoints)
    if K < 1 or n < 2:
        raise ValueError(f"num_epochs={num_epochs}, waypoints={waypoints}: expected >= 1 and >= 2")
    if rule == "authors":
        stride = (K + 1) // (n - 1)
        if stride < 1:
            raise ValueError(f"{n} waypoints need at least {n - 1} epochs under the authors' rule; got {K}")
        epochs = list(range(0, K + 1, stride))
        return tuple(epochs if epochs[-1] == K else epochs + [K])
    if rule == "even":
        if n - 1 > K:
            raise ValueError(f"{n} distinct waypoints need at least {n - 1} epochs; got {K}")
        return tuple((2 * i * K + n - 1) // (2 * (n - 1)) for i in range(n))
    raise ValueError(f"waypoint rule {rule!r}: expected 'authors' or 'even'")


def smoothed_waypoints(snapshots: Tensor, epochs: Sequence[int], smoothing: str = "code") -> Tensor:
    """The models stored at ``epochs``, smoothed as ``smoothing`` says.

    Parameters
    ----------
    snapshots : Tensor
        ``(K + 1, P)`` the SGD trajectory, epochs ``0..K``.
    epochs : sequence of int
        Strictly increasing waypoint epochs from ``0`` to ``K`` (:func:`waypoint_epochs`).
    smoothing : {"code", "paper", "none"}
        ``"code"``, the authors' ``trajectory_compression.py`` as written: with 2 waypoints
        nothing is smoothed; with more, each interior waypoint ``e`` becomes
        ``mean(theta_{e-1}, theta_{e+1})`` and then the end point becomes
        ``mean(theta_{K-1}, theta_K)``, in place and in increasing epoch order, so a
        neighbour that is itself an earlier (already smoothed) waypoint enters smoothed.
        ``"paper"``: only the end point, ``mean(theta_{K-1}, theta_K)``, whatever the
        number of waypoints (the paper stores 2 models and smooths the end). ``"none"``:
        the snapshots as they are.

    Returns
    -------
    Tensor
        ``(len(epochs), P)`` in the dtype of ``snapshots`` (means computed in float32).
    """
    if smoothing not in SMOOTHINGS:
        raise ValueError(f"smoothing={smoothing!r}: expected one of {SMOOTHINGS}")
    K, epochs = int(snapshots.shape[0]) - 1, [int(e) for e in epochs]
    if len(epochs) < 2 or epochs[0] != 0 or epochs[-1] != K or epochs != sorted(set(epochs)):
        raise ValueError(f"epochs {epochs} must increase strictly from 0 to K = {K}")
    full = snapshots.to(torch.float32)
    changed: dict[int, Tensor] = {}  # the trajectory as the code leaves it after its in-place edits
    value = lambda e: changed.get(e, full[e])
    if smoothing == "code" and len(epochs) > 2:
        for e in epochs[1:-1]:
            changed[e] = (value(e - 1) + value(e + 1)) / 2
    if smoothing == "paper" or (smoothing == "code" and len(epochs) > 2):
        changed[K] = (value(K - 1) + full[K]) / 2
    return torch.stack([value(e) for e in epochs]).to(snapshots.dtype)
