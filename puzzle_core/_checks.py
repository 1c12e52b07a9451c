"""Input validation shared by the public functions: every failure is a ValueError that names the
argument and states what was expected."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def check_rank(name: str, t: torch.Tensor, rank: int, shape_doc: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise ValueError(
            f"{name} must be a torch.Tensor of shape {shape_doc}, got {type(t).__name__}"
        )
    if t.dim() != rank:
        raise ValueError(f"{name} must have shape {shape_doc} ({rank} dims), got {tuple(t.shape)}")


def check_batch(name: str, t: torch.Tensor, batch: int, ref: str = "x") -> None:
    if t.shape[0] != batch:
        raise ValueError(
            f"{name} has batch size {t.shape[0]} but {ref} has batch size {batch}; they must match"
        )


def check_finite_nonneg(name: str, t: torch.Tensor) -> None:
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite (no NaN/inf)")
    if (t < 0).any():
        raise ValueError(f"{name} must be non-negative")


def check_unit_interval(name: str, v: float) -> None:
    if not (isinstance(v, (int, float)) and math.isfinite(v) and 0.0 <= float(v) <= 1.0):
        raise ValueError(f"{name} must be a number in [0, 1], got {v!r}")


def check_positive_int(name: str, v: int, minimum: int = 1) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {v!r}")


def check_choice(name: str, v: object, choices: Sequence[object]) -> None:
    if v not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {v!r}")


def check_divides(name: str, grid: int, height: int, width: int) -> None:
    if height % grid or width % grid:
        raise ValueError(
            f"{name}={grid} must divide the image sides, got image of size {height}x{width}"
        )


def check_permutation(name: str, perm: torch.Tensor, batch: int) -> None:
    check_rank(name, perm, 1, "(B,)")
    check_batch(name, perm, batch)
    if perm.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
        raise ValueError(f"{name} must be an integer tensor, got dtype {perm.dtype}")
    if batch and (perm.min() < 0 or perm.max() >= batch):
        raise ValueError(f"{name} must hold indices in [0, {batch - 1}]")
