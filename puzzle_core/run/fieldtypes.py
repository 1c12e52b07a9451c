"""Type checks of a dataclass config's values against its annotations.

Used by the configs' ``__post_init__`` so that a value from the command line, a YAML file or
Python gets the same clear error: ``ValueError("epochs must be an integer, got 1.5")``.
Supported annotations: ``str``, ``int``, ``float`` (an int is accepted, NaN / inf are not),
``bool``, ``X | None``, ``dict[str, ...]``, ``tuple[T, ...]``, ``tuple[A, B]`` (a list is
accepted for a tuple) and ``Any``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any


def describe(tp: Any) -> str:
    """An annotation in words: ``tuple[int, ...]`` -> "a list of integers"."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return "any value"
    if origin in (typing.Union, types.UnionType):
        kinds = [describe(a) for a in args if a is not type(None)]
        none = " or null" if type(None) in args else ""
        return " or ".join(kinds) + none
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_plural(describe(args[0]))}"
        return f"a list of {len(args)} values ({', '.join(describe(a) for a in args)})"
    if origin is dict or tp is dict:
        return "a mapping"
    return {str: "a string", int: "an integer", float: "a finite number", bool: "true or false"}[tp]


def _plural(text: str) -> str:
    for article in ("an ", "a "):
        if text.startswith(article):
            return text[len(article) :] + "s"
    return text


def conforms(value: Any, tp: Any) -> bool:
    """Whether ``value`` has the annotated type (see the module docstring)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, a) for a in args)
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(float(value))
        )
    if tp is str:
        return isinstance(value, str)
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(conforms(v, args[0]) for v in value)
        return len(value) == len(args) and all(
            conforms(v, a) for v, a in zip(value, args, strict=True)
        )
    if origin is dict or tp is dict:
        key = args[0] if args else Any
        val = args[1] if args else Any
        return isinstance(value, dict) and all(
            conforms(k, key) and conforms(v, val) for k, v in value.items()
        )
    raise TypeError(f"unsupported annotation {tp!r}")


def check_field_types(obj: Any) -> None:
    """ValueError naming the first field of dataclass ``obj`` whose value has the wrong type."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if not conforms(value, hints[f.name]):
            raise ValueError(f"{f.name} must be {describe(hints[f.name])}, got {value!r}")
