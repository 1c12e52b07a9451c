"""One training step: the mixer built from the config, the batch mixed with what the mixer needs
from the model, the loss, and the per-stage clock."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future

import torch

from ..losses import LOSSES
from ..mixers import build_for_data
from ..protocol import Mixer, MixResult
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


def check_overlap(mixer: Mixer) -> None:
    """ValueError when ``mixer`` cannot run ahead (``TrainConfig.overlap``): it adds parameter
    gradients while mixing, which the previous batch's update would then absorb."""
    if mixer.accumulates_gradients:
        raise ValueError(
            "overlap=True needs a mixer that adds no parameter gradients while mixing; "
            f"{mixer.name} does (Puzzle Mix's clean_lam > 0): set overlap false or clean_lam 0"
        )


def staged_batches(
    mixer: Mixer,
    model: torch.nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: str,
    generator: torch.Generator,
    timer: StageTimer,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, MixResult | None]]:
    """The loader's batches mixed one batch ahead (``TrainConfig.overlap``) -> (x, y, mixed).

    Before batch t is handed out, batch t+1's model part (:meth:`Mixer.apply_staged`: Puzzle
    Mix's saliency and Algorithm 2's noise) runs on ``model`` as it is then, i.e. with the
    parameters batch t trains from, one step older than without overlap; its mixing proper
    (mask, transport, composition) then runs in a worker thread while the caller trains on
    batch t.  The generator is drawn from in the same order as without overlap, so with
    unchanging parameters the batches are identical.  A mixer whose model work cannot be split
    (``stages_apart`` False: manifold mixup, SnapMix) is not run ahead: (x, y, None), the caller
    mixes as usual.  ``timer`` gets "data", "saliency" and "mix_wait" (what the mixing still
    costs on the critical path).  Closing the iterator early waits for the batch mixed ahead."""
    check_overlap(mixer)
    from ..parallel import pool

    worker = pool(1, "thread")
    batches = iter(loader)

    def fetch() -> tuple[torch.Tensor, torch.Tensor] | None:
        t0 = time.perf_counter()
        item = next(batches, None)
        timer.add("data", time.perf_counter() - t0)
        return None if item is None else (item[0].to(device), item[1].to(device))

    def stage(batch: tuple[torch.Tensor, torch.Tensor]) -> Future[MixResult]:
        t0 = time.perf_counter()
        finish = mixer.apply_staged(model, batch[0], batch[1], generator=generator)
        timer.add("saliency", time.perf_counter() - t0)
        return worker.submit(finish)

    if not mixer.stages_apart:  # nothing to run ahead: batch by batch, as without overlap
        while (batch := fetch()) is not None:
            yield batch[0], batch[1], None
        return
    current = fetch()
    if current is None:
        return
    pending = stage(current)
    try:
        while True:
            upcoming = fetch()
            t0 = time.perf_counter()
            mixed = pending.result()  # batch t's mixing ends before batch t+1 draws
            timer.add("mix_wait", time.perf_counter() - t0)
            if upcoming is not None:
                pending = stage(upcoming)
            yield current[0], current[1], mixed
            if upcoming is None:
                return
            current = upcoming
    finally:  # closed early: the batch mixed ahead does not run on into what follows
        pending.result()
