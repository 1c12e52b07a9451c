"""Eq. (2): h = (1 - z) * Pi0^T x0 + z * Pi1^T x1, and the mixed label weighted by mean(z)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._checks import check_labels


def upsample_mask(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Nearest upsampling of a cell mask (B, gh, gw) to (B, 1, H, W)."""
    _, gh, gw = mask.shape
    return mask.repeat_interleave(height // gh, 1).repeat_interleave(width // gw, 2).unsqueeze(1)


def compose(x_self: torch.Tensor, x_partner: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """h = z * x_self + (1 - z) * x_partner (Eq. 2, z the weight of x1 = self);
    x (B, C, H, W), mask (B, gh, gw) -> (B, C, H, W) in x's dtype."""
    z = upsample_mask(mask, x_self.shape[2], x_self.shape[3]).to(x_self.dtype)
    return z * x_self + (1 - z) * x_partner


def to_soft_targets(y: torch.Tensor, num_classes: int | None, batch: int) -> torch.Tensor:
    """Integer labels (B,) -> one-hot (B, K); soft targets (B, K) pass through (as float).
    Checked by :func:`check_labels` (ValueError otherwise)."""
    check_labels(y, num_classes, batch)
    if y.dim() == 1:
        return F.one_hot(y.long(), num_classes).float()
    return y.float()


def mix_targets(targets: torch.Tensor, perm: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """ratio * y + (1 - ratio) * y[perm]: the label of Eq. (2) with weight mean(z).
    targets (B, K), perm (B,), ratio (B,) -> (B, K); rows sum to 1 when the targets do."""
    r = ratio.to(targets.dtype).unsqueeze(1)
    return r * targets + (1 - r) * targets[perm]
