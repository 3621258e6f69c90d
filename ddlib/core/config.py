"""Frozen dataclass configs that reject unknown keys and wrong types.

Every configuration object in ddlib derives from :class:`Config`. Defaults carry
the paper's values (with a comment citing the table they come from); overrides go
through ``dataclasses.replace`` or :meth:`Config.from_dict`, which refuses keys
the dataclass does not declare, so a typo never silently falls back to a default.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, ClassVar, Mapping, TypeVar

C = TypeVar("C", bound="Config")

__all__ = ["Config"]


def _type_ok(value: Any, hint: Any) -> bool:
    """Return True when ``value`` fits the (simple) type annotation ``hint``."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin in (tuple, list):
        if not isinstance(value, (tuple, list)):
            return False
        args = typing.get_args(hint)
        if not args:
            return True
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return len(args) == len(value) and all(_type_ok(v, a) for v, a in zip(value, args))
        return all(_type_ok(v, args[0]) for v in value)
    if origin is dict or hint is dict:
        return isinstance(value, Mapping)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return isinstance(value, (hint, Mapping))
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


@dataclasses.dataclass(frozen=True)
class Config:
    """Base class of all ddlib configs (frozen; unknown keys and wrong types raise)."""

    #: Fields that :meth:`to_dict` leaves out while they hold their default: a field added later
    #: (e.g. ``precision``) then keeps the cache keys built from ``to_dict()`` of existing runs.
    _omit_when_default: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            hint = hints[field.name]
            if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
                object.__setattr__(self, field.name, hint.from_dict(value))
                continue
            if isinstance(value, list) and typing.get_origin(hint) is tuple:
                object.__setattr__(self, field.name, tuple(value))
                value = tuple(value)
            if not _type_ok(value, hint):
                raise TypeError(
                    f"{type(self).__name__}.{field.name} = {value!r} has type {type(value).__name__}; "
                    f"expected {hint}"
                )
        self.validate()

    def validate(self) -> None:
        """Check value ranges; subclasses override and raise ``ValueError``."""

    @classmethod
    def from_dict(cls: type[C], values: Mapping[str, Any]) -> C:
        """Build a config from a mapping, rejecting keys the dataclass does not declare.

        Raises
        ------
        ValueError
            If ``values`` holds a key that is not a field, naming it and the valid keys.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(
                f"unknown key(s) {unknown} for {cls.__name__}; valid keys are {sorted(names)}"
            )
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        """Plain-python (JSON-serialisable) view of the config (``_omit_when_default`` fields left out at default)."""
        values = dataclasses.asdict(self)
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name in self._omit_when_default:
            if values[name] == defaults[name]:
                del values[name]
        return json.loads(json.dumps(values, default=str))

    def replace(self: C, **changes: Any) -> C:
        """Return a copy with ``changes`` applied (unknown keys raise ``ValueError``)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(
                f"unknown key(s) {unknown} for {type(self).__name__}; valid keys are {sorted(names)}"
            )
        return dataclasses.replace(self, **changes)
