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
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from ._checks import check_choice
from .evaluate import median_of_last, topk_correct
from .losses import LOSSES

DATASETS = ("synthetic", "fashion_mnist", "cifar100", "cifar10", "tiny_imagenet")


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
    epochs: int = 2
    batch_size: int = 100
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    schedule: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    loss: str = "bce_softmax"
    seed: int = 0
    fgsm_eps: tuple[float, ...] = ()  # pixel-scale FGSM evaluations after training (8/255 CIFAR)
    # PGD after training: (eps, step, iterations), random start (Table 8: 8/255, 2/255, 7)
    pgd: tuple[float, ...] = ()
    profile: str = "smoke"
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        from .mixers import available

        object.__setattr__(self, "schedule", tuple(self.schedule))
        object.__setattr__(self, "fgsm_eps", tuple(float(e) for e in self.fgsm_eps))
        object.__setattr__(self, "pgd", tuple(float(e) for e in self.pgd))
        if self.pgd and len(self.pgd) != 3:
            raise ValueError(f"pgd must be (eps, step, iterations), got {self.pgd}")
        check_choice("method", self.method, available())
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("loss", self.loss, tuple(LOSSES))
        for name in ("epochs", "batch_size", "image_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["schedule"] = list(self.schedule)
        d["fgsm_eps"] = list(self.fgsm_eps)
        d["pgd"] = list(self.pgd)
        return d


# -- data ---------------------------------------------------------------------------------------


def _stats(data: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    arr = data.reshape(-1, data.shape[-1]).astype(np.float64) / 255
    return tuple(arr.mean(0).tolist()), tuple(arr.std(0).tolist())


def build_data(cfg: TrainConfig) -> tuple[Dataset, Dataset, int, int, tuple, tuple]:
    """-> (train set, test set, classes, channels, mean, std) with the reference transforms
    (flip + RandomCrop(padding 2) for training, normalisation for both)."""
    from torchvision import transforms as T

    from .data import FashionMNIST, SyntheticObjects, fashion_mnist_transforms, load_cifar
    from .data.cifar import cifar_normalization, cifar_test_transform, cifar_train_transform
    from .data.fashion_mnist import MEAN as FM_MEAN
    from .data.fashion_mnist import STD as FM_STD

    if cfg.dataset == "synthetic":
        probe = SyntheticObjects(train=True, image_size=cfg.image_size, seed=cfg.seed)
        mean, std = _stats(probe.data)
        size = cfg.image_size
        train_tf = T.Compose(
            [
                T.RandomHorizontalFlip(),
                T.RandomCrop(size, padding=2),
                T.ToTensor(),
                T.Normalize(mean, std),
            ]
        )
        test_tf = T.Compose([T.ToTensor(), T.Normalize(mean, std)])
        probe.transform = train_tf
        test = SyntheticObjects(train=False, image_size=size, seed=cfg.seed, transform=test_tf)
        return probe, test, len(probe.classes), 3, mean, std
    if cfg.dataset == "fashion_mnist":
        train = FashionMNIST(cfg.data_root, True, fashion_mnist_transforms(True, 32, 1))
        test = FashionMNIST(cfg.data_root, False, fashion_mnist_transforms(False, 32, 1))
        return train, test, 10, 1, tuple(FM_MEAN), tuple(FM_STD)
    train = load_cifar(
        cfg.dataset, cfg.data_root, train=True, transform=cifar_train_transform(cfg.dataset)
    )
    test = load_cifar(
        cfg.dataset, cfg.data_root, train=False, transform=cifar_test_transform(cfg.dataset)
    )
    mean, std = cifar_normalization(cfg.dataset)
    return train, test, (100 if cfg.dataset == "cifar100" else 10), 3, mean, std


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


def train_step(
    mixer: Any,
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_name: str,
    generator: torch.Generator,
) -> torch.Tensor:
    """The mixed loss of one batch (gradients not yet taken); saliency, CAM, the manifold hook
    and AugMix's views are handled here.  -> scalar loss."""
    from .mixers import augmix_loss, class_activation_spm
    from .saliency import compute_saliency

    loss_fn = LOSSES[loss_name]
    name = getattr(mixer, "name", "")
    if name == "manifold_mixup":
        logits, targets, _ = mixer.forward(model, x, y, generator=generator)
        return loss_fn(logits, targets)
    if name == "augmix":
        a1, a2 = mixer.mix(x, y, generator=generator).info["views"]
        lc, l1, l2 = model(torch.cat([x, a1, a2])).chunk(3)
        return augmix_loss(lc, l1, l2, y)
    if hasattr(mixer, "pre_transform"):
        x = mixer.pre_transform(x, generator)
    sal = adversarial = None
    if mixer.saliency == "input_gradient":
        if hasattr(mixer, "prepare"):
            prep = mixer.prepare(model, x, y, generator=generator)
            sal, adversarial = prep.saliency, prep.adversarial
        else:
            sal = compute_saliency(model, x, y).saliency
    elif mixer.saliency == "cam":
        sal = class_activation_spm(model, x, y)
    kwargs = {"adversarial": adversarial} if adversarial is not None else {}
    out = mixer.mix(x, y, sal, generator=generator, **kwargs)
    if not getattr(mixer, "labels_sum_to_one", True):  # SnapMix: rho_a CE(y) + rho_b CE(y')
        loss_fn = LOSSES["ce"]
    return loss_fn(model(out.x), out.y)


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


# -- the run ------------------------------------------------------------------------------------


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def run(cfg: TrainConfig, run_dir: str | Path) -> dict[str, Any]:
    """Train (or resume, or skip when finished) -> the results dict (also results.json)."""
    from tqdm.auto import tqdm

    from .models import build_model

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    done = run_dir / "results.json"
    cfg_path = run_dir / "config.json"
    if cfg_path.exists() and json.loads(cfg_path.read_text()) != cfg.to_dict():
        raise ValueError(f"run_dir={str(run_dir)!r} holds a run with a different config")
    if done.exists():
        return json.loads(done.read_text())
    _atomic_write(cfg_path, json.dumps(cfg.to_dict(), indent=1).encode())
    torch.set_flush_denormal(True)
    _seed_everything(cfg.seed)

    train_set, test_set, classes, channels, mean, std = build_data(cfg)
    train_set = _subset(train_set, cfg.train_examples, cfg.seed)
    test_set = _subset(test_set, cfg.test_examples, cfg.seed + 1)
    test_loader = DataLoader(test_set, batch_size=cfg.batch_size, shuffle=False)
    stem = "tiny" if cfg.dataset == "tiny_imagenet" else "cifar"  # first conv stride 2 (1c)
    model = build_model(cfg.model, classes, in_channels=channels, stem=stem).to(cfg.device)
    opt = torch.optim.SGD(
        model.parameters(),
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov,
        weight_decay=cfg.weight_decay,
    )
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(cfg.schedule), cfg.lr_gamma)
    mixer = build_mixer(cfg, classes, mean, std)

    ckpt_path = run_dir / "checkpoint.pt"
    metrics: list[dict[str, Any]] = []
    start = 0
    if ckpt_path.exists():  # resume after the last finished epoch
        state = torch.load(ckpt_path, map_location=cfg.device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        metrics, start = state["metrics"], state["epoch"] + 1

    epochs = tqdm(
        range(start, cfg.epochs),
        desc=f"{cfg.method}",
        disable=not cfg.progress,
        initial=start,
        total=cfg.epochs,
    )
    for epoch in epochs:
        epoch_seed = cfg.seed * 100003 + epoch
        _seed_everything(epoch_seed)  # augmentation draws of this epoch
        order = torch.Generator().manual_seed(epoch_seed)
        loader = DataLoader(
            train_set,
            batch_size=cfg.batch_size,
            shuffle=True,
            generator=order,
            drop_last=len(train_set) > cfg.batch_size,
        )  # type: ignore[arg-type]
        mix_gen = torch.Generator().manual_seed(epoch_seed + 1)
        model.train()
        t0 = time.perf_counter()
        total, count = 0.0, 0
        for x, y in tqdm(loader, leave=False, disable=not cfg.progress, desc=f"epoch {epoch}"):
            x, y = x.to(cfg.device), y.to(cfg.device)
            opt.zero_grad()  # before the step: the clean regulariser accumulates in prepare()
            loss = train_step(mixer, model, x, y, cfg.loss, mix_gen)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(y)
            count += len(y)
        sched.step()
        row = {
            "epoch": epoch,
            "train_loss": total / max(count, 1),
            "seconds": time.perf_counter() - t0,
            "lr": opt.param_groups[0]["lr"],
            **evaluate(model, test_loader, cfg.device),
        }
        metrics.append(row)
        _atomic_write(
            run_dir / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in metrics).encode()
        )
        buf = io.BytesIO()
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "metrics": metrics,
                "epoch": epoch,
            },
            buf,
        )
        _atomic_write(ckpt_path, buf.getvalue())
        epochs.set_postfix(loss=f"{row['train_loss']:.3f}", top1=f"{row['test_top1_err']:.1f}")

    results = {
        "method": cfg.method,
        "profile": cfg.profile,
        "dataset": cfg.dataset,
        "model": cfg.model,
        "epochs": cfg.epochs,
        "seed": cfg.seed,
        "top1_err": median_of_last([m["test_top1_err"] for m in metrics]),
        "top5_err": median_of_last([m["test_top5_err"] for m in metrics]),
        "final_top1_err": metrics[-1]["test_top1_err"],
        "seconds_per_epoch": float(np.median([m["seconds"] for m in metrics])),
        "train_loss": [m["train_loss"] for m in metrics],
    }
    for eps in cfg.fgsm_eps:  # robustness of the final model
        key = f"fgsm_err@{round(eps * 255, 3):g}/255"
        results[key] = attacked_error(model, test_loader, mean, std, cfg.device, eps)
    if cfg.pgd:
        eps, step, iters = cfg.pgd
        key = f"pgd_err@{round(eps * 255, 3):g}/255"
        results[key] = attacked_error(
            model, test_loader, mean, std, cfg.device, eps, (step, iters), cfg.seed
        )
    _atomic_write(done, json.dumps(results, indent=1).encode())
    return results


# -- CLI ----------------------------------------------------------------------------------------


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def config_from_args(args: Sequence[str] | None = None) -> tuple[TrainConfig, Path]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--config", help="a YAML or JSON file of TrainConfig fields")
    ap.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="override fields, values parsed as JSON when possible",
    )
    ns = ap.parse_args(args)
    fields: dict[str, Any] = {}
    if ns.config:
        import yaml

        fields.update(yaml.safe_load(Path(ns.config).read_text()) or {})
    for item in ns.set:
        key, _, value = item.partition("=")
        if key not in {f.name for f in dataclasses.fields(TrainConfig)}:
            raise ValueError(f"--set {key}: not a TrainConfig field")
        fields[key] = _parse_value(value)
    return TrainConfig(**fields), Path(ns.run_dir)


def main(args: Sequence[str] | None = None) -> None:
    torch.set_num_threads(1)
    cfg, run_dir = config_from_args(args)
    print(json.dumps(run(cfg, run_dir), indent=1))


if __name__ == "__main__":
    main()
