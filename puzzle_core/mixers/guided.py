"""GuidedMixup (Kang & Kim, AAAI 2023): pixel-wise mixing ratios from two saliency maps and a
greedy pairing that puts salient regions where the partner is not salient."""

from __future__ import annotations

from typing import Any

import torch

from .._checks import check_choice, check_unit_interval
from .._random import numpy_rng
from ..pairing import PAIRINGS, make_pairing
from ..protocol import Mixer, MixResult
from ..saliency import gaussian_blur, spectral_residual_saliency
from .registry import register


def _normalise(maps: torch.Tensor) -> torch.Tensor:
    total = maps.flatten(1).sum(1).view(-1, 1, 1)
    uniform = torch.full_like(maps, 1.0 / maps[0].numel())
    return torch.where(total > 0, maps / torch.where(total > 0, total, 1.0), uniform)


class GuidedMixup(Mixer):
    """z_i = blur(S_i) / sum (sum-to-1 maps); pixel ratio m_i = z_i / (z_i + z_perm(i)) (Eq. 2);
    x~ = m x + (1 - m) x[perm]; label weight mean(m_i) (Eq. 3).

    x (B, C, H, W).  saliency_source: "sr" (spectral residual of the image, computed here) or
    "ap" (the input gradient saliency shared with Puzzle Mix, passed in as ``saliency`` (B, H, W)
    with x's H, W, finite and >= 0; an all-zero map counts as uniform).
    pairing: "greedy" (Algorithm 1, the paper; the public CIFAR code silently used random
    pairing), "random" or "exact" (small batches).
    blur: "code" (the public code blurs once more before mixing: SR twice, AP once) or "paper"
    (one blur in total).  mix_prob: the batch is mixed with this probability, else left clean
    (README: SR 0.5, AP 0.8; not in the paper)."""

    name = "guided"

    def __init__(
        self,
        saliency_source: str = "sr",
        pairing: str = "greedy",
        mix_prob: float | None = None,
        blur: str = "code",
        num_classes: int | None = None,
    ) -> None:
        super().__init__(num_classes)
        check_choice("saliency_source", saliency_source, ("sr", "ap"))
        check_choice("pairing", pairing, PAIRINGS)
        check_choice("blur", blur, ("code", "paper"))
        mix_prob = (0.5 if saliency_source == "sr" else 0.8) if mix_prob is None else mix_prob
        check_unit_interval("mix_prob", mix_prob)
        self.saliency_source, self.pairing, self.mix_prob, self.blur = (
            saliency_source,
            pairing,
            mix_prob,
            blur,
        )
        self.saliency = "image" if saliency_source == "sr" else "input_gradient"

    def maps(self, x: torch.Tensor, saliency: torch.Tensor | None) -> torch.Tensor:
        """The normalised, blurred maps z (B, H, W) used for pairing and mixing."""
        if self.saliency_source == "sr":
            s = spectral_residual_saliency(x)  # blurred once inside
            if self.blur == "code":
                s = gaussian_blur(s)
        else:
            if saliency is None:
                raise ValueError("GuidedMixup(saliency_source='ap') needs saliency (B, H, W)")
            s = gaussian_blur(saliency.float())
        return _normalise(s.clamp(min=0))

    def _mix(self, x, y, saliency, *, generator, perm=None) -> MixResult:
        """``perm`` (B,) overrides the pairing."""
        targets = self._targets(x, y)
        b = x.shape[0]
        rng = numpy_rng(generator)
        if rng.random() >= self.mix_prob:  # this batch stays clean
            ident = torch.arange(b, device=x.device)
            return MixResult(x, targets, ident, torch.ones(b, device=x.device), {"mixed": False})
        z = self.maps(x, saliency)
        if perm is not None:
            perm = self._pair(x, generator, perm)
        else:
            perm = make_pairing(self.pairing, b, maps=z, generator=generator, device=x.device)
        zp = z[perm]
        denom = z + zp
        m = torch.where(denom > 0, z / torch.where(denom > 0, denom, 1.0), 0.5)  # Eq. (2)
        mixed = m.unsqueeze(1).to(x.dtype) * x + (1 - m.unsqueeze(1).to(x.dtype)) * x[perm]
        ratio = m.mean((1, 2))  # Eq. (3)
        info = {"mixed": True, "mask": m, "maps": z}
        return MixResult(mixed, self._labels(targets, perm, ratio), perm, ratio, info)


@register("guided_sr")
def _guided_sr(**params: Any) -> GuidedMixup:
    return GuidedMixup(saliency_source="sr", **params)


@register("guided_ap")
def _guided_ap(**params: Any) -> GuidedMixup:
    return GuidedMixup(saliency_source="ap", **params)
