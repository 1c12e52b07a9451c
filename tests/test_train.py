"""The training run: every method trains on the embedded data, runs resume losslessly after a
SIGKILL, finished runs are skipped."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from puzzle_core.mixers import available
from puzzle_core.run import TrainConfig, run

SMOKE = dict(
    train_examples=300, test_examples=100, batch_size=50, epochs=2, lr=0.05, progress=False
)


@pytest.mark.parametrize("method", available())
def test_every_method_trains_and_its_loss_decreases(method, tmp_path):
    res = run(TrainConfig(method=method, **SMOKE), tmp_path / method)
    loss = res["train_loss"]
    assert len(loss) == 2 and all(v == v for v in loss)  # finite, two epochs
    assert loss[1] < loss[0], loss
    assert res["profile"] == "smoke" and res["dataset"] == "synthetic"


def test_resume_after_sigkill_gives_identical_metrics(tmp_path):
    fields = dict(
        method="puzzlemix",
        train_examples=400,
        test_examples=100,
        batch_size=50,
        epochs=3,
        lr=0.05,
        progress=False,
    )
    reference = run(TrainConfig(**fields), tmp_path / "uninterrupted")
    killed = tmp_path / "killed"
    args = [sys.executable, "-m", "puzzle_core.run", "--run-dir", str(killed), "--set"]
    args += [f"{k}={json.dumps(v)}" for k, v in fields.items()]
    proc = subprocess.Popen(
        args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.time() + 300
    while not (killed / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # into the next epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (killed / "checkpoint.pt").exists() and not (killed / "results.json").exists()
    resumed = run(TrainConfig(**fields), killed)
    timing = {"seconds_per_epoch", "images_per_second", "stage_seconds"}
    assert {k: v for k, v in resumed.items() if k not in timing} == {
        k: v for k, v in reference.items() if k not in timing
    }
    lines = [json.loads(t) for t in (killed / "metrics.jsonl").read_text().splitlines()]
    ref_lines = [
        json.loads(t)
        for t in (tmp_path / "uninterrupted" / "metrics.jsonl").read_text().splitlines()
    ]
    clock = {"seconds", "images_per_second", "stage_seconds"}
    strip = lambda rows: [{k: v for k, v in r.items() if k not in clock} for r in rows]  # noqa: E731
    assert strip(lines) == strip(ref_lines) and len(lines) == 3


def test_finished_runs_are_skipped_and_configs_checked(tmp_path):
    cfg = TrainConfig(method="cutmix", **SMOKE)
    first = run(cfg, tmp_path / "r")
    stamp = (tmp_path / "r" / "results.json").stat().st_mtime_ns
    assert run(cfg, tmp_path / "r") == first
    assert (tmp_path / "r" / "results.json").stat().st_mtime_ns == stamp
    assert run(TrainConfig(method="cutmix", **{**SMOKE, "progress": True}), tmp_path / "r") == first
    stored = json.loads((tmp_path / "r" / "config.json").read_text())
    del stored["train_fraction"]  # a run started before the field existed: its default
    (tmp_path / "r" / "config.json").write_text(json.dumps(stored))
    assert run(cfg, tmp_path / "r") == first
    with pytest.raises(ValueError, match="different config"):
        run(TrainConfig(method="cutmix", **{**SMOKE, "epochs": 3}), tmp_path / "r")
    with pytest.raises(ValueError, match="method"):
        TrainConfig(method="fmix")


def test_fgsm_evaluation_in_the_results(tmp_path):
    cfg = TrainConfig(method="vanilla", fgsm_eps=(0.0, 8 / 255), pgd=(8 / 255, 2 / 255, 7), **SMOKE)
    res = run(cfg, tmp_path / "f")
    clean, attacked = res["fgsm_err@0/255"], res["fgsm_err@8/255"]
    # eps 0 is the clean final-epoch error; FGSM and PGD raise it (checked on this seeded run)
    assert clean == pytest.approx(res["final_top1_err"])
    assert attacked >= clean and res["pgd_err@8/255"] >= clean
    with pytest.raises(ValueError, match="pgd"):
        TrainConfig(pgd=(0.1, 0.01))


def test_corruption_error_inside_a_run_generated_and_published_agree(tmp_path):
    from puzzle_core.data.corruptions import generate_corruptions
    from puzzle_core.run.data import build_data, raw_test_images, subset

    kinds = ("gaussian_noise", "contrast")
    cfg = TrainConfig(method="vanilla", corruption="generate", corruption_types=kinds, **SMOKE)
    res = run(cfg, tmp_path / "gen")
    acc = res["corruption_accuracy"]
    assert set(acc) == set(kinds) and all(len(v) == 5 for v in acc.values())
    mean_acc = sum(sum(v) / 5 for v in acc.values()) / 2
    assert res["corruption_err"] == pytest.approx(100 - mean_acc)
    assert "generated" in res["corruption_source"]
    # the same images written as a "published" release give the same accuracies
    _, test, *_ = build_data(cfg)
    images, labels = raw_test_images(subset(test, cfg.test_examples, cfg.seed + 1))
    generate_corruptions(images, labels, kinds, out_dir=tmp_path / "release")
    pub = TrainConfig(
        method="vanilla",
        corruption="published",
        corruption_root=str(tmp_path / "release"),
        **SMOKE,
    )
    res_pub = run(pub, tmp_path / "pub")
    assert res_pub["corruption_accuracy"] == acc
    with pytest.raises(ValueError, match="corruption"):
        TrainConfig(corruption="cifar-c")


def test_lr_knots_and_phases(tmp_path):
    cfg = TrainConfig(
        method="vanilla",
        lr_knots=((0, 0.1), (2, 0.0)),
        phases=({"start": 1, "batch_size": 25},),
        **{k: v for k, v in SMOKE.items() if k != "lr"},
    )
    run(cfg, tmp_path / "k")
    rows = [json.loads(t) for t in (tmp_path / "k" / "metrics.jsonl").read_text().splitlines()]
    # epoch 0: 6 steps of 50, epoch 1: 12 steps of 25; lr is set per step (last: t = e + (n-1)/n)
    assert rows[0]["lr"] == pytest.approx(0.1 * (1 - (5 / 6) / 2))
    assert rows[1]["lr"] == pytest.approx(0.1 * (1 - (1 + 11 / 12) / 2))
    with pytest.raises(ValueError, match="phases"):
        TrainConfig(phases=({"batch_size": 10},))


def test_overlap_gives_the_same_batches_when_the_model_does_not_change(tmp_path):
    """overlap=True runs batch t+1's saliency before batch t trains (one step stale) and its
    mask in a thread.  With the parameters frozen (learning rate 0, no BatchNorm statistics)
    stale is current: the run must equal the one without overlap bit for bit; a mixer that
    needs nothing from the model (CutMix) is identical whatever the parameters do."""
    frozen = dict(SMOKE, lr_knots=((0, 0.0), (2, 0.0)), batchnorm="off", epochs=2)
    for method, fields in (("puzzlemix", frozen), ("cutmix", SMOKE)):
        a = run(TrainConfig(method=method, **fields), tmp_path / f"{method}-seq")
        b = run(TrainConfig(method=method, overlap=True, **fields), tmp_path / f"{method}-ovl")
        for key in ("train_loss", "top1_err", "top5_err", "final_top1_err"):
            assert a[key] == b[key], (method, key)


def test_overlap_trains_puzzlemix_with_a_one_step_stale_saliency(tmp_path):
    cfg = TrainConfig(method="puzzlemix", overlap=True, **SMOKE)
    res = run(cfg, tmp_path / "ovl")
    assert res["train_loss"][1] < res["train_loss"][0]
    exact = run(TrainConfig(method="puzzlemix", **SMOKE), tmp_path / "seq")
    assert res["train_loss"] != exact["train_loss"]  # the saliency is one step older
    stages = [
        json.loads(line)["stage_seconds"] for line in open(tmp_path / "ovl" / "metrics.jsonl")
    ]
    assert {"data", "saliency", "mix_wait", "forward", "backward"} <= set(stages[0])
    # the clean regulariser adds gradients while mixing: refused before the run starts
    clean = TrainConfig(method="puzzlemix", overlap=True, method_params={"clean_lam": 1.0}, **SMOKE)
    with pytest.raises(ValueError, match="overlap"):
        run(clean, tmp_path / "clean")
    assert not (tmp_path / "clean" / "config.json").exists()
