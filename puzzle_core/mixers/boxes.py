"""Box-based mixing: CutMix (Yun et al. 2019) and SaliencyMix (Uddin et al. 2021).

Boxes are (r1, r2, c1, c2): rows r1:r2 and columns c1:c2 of the image come from the partner.
The label weight of the example itself is always the exact share left outside the box,
1 - area / (H W) (not the drawn lambda)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from .._checks import check_choice, check_unit_interval
from .._random import draw_lambda, numpy_rng
from ..pairing import PAIRINGS
from ..protocol import Mixer, MixResult
from .registry import register

Box = tuple[int, int, int, int]


def puzzlemix_box(h: int, w: int, lam: float, rng: np.random.Generator) -> Box:
    """The Puzzle Mix code's ``mixup_box``: centre ~ U[0, H) x U[0, W) (continuous), sides
    sqrt(1 - lam) H and sqrt(1 - lam) W, clipped to the image and truncated with int()."""
    rx, ry = rng.uniform(0, h), rng.uniform(0, w)
    rh, rw = math.sqrt(1 - lam) * h, math.sqrt(1 - lam) * w
    r1, r2 = int(np.clip(rx - rh / 2, 0, h)), int(np.clip(rx + rh / 2, 0, h))
    c1, c2 = int(np.clip(ry - rw / 2, 0, w)), int(np.clip(ry + rw / 2, 0, w))
    return r1, r2, c1, c2


def official_box(
    h: int, w: int, lam: float, rng: np.random.Generator, center: tuple[int, int] | None = None
) -> Box:
    """CutMix's ``rand_bbox``: cut = int(size sqrt(1 - lam)) per side, integer centre uniform
    over the pixels (or given), half-extent cut // 2, clipped to the image."""
    r = math.sqrt(1 - lam)
    ch, cw = int(h * r), int(w * r)
    cy, cx = (int(rng.integers(h)), int(rng.integers(w))) if center is None else center
    r1, r2 = int(np.clip(cy - ch // 2, 0, h)), int(np.clip(cy + ch // 2, 0, h))
    c1, c2 = int(np.clip(cx - cw // 2, 0, w)), int(np.clip(cx + cw // 2, 0, w))
    return r1, r2, c1, c2


def box_mask(boxes: Sequence[Box], h: int, w: int, device) -> torch.Tensor:
    """(B, 1, H, W) bool, True inside each example's box."""
    mask = torch.zeros((len(boxes), 1, h, w), dtype=torch.bool, device=device)
    for i, (r1, r2, c1, c2) in enumerate(boxes):
        mask[i, :, r1:r2, c1:c2] = True
    return mask


def _paste(x: torch.Tensor, perm: torch.Tensor, boxes: Sequence[Box]) -> tuple[torch.Tensor, ...]:
    b, _, h, w = x.shape
    if len(boxes) == 1:  # one box for the batch: a slice assignment
        r1, r2, c1, c2 = boxes[0]
        out = x.clone()
        out[:, :, r1:r2, c1:c2] = x[perm][:, :, r1:r2, c1:c2]
        area = torch.full((b,), float((r2 - r1) * (c2 - c1)), device=x.device)
    else:
        mask = box_mask(boxes, h, w, x.device)
        out = torch.where(mask, x[perm], x)
        area = mask.flatten(1).sum(1).float()
    return out, 1 - area / (h * w)


@register("cutmix")
class CutMix(Mixer):
    """CutMix: paste a box of the partner; label weight = exact area left (Yun et al. 2019).

    variant "puzzlemix" (default: the Puzzle Mix protocol that produced its tables: always
    applied, continuous centre) or "official" (CutMix code: integer centre, cut // 2, applied
    with ``prob``, CIFAR 0.5).  One box and one lambda per batch (reference); ``per_sample``
    draws them per example (timm's "elem" mode, a different method)."""

    name = "cutmix"

    def __init__(
        self,
        alpha: float = 1.0,
        variant: str = "puzzlemix",
        prob: float = 1.0,
        per_sample: bool = False,
        pairing: str = "random",
        num_classes: int | None = None,
    ) -> None:
        super().__init__(num_classes)
        check_choice("variant", variant, ("puzzlemix", "official"))
        check_choice("pairing", pairing, PAIRINGS)
        self.pairing = pairing
        check_unit_interval("prob", prob)
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.alpha, self.variant, self.prob, self.per_sample = alpha, variant, prob, per_sample

    def _mix(self, x, y, saliency, *, generator, perm=None) -> MixResult:
        """``perm`` (B,) overrides the pairing."""
        targets = self._targets(x, y)
        b, _, h, w = x.shape
        rng = numpy_rng(generator)
        perm = self._pair(x, generator, perm)
        if rng.random() >= self.prob:  # not applied this batch
            ratio = torch.ones(b, device=x.device)
            return MixResult(x, targets, perm, ratio, {"boxes": []})
        draw = puzzlemix_box if self.variant == "puzzlemix" else official_box
        lams = [draw_lambda(self.alpha, rng) for _ in range(b if self.per_sample else 1)]
        boxes = [draw(h, w, lam, rng) for lam in lams]
        out, ratio = _paste(x, perm, boxes)
        return MixResult(out, self._labels(targets, perm, ratio), perm, ratio, {"boxes": boxes})


def _fine_grained_saliency(image: np.ndarray) -> np.ndarray:
    """OpenCV's StaticSaliencyFineGrained (Montabone & Soto 2010), the detector SaliencyMix
    uses; image (H, W, 3) -> map (H, W) float32."""
    import cv2

    ok, sal = cv2.saliency.StaticSaliencyFineGrained_create().computeSaliency(image)
    if not ok:
        raise RuntimeError("OpenCV fine-grained saliency failed")
    return sal


@register("saliencymix")
class SaliencyMix(Mixer):
    """SaliencyMix: a CutMix box centred on the saliency peak of one image, the partner of
    example 0, pasted into every example (Uddin et al. 2021, official code).

    ``detector_input``: "uint8" (default; the paper's intent: the image de-normalised to 8-bit
    before the 8-bit detector) or "float" (the public code: the normalised float tensor, whose
    map is unrelated to the content; docs/baselines.md §5).  ``mean``/``std`` de-normalise x
    (None: x is already in [0, 1])."""

    name = "saliencymix"

    def __init__(
        self,
        alpha: float = 1.0,
        prob: float = 1.0,
        detector_input: str = "uint8",
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        pairing: str = "random",
        num_classes: int | None = None,
    ) -> None:
        super().__init__(num_classes)
        check_choice("pairing", pairing, PAIRINGS)
        self.pairing = pairing
        check_choice("detector_input", detector_input, ("uint8", "float"))
        check_unit_interval("prob", prob)
        self.alpha, self.prob, self.detector_input = alpha, prob, detector_input
        self.mean, self.std = mean, std

    def peak(self, image: torch.Tensor) -> tuple[int, int]:
        """(row, col) of the first maximum (row-major) of the detector's map for one image
        (C, H, W) as the model sees it."""
        img = image.detach().float().cpu()
        if self.detector_input == "uint8":
            if self.mean is not None and self.std is not None:
                img = img * torch.tensor(self.std).view(-1, 1, 1) + torch.tensor(self.mean).view(
                    -1, 1, 1
                )
            arr = (img.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        else:
            arr = img.permute(1, 2, 0).numpy()
        if arr.shape[2] == 1:
            arr = np.repeat(arr, 3, axis=2)
        sal = _fine_grained_saliency(np.ascontiguousarray(arr))
        if self.detector_input == "float":
            sal = (sal * 255).astype(np.uint8)  # the code scales the map to 8 bits
        r, c = np.unravel_index(int(np.argmax(sal)), sal.shape)
        return int(r), int(c)

    def _mix(self, x, y, saliency, *, generator, perm=None) -> MixResult:
        """``perm`` (B,) overrides the pairing."""
        targets = self._targets(x, y)
        b, _, h, w = x.shape
        rng = numpy_rng(generator)
        perm = self._pair(x, generator, perm)
        if rng.random() >= self.prob:
            return MixResult(x, targets, perm, torch.ones(b, device=x.device), {"boxes": []})
        lam = draw_lambda(self.alpha, rng)
        center = self.peak(x[perm[0]])
        box = official_box(h, w, lam, rng, center=center)
        out, ratio = _paste(x, perm, [box])
        info = {"boxes": [box], "center": center}
        return MixResult(out, self._labels(targets, perm, ratio), perm, ratio, info)
