"""DistributedDataParallel through torchrun, 2 CPU processes on gloo: the training step equals a
single-process step of the same global batch; mixing methods train with per-rank mixing."""

import json
import os
import subprocess
import sys

import pytest

from puzzle_core.run import TrainConfig, run
from puzzle_core.run.data import epoch_batches

FIELDS = dict(
    train_examples=200,
    test_examples=100,
    batch_size=50,
    epochs=2,
    lr=0.1,
    loss="ce",
    progress=False,
    batchnorm="off",
)
SCRIPT = """
import json, sys
from puzzle_core.run import TrainConfig, run
for name, fields in json.loads(sys.argv[1]).items():
    run(TrainConfig(**fields), sys.argv[2] + "/" + name)
"""


def test_epoch_batches_shard_each_global_batch():
    single = epoch_batches(230, 50, seed=3)
    shards = [epoch_batches(230, 50, seed=3, rank=r, world=2) for r in range(2)]
    assert len(single) == 4 and all(len(b) == 50 for b in single)  # last partial batch dropped
    for g, a, b in zip(single, *shards, strict=True):
        assert a + b == g and len(a) == len(b) == 25
    with pytest.raises(ValueError, match="batch_size"):
        epoch_batches(100, 50, 0, rank=0, world=3)


def test_two_gloo_processes_match_a_single_process(tmp_path):
    configs = {
        "vanilla": dict(method="vanilla", **FIELDS),
        "puzzlemix": dict(method="puzzlemix", **{**FIELDS, "batchnorm": "local"}),
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29533",
    ]
    script = tmp_path / "ddp_runs.py"
    script.write_text(SCRIPT)
    cmd += [str(script), json.dumps(configs), str(tmp_path / "ddp")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PC_BACKEND": "gloo"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    ddp = json.loads((tmp_path / "ddp" / "vanilla" / "results.json").read_text())
    single = run(TrainConfig(**configs["vanilla"]), tmp_path / "single")
    assert ddp["processes"] == 2 and single["processes"] == 1
    assert ddp["train_loss"] == pytest.approx(single["train_loss"], rel=1e-4)
    ddp_rows = [json.loads(t) for t in (tmp_path / "ddp/vanilla/metrics.jsonl").open()]
    one_rows = [json.loads(t) for t in (tmp_path / "single/metrics.jsonl").open()]
    for a, b in zip(ddp_rows, one_rows, strict=True):
        assert a["test_loss"] == pytest.approx(b["test_loss"], rel=1e-4)
    # the loss really moves between epochs, so equality is not an accident of no training
    assert abs(single["train_loss"][1] - single["train_loss"][0]) > 2e-3

    pm = json.loads((tmp_path / "ddp" / "puzzlemix" / "results.json").read_text())
    assert pm["processes"] == 2 and all(v == v for v in pm["train_loss"])
    assert {"saliency", "mask", "transport", "forward", "backward"} <= set(pm["stage_seconds"])
