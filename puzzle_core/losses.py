"""Training losses on soft targets."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with soft targets (B, K), batch mean (the loss the paper implies)."""
    return -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()


def bce_on_softmax(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The reference code's loss for every CIFAR/Tiny-ImageNet method: BCELoss(softmax(logits),
    targets) averaged over B x K entries (docs/reference-implementation.md §1a "Loss", §1b #17)."""
    return F.binary_cross_entropy(F.softmax(logits, dim=1), targets)


LOSSES = {"ce": soft_cross_entropy, "bce_softmax": bce_on_softmax}
