"""Checks that every gin-bound config applies when it is built: each field's type (from its annotation)
and, for numbers and names, its range or choices, with one error naming the field, the value and
what is allowed.

    @gin.configurable
    @validated(num_steps=at_least(1), learning_rate=at_least(0.0), schedule=one_of(*SCHEDULES))
    @dataclasses.dataclass(frozen=True)
    class TrainConfig: ...

`validated` runs before the class's own `__post_init__` (which checks how fields relate). Every class
it decorates is listed in `VALIDATED`, so a test can walk every field of every config with a wrong
type and an out-of-range value.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable
from typing import Any

from lowres.errors import ConfigError

VALIDATED: list[type] = []


@dataclasses.dataclass(frozen=True)
class Rule:
    """What values a field allows beyond its type: `allows(value)`, described as `allowed`, with
    `outside` some values it refuses (for tests)."""

    allowed: str
    allows: Callable[[Any], bool]
    outside: tuple[Any, ...] = ()


def at_least(low: float) -> Rule:
    return Rule(f">= {low}", lambda v: v >= low, (low - 1,))


def greater_than(low: float) -> Rule:
    return Rule(f"> {low}", lambda v: v > low, (low,))


def between(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Rule:
    """low <= v <= high, either end open."""
    text = f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"

    def allows(v):
        return (v > low if low_open else v >= low) and (v < high if high_open else v <= high)

    return Rule(text, allows, (low if low_open else low - 1, high if high_open else high + 1))


def one_of(*choices: Any) -> Rule:
    return Rule(f"one of {list(choices)}", lambda v: v in choices, ("not-a-choice",))


def any_value(why: str) -> Rule:
    """An explicit 'any value of the field's type' (a name, a path, a seed), with the reason."""
    return Rule(f"any ({why})", lambda v: True)


# ------------------------------------------------------------------------------------------- types


def _describe(hint) -> str:
    origin = typing.get_origin(hint)
    if hint in (int, float, bool, str):
        return {int: "an int", float: "a number", bool: "True or False", str: "a string"}[hint]
    if origin in (typing.Union, types.UnionType):
        return " or ".join("None" if a is type(None) else _describe(a) for a in typing.get_args(hint))
    if origin in (tuple, list, collections.abc.Sequence):
        return "a list"
    if origin in (dict, collections.abc.Mapping) or hint is dict:
        return "a dict"
    return getattr(hint, "__name__", str(hint))


def _matches(value: Any, hint) -> bool:
    """Whether `value` has the annotated type (containers checked one level deep for plain types)."""
    if hint is Any:
        return True
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin in (tuple, list, collections.abc.Sequence) or hint is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
            return False
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return len(args) != 1 or all(_matches(item, args[0]) for item in value)
    if origin in (dict, collections.abc.Mapping) or hint is dict:
        # Frozen configs keep mappings as a tuple of (key, value) items, so they stay hashable.
        items = isinstance(value, tuple) and all(isinstance(i, tuple) and len(i) == 2 for i in value)
        return isinstance(value, collections.abc.Mapping) or items
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def check_fields(instance: Any, rules: dict[str, Rule]) -> None:
    """Raises ConfigError for the first field of `instance` whose type or value is not allowed."""
    cls = type(instance)
    name = getattr(cls, "__name__", "config")
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(instance):
        value = getattr(instance, field.name)
        hint = hints.get(field.name, Any)
        if not _matches(value, hint):
            raise ConfigError(f"{name}.{field.name}={value!r}: expected {_describe(hint)}")
        rule = rules.get(field.name)
        if rule is not None and value is not None and not rule.allows(value):
            raise ConfigError(f"{name}.{field.name}={value!r}: must be {rule.allowed}")


def validated(**rules: Rule):
    """Class decorator (under @gin.configurable, over @dataclass): checks types and `rules` on construction."""

    def decorate(cls):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(rules) - names)
        if unknown:
            raise TypeError(f"{cls.__name__} has no field(s) {unknown}")
        own = cls.__dict__.get("__post_init__")
        if own is not None:  # the dataclass __init__ calls it: check first, then the class's own checks

            def __post_init__(self):
                check_fields(self, rules)
                own(self)

            cls.__post_init__ = __post_init__
        else:  # no __post_init__ for __init__ to call: check after __init__ (its signature kept for gin)
            init = cls.__init__

            @functools.wraps(init)
            def __init__(self, *args, **kwargs):
                init(self, *args, **kwargs)
                check_fields(self, rules)

            cls.__init__ = __init__
        cls.field_rules = dict(rules)
        VALIDATED.append(cls)
        return cls

    return decorate
