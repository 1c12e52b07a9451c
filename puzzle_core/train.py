"""The resumable training run: one entry point for every method of the registry.

``python -m puzzle_core.train --run-dir DIR [--config FILE.yaml] [--set key=value ...]`` or
:func:`run` from Python.  A run directory holds ``config.json`` (the resolved config),
``metrics.jsonl`` (one line per epoch), ``checkpoint.pt`` (written atomically after every
epoch: model, optimizer, scheduler, metrics so far) and ``results.json`` when finished; a
finished run is skipped, never overwritten; an interrupted one resumes from its last epoch.
Every epoch draws its shuffling, augmentation and mixing randomness from generators seeded by
(seed, epoch), so a resumed run on CPU ends with the same metrics as an uninterrupted one.

The recipe follows the reference code (notes 1c): SGD with momentum 0.9, nesterov, weight decay
1e-4, multistep learning-rate schedule, batch 100, BCE-on-softmax loss for every method (option:
cross-entropy), the median test error of the last 10 epochs as the reported number.

Determinism: each training item's augmentation is drawn from a generator seeded by (seed,
epoch, item index), the batch order from (seed, epoch), the mixing from (seed, epoch, rank), so
results do not depend on the batch a sample lands in, on resuming, or on loader workers.  With
``deterministic=True`` the run also asks torch for deterministic kernels (CUDA needs
``CUBLAS_WORKSPACE_CONFIG=:4096:8`` in the environment); on CPU results are repeatable without it.

Several processes (``torchrun --nproc_per_node N -m puzzle_core.train ...``) train one model with
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

import argparse
import dataclasses
import json
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ._checks import check_choice
from .evaluate import median_of_last, topk_correct
from .fieldtypes import check_field_types
from .losses import LOSSES
from .provenance import provenance
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

DATASETS = ("synthetic", "fashion_mnist", "cifar100", "cifar10", "tiny_imagenet", "imagenet")


@dataclass(frozen=True)
class TrainConfig:
    """One training run.  ``method`` is a name of ``puzzle_core.mixers.available()`` with
    ``method_params`` passed to its constructor; ``profile`` and ``dataset`` are recorded in
    every result (reduced-scale runs are labelled as such)."""

    method: str = "vanilla"
    method_params: dict[str, Any] = field(default_factory=dict)
    model: str = "resnet8"
    dataset: str = "synthetic"
    data_root: str = "data"
    image_size: int = 32
    train_examples: int | None = None  # a seeded, class-stratified subset (None: all)
    test_examples: int | None = None
    # data scarcity (GuidedMixup Table 6): keep this fraction of each class of the training set
    # (after train_examples), seeded
    train_fraction: float | None = None
    epochs: int = 2
    batch_size: int = 100  # the global batch (split over the ranks under DDP)
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    bn_weight_decay: bool = True  # False: no weight decay on BatchNorm parameters (Table 5)
    schedule: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    # piecewise-linear learning rate over (fractional) epochs, per iteration: ((epoch, lr), ...)
    # replaces lr/schedule when given (the fast-AT protocol of Table 5)
    lr_knots: tuple[tuple[float, float], ...] = ()
    # training phases: ({"start": epoch, "batch_size": .., "image_size": .., "scale": [a, b],
    # "method_params": {..}}, ...): from "start" on these fields replace the run's (Table 5)
    phases: tuple[dict[str, Any], ...] = ()
    loss: str = "bce_softmax"
    seed: int = 0
    median_last: int = 10  # the reported error: median of the last k epochs (paper: 10)
    fgsm_eps: tuple[float, ...] = ()  # pixel-scale FGSM evaluations after training (8/255 CIFAR)
    # PGD after training: (eps, step, iterations), random start (Table 8: 8/255, 2/255, 7)
    pgd: tuple[float, ...] = ()
    attack_examples: int | None = None  # the attacks' test subset (None: the whole test set)
    # corruption error after training: "" none, "published" (the .npy release under
    # corruption_root, default <data_root>/CIFAR-100-C), "generate" (made from the run's test set
    # with imagecorruptions, cached in the run directory)
    corruption: str = ""
    corruption_root: str = ""
    corruption_types: tuple[str, ...] = ()  # () = all 19 (published: those present)
    corruption_examples: int | None = None  # test images per corruption and severity
    # "local": BatchNorm as built (per-rank statistics under DDP); "sync": SyncBatchNorm under DDP
    # (GPUs only); "off": every BatchNorm replaced by the identity (norm-free ablations, and the
    # check that a DDP step equals a single-process step)
    batchnorm: str = "local"
    deterministic: bool = False
    profile: str = "smoke"
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        from .mixers import available

        check_field_types(self)
        object.__setattr__(self, "schedule", tuple(int(m) for m in self.schedule))
        object.__setattr__(self, "fgsm_eps", tuple(float(e) for e in self.fgsm_eps))
        object.__setattr__(self, "pgd", tuple(float(e) for e in self.pgd))
        object.__setattr__(self, "corruption_types", tuple(self.corruption_types))
        knots = tuple((float(e), float(v)) for e, v in self.lr_knots)
        object.__setattr__(self, "lr_knots", knots)
        object.__setattr__(self, "phases", tuple(dict(p) for p in self.phases))
        if self.pgd and len(self.pgd) != 3:
            raise ValueError(f"pgd must be (eps, step, iterations), got {self.pgd}")
        if knots and any(b[0] < a[0] for a, b in zip(knots, knots[1:], strict=False)):
            raise ValueError(f"lr_knots must have non-decreasing epochs, got {knots}")
        phase_keys = {"start", "batch_size", "image_size", "scale", "method_params"}
        for p in self.phases:
            if "start" not in p or set(p) - phase_keys:
                raise ValueError(
                    f"phases entries need 'start' and only keys {sorted(phase_keys)}"
                    f", got {sorted(p)}"
                )
        check_choice("method", self.method, available())
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("loss", self.loss, tuple(LOSSES))
        check_choice("corruption", self.corruption, ("", "published", "generate"))
        check_choice("batchnorm", self.batchnorm, ("local", "sync", "off"))
        if self.train_fraction is not None and not 0 < self.train_fraction <= 1:
            raise ValueError(f"train_fraction must be in (0, 1], got {self.train_fraction}")
        for name in ("epochs", "batch_size", "image_size", "median_last"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("train_examples", "test_examples", "attack_examples", "corruption_examples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 or null, got {getattr(self, name)}")
        if self.lr <= 0 or self.lr_gamma <= 0:
            raise ValueError(f"lr and lr_gamma must be > 0, got {self.lr} and {self.lr_gamma}")
        if not 0 <= self.momentum < 1 or self.weight_decay < 0:
            raise ValueError(
                f"momentum must be in [0, 1) and weight_decay >= 0, got {self.momentum} and "
                f"{self.weight_decay}"
            )
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if any(e < 0 for e in self.fgsm_eps + self.pgd):
            raise ValueError(f"fgsm_eps and pgd must be >= 0, got {self.fgsm_eps}, {self.pgd}")
        try:
            torch.device(self.device)
        except RuntimeError as exc:
            raise ValueError(
                f"device must name a torch device (cpu, cuda, cuda:1, ...), got {self.device!r}"
            ) from exc

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for name in ("schedule", "fgsm_eps", "pgd", "corruption_types", "phases"):
            d[name] = list(d[name])
        d["lr_knots"] = [list(k) for k in self.lr_knots]
        return d

    def at_epoch(self, epoch: int) -> TrainConfig:
        """The config in force at ``epoch`` (its phase's fields applied)."""
        changes: dict[str, Any] = {}
        for p in self.phases:
            if epoch >= p["start"]:
                changes.update({k: v for k, v in p.items() if k not in ("start", "scale")})
                if "method_params" in p:
                    changes["method_params"] = {**self.method_params, **p["method_params"]}
        return dataclasses.replace(self, phases=(), **changes) if changes else self

    def phase_scale(self, epoch: int) -> tuple[float, float] | None:
        scale = None
        for p in self.phases:
            if epoch >= p["start"] and "scale" in p:
                scale = tuple(p["scale"])
        return scale  # type: ignore[return-value]


# -- data ---------------------------------------------------------------------------------------


def _stats(data: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    arr = data.reshape(-1, data.shape[-1]).astype(np.float64) / 255
    return tuple(arr.mean(0).tolist()), tuple(arr.std(0).tolist())


class _Switchable:
    """A transform that can be replaced between epochs (the phases of Table 5)."""

    def __init__(self, transform: Any) -> None:
        self.current = transform

    def __call__(self, img: Any) -> Any:
        return self.current(img)


def build_data(cfg: TrainConfig) -> tuple[Dataset, Dataset, int, int, tuple, tuple]:
    """-> (train set, test set, classes, channels, mean, std) with the reference transforms
    (CIFAR / synthetic: flip + RandomCrop(padding 2); Tiny-ImageNet: flip + RandomCrop(64,
    padding 4); ImageNet: RandomResizedCrop + flip; normalisation for both splits)."""
    from torchvision import transforms as T

    from .data import FashionMNIST, SyntheticObjects, fashion_mnist_transforms, load_cifar

    if cfg.dataset == "synthetic":
        probe = SyntheticObjects(train=True, image_size=cfg.image_size, seed=cfg.seed)
        mean, std = _stats(probe.data)
        size = cfg.image_size
        train_tf = T.Compose(
            [
                T.RandomHorizontalFlip(),
                T.RandomCrop(size, padding=2 if size <= 32 else 4),
                T.ToTensor(),
                T.Normalize(mean, std),
            ]
        )
        test_tf = T.Compose([T.ToTensor(), T.Normalize(mean, std)])
        probe.transform = train_tf
        test = SyntheticObjects(train=False, image_size=size, seed=cfg.seed, transform=test_tf)
        return probe, test, len(probe.classes), 3, mean, std
    if cfg.dataset == "fashion_mnist":
        from .data.fashion_mnist import MEAN, STD

        train = FashionMNIST(cfg.data_root, True, fashion_mnist_transforms(True, 32, 1))
        test = FashionMNIST(cfg.data_root, False, fashion_mnist_transforms(False, 32, 1))
        return train, test, 10, 1, tuple(MEAN), tuple(STD)
    if cfg.dataset == "tiny_imagenet":
        from .data import tiny_imagenet as tiny

        train = tiny.load_tiny_imagenet(
            cfg.data_root, "train", tiny.tiny_imagenet_train_transform()
        )
        test = tiny.load_tiny_imagenet(cfg.data_root, "val", tiny.tiny_imagenet_test_transform())
        return train, test, 200, 3, tiny.MEAN, tiny.STD
    if cfg.dataset == "imagenet":
        from .data import imagenet as inet

        size = cfg.at_epoch(0).image_size
        tf = _Switchable(inet.imagenet_train_transform(size, cfg.phase_scale(0) or (0.08, 1.0)))
        train = inet.load_imagenet(cfg.data_root, "train", tf)
        test = inet.load_imagenet(cfg.data_root, "val", inet.imagenet_test_transform())
        return train, test, len(train.classes), 3, inet.MEAN, inet.STD
    from .data.cifar import cifar_normalization, cifar_test_transform, cifar_train_transform

    train = load_cifar(
        cfg.dataset, cfg.data_root, train=True, transform=cifar_train_transform(cfg.dataset)
    )
    test = load_cifar(
        cfg.dataset, cfg.data_root, train=False, transform=cifar_test_transform(cfg.dataset)
    )
    mean, std = cifar_normalization(cfg.dataset)
    return train, test, (100 if cfg.dataset == "cifar100" else 10), 3, mean, std


def _base_and_indices(ds: Dataset) -> tuple[Dataset, list[int] | None]:
    """The data set under (possibly nested) ``Subset`` wrappers and the indices into it of the
    wrapper's items (None when ``ds`` is not a Subset)."""
    idx: list[int] | None = None
    while isinstance(ds, torch.utils.data.Subset):
        outer = list(ds.indices)
        idx = outer if idx is None else [outer[i] for i in idx]
        ds = ds.dataset
    return ds, idx


def _set_epoch_transform(train_set: Dataset, cfg: TrainConfig, epoch: int) -> None:
    """ImageNet phases: crop size and scale of this epoch (no-op elsewhere)."""
    if cfg.dataset != "imagenet" or not cfg.phases:
        return
    from .data.imagenet import imagenet_train_transform

    base, _ = _base_and_indices(train_set)
    size = cfg.at_epoch(epoch).image_size
    base.transform.current = imagenet_train_transform(size, cfg.phase_scale(epoch) or (0.08, 1.0))


class SeededItems(Dataset):
    """Items of ``dataset`` whose random augmentation is drawn from a generator seeded by
    (``seed``, index): the same augmented sample whatever batch, rank or worker loads it."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        s = (self.seed * 1_000_003 + int(index)) % 2**63
        torch.default_generator.manual_seed(s)  # torchvision's random transforms
        random.seed(s)  # PIL-level ops that use Python's random
        return self.dataset[index]


def epoch_batches(
    n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1
) -> list[list[int]]:
    """This rank's index lists for one epoch: a permutation of range(n) seeded by ``seed``, cut
    into global batches of ``batch_size`` (the last, shorter one dropped when there is more than
    one batch, as ``drop_last``), each split into ``world`` equal contiguous shards."""
    if batch_size % world:
        raise ValueError(f"batch_size={batch_size} must be divisible by the {world} processes")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    full = n // batch_size if n > batch_size else 1
    shard = batch_size // world if n > batch_size else -(-n // world)
    out = []
    for b in range(full):
        glob = perm[b * batch_size : (b + 1) * batch_size]
        out.append(glob[rank * shard : (rank + 1) * shard])
    return [o for o in out if o]


def _subset(ds: Dataset, n: int | None, seed: int) -> Dataset:
    """A seeded, class-stratified subset of about ``n`` items (None: the whole set)."""
    size = len(ds)  # type: ignore[arg-type]
    if n is None or n >= size:
        return ds
    from .data import stratified_subset

    return stratified_subset(ds, fraction=n / size, seed=seed)


# -- one step -----------------------------------------------------------------------------------


def build_mixer(cfg: TrainConfig, num_classes: int, mean: tuple, std: tuple) -> Any:
    from .mixers import build

    params = {"num_classes": num_classes, **cfg.method_params}
    if cfg.method in ("saliencymix", "augmix") or cfg.method.startswith("puzzlemix"):
        params.setdefault("mean", mean)
        params.setdefault("std", std)
    if cfg.method == "comixup":
        params.setdefault("part", min(20, cfg.batch_size))
    return build(cfg.method, **params)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
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
    from .mixers import class_activation_spm
    from .saliency import compute_saliency

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
    from .mixers import augmix_loss

    timer = timer or StageTimer()
    timer.start()
    local = _unwrap(model)
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


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: DataLoader, device: str) -> dict[str, float]:
    """Top-1 / top-5 error (%) and the mean test loss."""
    model.eval()
    n = c1 = c5 = 0
    loss = 0.0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        logits = model(x)
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
        c1 += int(topk_correct(logits, y, 1).sum())
        c5 += int(topk_correct(logits, y, min(5, logits.shape[1])).sum())
        n += len(y)
    return {
        "test_top1_err": 100 * (1 - c1 / n),
        "test_top5_err": 100 * (1 - c5 / n),
        "test_loss": loss / n,
    }


def attacked_error(
    model: torch.nn.Module,
    loader: DataLoader,
    mean: tuple,
    std: tuple,
    device: str,
    eps: float,
    pgd: tuple[float, float] | None = None,
    seed: int = 0,
) -> float:
    """Top-1 error (%) under FGSM at ``eps`` (pixel scale), or PGD with ``pgd`` = (step,
    iterations) and a random start; model in eval mode (reference ``validate``); the loader's
    normalised inputs are mapped back to pixels first."""
    from .attacks import fgsm
    from .attacks import pgd as pgd_attack

    model.eval()
    m = torch.tensor(mean, device=device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=device).view(1, -1, 1, 1)
    gen = torch.Generator().manual_seed(seed)
    wrong = n = 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        pix = (x * s + m).clamp(0, 1)
        if pgd is None:
            adv = fgsm(model, pix, y, eps, mean=mean, std=std)
        else:
            adv = pgd_attack(
                model, pix, y, eps, pgd[0], int(pgd[1]), mean=mean, std=std, generator=gen
            )
        with torch.no_grad():
            wrong += int((model((adv - m) / s).argmax(1) != y).sum())
        n += len(y)
    return 100 * wrong / n


def _raw_test_images(test_set: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, H, W, 3) and labels of a (possibly subset) test set held as arrays (CIFAR,
    synthetic-objects; grey Fashion-MNIST is zero-padded to 32x32 and repeated to 3 channels,
    as imagecorruptions needs RGB of at least 32x32)."""
    from .data import targets_of

    base, idx = _base_and_indices(test_set)
    data = getattr(base, "data", None)
    if isinstance(data, torch.Tensor):
        data = data.numpy()
    if isinstance(data, np.ndarray) and data.ndim == 3 and data.dtype == np.uint8:
        pad = max(0, 32 - min(data.shape[1:]))
        data = np.pad(data, ((0, 0), (pad // 2, pad - pad // 2), (pad // 2, pad - pad // 2)))
        data = np.repeat(data[..., None], 3, axis=-1)
    if not isinstance(data, np.ndarray) or data.ndim != 4 or data.shape[-1] != 3:
        raise ValueError(
            "corruption='generate' needs a test set held as uint8 arrays (CIFAR, "
            f"synthetic-objects, Fashion-MNIST); {type(base).__name__} is not"
        )
    labels = np.asarray(targets_of(base))
    if idx is not None:
        data, labels = data[idx], labels[idx]
    return np.asarray(data), labels


def corruption_accuracy(
    cfg: TrainConfig, model: torch.nn.Module, test_set: Dataset, run_dir: Path, mean, std
) -> dict[str, list[float]]:
    """{corruption: top-1 accuracy (%) per severity 1-5} of the final model (reference
    ``test_robust.py``): the published CIFAR-100-C files (``corruption="published"``) or a set
    generated from the run's test set (``"generate"``, cached under ``run_dir/corrupted``)."""
    from torchvision import transforms as T

    from .data import CORRUPTIONS, available_corruptions, load_corruption
    from .data.corruptions import SEVERITIES, generate_corruptions

    norm = T.Compose([T.ToTensor(), T.Normalize(mean, std)])
    grey = len(mean) == 1  # Fashion-MNIST: corrupted as RGB 32x32, read back as grey

    def tf(img: np.ndarray) -> torch.Tensor:
        pil = Image.fromarray(img)
        return norm(pil.convert("L") if grey else pil)

    n_per = cfg.corruption_examples
    if cfg.corruption == "published":
        root = Path(cfg.corruption_root or Path(cfg.data_root) / "CIFAR-100-C")
        have = available_corruptions(root)
        kinds = list(cfg.corruption_types) or have
        if not kinds or any(k not in have for k in kinds):
            raise FileNotFoundError(
                f"corruption='published' needs <corruption>.npy and labels.npy under {root} "
                f"(found {have}); set corruption_root, or corruption='generate'"
            )
        arrays = {}
        for k in kinds:
            imgs, labels = load_corruption(root, k)
            n = len(imgs) // len(SEVERITIES)
            keep = np.arange(n) if n_per is None else np.arange(min(n_per, n))
            rows = np.concatenate([keep + s * n for s in range(len(SEVERITIES))])
            arrays[k] = (np.asarray(imgs[rows]), labels[rows])
    else:
        images, labels = _raw_test_images(test_set)
        if n_per is not None and n_per < len(images):
            from .data import stratified_subset_indices

            keep = stratified_subset_indices(labels, fraction=n_per / len(images), seed=cfg.seed)
            images, labels = images[keep], labels[keep]
        kinds = list(cfg.corruption_types) or list(CORRUPTIONS)
        gen = generate_corruptions(
            images,
            labels,
            kinds,
            seed=cfg.seed,
            out_dir=run_dir / "corrupted",
            progress=cfg.progress,
        )
        rep = np.tile(labels, len(SEVERITIES))
        arrays = {k: (gen[k], rep) for k in kinds}
    model.eval()
    acc: dict[str, list[float]] = {}
    with torch.no_grad():
        for k, (imgs, labs) in arrays.items():
            n = len(imgs) // len(SEVERITIES)
            per_sev = []
            for s in range(len(SEVERITIES)):
                correct = 0
                for i in range(s * n, (s + 1) * n, cfg.batch_size):
                    j = min(i + cfg.batch_size, (s + 1) * n)
                    x = torch.stack([tf(im) for im in imgs[i:j]]).to(cfg.device)
                    pred = model(x).argmax(1).cpu()
                    correct += int((pred == torch.as_tensor(labs[i:j])).sum())
                per_sev.append(100 * correct / n)
            acc[k] = per_sev
    return acc


# -- the run ------------------------------------------------------------------------------------


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
    from .models import build_model

    # first conv stride 2 for Tiny-ImageNet (1c) and its 64 px synthetic stand-in
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
    holds the directory's lock while it trains (:class:`~puzzle_core.rundir.RunLock`)."""
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
    train_set = _subset(train_set, cfg.train_examples, cfg.seed)
    if cfg.train_fraction is not None:
        from .data import stratified_subset

        train_set = stratified_subset(train_set, fraction=cfg.train_fraction, seed=cfg.seed + 3)
    test_set = _subset(test_set, cfg.test_examples, cfg.seed + 1)
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
        _set_epoch_transform(train_set, cfg, epoch)
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
        for i, (x, y) in enumerate(
            tqdm(loader, leave=False, disable=not cfg.progress or rank != 0, desc=f"epoch {epoch}")
        ):
            timer.add("data", time.perf_counter() - t_load)
            if cfg.lr_knots:
                for g in opt.param_groups:
                    g["lr"] = _lr_at(cfg.lr_knots, epoch + i / steps)
            x, y = x.to(cfg.device), y.to(cfg.device)
            opt.zero_grad()  # before the step: the clean regulariser accumulates in prepare()
            loss = train_step(mixer, net, x, y, cfg.loss, mix_gen, timer)
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
            row.update(evaluate(model, test_loader, cfg.device))
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
    results = _final_results(cfg, model, metrics, test_set, run_dir, mean, std, world)
    atomic_write(done, json.dumps(results, indent=1).encode())
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    return results


def _classes_of(model: torch.nn.Module) -> int:
    """K: the output width of the model's last linear layer."""
    return int([m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1].out_features)


def _final_results(cfg, model, metrics, test_set, run_dir, mean, std, world) -> dict[str, Any]:
    from .evaluate import corruption_error

    stage_totals: dict[str, float] = {}
    for m in metrics:
        for k, v in m.get("stage_seconds", {}).items():
            stage_totals[k] = stage_totals.get(k, 0.0) + v
    results: dict[str, Any] = {
        "method": cfg.method,
        "profile": cfg.profile,
        "dataset": cfg.dataset,
        "model": cfg.model,
        "epochs": cfg.epochs,
        "seed": cfg.seed,
        "loss": cfg.loss,
        "image_size": cfg.image_size,
        "train_examples": cfg.train_examples,
        "test_examples": cfg.test_examples,
        "train_fraction": cfg.train_fraction,
        "processes": world,
        "num_classes": _classes_of(model),
        "median_last": cfg.median_last,
        "top1_err": median_of_last([m["test_top1_err"] for m in metrics], cfg.median_last),
        "top5_err": median_of_last([m["test_top5_err"] for m in metrics], cfg.median_last),
        "final_top1_err": metrics[-1]["test_top1_err"],
        "seconds_per_epoch": float(np.median([m["seconds"] for m in metrics])),
        "images_per_second": float(np.median([m["images_per_second"] for m in metrics])),
        "stage_seconds": {k: round(v, 3) for k, v in stage_totals.items()},
        "train_loss": [m["train_loss"] for m in metrics],
        "provenance": provenance(),
    }
    attack_set = _subset(test_set, cfg.attack_examples, cfg.seed + 2)
    attack_loader = DataLoader(attack_set, batch_size=cfg.batch_size, shuffle=False)
    for eps in cfg.fgsm_eps:  # robustness of the final model
        key = f"fgsm_err@{round(eps * 255, 3):g}/255"
        results[key] = attacked_error(model, attack_loader, mean, std, cfg.device, eps)
    if cfg.pgd:
        eps, step, iters = cfg.pgd
        key = f"pgd_err@{round(eps * 255, 3):g}/255"
        results[key] = attacked_error(
            model, attack_loader, mean, std, cfg.device, eps, (step, iters), cfg.seed
        )
    if cfg.corruption:
        acc = corruption_accuracy(cfg, model, test_set, run_dir, mean, std)
        results["corruption_err"] = corruption_error(acc)
        results["corruption_source"] = (
            "published CIFAR-100-C files"
            if cfg.corruption == "published"
            else "generated here with imagecorruptions (ImageNet-C severities; not the release)"
        )
        results["corruption_accuracy"] = acc
    return results


# -- CLI ----------------------------------------------------------------------------------------


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def config_from_args(args: Sequence[str] | None = None) -> tuple[TrainConfig, Path]:
    """(config, run directory) from the command line; ValueError naming a bad ``--set``."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--config", help="a YAML or JSON file of TrainConfig fields")
    ap.add_argument(
        "--profile",
        help="scale the config: smoke | mini | paper (puzzle_core.experiments.PROFILES)",
    )
    ap.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="override fields, values parsed as JSON when possible",
    )
    ns = ap.parse_args(args)
    overrides: dict[str, Any] = {}
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    for item in ns.set:
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"--set {item}: expected KEY=VALUE (e.g. --set epochs=10)")
        if key not in names:
            raise ValueError(f"--set {key}: not a TrainConfig field; the fields are {names}")
        overrides[key] = _parse_value(value)
    if ns.config:
        from .experiments import load_config

        return load_config(ns.config, ns.profile, **overrides), Path(ns.run_dir)
    cfg = TrainConfig(**overrides)
    if ns.profile:
        from .experiments import apply_profile

        cfg = apply_profile(cfg, ns.profile)
    return cfg, Path(ns.run_dir)


def main(args: Sequence[str] | None = None) -> None:
    """``python -m puzzle_core.train``: a bad value, file or run directory gets one line on
    stderr naming it (no traceback) and exit status 2."""
    torch.set_num_threads(1)
    try:
        cfg, run_dir = config_from_args(args)
        results = run(cfg, run_dir)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(json.dumps(results, indent=1))


# -- reading a finished run back ----------------------------------------------------------------


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
    test_set = _subset(test_set, cfg.test_examples, cfg.seed + 1)
    model = _build_model(cfg, classes, channels)
    state = load_checkpoint(
        run_dir / "checkpoint.pt", identity(cfg.to_dict()), cfg.epochs, map_location=cfg.device
    )
    model.load_state_dict(state["model"])
    return TrainedRun(model.to(cfg.device).eval(), cfg, test_set, mean, std, classes)


def test_batches(test_set: Dataset, batch_size: int, batches: int):
    """Yield up to ``batches`` (x, y, object masks or None) from the start of a test set; the
    masks (B, H, W) come from synthetic-objects (through a Subset when there is one)."""
    base, idx = _base_and_indices(test_set)
    masks = getattr(base, "masks", None)
    loader = DataLoader(test_set, batch_size=batch_size, shuffle=False)
    for b, (x, y) in enumerate(loader):
        if b >= batches:
            return
        m = None
        if masks is not None:
            rows = range(b * batch_size, b * batch_size + len(y))
            m = torch.stack(
                [torch.as_tensor(np.asarray(masks[idx[r] if idx else r])).float() for r in rows]
            )
        yield x, y, m


if __name__ == "__main__":
    main()
