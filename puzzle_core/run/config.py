"""The configuration of one training run (a frozen dataclass; YAML files under
``experiments/configs`` are its serialised form)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from .._checks import check_choice
from ..losses import LOSSES
from .fieldtypes import check_field_types

DATASETS = (
    "synthetic",
    "fashion_mnist",
    "cifar100",
    "cifar10",
    "tiny_imagenet",
    "imagenet",
    # GuidedMixup Tables 3, 7 and 8 (puzzle_core.data.fine_grained)
    "cub200",
    "stanford_cars",
    "fgvc_aircraft",
    "caltech101",
    "flowers102",
)


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
    # True: batch t+1's model-dependent mixing work (Puzzle Mix: saliency, Algorithm 2's noise)
    # runs before batch t trains, with batch t's parameters (one step stale), and its mask,
    # transport and composition run in a thread while batch t trains (README "Performance");
    # mixers whose work on the model cannot be split (manifold mixup, SnapMix) are unaffected
    overlap: bool = False
    deterministic: bool = False
    profile: str = "smoke"
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        from ..mixers import available

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
