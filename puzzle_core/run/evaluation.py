"""Evaluation of a trained model: test error, FGSM / PGD error, corruption error, and the results
record of a finished run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ..metrics import median_of_last, topk_correct
from ..provenance import provenance
from .config import TrainConfig
from .data import raw_test_images, subset


@torch.no_grad()
def test_metrics(model: torch.nn.Module, loader: DataLoader, device: str) -> dict[str, float]:
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
    from ..attacks import fgsm
    from ..attacks import pgd as pgd_attack

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


def corruption_accuracy(
    cfg: TrainConfig, model: torch.nn.Module, test_set: Dataset, run_dir: Path, mean, std
) -> dict[str, list[float]]:
    """{corruption: top-1 accuracy (%) per severity 1-5} of the final model (reference
    ``test_robust.py``): the published CIFAR-100-C files (``corruption="published"``) or a set
    generated from the run's test set (``"generate"``, cached under ``run_dir/corrupted``)."""
    from torchvision import transforms as T

    from ..data import CORRUPTIONS, available_corruptions, load_corruption
    from ..data.corruptions import SEVERITIES, generate_corruptions

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
        images, labels = raw_test_images(test_set)
        if n_per is not None and n_per < len(images):
            from ..data import stratified_subset_indices

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


def classes_of(model: torch.nn.Module) -> int:
    """K: the output width of the model's last linear layer."""
    return int([m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1].out_features)


def final_results(cfg, model, metrics, test_set, run_dir, mean, std, world) -> dict[str, Any]:
    from ..metrics import corruption_error

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
        "num_classes": classes_of(model),
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
    attack_set = subset(test_set, cfg.attack_examples, cfg.seed + 2)
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
