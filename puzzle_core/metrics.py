"""Metrics as the papers report them."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import torch

from ._checks import check_batch, check_rank


def topk_correct(logits: torch.Tensor, y: torch.Tensor, k: int = 1) -> torch.Tensor:
    """(B,) bool: the true class is among the k largest logits."""
    check_rank("logits", logits, 2, "(B, K)")
    check_batch("y", y, logits.shape[0], "logits")
    if not 1 <= k <= logits.shape[1]:
        raise ValueError(f"k must be in [1, {logits.shape[1]}], got {k}")
    return (logits.topk(k, dim=1).indices == y.view(-1, 1)).any(1)


def median_of_last(values: Sequence[float], n: int = 10) -> float:
    """The paper's reported number: the median of the last n epochs' values (reference
    ``main.py``; with fewer epochs, the median of all)."""
    if not values:
        raise ValueError("values must not be empty")
    return float(statistics.median(list(values)[-n:]))


def corruption_error(accuracy: dict[str, Sequence[float]]) -> float:
    """CIFAR-100-C error as the reference computes it: 100 - mean over corruption types of the
    mean accuracy (%) over the severities (no AlexNet normalisation;
    docs/reference-implementation.md §1c)."""
    if not accuracy:
        raise ValueError("accuracy must name at least one corruption")
    per_type = [sum(v) / len(v) for v in accuracy.values()]
    return 100.0 - sum(per_type) / len(per_type)
