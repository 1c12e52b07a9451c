"""Input validation shared by the public functions: every failure is a ValueError that names the
argument and states what was expected (the mixers' entry, :class:`puzzle_core.protocol.Mixer`,
uses these checks on every batch)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


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
    check_tensor(name, perm, "(B,)")
    check_rank(name, perm, 1, "(B,)")
    check_batch(name, perm, batch)
    if perm.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
        raise ValueError(f"{name} must be an integer tensor, got dtype {perm.dtype}")
    if batch and (perm.min() < 0 or perm.max() >= batch):
        raise ValueError(f"{name} must hold indices in [0, {batch - 1}]")


def check_tensor(name: str, t: object, shape_doc: str) -> None:
    """A dense (strided) torch.Tensor holding data: not sparse, not on the ``meta`` device."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(
            f"{name} must be a torch.Tensor of shape {shape_doc}, got {type(t).__name__}"
        )
    if t.layout != torch.strided:
        raise ValueError(f"{name} must be a dense tensor, got layout {t.layout}")
    if t.device.type == "meta":
        raise ValueError(f"{name} is on the 'meta' device (no data): move it to cpu or cuda")


def check_images(x: torch.Tensor) -> None:
    """x (B, C, H, W), B, C, H, W >= 1, dtype float16/bfloat16/float32/float64 (finite) or
    uint8 (pixels 0..255)."""
    check_tensor("x", x, "(B, C, H, W)")
    check_rank("x", x, 4, "(B, C, H, W)")
    if x.dtype not in (*FLOAT_DTYPES, torch.uint8):
        raise ValueError(
            f"x must be float16, bfloat16, float32, float64 or uint8 images, got dtype {x.dtype}"
        )
    if x.shape[0] < 1:
        raise ValueError("x must hold at least one example")
    if min(x.shape[1:]) < 1:
        raise ValueError(f"x must have C, H, W >= 1, got shape {tuple(x.shape)}")
    if x.dtype != torch.uint8 and not torch.isfinite(x).all():
        raise ValueError("x must be finite (no NaN/inf)")


def check_labels(y: torch.Tensor, num_classes: int | None, batch: int) -> None:
    """y integer class indices (B,) in [0, num_classes) (num_classes required), or soft
    targets (B, K) finite and non-negative, K = num_classes when num_classes is given."""
    check_tensor("y", y, "(B,) or (B, K)")
    if y.dim() not in (1, 2):
        raise ValueError(f"y must have shape (B,) or (B, K), got {tuple(y.shape)}")
    check_batch("y", y, batch)
    if y.dtype == torch.bool or y.is_complex():
        raise ValueError(f"y must be integer labels or real soft targets, got dtype {y.dtype}")
    if y.dim() == 1:
        if y.is_floating_point():
            raise ValueError(
                "y must be integer labels (B,) or soft targets (B, K); got floats (B,)"
            )
        if num_classes is None:
            raise ValueError("num_classes is required with integer labels y (B,)")
        if batch and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"y must hold class indices in [0, {num_classes - 1}]")
        return
    if num_classes is not None and y.shape[1] != num_classes:
        raise ValueError(
            f"y has {y.shape[1]} classes (B, K) but num_classes is {num_classes}; they must match"
        )
    check_finite_nonneg("y", y)


def check_saliency(saliency: torch.Tensor, x: torch.Tensor, name: str = "saliency") -> None:
    """saliency (B, H, W): x's batch and image size, x's device, real, finite, >= 0."""
    check_tensor(name, saliency, "(B, H, W)")
    check_rank(name, saliency, 3, "(B, H, W)")
    check_batch(name, saliency, x.shape[0])
    if tuple(saliency.shape[1:]) != tuple(x.shape[2:]):
        raise ValueError(
            f"{name} must have shape (B, H, W) = {(x.shape[0], *x.shape[2:])}, "
            f"got {tuple(saliency.shape)}"
        )
    if saliency.dtype == torch.bool or saliency.is_complex():
        raise ValueError(f"{name} must be a real map, got dtype {saliency.dtype}")
    if saliency.device != x.device:
        raise ValueError(f"{name} is on {saliency.device} but x is on {x.device}")
    check_finite_nonneg(name, saliency)


def check_keywords(owner: str, given: Sequence[str], accepted: Sequence[str]) -> None:
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise ValueError(
            f"{owner} got unexpected keyword argument(s) {unknown}; "
            f"it accepts {sorted(accepted) if accepted else 'none'}"
        )


def check_generator(generator: object) -> None:
    if generator is None:
        return
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise ValueError(f"generator must be None or a CPU torch.Generator, got {generator!r}")


def to_unit_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 in [0, 1] (x / 255, torchvision's ``to_dtype(scale=True)``)."""
    return x.to(torch.float32) / 255


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float in [0, 1] -> uint8 pixels: x * 255 rounded and clamped to 0..255."""
    return (x * 255).round().clamp(0, 255).to(torch.uint8)
