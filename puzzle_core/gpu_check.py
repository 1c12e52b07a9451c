"""``make gpu-check``: the one prepared script for a lent GPU (at most 10 minutes).

1. Runs the CUDA tests (``pytest -m cuda``: CPU and CUDA agree for every mixer, the transport's
   torch path on the device, training steps on the device).
2. Times training steps of vanilla and Puzzle Mix (the reference preset, the default swap
   solver; one mask worker, ``--workers`` threads, ``--workers`` processes, and the ``overlap``
   schedule in steady state) for PreActResNet18 and WRN-28-10 on CIFAR-shaped data (32x32 RGB
   photographs, 10 classes), with and without AMP and channels_last.  The methods of one
   setting are interleaved within every repeat (vanilla, Puzzle Mix, Puzzle Mix with workers,
   ..., vanilla, ...), so drift hits them alike.
3. Prints the per-step medians and the per-epoch ratio Puzzle Mix / vanilla (an epoch of CIFAR:
   50,000 images), and writes a JSON with provenance (commit, packages, hardware, GPU).

``--device cpu`` runs the same script without CUDA (the tests' smoke run; step 1 is then
recorded as not run).  ``python -m puzzle_core.gpu_check --help``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .bench import CIFAR_MEAN, CIFAR_STD, photo_batch
from .losses import LOSSES
from .mixers import build_for_data
from .models import MODEL_NAMES, build_model
from .provenance import ROOT, provenance
from .run.step import StageTimer, staged_batches, train_step

CIFAR_TRAIN = 50_000
MODELS = ("preactresnet18", "wrn28_10")
# name -> (amp, channels_last); AMP is float16 with a gradient scaler on CUDA, bfloat16 on CPU
SETTINGS = {
    "fp32": (False, False),
    "amp": (True, False),
    "fp32-cl": (False, True),
    "amp-cl": (True, True),
}


@dataclass
class Setting:
    """Per-step medians (ms) of one model under one (amp, channels_last) setting."""

    model: str
    amp: bool
    channels_last: bool
    batch: int
    steps: int
    ms: dict[str, float] = field(default_factory=dict)
    stages_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    epoch_s: dict[str, float] = field(default_factory=dict)
    ratio: dict[str, float] = field(default_factory=dict)
    skipped: str | None = None


def run_cuda_tests(device: torch.device, timeout_s: int) -> dict[str, object]:
    """``pytest -m cuda`` in a subprocess -> {"ran", "returncode", "summary"}."""
    if device.type != "cuda":
        return {"ran": False, "why": f"device is {device.type}: the CUDA tests need a GPU"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "tests"]
    t0 = time.perf_counter()
    try:
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"ran": True, "returncode": None, "summary": f"timed out after {timeout_s} s"}
    lines = [ln for ln in out.stdout.splitlines() if ln.strip()]
    summary = lines[-1] if lines else out.stderr.strip()[-500:]
    failures = [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))]
    return {
        "ran": True,
        "returncode": out.returncode,
        "summary": summary,
        "failures": failures[:50],
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_setting(
    model_name: str,
    amp: bool,
    channels_last: bool,
    *,
    device: torch.device,
    batch: int,
    steps: int,
    warmup: int,
    workers: int,
) -> Setting:
    """Interleaved training steps of the methods on one model and setting -> medians."""
    methods = {
        "vanilla": ("vanilla", {}),
        "puzzlemix": ("puzzlemix", {}),
        f"puzzlemix_w{workers}": ("puzzlemix", {"mask_workers": workers}),
        f"puzzlemix_p{workers}": ("puzzlemix", {"mask_workers": workers, "mask_pool": "process"}),
        "puzzlemix_overlap": ("puzzlemix", {}),
    }
    x01, _ = photo_batch(batch, 32, seed=5)
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    x = ((x01 - mean) / std).to(device)
    y = (torch.arange(batch) % 10).to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = x.contiguous(memory_format=fmt)
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    runs = {}
    for label, (method, params) in methods.items():
        torch.manual_seed(0)
        model = build_model(model_name, 10).to(device).to(memory_format=fmt)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        scaler = torch.amp.GradScaler(device.type, enabled=amp and device.type == "cuda")
        mixer = build_for_data(method, params, num_classes=10, mean=CIFAR_MEAN, std=CIFAR_STD)
        runs[label] = (model, opt, scaler, mixer)

    # the overlap schedule in steady state: each step waits for its batch's mixing (started
    # during the previous step) and runs the next batch's saliency (TrainConfig.overlap)
    ahead = staged_batches(
        runs["puzzlemix_overlap"][3], runs["puzzlemix_overlap"][0], itertools.repeat((x, y)),
        str(device), torch.Generator().manual_seed(0), StageTimer(),
    )  # fmt: skip

    def step(label: str, seed: int, timer: StageTimer | None = None) -> float:
        model, opt, scaler, mixer = runs[label]
        _sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
            if label == "puzzlemix_overlap":
                _, _, mixed = next(ahead)
                loss = mixer.loss(model, x, y, mixed, LOSSES["ce"])
            else:
                loss = train_step(
                    mixer, model, x, y, "ce", torch.Generator().manual_seed(seed), timer=timer
                )
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        _sync(device)
        return time.perf_counter() - t0

    result = Setting(model_name, amp, channels_last, batch, steps)
    times: dict[str, list[float]] = {label: [] for label in runs}
    for r in range(warmup + steps):
        for label in runs:
            t = step(label, r)
            if r >= warmup:
                times[label].append(t)
    ahead.close()  # waits for the batch mixed ahead
    for label in runs:
        if label not in ("vanilla", "puzzlemix_overlap"):  # one step with a clock per stage
            timer = StageTimer(sync=device.type == "cuda")
            step(label, warmup + steps, timer)
            result.stages_ms[label] = {k: round(1000 * v, 2) for k, v in timer.seconds.items()}
    steps_per_epoch = math.ceil(CIFAR_TRAIN / batch)
    for label, ts in times.items():
        med = statistics.median(ts)
        result.ms[label] = round(1000 * med, 2)
        result.epoch_s[label] = round(med * steps_per_epoch, 1)
    for label in runs:
        if label != "vanilla":
            result.ratio[label] = round(result.ms[label] / result.ms["vanilla"], 3)
    return result


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    ap.add_argument("--out", default=str(ROOT / "experiments" / "published" / "gpu"))
    ap.add_argument("--models", nargs="+", default=list(MODELS), help="any of the model zoo")
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), help=" ".join(SETTINGS))
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per method and setting")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    ap.add_argument("--budget-s", type=float, default=540.0, help="stop timing after this")
    ap.add_argument("--tests-timeout-s", type=int, default=240)
    ap.add_argument("--skip-tests", action="store_true", help="only the timings")
    args = ap.parse_args(argv)
    for name in ("batch", "steps", "workers"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        ap.error(f"--warmup must be >= 0, got {args.warmup}")
    for name, allowed in (("models", MODEL_NAMES), ("settings", tuple(SETTINGS))):
        unknown = sorted(set(getattr(args, name)) - set(allowed))
        if unknown:
            ap.error(f"--{name} must be among {list(allowed)}, got {unknown}")
    try:
        device = torch.device(args.device)
    except RuntimeError as err:
        ap.error(f"--device: {err}")
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device here (use --device cpu for the smoke run)")
    if device.type not in ("cuda", "cpu"):
        ap.error(f"--device must be cuda or cpu, got {args.device!r}")

    start = time.perf_counter()
    torch.backends.cudnn.benchmark = True
    report: dict[str, object] = {
        "script": "python -m puzzle_core.gpu_check " + " ".join(argv or sys.argv[1:]),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": str(device),
        "provenance": provenance(),
        "data": "CIFAR-shaped: 32x32 RGB photographs (scikit-image crops), 10 classes",
        "epoch_images": CIFAR_TRAIN,
    }
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(device)
    print(f"[1/2] CUDA tests on {device} ...", flush=True)
    report["cuda_tests"] = (
        {"ran": False, "why": "--skip-tests"}
        if args.skip_tests
        else run_cuda_tests(device, args.tests_timeout_s)
    )
    print(f"      {report['cuda_tests']}", flush=True)
    print(f"[2/2] training steps, batch {args.batch}, median of {args.steps}", flush=True)
    settings = []
    for model_name in args.models:
        for amp, channels_last in (SETTINGS[name] for name in args.settings):
            if time.perf_counter() - start > args.budget_s:
                s = Setting(model_name, amp, channels_last, args.batch, 0, skipped="budget")
            else:
                s = time_setting(
                    model_name, amp, channels_last, device=device, batch=args.batch,
                    steps=args.steps, warmup=args.warmup, workers=args.workers,
                )  # fmt: skip
            settings.append(s)
            flags = f"amp={int(amp)} channels_last={int(channels_last)}"
            if s.skipped:
                print(f"  {model_name:15s} {flags}  skipped ({s.skipped})", flush=True)
                continue
            cells = "  ".join(f"{k} {v:8.1f} ms" for k, v in s.ms.items())
            ratios = "  ".join(f"{k}/vanilla {v:.2f}x" for k, v in s.ratio.items())
            print(f"  {model_name:15s} {flags}  {cells}  {ratios}", flush=True)
    report["settings"] = [asdict(s) for s in settings]
    report["seconds"] = round(time.perf_counter() - start, 1)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", str(report.get("gpu", device.type)).lower()).strip("-")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = out_dir / f"gpu-check-{slug}-{stamp}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {path} ({report['seconds']} s)")
    return report


if __name__ == "__main__":  # the process pool spawns workers that import this module
    main()
