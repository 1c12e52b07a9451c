"""Every method by name: ``build("cutmix", alpha=1.0, num_classes=100)``."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
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


def build_for_data(
    name: str,
    params: Mapping[str, Any],
    *,
    num_classes: int,
    mean: Sequence[float],
    std: Sequence[float],
) -> Any:
    """The mixer of a training run: ``params`` (its config's ``method_params``) plus what the
    data set determines: ``num_classes`` always, and its normalisation ``mean`` / ``std`` for
    the mixers whose constructor names them (they work in pixel space: SaliencyMix's detector,
    AugMix's operations, Puzzle Mix's data term and adversarial clamp).  ``params`` win."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown mixer {name!r}; available: {available()}")
    named = inspect.signature(_REGISTRY[name]).parameters
    data = {"mean": mean, "std": std}
    extra = {k: v for k, v in data.items() if k in named and k not in params}
    return build(name, num_classes=num_classes, **{**extra, **params})
