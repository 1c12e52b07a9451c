"""One training step: the mixer built from the config, the batch mixed with what the mixer needs
from the model, the loss, and the per-stage clock."""

from __future__ import annotations

import time

import torch

from ..losses import LOSSES
from ..mixers import build_for_data
from ..protocol import Mixer
from .config import TrainConfig


def build_mixer(cfg: TrainConfig, num_classes: int, mean: tuple, std: tuple) -> Mixer:
    """The run's mixer (:func:`puzzle_core.mixers.build_for_data`)."""
    return build_for_data(
        cfg.method, cfg.method_params, num_classes=num_classes, mean=mean, std=std
    )


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


def train_step(
    mixer: Mixer,
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_name: str,
    generator: torch.Generator,
    timer: StageTimer | None = None,
) -> torch.Tensor:
    """The mixed loss of one batch (gradients not yet taken), through the mixer protocol only:
    ``mixer.apply`` (on the local module under DDP: saliency, CAMs and adversarial noise are
    per-shard computations) then ``mixer.loss`` (on ``model``, DDP-wrapped or not).  ``timer``
    gets the stages "saliency", "mix" (Puzzle Mix: "mask", "transport", "compose") and
    "forward".  -> scalar loss."""
    timer = timer or StageTimer()
    timer.start()
    mixed = mixer.apply(unwrap(model), x, y, generator=generator, timer=timer)
    loss = mixer.loss(model, x, y, mixed, LOSSES[loss_name])
    timer.lap("forward")
    return loss
