"""Statistics of mixed data on a fixed classifier (Puzzle Mix Figure 2), measured exactly.

Every input-space mixer of the project composes its outputs from the batch's pixels with weights
chosen by non-differentiable decisions (lambda, boxes, graph-cut masks, transport plans): given
the decisions, ``x_mix = A x`` is linear in the batch.  Differentiating the mixer's output with
respect to its input (autograd through the composition; the decisions carry no gradient) gives
the *contribution maps* ``G[i, j, p]``: how much of source image ``j``'s pixel ``p`` ends up in
output ``i`` (summed over the output pixels it lands on, channel-averaged).  From them:

* ``saliency_kept``: sum_j sum_p G[i, j, p] s_j(p) with each source's saliency map ``s_j``
  (input-gradient l2 of the fixed classifier) normalised to sum 1 — 1 for an unmixed image and
  for input mixup, above 1 when salient parts of both sources are kept (Figure 2a).  Its batch
  mean is exactly 1 for any method that uses one mask for the whole batch with a permutation
  pairing (CutMix, SaliencyMix: what one output loses its partner's output gains), so only
  per-example masks (Puzzle Mix, GuidedMixup, Co-Mixup, SnapMix) can move it;
* ``object_kept`` (ground-truth object masks, synthetic-objects only): sum_j of the fraction of
  object ``j``'s pixels present in output ``i`` (1 = one whole object; 2 = two whole objects);
  ``both_objects``: whether two source objects each keep at least half of their pixels;
  ``label_mismatch``: total-variation distance between the mixed label and the share of
  visible object content per class (0 when the label describes what is visible);
* ``total_variation``: mean absolute difference of neighbouring pixels of the mixed image (pixel
  scale, channel mean), Figure 2b;
* ``loss``: soft-label cross-entropy of the mixed example under the fixed classifier (2c);
* ``top1`` / ``top2``: the classifier's top-1 prediction is one of the (up to two) classes with
  the largest mixed-label weights; its top-2 predictions are exactly those classes (2d, 2e).

These follow the caption of the paper's Figure 2 (Puzzle Mix, l.225-229 of its text): "(a) Mixed
saliency ||h(s(x0), s(x1))||1 [each s(xk) normalised to sum 1] (b) Total variation of mixed data.
(c) Cross entropy loss of mixup data and the corresponding soft-label evaluated by the vanilla
classifier (ResNet18). (d) Top-1 [...] correct if the Top-1 prediction belongs to {y0, y1}. (e)
Top-2 [...] correct if the Top-2 predictions are equal to {y0, y1}.  Manifold mixup is omitted in
(a) and (b) as [it] generates mixup examples in the hidden space".  For a mixer whose output is
not made of the input pixels (``mixes_pixels`` False: manifold mixup) only (c)-(e) are computed,
on the logits of its hidden-space mix.  The object statistics are ours (no such panel).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from ._checks import check_batch, check_rank
from .saliency import compute_saliency

STATISTICS = (
    "saliency_kept",
    "total_variation",
    "loss",
    "top1",
    "top2",
    "object_kept",
    "both_objects",
    "label_mismatch",
)


def contribution_maps(mixed: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """G (B_out, B_src, H, W): d(channel mean of the pixels of output i) / d x[j, :, p], summed
    over channels, for ``mixed`` computed from ``x`` (which requires grad).  Linear mixing
    with weights w puts w on (i, j, p)."""
    b, c = mixed.shape[:2]
    rows = []
    for i in range(b):
        (g,) = torch.autograd.grad(mixed[i].sum() / c, x, retain_graph=i < b - 1, allow_unused=True)
        rows.append(torch.zeros_like(x).sum(1) if g is None else g.sum(1))
    return torch.stack(rows)


def label_classes(y_mix: torch.Tensor, top: int = 2) -> list[list[int]]:
    """The (up to ``top``) classes with the largest positive weights of each mixed label."""
    w, k = y_mix.topk(min(top, y_mix.shape[1]), dim=1)
    return [
        [int(c) for c, v in zip(kr, wr, strict=True) if v > 1e-6]
        for kr, wr in zip(k, w, strict=True)
    ]


def total_variation(x_pix: torch.Tensor) -> torch.Tensor:
    """(B,) mean |neighbour difference| over both axes and channels of images (B, C, H, W)."""
    dh = (x_pix[..., 1:, :] - x_pix[..., :-1, :]).abs().mean((1, 2, 3))
    dw = (x_pix[..., :, 1:] - x_pix[..., :, :-1]).abs().mean((1, 2, 3))
    return dh + dw


def _prediction_statistics(
    logits: torch.Tensor, y_mix: torch.Tensor, y: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Panels (c)-(e) of one batch: soft-label cross-entropy, top-1 in the label's classes,
    top-2 equal to them, and the self weight of the mixed label ``ratio``."""
    logp = F.log_softmax(logits.float(), 1)
    classes = label_classes(y_mix)
    top2 = logits.topk(min(2, logits.shape[1]), 1).indices
    top1_ok = torch.tensor([int(top2[i, 0]) in c for i, c in enumerate(classes)])
    top2_ok = torch.tensor(
        [set(top2[i, : len(c)].tolist()) == set(c) for i, c in enumerate(classes)]
    )
    return {
        "loss": -(y_mix * logp).sum(1),
        "top1": top1_ok.float(),
        "top2": top2_ok.float(),
        "ratio": y_mix.gather(1, y.view(-1, 1)).squeeze(1),
    }


def mixing_statistics(
    mixer: Any,
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    object_masks: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Per mixed example statistics (see the module docstring) of one batch.

    x (B, C, H, W) normalised inputs, y (B,) int labels, object_masks (B, H, W) in {0, 1} or
    None; ``model`` is the fixed classifier (put in eval mode; its parameter gradients are
    cleared afterwards).  -> {name: (B,) float tensor} for :data:`STATISTICS` (object entries
    only with masks) plus ``ratio`` (the self weight of the mixed label)."""
    check_rank("x", x, 4, "(B, C, H, W)")
    check_batch("y", y, x.shape[0], "x")
    if object_masks is not None:
        check_batch("object_masks", object_masks, x.shape[0], "x")
        if object_masks.shape[-2:] != x.shape[-2:]:
            raise ValueError(f"object_masks must be (B, H, W) = {(x.shape[0], *x.shape[-2:])}")
    model.eval()
    if not mixer.mixes_pixels:  # manifold mixup: mixed in the hidden space, panels (c)-(e) only
        out = mixer.apply(model, x, y, generator=generator)
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            logits = mixer.logits(model, x, out)
        stats = _prediction_statistics(logits, out.y.detach().float(), y)
        return {k: v.detach().cpu().float() for k, v in stats.items()}
    sal = compute_saliency(model, x, y, mode="eval").saliency.detach()
    sal = sal / sal.flatten(1).sum(1).clamp_min(1e-12).view(-1, 1, 1)
    xr = x.detach().clone().requires_grad_(True)
    out = mixer.apply(model, xr, y, generator=generator)
    model.zero_grad(set_to_none=True)
    g = contribution_maps(out.x, xr).detach()  # (B, B, H, W)
    mixed = out.x.detach()
    y_mix = out.y.detach().float()
    m = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    with torch.no_grad():
        logits = model(mixed)
    stats = {
        "saliency_kept": torch.einsum("ijhw,jhw->i", g, sal),
        "total_variation": total_variation(mixed * s + m),
        **_prediction_statistics(logits, y_mix, y),
    }
    if object_masks is not None:
        om = object_masks.to(g.dtype)
        frac = torch.einsum("ijhw,jhw->ij", g, om) / om.flatten(1).sum(1).clamp_min(1)  # (B, B)
        stats["object_kept"] = frac.sum(1)
        k = y_mix.shape[1]
        onehot = F.one_hot(y.long(), k).to(frac.dtype)  # (B_src, K)
        content = frac.clamp_min(0) @ onehot  # (B_out, K) visible object share per class
        content = content / content.sum(1, keepdim=True).clamp_min(1e-12)
        stats["label_mismatch"] = 0.5 * (y_mix - content).abs().sum(1)
        if frac.shape[1] >= 2:
            stats["both_objects"] = (frac.topk(2, dim=1).values[:, 1] >= 0.5).float()
        else:
            stats["both_objects"] = torch.zeros(frac.shape[0])
    return {k: v.detach().cpu().float() for k, v in stats.items()}


def summarize(per_example: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Means of the per-example statistics (top1/top2/both_objects as percentages)."""
    pct = {"top1", "top2", "both_objects"}
    return {
        k: float(v.float().mean()) * (100 if k in pct else 1)
        for k, v in per_example.items()
        if k in STATISTICS
    }
