"""The mixer protocol: the result record every method returns and the base class every method,
Puzzle Mix included, derives from (:class:`Mixer`: a checked ``mix``, ``apply`` with a model,
``loss``).

A mixer is constructed once and called on a batch (timm / torchvision v2 manners):
``x_mix, y_mix = mixer(x, y, saliency=None, generator=None)``; x (B, C, H, W); y integer labels
(B,) or soft targets (B, K); y_mix (B, K) soft, rows summing to 1 unless a method's documented
label rule says otherwise (SnapMix).  ``mixer.mix(...)`` returns a :class:`MixResult`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from ._checks import (
    check_generator,
    check_images,
    check_keywords,
    check_labels,
    check_permutation,
    check_saliency,
    check_unit_interval,
    to_uint8,
    to_unit_float,
)
from .mixing import mix_targets, to_soft_targets
from .pairing import make_pairing


@dataclass(frozen=True)
class MixResult:
    """x (B, C, H, W) mixed; y (B, K) targets; perm (B,) partner of each example; ratio (B,)
    weight of the example itself in its label; info: method-specific (mask, box, layer, views);
    timings: seconds per stage when the method measures them (Puzzle Mix: mask, transport,
    compose)."""

    x: torch.Tensor
    y: torch.Tensor
    perm: torch.Tensor
    ratio: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


class StageClock(Protocol):
    """What :meth:`Mixer.apply` reports stage times to (``puzzle_core.run.step.StageTimer``)."""

    def start(self) -> None: ...

    def lap(self, stage: str) -> None: ...

    def add(self, stage: str, seconds: float) -> None: ...


def lap_stage(timer: StageClock | None, stage: str) -> None:
    if timer is not None:
        timer.lap(stage)


def timed_result(out: MixResult, timer: StageClock | None) -> MixResult:
    """Report a mixing call to ``timer``: its own stage timings when it has them, else "mix"."""
    if timer is None:
        return out
    if out.timings:
        timer.start()
        for stage, seconds in out.timings.items():
            timer.add(stage, seconds)
    else:
        timer.lap("mix")
    return out


@functools.cache
def _mix_keywords(cls: type) -> tuple[str, ...]:
    """The keyword-only parameters of ``cls._mix`` other than ``generator``: what it accepts."""
    params = inspect.signature(cls._mix).parameters.values()  # type: ignore[attr-defined]
    return tuple(p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name != "generator")


_SALIENCY_SOURCES = {
    "input_gradient": "the input-gradient map (puzzle_core.compute_saliency, or "
    "PuzzleMix.prepare(...).saliency)",
    "cam": "the semantic percent maps (puzzle_core.mixers.class_activation_spm)",
}


class Mixer:
    """The mixer protocol: what the training loop, the benchmark and the Figure 2 statistics
    ask of every method, Puzzle Mix included (they never ask for a method's name).

    * ``mix(x, y, saliency=None, *, generator=None, **keywords) -> MixResult`` mixes a batch
      given what the method needs (checked entry; subclasses implement ``_mix``, whose
      keyword-only parameters are the keywords ``mix`` accepts).
    * ``apply(model, x, y, *, generator=None, timer=None) -> MixResult`` mixes one training
      batch with whatever the method needs from ``model``: by default the input-gradient
      saliency when ``saliency == "input_gradient"``; SnapMix computes its CAMs, Puzzle Mix its
      saliency and Algorithm 2's noise (``prepare``), Puzzle Mix (aug) augments first.
    * ``logits(model, x, mixed)`` the model's output on the mixed batch (``model(mixed.x)``;
      manifold mixup runs the model with its hidden-layer hook);
    * ``loss(model, x, y, mixed, criterion) -> scalar`` the training loss of the mixed batch:
      by default ``criterion(logits, mixed.y)``; AugMix adds the Jensen-Shannon term on its
      views, SnapMix uses soft cross-entropy (its label rows do not sum to 1).
    * ``mixes_pixels``: whether the mixed x is made of the input pixels (rearranged and
      weighted): False for AugMix, manifold mixup and Puzzle Mix on AugMix images (the Figure 2
      statistics need True).

    * ``apply_staged(model, x, y, ...) -> () -> MixResult``: ``apply`` split into the work on
      the model and the mixing proper, so that a loop can mix batch t+1 while batch t trains.
    * ``accumulates_gradients``: whether ``apply`` adds parameter gradients (Puzzle Mix's clean
      regulariser): then the loop must zero gradients before it, and cannot overlap it.

    Attributes: ``name``; ``saliency`` (None, "input_gradient", "cam" or "image": computed inside
    from the pixels); ``num_classes`` (needed with integer labels).

    Input checks of ``mix`` / ``__call__``, in this order:
    the keywords (any other -> ValueError listing the accepted ones; ``perm`` (B,) a
    permutation index tensor and ``lam`` in [0, 1] when given), the generator (None or a CPU
    torch.Generator), x (:func:`check_images`; ``channels`` when the class restricts them), y
    (:func:`check_labels` against ``num_classes``), saliency (:func:`check_saliency` when given;
    required when the class's ``saliency`` is "input_gradient" or "cam").

    uint8 x is mixed as float32 x / 255 (the same rule as torchvision's
    ``to_dtype(scale=True)``; refused when the mixer de-normalises with mean/std) and the mixed
    images (``x`` and the ``image_info`` entries of ``info``) are turned back into uint8 by
    :func:`to_uint8`.  Float x reaches ``_mix`` unchanged (same object, gradients kept)."""

    name = "mixer"
    saliency: str | None = None
    channels: tuple[int, ...] | None = None  # accepted C (None: any)
    image_info: tuple[str, ...] = ()  # info entries holding images in x's space
    mixes_pixels = True
    accumulates_gradients = False

    def __init__(self, num_classes: int | None = None) -> None:
        self.num_classes = num_classes

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"

    def __call__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        saliency: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.mix(x, y, saliency, generator=generator, **kwargs)
        return out.x, out.y

    def mix(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        saliency: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        **kwargs: Any,
    ) -> MixResult:
        """Mix a batch: x (B, C, H, W); y (B,) int or (B, K) soft; saliency (B, H, W) >= 0 or
        None -> the subclass's result (``x`` (B, C, H, W) in x's dtype, ``y`` (B, K), ``perm``
        (B,), ``ratio`` (B,), ``info``)."""
        self._check_inputs(x, y, saliency, generator, kwargs)
        if x.dtype != torch.uint8:
            return self._mix(x, y, saliency, generator=generator, **kwargs)
        if getattr(self, "mean", None) is not None:
            raise ValueError(
                f"x is uint8 (pixels 0..255) but {self.name} was built with mean/std for "
                "normalised float inputs: build it without mean/std, or pass normalised float x"
            )
        out = self._mix(to_unit_float(x), y, saliency, generator=generator, **kwargs)
        changes: dict[str, Any] = {"x": to_uint8(out.x)}
        if self.image_info:
            info = dict(out.info)
            for key in self.image_info:
                v = info[key]
                info[key] = tuple(map(to_uint8, v)) if isinstance(v, tuple) else to_uint8(v)
            changes["info"] = info
        return dataclasses.replace(out, **changes)

    def _check_inputs(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        saliency: torch.Tensor | None,
        generator: torch.Generator | None,
        kwargs: dict[str, Any],
    ) -> None:
        """The checks of :meth:`mix` (see the class docstring); ValueError naming the argument."""
        check_keywords(f"{type(self).__name__}.mix", list(kwargs), _mix_keywords(type(self)))
        check_generator(generator)
        check_images(x)
        b, c = x.shape[:2]
        if kwargs.get("perm") is not None:
            check_permutation("perm", kwargs["perm"], b)
        if kwargs.get("lam") is not None:
            check_unit_interval("lam", kwargs["lam"])
        if self.channels is not None and c not in self.channels:
            accepted = " or ".join(map(str, self.channels))
            raise ValueError(f"{self.name} takes x with {accepted} channels, got C={c}")
        num_classes = kwargs.get("num_classes") or getattr(self, "num_classes", None)
        check_labels(y, num_classes, b)
        if saliency is not None:
            check_saliency(saliency, x)
        elif self.saliency in _SALIENCY_SOURCES:
            raise ValueError(
                f"saliency (B, H, W) is required: {self.name} needs saliency = "
                f"{_SALIENCY_SOURCES[self.saliency]}"
            )

    def _mix(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        saliency: torch.Tensor | None,
        *,
        generator: torch.Generator | None,
    ) -> Any:
        raise NotImplementedError

    # -- the training-step protocol ------------------------------------------------------------
    def apply(
        self,
        model: torch.nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        timer: StageClock | None = None,
    ) -> MixResult:
        """Mix one training batch with what this method needs from ``model`` (the local module
        under DDP): x (B, C, H, W) float as the model takes it, y (B,) or (B, K).  ``timer``
        (optional) gets the stages "saliency" and "mix" (or the result's own ``timings``)."""
        return self._apply_in_stages(model, x, y, generator, timer)()

    @property
    def stages_apart(self) -> bool:
        """Whether :meth:`apply_staged` leaves the mixing proper to its second stage (False
        when a subclass's own :meth:`apply` does everything at once)."""
        return type(self).apply is Mixer.apply

    def apply_staged(
        self,
        model: torch.nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        timer: StageClock | None = None,
    ) -> Callable[[], MixResult]:
        """:meth:`apply` in two stages: the work that needs ``model`` now, and a function that
        does the rest (the mixing proper, no model, no parameter gradients) when called, e.g.
        in another thread while the model trains on the previous batch (``TrainConfig.overlap``).
        ``apply_staged(...)()`` is ``apply(...)``, draws from ``generator`` in the same order.
        A subclass whose :meth:`apply` uses the model anywhere does all of it in the first stage
        unless it overrides this too."""
        if not self.stages_apart:
            out = self.apply(model, x, y, generator=generator, timer=timer)
            return lambda: out
        return self._apply_in_stages(model, x, y, generator, timer)

    def _apply_in_stages(
        self,
        model: torch.nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator | None,
        timer: StageClock | None,
    ) -> Callable[[], MixResult]:
        """The default two stages: the input-gradient saliency now (when the method needs it),
        ``mix`` later."""
        self._check_model_batch(x, y, generator)
        sal = None
        if self.saliency == "input_gradient":
            from .saliency import compute_saliency

            sal = compute_saliency(model, x, y).saliency
            lap_stage(timer, "saliency")
        return lambda: timed_result(self.mix(x, y, sal, generator=generator), timer)

    def loss(
        self,
        model: torch.nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        mixed: MixResult,
        criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        """The training loss of a batch mixed by :meth:`apply` (x, y: the batch before mixing;
        ``criterion(logits, soft targets)`` the run's loss) -> scalar, gradients not taken."""
        return criterion(self.logits(model, x, mixed), mixed.y)

    def logits(self, model: torch.nn.Module, x: torch.Tensor, mixed: MixResult) -> torch.Tensor:
        """The model's logits (B, K) on the mixed batch: ``model(mixed.x)``; manifold mixup mixes
        inside the forward (x: the batch before mixing)."""
        return model(mixed.x)

    def _check_model_batch(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator | None,
        num_classes: int | None = None,
    ) -> None:
        """The checks of :meth:`apply`, before the model sees the batch: x float (B, C, H, W),
        finite, as the model takes it (uint8 refused), y, the generator."""
        check_generator(generator)
        check_images(x)
        if x.dtype == torch.uint8:
            raise ValueError(
                f"{type(self).__name__}.apply takes x as the model takes it (normalised float), "
                "got uint8 pixels: convert them first (mix accepts uint8)"
            )
        check_labels(y, num_classes or getattr(self, "num_classes", None), x.shape[0])

    # -- helpers for subclasses (inputs already checked by ``mix``) -------------------------
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
