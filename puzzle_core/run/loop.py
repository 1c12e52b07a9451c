"""The resumable training run: one entry point for every method of the registry.

``python -m puzzle_core.run --run-dir DIR [--config FILE.yaml] [--set key=value ...]`` or
:func:`run` from Python.  A run directory holds ``config.json`` (the resolved config),
``metrics.jsonl`` (one line per epoch), ``checkpoint.pt`` (written atomically after every
epoch: model, optimizer, scheduler, metrics so far) and ``results.json`` when finished; a
finished run is skipped, never overwritten; an interrupted one resumes from its last epoch.
Every epoch draws its shuffling, augmentation and mixing randomness from generators seeded by
(seed, epoch), so a resumed run on CPU ends with the same metrics as an uninterrupted one.

The recipe follows the reference code (docs/reference-implementation.md §1c): SGD with momentum 0.9,
nesterov, weight decay 1e-4, multistep learning-rate schedule, batch 100, BCE-on-softmax loss for
every method (option: cross-entropy), the median test error of the last 10 epochs as the reported
number.

Determinism: each training item's augmentation is drawn from a generator seeded by (seed,
epoch, item index), the batch order from (seed, epoch), the mixing from (seed, epoch, rank), so
results do not depend on the batch a sample lands in, on resuming, or on loader workers.  With
``deterministic=True`` the run also asks torch for deterministic kernels (CUDA needs
``CUBLAS_WORKSPACE_CONFIG=:4096:8`` in the environment); on CPU results are repeatable without it.

Several processes (``torchrun --nproc_per_node N -m puzzle_core.run ...``) train one model with
DistributedDataParallel (gloo on CPU, nccl on CUDA): each global batch of ``batch_size`` is split
into N equal shards; each rank mixes *within its own shard* (pairing, Co-Mixup's partition,
Puzzle Mix's transport: as the reference ImageNet code mixes within each GPU's quarter of the
batch), so mixing methods differ from a single process run of the same batch, while the plain
training step is the same up to float rounding when the network has no BatchNorm (BatchNorm
normalises per shard, ``batchnorm="sync"`` uses SyncBatchNorm on GPUs).  Saliency, CAMs and
adversarial perturbations run on the unwrapped local module (they are per-shard computations); the
clean-input regulariser's gradient is accumulated locally and averaged by the next synchronised
backward, as in gradient accumulation.  Rank 0 evaluates and writes.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..losses import LOSSES
from .config import TrainConfig
from .data import SeededItems, build_data, epoch_batches, set_epoch_transform, subset
from .evaluation import final_results, test_metrics
from .rundir import (
    RunDirError,
    RunLock,
    atomic_write,
    differences,
    identity,
    load_checkpoint,
    read_config,
    read_results,
    save_checkpoint,
)
from .step import StageTimer, build_mixer, check_overlap, staged_batches, train_step, unwrap


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _lr_at(knots: tuple[tuple[float, float], ...], t: float) -> float:
    """Piecewise-linear interpolation of ((epoch, lr), ...) at fractional epoch t; two knots at
    one epoch make a jump (the later one applies from that epoch on); constant outside."""
    if t <= knots[0][0]:
        return knots[0][1]
    for (e0, v0), (e1, v1) in zip(knots, knots[1:], strict=False):
        if e0 <= t < e1:
            return v0 + (v1 - v0) * (t - e0) / (e1 - e0)
    return knots[-1][1]


def _distributed() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment, initialising the process group (nccl
    where CUDA is available, else gloo; ``PC_BACKEND=gloo`` forces gloo)."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    if not dist.is_initialized():
        backend = (
            "nccl"
            if torch.cuda.is_available() and os.environ.get("PC_BACKEND") != "gloo"
            else "gloo"
        )
        dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size()


def _param_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    if cfg.bn_weight_decay:
        return [{"params": list(model.parameters())}]
    bn, rest = [], []
    for mod in model.modules():
        target = bn if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm) else rest
        target.extend(mod.parameters(recurse=False))
    return [{"params": rest}, {"params": bn, "weight_decay": 0.0}]


def _build_model(cfg: TrainConfig, classes: int, channels: int) -> torch.nn.Module:
    from ..models import build_model

    # first conv stride 2 for Tiny-ImageNet (docs/reference-implementation.md §1c)
    # and for its 64 px synthetic stand-in
    tiny = cfg.dataset == "tiny_imagenet" or (cfg.dataset == "synthetic" and cfg.image_size >= 64)
    model = build_model(cfg.model, classes, in_channels=channels, stem="tiny" if tiny else "cifar")
    return _without_batchnorm(model) if cfg.batchnorm == "off" else model


def _without_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    for name, child in model.named_children():
        if isinstance(child, torch.nn.modules.batchnorm._BatchNorm):
            setattr(model, name, torch.nn.Identity())
        else:
            _without_batchnorm(child)
    return model


def check_device(device: str) -> None:
    """ValueError unless ``device`` is usable here (a CUDA / MPS device that this machine has)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r}: MPS is not available on this machine")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device={device!r}: only cpu, cuda and mps devices are supported")


def _stored_config(cfg_path: Path, cfg: TrainConfig) -> dict[str, Any] | None:
    """The stored config, completed with the defaults of fields added since it was written;
    None when there is none."""
    if not cfg_path.exists():
        return None
    stored = read_config(cfg_path)
    default = TrainConfig(method=cfg.method).to_dict()
    return {**{k: v for k, v in default.items() if k not in stored}, **stored}


def _has_progress(run_dir: Path) -> bool:
    """Whether a run directory holds finished work (an epoch or the results)."""
    return any((run_dir / n).exists() for n in ("checkpoint.pt", "metrics.jsonl", "results.json"))


def run(cfg: TrainConfig, run_dir: str | Path) -> dict[str, Any]:
    """Train (or resume, or skip when finished) -> the results dict (also results.json).
    Under ``torchrun`` every rank calls this; rank 0 evaluates and writes.

    The run's identity (``config.json``) is written only once the device, the data, the model
    and the mixer have been built; a directory holding another run's finished work is refused
    (naming the fields that differ), one holding only a failed start is taken over.  Rank 0
    holds the directory's lock while it trains (:class:`~puzzle_core.run.rundir.RunLock`)."""
    run_dir = Path(run_dir)
    done = run_dir / "results.json"
    stored = _stored_config(run_dir / "config.json", cfg)
    if (
        stored is not None
        and (diff := differences(stored, cfg.to_dict()))
        and _has_progress(run_dir)
    ):
        raise RunDirError(
            f"run_dir={str(run_dir)!r} holds a run with a different config ("
            + "; ".join(diff)
            + "): use another run directory, or delete this one to replace its run"
        )
    if done.exists():
        return read_results(done)
    rank, world = _distributed()
    if rank != 0:
        return _train(cfg, run_dir, rank, world)
    with RunLock(run_dir):
        if done.exists():  # finished by another process while this one waited
            return read_results(done)
        return _train(cfg, run_dir, rank, world)


def _train(cfg: TrainConfig, run_dir: Path, rank: int, world: int) -> dict[str, Any]:
    from tqdm.auto import tqdm

    done = run_dir / "results.json"
    cfg_path = run_dir / "config.json"
    check_device(cfg.device)
    torch.set_flush_denormal(True)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    _seed_everything(cfg.seed)

    train_set, test_set, classes, channels, mean, std = build_data(cfg)
    train_set = subset(train_set, cfg.train_examples, cfg.seed)
    if cfg.train_fraction is not None:
        from ..data import stratified_subset

        train_set = stratified_subset(train_set, fraction=cfg.train_fraction, seed=cfg.seed + 3)
    test_set = subset(test_set, cfg.test_examples, cfg.seed + 1)
    test_loader = DataLoader(test_set, batch_size=cfg.batch_size, shuffle=False)
    model = _build_model(cfg, classes, channels).to(cfg.device)
    if world > 1 and cfg.batchnorm == "sync":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    opt = torch.optim.SGD(
        _param_groups(model, cfg),
        lr=cfg.lr_knots[0][1] if cfg.lr_knots else cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov,
        weight_decay=cfg.weight_decay,
    )
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(cfg.schedule), cfg.lr_gamma)

    ckpt_path = run_dir / "checkpoint.pt"
    run_id = identity(cfg.to_dict())
    metrics: list[dict[str, Any]] = []
    start = 0
    state = None
    if ckpt_path.exists():  # resume after the last finished epoch
        state = load_checkpoint(ckpt_path, run_id, cfg.epochs, map_location=cfg.device)
        start = state["epoch"] + 1
    mixer = build_mixer(cfg.at_epoch(start), classes, mean, std)  # a bad mixer fails here
    if cfg.overlap:
        check_overlap(mixer)  # before the run's identity is written
    mixer_key = (cfg.at_epoch(start).method_params, cfg.at_epoch(start).batch_size)
    if rank == 0:  # everything could be built: the run starts, and its identity is written
        run_dir.mkdir(parents=True, exist_ok=True)
        if not cfg_path.exists() or differences(read_config(cfg_path), cfg.to_dict()):
            atomic_write(cfg_path, json.dumps(cfg.to_dict(), indent=1).encode())
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        metrics, start = state["metrics"], state["epoch"] + 1
    net: torch.nn.Module = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model)

    epochs = tqdm(
        range(start, cfg.epochs),
        desc=f"{cfg.method}",
        disable=not cfg.progress or rank != 0,
        initial=start,
        total=cfg.epochs,
    )
    for epoch in epochs:
        ecfg = cfg.at_epoch(epoch)
        if (ecfg.method_params, ecfg.batch_size) != mixer_key:
            mixer = build_mixer(ecfg, classes, mean, std)  # once, and again when a phase changes
            mixer_key = (ecfg.method_params, ecfg.batch_size)
        set_epoch_transform(train_set, cfg, epoch)
        epoch_seed = cfg.seed * 100003 + epoch
        _seed_everything(epoch_seed)
        batches = epoch_batches(len(train_set), ecfg.batch_size, epoch_seed, rank, world)
        loader = DataLoader(SeededItems(train_set, epoch_seed), batch_sampler=batches)
        mix_gen = torch.Generator().manual_seed(epoch_seed * 1009 + 1 + rank)
        timer = StageTimer(sync=cfg.device.startswith("cuda"))
        net.train()
        t0 = time.perf_counter()
        total, count = 0.0, 0
        steps = len(batches)
        t_load = time.perf_counter()
        shown = tqdm(
            loader, leave=False, disable=not cfg.progress or rank != 0, desc=f"epoch {epoch}"
        )
        batches_in = (
            staged_batches(mixer, unwrap(net), shown, cfg.device, mix_gen, timer)
            if cfg.overlap
            else ((x.to(cfg.device), y.to(cfg.device), None) for x, y in shown)
        )
        for i, (x, y, mixed) in enumerate(batches_in):
            if not cfg.overlap:  # staged_batches clocks its own data, saliency, mix_wait
                timer.add("data", time.perf_counter() - t_load)
            if cfg.lr_knots:
                for g in opt.param_groups:
                    g["lr"] = _lr_at(cfg.lr_knots, epoch + i / steps)
            opt.zero_grad()  # before the step: the clean regulariser accumulates in prepare()
            if mixed is None:
                loss = train_step(mixer, net, x, y, cfg.loss, mix_gen, timer)
            else:
                timer.start()
                loss = mixer.loss(net, x, y, mixed, LOSSES[cfg.loss])
                timer.lap("forward")
            loss.backward()
            timer.lap("backward")
            opt.step()
            timer.lap("step")
            total += float(loss.detach()) * len(y)
            count += len(y)
            t_load = time.perf_counter()
        sched.step()
        seconds = time.perf_counter() - t0
        if world > 1:
            import torch.distributed as dist

            sums = torch.tensor([total, float(count)], dtype=torch.float64)
            dist.all_reduce(sums)
            total, count = float(sums[0]), int(sums[1])
        row = {
            "epoch": epoch,
            "train_loss": total / max(count, 1),
            "seconds": seconds,
            "images_per_second": count / seconds,
            "stage_seconds": {k: round(v, 4) for k, v in timer.seconds.items()},
            "lr": opt.param_groups[0]["lr"],
        }
        if rank == 0:
            row.update(test_metrics(model, test_loader, cfg.device))
            metrics.append(row)
            atomic_write(
                run_dir / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in metrics).encode()
            )
            save_checkpoint(
                ckpt_path,
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "metrics": metrics,
                    "epoch": epoch,
                },
                run_id,
            )
            epochs.set_postfix(loss=f"{row['train_loss']:.3f}", top1=f"{row['test_top1_err']:.1f}")
        else:
            metrics.append(row)

    if rank != 0:
        import torch.distributed as dist

        dist.barrier()  # rank 0 evaluates and writes the results
        return read_results(done)
    results = final_results(cfg, model, metrics, test_set, run_dir, mean, std, world)
    atomic_write(done, json.dumps(results, indent=1).encode())
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    return results


@dataclass
class TrainedRun:
    """A run's final model (eval mode) with its config, test set and normalisation."""

    model: torch.nn.Module
    config: TrainConfig
    test_set: Dataset
    mean: tuple
    std: tuple
    num_classes: int


def load_run(run_dir: str | Path) -> TrainedRun:
    """The model of the last checkpoint of ``run_dir`` and the test set it was evaluated on."""

    run_dir = Path(run_dir)
    for name in ("config.json", "checkpoint.pt"):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"{run_dir / name} not found: not a (started) run directory")
    cfg = TrainConfig(**read_config(run_dir / "config.json"))
    _, test_set, classes, channels, mean, std = build_data(cfg)
    test_set = subset(test_set, cfg.test_examples, cfg.seed + 1)
    model = _build_model(cfg, classes, channels)
    state = load_checkpoint(
        run_dir / "checkpoint.pt", identity(cfg.to_dict()), cfg.epochs, map_location=cfg.device
    )
    model.load_state_dict(state["model"])
    return TrainedRun(model.to(cfg.device).eval(), cfg, test_set, mean, std, classes)
