"""SnapMix (Huang et al. 2021): asymmetric CutMix boxes with label weights from class activation
maps (semantic percent maps), as the official code computes them."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._checks import check_unit_interval
from .._random import draw_lambda, numpy_rng
from ..losses import soft_cross_entropy
from ..protocol import Mixer, MixResult, lap_stage, timed_result
from .boxes import official_box
from .registry import register


def semantic_percent_map(
    features: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    y: torch.Tensor,
    size: tuple[int, int],
) -> torch.Tensor:
    """SPM of every image for its own label: CAM = ReLU-features (B, C, h, w) projected on the
    classifier row of y (weight (K, C), bias (K,): the code includes the bias), bilinearly
    upsampled to ``size`` (align_corners False), shifted to min 0 and normalised to sum 1
    -> (B, H, W).  A degenerate (constant) map, NaN in the code, is all zero here: SnapMix
    gives it the same area-ratio fallback, and saliency stays finite for the input checks."""
    cam = torch.einsum("bchw,bc->bhw", features, weight[y])
    if bias is not None:
        cam = cam + bias[y].view(-1, 1, 1)
    cam = F.interpolate(cam.unsqueeze(1), size=size, mode="bilinear", align_corners=False)[:, 0]
    cam = cam - cam.flatten(1).min(1).values.view(-1, 1, 1)
    total = cam.flatten(1).sum(1).view(-1, 1, 1)
    return torch.where(total > 0, cam / total, torch.zeros((), dtype=cam.dtype, device=cam.device))


def class_activation_spm(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """SPM from a model exposing ``forward_features(x)`` (its last feature map before pooling,
    passed through ReLU as SnapMix's code does) and ``classifier`` (its nn.Linear), under no_grad
    in the model's current mode (the code: train mode, so BN statistics see the batch a second
    time).  Every model of ``puzzle_core.models`` has both."""
    if not hasattr(model, "forward_features") or not hasattr(model, "classifier"):
        raise ValueError("model must expose forward_features(x) and classifier (nn.Linear)")
    with torch.no_grad():
        feats = F.relu(model.forward_features(x))
        fc = model.classifier
        return semantic_percent_map(feats, fc.weight, fc.bias, y, tuple(x.shape[-2:]))


@register("snapmix")
class SnapMix(Mixer):
    """Two boxes for the batch, box_a ~ CutMix(lam_a) and box_b ~ CutMix(lam_b) with independent
    lambdas and centres; box_b of the partner is resized (bilinear, align_corners True) into box_a
    of every image.  Label weights (not normalised to 1): rho_a = 1 - sum_{box_a} SPM_self,
    rho_b = sum_{box_b} SPM_partner (each divided by its map's sum + 1e-8, as the code); equal
    labels get rho_a + rho_b each (so a label row sums to rho_a + rho_b in [0, 2], or
    2 (rho_a + rho_b) for equal labels).  ``saliency`` is the SPM (B, H, W) with x's H, W, finite
    and >= 0 (required; see :func:`class_activation_spm`), normalised to sum 1 per image.
    Defaults: prob 1, beta 1 (argparse).

    Undefined maps (all zero here; a constant CAM, NaN in the code) follow the official code
    exactly (SnapMix utils/mixmethod.py ``snapmix``, the same in GuidedMixup's FGVC port): a
    weight computed from such a map is NaN; the same-label rule runs first, so on equal labels
    a NaN in either weight makes both NaN; then every NaN weight falls back to the area ratio
    of the pasted box a: self 1 - area_a / HW, partner area_a / HW (not area_b / HW).  With
    every map undefined the two weights of a row sum to 1 (docs/baselines.md §6)."""

    name = "snapmix"
    saliency = "cam"
    labels_sum_to_one = False

    def __init__(self, alpha: float = 1.0, prob: float = 1.0, num_classes: int | None = None):
        super().__init__(num_classes)
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        check_unit_interval("prob", prob)
        self.alpha, self.prob = alpha, prob

    def _mix(self, x, y, saliency, *, generator, perm=None) -> MixResult:
        """``perm`` (B,) overrides the pairing."""
        targets = self._targets(x, y)
        b, _, h, w = x.shape
        rng = numpy_rng(generator)
        perm = self._pair(x, generator, perm)
        ones = torch.ones(b, device=x.device)
        if rng.random() >= self.prob:
            return MixResult(x, targets, perm, ones, {"boxes": [], "rho_b": 0 * ones})
        spm = saliency.float() / saliency.float().flatten(1).sum(1).view(-1, 1, 1)
        box_a = official_box(h, w, draw_lambda(self.alpha, rng), rng)
        box_b = official_box(h, w, draw_lambda(self.alpha, rng), rng)
        (a1, a2, a3, a4), (b1, b2, b3, b4) = box_a, box_b
        area_a, area_b = (a2 - a1) * (a4 - a3), (b2 - b1) * (b4 - b3)
        if area_a == 0 or area_b == 0:  # no mixing (weights 1 and 0)
            return MixResult(x, targets, perm, ones, {"boxes": [box_a, box_b], "rho_b": 0 * ones})
        patch = x[perm][:, :, b1:b2, b3:b4]
        patch = F.interpolate(
            patch.float(), size=(a2 - a1, a4 - a3), mode="bilinear", align_corners=True
        ).to(x.dtype)
        out = x.clone()
        out[:, :, a1:a2, a3:a4] = patch
        # the code's order (utils/mixmethod.py ``snapmix``): box shares (NaN for an undefined
        # map), then the same-label sums (NaN spreads to both), then the NaN fallback, whose
        # partner weight is area_a / HW (the pasted box), not area_b / HW
        total = spm.sum((1, 2))
        rho_a = 1 - spm[:, a1:a2, a3:a4].sum((1, 2)) / (total + 1e-8)
        rho_b = spm[perm][:, b1:b2, b3:b4].sum((1, 2)) / (total[perm] + 1e-8)
        same = targets.argmax(1) == targets[perm].argmax(1)
        both = rho_a + rho_b
        rho_a, rho_b = torch.where(same, both, rho_a), torch.where(same, both, rho_b)
        lam = 1 - area_a / (h * w)
        rho_a = torch.where(torch.isnan(rho_a), torch.full_like(rho_a, lam), rho_a)
        rho_b = torch.where(torch.isnan(rho_b), torch.full_like(rho_b, 1 - lam), rho_b)
        y_mix = rho_a[:, None] * targets + rho_b[:, None] * targets[perm]
        info = {"boxes": [box_a, box_b], "rho_b": rho_b}
        return MixResult(out, y_mix, perm, rho_a, info)

    def apply(self, model, x, y, *, generator=None, timer=None) -> MixResult:
        """The semantic percent maps from ``model`` (:func:`class_activation_spm`), then mix."""
        self._check_model_batch(x, y, generator)
        spm = class_activation_spm(model, x, y)
        lap_stage(timer, "saliency")
        return timed_result(self.mix(x, y, spm, generator=generator), timer)

    def loss(self, model, x, y, mixed, criterion) -> torch.Tensor:
        """rho_a CE(y) + rho_b CE(y') as SnapMix's code (soft cross-entropy on the unnormalised
        label rows; the run's criterion is not used)."""
        return soft_cross_entropy(self.logits(model, x, mixed), mixed.y)
