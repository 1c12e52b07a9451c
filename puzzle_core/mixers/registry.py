"""Every method by name: ``build("cutmix", alpha=1.0, num_classes=100)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_REGISTRY: dict[str, Callable[..., Any]] = {}


def register(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def deco(factory: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY:
            raise ValueError(f"mixer {name!r} is registered twice")
        _REGISTRY[name] = factory
        return factory

    return deco


def available() -> list[str]:
    """The registered method names, sorted."""
    return sorted(_REGISTRY)


def build(name: str, **params: Any) -> Any:
    """Construct the mixer registered as ``name`` with ``params`` (its constructor's keywords)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown mixer {name!r}; available: {available()}")
    return _REGISTRY[name](**params)
