"""``make bench``: per-stage timings of Puzzle Mix mixing (network passes excluded) and the
training-step overhead of every method, each measured with its sides interleaved in one process
(A, B, A, B ...); prints medians and ratios.  Run ``python -m puzzle_core.bench --help``."""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from .compat import official_mixup_graph
from .puzzlemix import PuzzleMix
from .puzzlemix_config import PuzzleMixConfig

_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "brick", "grass", "gravel")


def photo_batch(
    batch: int = 100, size: int = 32, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A deterministic batch of real photographs (random crops of scikit-image's bundled images,
    resized to ``size``) and a stand-in saliency (smoothed image-gradient magnitude).

    -> x (B, 3, size, size) in [0, 1], saliency (B, size, size) >= 0."""
    from skimage import data

    rng = np.random.default_rng(seed)
    imgs = []
    for name in _PHOTOS:
        im = getattr(data, name)()
        im = np.repeat(im[..., None], 3, axis=2) if im.ndim == 2 else im[..., :3]
        imgs.append(torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1).float() / 255)
    out = []
    for _ in range(batch):
        im = imgs[int(rng.integers(len(imgs)))]
        h, w = im.shape[1:]
        crop = int(rng.integers(min(h, w) // 4, min(h, w)))
        top, left = int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1))
        patch = im[:, top : top + crop, left : left + crop].unsqueeze(0)
        out.append(F.interpolate(patch, size=(size, size), mode="area")[0])
    x = torch.stack(out)
    grey = x.mean(1, keepdim=True)
    gx = grey[..., :, 1:] - grey[..., :, :-1]
    gy = grey[..., 1:, :] - grey[..., :-1, :]
    mag = F.pad(gx.abs(), (0, 1)) + F.pad(gy.abs(), (0, 0, 0, 1))
    sal = F.avg_pool2d(mag, 5, stride=1, padding=2, count_include_pad=False)[:, 0]
    return x.contiguous(), sal.contiguous()


CIFAR_MEAN = (129.3 / 255, 124.1 / 255, 112.4 / 255)
CIFAR_STD = (68.2 / 255, 65.4 / 255, 70.4 / 255)


def mixing_batch(batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The benchmark's batch: CIFAR-normalised photographs x (B, 3, 32, 32), labels y (B,) in
    10 classes, the stand-in saliency (B, 32, 32) and a fixed pairing perm (B,)."""
    x01, sal = photo_batch(batch)
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    perm = torch.randperm(batch, generator=torch.Generator().manual_seed(1))
    return (x01 - mean) / std, torch.arange(batch) % 10, sal, perm


def run(
    batch: int = 100, repeats: int = 7, grids: tuple[int, ...] = (2, 4, 8, 16)
) -> dict[str, dict[int, dict[str, float]]]:
    """Mixing time per batch of the three sides, interleaved (A, B, C, A, B, C, ... within every
    repeat, so that the machine's drift hits them alike): Puzzle Mix with the swap solver (the
    reference numerics), with the exact solver, and ``compat.official_mixup_graph`` (ours: the
    official code's numerics re-expressed on these algorithms, not the official code itself).
    Prints medians (ms) per grid and stage -> {side: {grid: {stage: ms}}}."""
    torch.set_num_threads(1)  # fastest for these small tensor ops on 2-core machines
    torch.set_flush_denormal(True)
    x, y, sal, perm = mixing_batch(batch)
    print(
        f"Puzzle Mix mixing, batch {batch} RGB {x.shape[-1]}x{x.shape[-1]} photographs "
        f"(scikit-image crops), 3 labels, transport at 4 px, lambda = 0.5; sides interleaved "
        f"within each of {repeats} repeats, median ms per batch, 1 CPU thread."
    )
    mixers = {
        "swap (reference numerics)": PuzzleMix(
            PuzzleMixConfig(num_classes=10), mean=CIFAR_MEAN, std=CIFAR_STD
        ),
        "exact (batched min-cut)": PuzzleMix(
            PuzzleMixConfig(num_classes=10, solver="exact"), mean=CIFAR_MEAN, std=CIFAR_STD
        ),
    }
    compat = "compat (official numerics, ours)"

    def ours(mixer: PuzzleMix, g: int) -> tuple[dict[str, float], float]:
        out = mixer.mix(x, y, sal, grid=g, lam=0.5, perm=perm, timed=True)
        t = dict(out.timings)
        t["total"] = t["mask"] + t["transport"] + t["compose"]
        return t, out.energy.evaluate(out.labels).mean().item()

    def official(g: int) -> dict[str, float]:
        t0 = time.perf_counter()
        official_mixup_graph(
            x, sal, perm, block_num=g, lam=0.5, beta=1.2, gamma=0.5, eta=0.2, neigh_size=4,
            n_labels=3, mean=CIFAR_MEAN, std=CIFAR_STD, transport=True, t_eps=0.8, t_size=4,
        )  # fmt: skip
        return {"total": time.perf_counter() - t0}

    times: dict[str, dict[int, list[dict[str, float]]]] = {}
    energies: dict[str, dict[int, float]] = {}
    for g in grids:
        for mixer in mixers.values():  # warm-up: numba compilation, caches
            ours(mixer, g)
        for _ in range(repeats):
            for name, mixer in mixers.items():
                t, energies.setdefault(name, {})[g] = ours(mixer, g)
                times.setdefault(name, {}).setdefault(g, []).append(t)
            times.setdefault(compat, {}).setdefault(g, []).append(official(g))
    med = {
        side: {
            g: {k: 1000 * statistics.median(r[k] for r in runs) for k in runs[0]}
            for g, runs in by_grid.items()
        }
        for side, by_grid in times.items()
    }
    cols = ("mask", "transport", "compose", "total")
    print(f"{'side':34s} {'grid':>4s} " + " ".join(f"{c:>10s}" for c in cols) + "     energy")
    for side, by_grid in med.items():
        for g, t in by_grid.items():
            vals = " ".join(f"{t[c]:10.1f}" if c in t else f"{'':>10s}" for c in cols)
            e = energies.get(side, {}).get(g)
            print(f"{side:34s} {g:4d} {vals}" + (f" {e:10.6f}" if e is not None else ""))
    print(f"\n{'average over grids ' + str(grids):40s} ms/batch")
    avg = {side: statistics.mean(t["total"] for t in by.values()) for side, by in med.items()}
    for side, v in avg.items():
        print(f"  {side:38s} {v:8.1f}")
    sw, ex = avg["swap (reference numerics)"], avg["exact (batched min-cut)"]
    print(f"  ratio swap / exact: {sw / ex:.2f}x; compat / swap: {avg[compat] / sw:.2f}x")
    return med


def workers_scaling(
    batch: int = 100,
    repeats: int = 5,
    grids: tuple[int, ...] = (2, 4, 8, 16),
    workers: tuple[int, ...] | None = None,
    epoch_images: int = 50_000,
    cores: tuple[int, ...] = (1, 2, 4, 8, 16, 32),
) -> dict[tuple[str, str], dict[int, float]]:
    """Mixing time per batch (mask + transport + compose, averaged over ``grids``) against
    ``mask_workers``, with thread and with process pools, all settings interleaved within every
    repeat; then the per-epoch model t(N) = serial + parallel / N fitted by least squares to
    each pool's points, printed for ``cores`` (an epoch of ``epoch_images`` in batches of
    ``batch``).  -> {(solver, pool): {N: ms}}."""
    import os

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    n_cpu = os.cpu_count() or 1
    if workers is None:
        workers = tuple(sorted({1, 2, max(1, n_cpu // 2), n_cpu}))
    x, y, sal, perm = mixing_batch(batch)
    keys = [
        (solver, pool, w)
        for solver in ("swap", "exact")
        for pool in ("thread", "process")
        for w in workers
    ]
    mixers = {
        key: PuzzleMix(
            PuzzleMixConfig(num_classes=10, solver=key[0], mask_pool=key[1], mask_workers=key[2]),
            mean=CIFAR_MEAN,
            std=CIFAR_STD,
        )
        for key in keys
    }
    times: dict[tuple[str, str, int], dict[int, list[float]]] = {k: {} for k in mixers}
    for g in grids:
        for mixer in mixers.values():  # warm-up (numba, the pools' start)
            mixer.mix(x, y, sal, grid=g, lam=0.5, perm=perm)
        for _ in range(repeats):
            for key, mixer in mixers.items():
                t0 = time.perf_counter()
                mixer.mix(x, y, sal, grid=g, lam=0.5, perm=perm)
                times[key].setdefault(g, []).append(time.perf_counter() - t0)
    ms = {
        key: statistics.mean(1000 * statistics.median(v) for v in by_grid.values())
        for key, by_grid in times.items()
    }
    print(
        f"\nMixing against mask_workers, batch {batch}, averaged over grids {grids}, median of "
        f"{repeats}, ms per batch (images/s); this machine has {n_cpu} CPU(s)"
    )
    print(f"{'solver, pool':16s}" + "".join(f"{'workers ' + str(w):>21s}" for w in workers))
    out: dict[tuple[str, str], dict[int, float]] = {}
    for solver in ("swap", "exact"):
        for pool in ("thread", "process"):
            row = {w: ms[(solver, pool, w)] for w in workers}
            out[(solver, pool)] = row
            cells = "".join(f"{row[w]:9.1f} ({1000 * batch / row[w]:6.0f}/s)" for w in workers)
            print(f"{solver + ', ' + pool:16s}{cells}")
    steps = -(-epoch_images // batch)
    print(
        f"\nPer-epoch model ({epoch_images:,} images, {steps} batches): mixing seconds per "
        f"epoch on N cores, t(N) = serial + parallel / N fitted to each row above"
    )
    header = f"{'solver, pool':16s}{'serial':>9s}{'parallel':>10s}"
    print(header + "".join(f"{'N=' + str(n):>8s}" for n in cores))
    for (solver, pool), row in out.items():
        n = np.array(list(row), dtype=float)
        t = np.array(list(row.values()))
        if len(n) < 2:
            print(f"{solver + ', ' + pool:16s} one worker setting only: no fit")
            continue
        serial, parallel = np.linalg.lstsq(np.stack([np.ones_like(n), 1 / n], 1), t)[0]
        cells = "".join(
            f"{steps * (serial + parallel / c) / 1000:7.1f}" + ("*" if c > n_cpu else " ")
            for c in cores
        )
        print(f"{solver + ', ' + pool:16s}{serial:7.1f}ms{parallel:8.1f}ms{cells}")
    print("  * extrapolated beyond this machine's cores (the fit is only as good as its points)")
    return out


OVERHEAD_METHODS = (
    "vanilla",
    "input_mixup",
    "manifold_mixup",
    "cutmix",
    "saliencymix",
    "snapmix",
    "augmix",
    "guided_sr",
    "guided_ap",
    "puzzlemix",
    "comixup",
)


def _train_step(mixer, model, opt, x, y, g) -> None:
    """One training step through the mixer protocol (``apply`` then ``loss``): whatever the
    method needs (saliency pass, CAM, the manifold hook, AugMix's three views) is its own."""
    from .losses import soft_cross_entropy

    mixed = mixer.apply(model, x, y, generator=g)
    loss = mixer.loss(model, x, y, mixed, soft_cross_entropy)
    opt.zero_grad()
    loss.backward()
    opt.step()


def overhead(
    batch_sizes: tuple[int, ...] = (16, 32, 64),
    repeats: int = 5,
    model_name: str = "resnet8",
    methods: tuple[str, ...] = OVERHEAD_METHODS,
) -> dict[tuple[str, int], float]:
    """Augmentation overhead in the format of GuidedMixup Table 2: per method and batch size,
    the extra training-step time over vanilla (%), measured side by side (methods interleaved
    within every repeat) on the same model; 32x32 RGB photographs, 100 classes, CPU."""
    from .mixers import build_for_data
    from .models import build_model

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    x01, _ = photo_batch(max(batch_sizes), 32, seed=3)
    mean, std = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1), torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    x_all = (x01 - mean) / std
    y_all = torch.arange(max(batch_sizes)) % 100
    model = build_model(model_name, num_classes=100)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    mixers = {
        name: build_for_data(name, {}, num_classes=100, mean=CIFAR_MEAN, std=CIFAR_STD)
        for name in methods
    }
    times: dict[tuple[str, int], list[float]] = {}
    for b in batch_sizes:
        x, y = x_all[:b], y_all[:b]
        for mixer in mixers.values():  # warm-up (numba compile, caches)
            _train_step(mixer, model, opt, x, y, torch.Generator().manual_seed(0))
        for r in range(repeats):
            for name, mixer in mixers.items():
                g = torch.Generator().manual_seed(r)
                t0 = time.perf_counter()
                _train_step(mixer, model, opt, x, y, g)
                times.setdefault((name, b), []).append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"\nAugmentation overhead (GuidedMixup Table 2 format): extra time per training step over "
        f"vanilla, {model_name} on 32x32 RGB, 100 classes, 1 CPU thread, median of {repeats}"
    )
    print(f"{'method':16s}" + "".join(f"{'batch ' + str(b):>16s}" for b in batch_sizes))
    for name in methods:
        cells = []
        for b in batch_sizes:
            pct = 100 * (med[(name, b)] / med[("vanilla", b)] - 1)
            cells.append(f"{pct:+8.1f}% {1000 * med[(name, b)]:5.0f}ms")
        print(f"{name:16s}" + "".join(f"{c:>16s}" for c in cells))
    return med


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--skip-mixing", action="store_true", help="only the overhead table")
    ap.add_argument("--skip-overhead", action="store_true", help="only the mixing timings")
    ap.add_argument("--skip-workers", action="store_true", help="no mask_workers scaling")
    args = ap.parse_args()
    if not args.skip_mixing:
        run(args.batch, args.repeats)
    if not args.skip_workers:
        workers_scaling(args.batch, args.repeats)
    if not args.skip_overhead:
        overhead(repeats=args.repeats)


if __name__ == "__main__":
    main()
