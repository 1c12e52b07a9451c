"""One training step: the mixer built from the config, the batch mixed with what the mixer needs
from the model, the loss, and the per-stage clock."""

from __future__ import annotations

import time
from typing import Any

import torch

from ..losses import LOSSES
from .config import TrainConfig


def build_mixer(cfg: TrainConfig, num_classes: int, mean: tuple, std: tuple) -> Any:
    from ..mixers import build

    params = {"num_classes": num_classes, **cfg.method_params}
    if cfg.method in ("saliencymix", "augmix") or cfg.method.startswith("puzzlemix"):
        params.setdefault("mean", mean)
        params.setdefault("std", std)
    if cfg.method == "comixup":
        params.setdefault("part", min(20, cfg.batch_size))
    return build(cfg.method, **params)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


class StageTimer:
    """Accumulates wall-clock seconds per named stage (synchronising CUDA before reading the
    clock when ``sync``)."""

    def __init__(self, sync: bool = False) -> None:
        self.seconds: dict[str, float] = {}
        self._sync = torch.cuda.synchronize if sync and torch.cuda.is_available() else None
        self._t = time.perf_counter()

    def start(self) -> None:
        if self._sync is not None:
            self._sync()
        self._t = time.perf_counter()

    def lap(self, stage: str) -> None:
        if self._sync is not None:
            self._sync()
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._t
        self._t = now

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


def mix_batch(
    mixer: Any,
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    generator: torch.Generator | None = None,
    timer: StageTimer | None = None,
) -> Any:
    """Mix one batch with whatever the mixer needs from ``model`` (input-gradient saliency,
    Puzzle Mix's prepare with Algorithm 2's noise, SnapMix's CAMs) -> the mixer's result
    (``.x``, ``.y``, ``.info``).  Input-space mixers only (not AugMix, manifold mixup)."""
    from ..mixers import class_activation_spm
    from ..saliency import compute_saliency

    timer = timer or StageTimer()
    sal = adversarial = None
    if mixer.saliency == "input_gradient":
        if hasattr(mixer, "prepare"):
            prep = mixer.prepare(model, x, y, generator=generator)
            sal, adversarial = prep.saliency, prep.adversarial
        else:
            sal = compute_saliency(model, x, y).saliency
        timer.lap("saliency")
    elif mixer.saliency == "cam":
        sal = class_activation_spm(model, x, y)
        timer.lap("saliency")
    kwargs = {"adversarial": adversarial} if adversarial is not None else {}
    out = mixer.mix(x, y, sal, generator=generator, **kwargs)
    stages = getattr(out, "timings", None)
    if stages:
        timer.start()
        for k, v in stages.items():
            timer.add(k, v)
    else:
        timer.lap("mix")
    return out


def train_step(
    mixer: Any,
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_name: str,
    generator: torch.Generator,
    timer: StageTimer | None = None,
) -> torch.Tensor:
    """The mixed loss of one batch (gradients not yet taken); saliency, CAM, the manifold hook
    and AugMix's views are handled here.  ``model`` may be DDP-wrapped: the per-shard passes
    (saliency, CAM, adversarial noise) use the local module.  ``timer`` gets the stages
    "saliency", "mix" (Puzzle Mix: "mask", "transport", "compose") and "forward".
    -> scalar loss."""
    from ..mixers import augmix_loss

    timer = timer or StageTimer()
    timer.start()
    local = unwrap(model)
    loss_fn = LOSSES[loss_name]
    name = getattr(mixer, "name", "")
    if name == "manifold_mixup":
        logits, targets, _ = mixer.forward(model, x, y, generator=generator)
        loss = loss_fn(logits, targets)
        timer.lap("forward")
        return loss
    if name == "augmix":
        a1, a2 = mixer.mix(x, y, generator=generator).info["views"]
        timer.lap("mix")
        lc, l1, l2 = model(torch.cat([x, a1, a2])).chunk(3)
        loss = augmix_loss(lc, l1, l2, y)
        timer.lap("forward")
        return loss
    if hasattr(mixer, "pre_transform"):
        x = mixer.pre_transform(x, generator)
        timer.lap("mix")
    out = mix_batch(mixer, local, x, y, generator, timer)
    if not getattr(mixer, "labels_sum_to_one", True):  # SnapMix: rho_a CE(y) + rho_b CE(y')
        loss_fn = LOSSES["ce"]
    loss = loss_fn(model(out.x), out.y)
    timer.lap("forward")
    return loss
