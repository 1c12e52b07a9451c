"""What every mixer shares: the call convention, the result record and the input checks.

A mixer is constructed once and called on a batch (timm / torchvision v2 manners):
``x_mix, y_mix = mixer(x, y, saliency=None, generator=None)``; x (B, C, H, W); y integer labels
(B,) or soft targets (B, K); y_mix (B, K) soft, rows summing to 1 unless a method's documented
label rule says otherwise (SnapMix).  ``mixer.mix(...)`` returns a :class:`MixResult` with the
partner permutation, the label weight of each example and method-specific details.  Both check
their inputs first (:class:`~puzzle_core._checks.CheckedMixer`): a ValueError names the argument.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .._checks import CheckedMixer
from ..mixing import mix_targets, to_soft_targets
from ..pairing import make_pairing


@dataclass(frozen=True)
class MixResult:
    """x (B, C, H, W) mixed; y (B, K) targets; perm (B,) partner of each example; ratio (B,)
    weight of the example itself in its label; info: method-specific (mask, box, layer...)."""

    x: torch.Tensor
    y: torch.Tensor
    perm: torch.Tensor
    ratio: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)


class Mixer(CheckedMixer):
    """Base class: subclasses implement ``_mix(x, y, saliency, *, generator, <keywords>)``; the
    public ``mix`` / ``__call__`` (:class:`~puzzle_core._checks.CheckedMixer`) validate the
    inputs first, so every registered mixer refuses bad input the same way.

    ``saliency``: which saliency the method consumes (None, "input_gradient" = the model's input
    gradient as in Puzzle Mix, computed by the training loop, "cam" = class activation maps, or
    "image" = computed inside the mixer from the pixels).  ``num_classes`` is needed with
    integer labels."""

    def __init__(self, num_classes: int | None = None) -> None:
        self.num_classes = num_classes

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"

    # helpers for subclasses (inputs already checked by ``mix``)
    def _targets(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """y -> soft targets (B, K) float on x's device."""
        return to_soft_targets(y, self.num_classes, x.shape[0]).to(x.device)

    def _pair(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None,
        perm: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The partner permutation: ``perm`` when given (B,), else ``self.pairing`` "random"
        (default), "greedy" or "exact" (on GuidedMixup's spectral-residual maps, its Table 8
        "+pairing")."""
        if perm is not None:
            return perm.to(x.device).long()
        kind = getattr(self, "pairing", "random")
        return make_pairing(kind, x.shape[0], images=x, generator=generator, device=x.device)

    @staticmethod
    def _labels(targets: torch.Tensor, perm: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
        return mix_targets(targets, perm, ratio)
