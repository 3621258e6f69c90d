"""What :func:`~ddlib.quickstart.distill` and :func:`~ddlib.quickstart.evaluate` decide before any compute.

:mod:`ddlib.quickstart` is the front door; this module holds its argument checks and its
defaults, so that every bad argument fails in well under a second, with a message that names
the bad value and the fix, and never after experts have been trained for minutes.

Defaults come from the book's scale table (``ddlib.chapters.scales.SCALES``), the one place
they are written down: the ``paper`` scale for data sets read from files (the papers'
settings: ConvNet width 128, MTT's published table where it has the data set), the ``mini``
scale for the embedded ``mnist5k`` and ``digits`` (width 16, 15-epoch experts, 150
iterations: minutes on 2 CPU cores). :func:`scale_for` picks it.
"""
from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any, Callable, Mapping

from ddlib.methods.coresets import forgetting_coreset, herding_coreset, kcenter_coreset, random_coreset
from ddlib.data import EMBEDDED, canonical_name
from ddlib.data.dataset import ImageDataset
from ddlib.chapters.scales import SCALES, FirstExperts, ScaleSettings
from ddlib.trajectories.experts import ExpertConfig
from ddlib.trajectories.fingerprints import dataset_fingerprint
from ddlib.methods.mtt_config import MTTConfig
from ddlib.trajectories.trajectory_store import TrajectoryStore

__all__ = ["METHODS", "TRAJECTORY_METHODS", "CORESET_METHODS", "EXPERT_KEYS", "uses_experts", "scale_for",
           "dataset_key", "default_cache_dir", "mtt_base", "check_method", "check_seed", "check_ipc",
           "check_iterations", "split_overrides", "coreset_options", "open_experts", "check_experts_fit",
           "check_schedule", "network_of", "check_eval_args"]

#: Distillers that match expert trajectories (MTT, AST, MCT) or learn from them (TGDD).
TRAJECTORY_METHODS = ("mtt", "ast", "mct", "tgdd")
#: Selections of real images; herding and k-center work in the feature space of a trained expert.
CORESET_METHODS = ("random", "herding", "kcenter", "forgetting")
#: Every method :func:`~ddlib.quickstart.distill` knows.
METHODS = ("mtt", "ast", "mct", "dm", "tgdd") + CORESET_METHODS
#: Override keys that choose the experts rather than the method's config (methods with experts only).
EXPERT_KEYS = ("num_experts", "expert_config", "expert_seed")

_CORESETS: Mapping[str, Callable[..., Any]] = {"random": random_coreset, "herding": herding_coreset,
                                               "kcenter": kcenter_coreset, "forgetting": forgetting_coreset}
# Coreset arguments ddlib.distill sets itself (the rest are the method's options).
_CORESET_FIXED = ("data", "ipc", "seed", "net", "device", "counts")


def uses_experts(method: str) -> bool:
    """Whether ``method`` needs expert trajectories (trajectory methods; herding and k-center's features)."""
    return method in TRAJECTORY_METHODS or method in ("herding", "kcenter")


def dataset_key(data: ImageDataset) -> str | None:
    """ddlib's registry name of ``data`` (``"cifar10"``), or ``None`` for a data set outside the registry."""
    try:
        return canonical_name(data.name)
    except ValueError:
        return None


def scale_for(data: ImageDataset) -> ScaleSettings:
    """The scale whose settings are the defaults for ``data``: ``mini`` for the embedded sets, else ``paper``."""
    key = dataset_key(data)
    return SCALES["mini" if key in EMBEDDED else "paper"].replace(dataset=key or data.name)


def default_cache_dir() -> Path:
    """Where experts are cached without a ``checkpoint_dir``: ``$XDG_CACHE_HOME/ddlib`` (``~/.cache/ddlib``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ddlib"


def mtt_base(settings: ScaleSettings, data: ImageDataset, ipc: int) -> MTTConfig:
    """MTT's settings for ``data`` at ``ipc``: ``ScaleSettings.mtt_config`` (MTT's published table where it
    has the data set), or for a data set outside ddlib's registry the same fallback (lr_img 100, lr 0.01).

    On the embedded sets the unroll keeps its whole graph (``memory="graph"``), as the book's
    chapters do below paper scale: the same gradients up to rounding, about a third faster on
    a CPU, and a few MB of graph for a width-16 ConvNet.
    """
    key = dataset_key(data)
    if key is None:
        return MTTConfig(ipc=ipc, iterations=settings.iterations, lr_img=100.0, lr_teacher=0.01)
    return settings.mtt_config(ipc, **({"memory": "graph"} if key in EMBEDDED else {}))


# ---------------------------------------------------------------------- arguments of distill
def check_method(method: Any) -> str:
    """``method`` if it is one of :data:`METHODS`, else a ValueError listing them."""
    if method not in METHODS:
        raise ValueError(f"method={method!r}: expected one of {list(METHODS)}")
    return method


def check_seed(seed: Any) -> None:
    """Raise unless ``seed`` is an int (checked first: the distiller would find out after the experts)."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed={seed!r}: expected an int")


def check_ipc(data: ImageDataset, ipc: Any) -> None:
    """Raise unless ``1 <= ipc <=`` the training images of ``data``'s smallest class (named in the message)."""
    if isinstance(ipc, bool) or not isinstance(ipc, int) or ipc < 1:
        raise ValueError(f"ipc={ipc!r}: expected an int >= 1 (synthetic images per class)")
    counts = [int(index.numel()) for index in data.class_indices]
    smallest = min(range(len(counts)), key=counts.__getitem__)
    if ipc > counts[smallest]:
        raise ValueError(f"ipc={ipc} exceeds the {counts[smallest]} training images of class {smallest} "
                         f"({data.class_names[smallest]!r}), the smallest class of {data.name!r}; "
                         f"pass ipc <= {counts[smallest]}")


def check_iterations(method: str, iterations: Any) -> None:
    """Raise for ``iterations < 1``, or for iterations given to a coreset (which has none)."""
    if iterations is None:
        return
    if method in CORESET_METHODS:
        raise ValueError(f"iterations={iterations!r}: method {method!r} selects real images and has no "
                         "iterations; omit iterations=")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations={iterations!r}: expected an int >= 1 (or None for the method's default)")


def split_overrides(method: str, overrides: Mapping[str, Any], fields: tuple[str, ...]) -> tuple[dict, dict]:
    """``(config overrides, expert overrides)`` of ``overrides``, checked against the valid keys.

    ``fields`` are the method's config fields. Methods with experts also take
    :data:`EXPERT_KEYS` (and AST ``preset``), checked here for type.

    Raises
    ------
    ValueError
        A key that is neither, naming it and every valid key; a bad expert-key value.
    """
    extra = (EXPERT_KEYS if uses_experts(method) else ()) + (("preset",) if method == "ast" else ())
    unknown = sorted(set(overrides) - set(fields) - set(extra))
    if unknown:
        raise ValueError(f"unknown keyword(s) {unknown} for method {method!r}; valid keywords are "
                         f"{sorted(set(fields) | set(extra))} (besides ipc, iterations, experts, seed, device, "
                         "checkpoint_dir, progress)")
    chosen = {k: v for k, v in overrides.items() if k in extra}
    checks = {"num_experts": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
              "expert_seed": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "expert_config": lambda v: isinstance(v, ExpertConfig), "preset": lambda v: v in ("code", "paper")}
    expected = {"num_experts": "an int >= 1", "expert_seed": "an int", "expert_config": "a ddlib.ExpertConfig",
                "preset": "'code' (the authors' code) or 'paper'"}
    for key, value in chosen.items():
        if not checks[key](value):
            raise ValueError(f"{key}={value!r}: expected {expected[key]}")
    return {k: v for k, v in overrides.items() if k not in extra}, chosen


def coreset_options(method: str, defaults: Mapping[str, Any],
                    overrides: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(options, expert overrides)`` of coreset ``method``: its function's keywords, ``defaults``, ``overrides``.

    The valid keys are the coreset function's keyword parameters except what
    :func:`~ddlib.quickstart.distill` sets itself (``seed``, ``net``, ``device``, ...), and
    :data:`EXPERT_KEYS` for herding and k-center.
    """
    fn = _CORESETS[method]
    params = {name: p.default for name, p in inspect.signature(fn).parameters.items() if name not in _CORESET_FIXED}
    config_overrides, experts = split_overrides(method, overrides, tuple(params))
    options = {**params, **defaults, **config_overrides}
    required = [name for name, value in options.items() if value is inspect.Parameter.empty]
    if required:  # a required keyword of the coreset function that has no default here
        raise ValueError(f"method {method!r} needs {required}; pass them as keywords")
    return options, experts


# ---------------------------------------------------------------------- experts
def open_experts(experts: Any, method: str) -> TrajectoryStore | FirstExperts | None:
    """The store ``experts`` names (a store, a view of one, or a folder), or ``None`` to train them.

    Raises
    ------
    ValueError
        Experts given to a method that uses none (an error rather than a warning: silently
        ignoring them would hide a mistaken ``method``).
    FileNotFoundError
        A folder that does not exist or holds no trajectory store.
    TypeError
        Anything else.
    """
    if experts is None:
        return None
    if not uses_experts(method):
        raise ValueError(f"method {method!r} uses no expert trajectories, but experts= was given; pass "
                         f"experts=None, or a method that uses them: {[m for m in METHODS if uses_experts(m)]}")
    if isinstance(experts, (TrajectoryStore, FirstExperts)):
        return experts
    if isinstance(experts, (str, os.PathLike)):
        root = Path(experts)
        if not (root / "manifest.json").is_file():
            what = "does not exist" if not root.exists() else "holds no manifest.json"
            raise FileNotFoundError(f"experts={str(experts)!r}: the folder {what}; pass the folder of a store "
                                    "written by ddlib.generate_experts or ddlib.cached_experts, or experts=None "
                                    "to train and cache them")
        return TrajectoryStore.open(root)
    raise TypeError(f"experts={type(experts).__name__}: expected None, a ddlib.TrajectoryStore or its folder")


def _network(arch: str, width: Any, depth: Any, norm: Any) -> dict[str, Any]:
    return {"arch": str(arch), "width": width, "depth": depth, "norm": norm}


def network_of(config: ExpertConfig | Mapping[str, Any] | Any) -> dict[str, Any]:
    """``{"arch", "width", "depth", "norm"}`` of an :class:`ExpertConfig` (or a config or dict with those keys)."""
    if isinstance(config, Mapping):
        return _network(config["arch"], config["width"], config["depth"], config["norm"])
    return _network(config.arch, config.width, config.depth, config.norm)


def check_experts_fit(store: Any, data: ImageDataset, expert_config: ExpertConfig | None = None) -> None:
    """Raise unless ``store``'s experts were trained on ``data`` (and with ``expert_config``'s network).

    Compared: image shape and class count, then the data set's name and content
    fingerprint (:func:`~ddlib.trajectories.fingerprints.dataset_fingerprint`: another subset or
    normalisation of the same data set differs), then arch, width, depth and norm.
    """
    manifest, where = store.manifest, f"the experts in {str(store.root)!r}"
    stored_shape, shape = (manifest["channel"], *manifest["im_size"]), (data.channel, *data.im_size)
    trained_on = manifest["dataset"]
    if tuple(stored_shape) != shape or manifest["num_classes"] != data.num_classes:
        raise ValueError(f"{where} were trained on {trained_on['name']!r}: images {tuple(stored_shape)}, "
                         f"{manifest['num_classes']} classes; data {data.name!r} has images {shape}, "
                         f"{data.num_classes} classes. Pass experts trained on this data set, or experts=None")
    fingerprint = dataset_fingerprint(data)
    if trained_on["name"] != data.name or trained_on["fingerprint"] != fingerprint:
        raise ValueError(f"{where} were trained on {trained_on['name']!r} ({trained_on['num_train']} training "
                         f"images, fingerprint {trained_on['fingerprint'][:12]}); data is {data.name!r} "
                         f"({len(data.labels_train)} training images, fingerprint {fingerprint[:12]}): another "
                         "data set, subset or normalisation. Pass experts trained on this data, or experts=None")
    if expert_config is not None:
        stored = _network(manifest["arch"], **manifest["model_kwargs"])
        wanted = network_of(expert_config)
        if stored != wanted:
            raise ValueError(f"{where} are {stored} networks, but expert_config asks for {wanted}; drop "
                             "expert_config (the experts define the network), or pass matching experts")


def check_schedule(config: MTTConfig, epochs: int, where: str) -> None:
    """Raise unless ``max_start_epoch + expert_epochs`` fits the experts' ``epochs`` (before any training)."""
    if config.max_start_epoch + config.expert_epochs > epochs:
        raise ValueError(f"max_start_epoch={config.max_start_epoch} + expert_epochs={config.expert_epochs} "
                         f"exceeds the {epochs} epochs of {where}; pass smaller max_start_epoch= / expert_epochs=, "
                         "or longer experts")


# ---------------------------------------------------------------------- arguments of evaluate
def check_eval_args(synthetic: Any, data: ImageDataset, protocol: Any, num_eval: Any, epochs: Any,
                    protocols: tuple[str, ...]) -> None:
    """Raise for an unknown protocol, ``num_eval``/``epochs < 1``, or a set that does not fit ``data``."""
    if protocol not in protocols:
        raise ValueError(f"protocol={protocol!r}: expected one of {list(protocols)}")
    for name, value in (("num_eval", num_eval), ("epochs", epochs)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name}={value!r}: expected an int >= 1 (or None for the protocol's default)")
    shape = (data.channel, *data.im_size)
    if synthetic.image_shape != shape or synthetic.num_classes != data.num_classes:
        raise ValueError(f"the synthetic set ({synthetic.dataset!r}) has images {synthetic.image_shape} and "
                         f"{synthetic.num_classes} classes; data {data.name!r} has images {shape} and "
                         f"{data.num_classes} classes. Evaluate it on the data set it was distilled from")
