"""Vanilla (no mixing), input mixup (Zhang et al. 2018) and manifold mixup (Verma et al. 2019)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .._checks import check_choice
from .._random import draw_lambda, numpy_rng
from ..pairing import PAIRINGS
from ..protocol import Mixer, MixResult, StageClock, lap_stage
from .registry import register


@register("vanilla")
class Vanilla(Mixer):
    """No mixing, same interface: y becomes one-hot, the label weight is 1."""

    name = "vanilla"

    def _mix(self, x, y, saliency, *, generator) -> MixResult:
        targets = self._targets(x, y)
        b = x.shape[0]
        return MixResult(
            x, targets, torch.arange(b, device=x.device), torch.ones(b, device=x.device)
        )


def _lambdas(b: int, alpha: float, per_sample: bool, rng, device) -> torch.Tensor:
    draws = b if per_sample else 1
    lam = torch.tensor([draw_lambda(alpha, rng) for _ in range(draws)], dtype=torch.float32)
    return lam.expand(b).to(device)


@register("input_mixup")
class InputMixup(Mixer):
    """x~ = lam x + (1 - lam) x[perm], y~ = lam y + (1 - lam) y[perm]; lam ~ Beta(alpha, alpha)
    once per batch (reference; ``per_sample=True`` draws one per example).  PM protocol alpha:
    1.0 on CIFAR-100, 0.2 on Tiny-ImageNet."""

    name = "input_mixup"

    def __init__(
        self,
        alpha: float = 1.0,
        per_sample: bool = False,
        pairing: str = "random",
        num_classes=None,
    ) -> None:
        super().__init__(num_classes)
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        check_choice("pairing", pairing, PAIRINGS)
        self.alpha, self.per_sample, self.pairing = alpha, per_sample, pairing

    def _mix(self, x, y, saliency, *, generator, perm=None, lam=None) -> MixResult:
        """``perm`` (B,) and ``lam`` in [0, 1] override the draws."""
        targets = self._targets(x, y)
        b = x.shape[0]
        rng = numpy_rng(generator)
        p = self._pair(x, generator, perm)  # random: fixed points allowed (reference)
        lam_t = _lambdas(b, self.alpha, self.per_sample, rng, x.device)
        if lam is not None:
            lam_t = torch.full((b,), float(lam), device=x.device)
        w = lam_t.to(x.dtype).view(-1, 1, 1, 1)
        x_mix = w * x + (1 - w) * x[p]  # Zhang et al. 2018, Eq. (1)
        return MixResult(x_mix, self._labels(targets, p, lam_t), p, lam_t, {"lam": lam_t})


@dataclass(frozen=True)
class ManifoldPlan:
    """The draws of one manifold-mixup step: the layer k, lambda and the permutation."""

    layer: int
    lam: float
    perm: torch.Tensor

    def mix_fn(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """h -> lam h + (1 - lam) h[perm] (Verma et al. 2019, Eq. 2), gradients through both."""
        lam, perm = self.lam, self.perm

        def fn(h: torch.Tensor) -> torch.Tensor:
            return lam * h + (1 - lam) * h[perm.to(h.device)]

        return fn


@register("manifold_mixup")
class ManifoldMixup(Mixer):
    """Mixing at a layer drawn uniformly from ``layers`` per batch (reference {0, 1, 2}: input,
    after conv1 + stage 1, after stage 2), lam ~ Beta(alpha, alpha) (CIFAR 2.0, Tiny 0.2).

    Needs the model's manifold hook: ``model(x, mix_layer=k, mix_fn=f)`` applies ``f`` to the
    activation at point k (see ``puzzle_core.models``).  Training uses :meth:`apply` then
    :meth:`loss` (the mix happens in :meth:`logits`; :meth:`forward` does both); calling the
    mixer on images alone only works when the only layer is 0 (then it is input mixup)."""

    name = "manifold_mixup"
    mixes_pixels = False

    def __init__(
        self, alpha: float = 2.0, layers: Sequence[int] = (0, 1, 2), num_classes=None
    ) -> None:
        super().__init__(num_classes)
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        if not layers or any(int(k) < 0 for k in layers):
            raise ValueError(f"layers must be non-negative layer indices, got {layers!r}")
        self.alpha, self.layers = alpha, tuple(int(k) for k in layers)

    def plan(self, batch: int, generator: torch.Generator | None = None) -> ManifoldPlan:
        rng = numpy_rng(generator)
        layer = self.layers[int(rng.integers(len(self.layers)))]
        perm = torch.randperm(batch, generator=generator)
        return ManifoldPlan(layer, draw_lambda(self.alpha, rng), perm)

    def apply(
        self,
        model: torch.nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        timer: StageClock | None = None,
    ) -> MixResult:
        """The plan of one batch (layer, lambda, partners) and its mixed targets; x is returned
        unchanged: :meth:`loss` mixes at the planned layer inside the model's forward.  x
        (B, C, H, W) float as the model takes it, y (B,) or (B, K)."""
        self._check_model_batch(x, y, generator)
        targets = self._targets(x, y)
        plan = self.plan(x.shape[0], generator)
        supported = getattr(model, "mix_layers", None)
        if supported is not None and plan.layer not in supported:
            raise ValueError(f"layers={self.layers} include {plan.layer}; model has {supported}")
        perm = plan.perm.to(x.device)
        ratio = torch.full((x.shape[0],), plan.lam, device=x.device)
        info = {"plan": plan, "layer": plan.layer, "lam": plan.lam}
        lap_stage(timer, "mix")
        return MixResult(x, self._labels(targets, perm, ratio), perm, ratio, info)

    def logits(self, model: torch.nn.Module, x: torch.Tensor, mixed: MixResult) -> torch.Tensor:
        """The model's forward on x with the plan's mix applied at its layer -> (B, K)."""
        plan = mixed.info["plan"]
        return model(x, mix_layer=plan.layer, mix_fn=plan.mix_fn())

    def forward(
        self,
        model: torch.nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, ManifoldPlan]:
        """One mixed forward: x (B, C, H, W) float as the model takes it, y (B,) or (B, K) ->
        (logits, soft targets (B, K), the plan)."""
        mixed = self.apply(model, x, y, generator=generator)
        return self.logits(model, x, mixed), mixed.y, mixed.info["plan"]

    def _mix(self, x, y, saliency, *, generator) -> MixResult:
        if self.layers != (0,):
            raise ValueError(
                "manifold mixup mixes hidden layers: call ManifoldMixup.forward(model, x, y) "
                "(or construct it with layers=(0,) to mix inputs only)"
            )
        targets = self._targets(x, y)
        plan = self.plan(x.shape[0], generator)
        perm = plan.perm.to(x.device)
        ratio = torch.full((x.shape[0],), plan.lam, device=x.device)
        info = {"layer": 0, "lam": plan.lam}
        return MixResult(plan.mix_fn()(x), self._labels(targets, perm, ratio), perm, ratio, info)
