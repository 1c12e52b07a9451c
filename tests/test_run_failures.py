"""Failure behaviour of the run engine (issue: no silent wrong result, no crashed process, no code
from a data file): the CLI's values, failed starts, damaged or foreign checkpoints, damaged JSON
files, two processes in one run directory, and the reproduce driver over damaged files.  Each
test fails on the code before these checks (bare TypeErrors, silent resumes, code run from a
checkpoint, a crashed driver)."""

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from puzzle_core.results import collect
from puzzle_core.run import TrainConfig, cli, run
from puzzle_core.run.rundir import RunDirError, RunLock, differences, identity

TINY = dict(train_examples=100, test_examples=50, batch_size=50, epochs=2, lr=0.05, progress=False)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished two-epoch run (its checkpoint, metrics and results)."""
    d = tmp_path_factory.mktemp("finished") / "run"
    run(TrainConfig(**TINY), d)
    return d


def _copy_run(src: Path, dst: Path, names=("config.json", "metrics.jsonl", "checkpoint.pt")):
    dst.mkdir(parents=True)
    for n in names:
        (dst / n).write_bytes((src / n).read_bytes())
    return dst


# -- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "setting, field",
    [
        ("epochs=abc", "epochs"),
        ("seed=abc", "seed"),
        ("lr=fast", "lr"),
        ("epochs=1.5", "epochs"),
        ("lr=NaN", "lr"),
        ("lr=-0.1", "lr"),
        ("batch_size=0", "batch_size"),
        ("train_examples=true", "train_examples"),
        ("schedule=[1.5]", "schedule"),
        ("epochs", "KEY=VALUE"),
        ("epoch=3", "not a TrainConfig field"),
        ("device=gpu0", "device"),
    ],
)
def test_cli_rejects_bad_values_in_one_line(setting, field, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--run-dir", str(tmp_path / "r"), "--set", setting])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and field in err, err
    assert not (tmp_path / "r").exists()  # nothing written


def test_config_types_are_checked_from_python_too():
    with pytest.raises(ValueError, match="epochs must be an integer, got '3'"):
        TrainConfig(epochs="3")
    with pytest.raises(ValueError, match="fgsm_eps must be a list of finite numbers"):
        TrainConfig(fgsm_eps=("8/255",))
    with pytest.raises(ValueError, match="momentum"):
        TrainConfig(momentum=1.5)
    assert TrainConfig(lr=1, schedule=[2, 3]).schedule == (2, 3)  # an int is a number; lists ok


def test_a_failed_start_does_not_block_its_run_directory(tmp_path):
    d = tmp_path / "r"
    with pytest.raises(ValueError, match="cuda:99"):  # no machine has a 100th GPU
        run(TrainConfig(**{**TINY, "device": "cuda:99"}), d)
    assert not (d / "config.json").exists()
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        run(TrainConfig(**{**TINY, "dataset": "cifar100", "data_root": str(tmp_path / "none")}), d)
    assert not (d / "config.json").exists()
    # a directory left with only another run's identity (a start that failed before any epoch
    # under an earlier version) is taken over: nothing finished is lost
    d.mkdir(exist_ok=True)
    (d / "config.json").write_text(json.dumps(TrainConfig(**{**TINY, "lr": 0.3}).to_dict()))
    res = run(TrainConfig(**TINY), d)
    assert res["epochs"] == 2 and json.loads((d / "config.json").read_text())["lr"] == 0.05


def test_a_different_config_is_refused_naming_the_fields(finished):
    with pytest.raises(RunDirError, match=r"epochs: 2 stored, 3 requested.*lr: 0.05 stored, 0.1"):
        run(TrainConfig(**{**TINY, "epochs": 3, "lr": 0.1}), finished)
    a, b = TrainConfig(**TINY).to_dict(), TrainConfig(**{**TINY, "progress": True}).to_dict()
    assert differences(a, b) == [] and identity(a) == identity(b)  # presentation only


# -- checkpoints --------------------------------------------------------------------------------


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_crafted_checkpoint_runs_no_code(finished, tmp_path):
    d = _three_epoch_dir(finished, tmp_path / "r")
    marker = tmp_path / "pwned"
    for save in (pickle.dump, torch.save):  # a bare pickle, and one in torch's zip format
        with open(d / "checkpoint.pt", "wb") as f:
            save({"model": _Payload(marker)}, f)
        with pytest.raises(RunDirError, match="checkpoint.pt: the checkpoint cannot be read"):
            run(TrainConfig(**{**TINY, "epochs": 3}), d)
        assert not marker.exists()


def _three_epoch_dir(finished: Path, dst: Path) -> Path:
    """A copy of ``finished`` configured for 3 epochs (so that it resumes at epoch 2), with its
    checkpoint re-identified for that config (as an interrupted 3-epoch run's)."""
    from puzzle_core.run.rundir import load_checkpoint, save_checkpoint

    d = _copy_run(finished, dst)
    cfg = TrainConfig(**{**TINY, "epochs": 3})
    (d / "config.json").write_text(json.dumps(cfg.to_dict()))
    state = load_checkpoint(d / "checkpoint.pt", identity(TrainConfig(**TINY).to_dict()), 2)
    save_checkpoint(d / "checkpoint.pt", state, identity(cfg.to_dict()))
    return d


def test_an_intact_checkpoint_resumes(finished, tmp_path):
    d = _three_epoch_dir(finished, tmp_path / "r")
    res = run(TrainConfig(**{**TINY, "epochs": 3}), d)
    assert (
        len(res["train_loss"]) == 3
        and res["train_loss"][:2]
        == json.loads((finished / "results.json").read_text())["train_loss"]
    )


def test_a_checkpoint_from_another_run_is_refused(finished, tmp_path):
    other = tmp_path / "other"
    run(TrainConfig(**{**TINY, "seed": 1, "epochs": 1}), other)
    d = _three_epoch_dir(finished, tmp_path / "r")
    (d / "checkpoint.pt").write_bytes((other / "checkpoint.pt").read_bytes())
    with pytest.raises(RunDirError, match="belongs to another run"):
        run(TrainConfig(**{**TINY, "epochs": 3}), d)


def test_flipped_bytes_are_found(finished, tmp_path):
    d = _three_epoch_dir(finished, tmp_path / "r")
    data = bytearray((d / "checkpoint.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the payload's tensor storage
    (d / "checkpoint.pt").write_bytes(bytes(data))
    with pytest.raises(RunDirError, match="checkpoint.pt: .*(checksum|cannot be read)"):
        run(TrainConfig(**{**TINY, "epochs": 3}), d)


@pytest.mark.parametrize("damage", ["empty", "truncated", "random"])
def test_unreadable_checkpoints_are_named(damage, finished, tmp_path):
    d = _three_epoch_dir(finished, tmp_path / "r")
    data = (d / "checkpoint.pt").read_bytes()
    new = {"empty": b"", "truncated": data[: len(data) // 3], "random": os.urandom(4096)}[damage]
    (d / "checkpoint.pt").write_bytes(new)
    with pytest.raises(RunDirError, match=r"checkpoint.pt: the checkpoint cannot be read.*delete"):
        run(TrainConfig(**{**TINY, "epochs": 3}), d)


def test_a_checkpoint_past_the_end_or_unlike_metrics_is_refused(finished, tmp_path):
    from puzzle_core.run.rundir import load_checkpoint, save_checkpoint

    cfg = TrainConfig(**{**TINY, "epochs": 3})
    d = _three_epoch_dir(finished, tmp_path / "r")
    state = load_checkpoint(d / "checkpoint.pt", identity(cfg.to_dict()), 3)
    save_checkpoint(d / "checkpoint.pt", {**state, "epoch": 5}, identity(cfg.to_dict()))
    with pytest.raises(RunDirError, match="epoch 5 is outside this run's 0..2"):
        run(cfg, d)
    save_checkpoint(d / "checkpoint.pt", state, identity(cfg.to_dict()))
    rows = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    rows[1]["test_top1_err"] += 10
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(RunDirError, match="differs between the checkpoint and metrics.jsonl"):
        run(cfg, d)


def test_a_checkpoint_of_the_earlier_format_resumes_with_a_warning(finished, tmp_path):
    from puzzle_core.run.rundir import load_checkpoint

    d = _three_epoch_dir(finished, tmp_path / "r")
    cfg = TrainConfig(**{**TINY, "epochs": 3})
    state = load_checkpoint(d / "checkpoint.pt", identity(cfg.to_dict()), 3)
    torch.save(state, d / "checkpoint.pt")  # the bare state dict, as earlier versions wrote it
    with pytest.warns(UserWarning, match="without identity or checksum"):
        res = run(cfg, d)
    assert len(res["train_loss"]) == 3


# -- results and configs ------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["{}", '{"method": "vanilla", "top1', "[1, 2]"])
def test_damaged_results_are_named(content, finished, tmp_path):
    d = _copy_run(finished, tmp_path / "r", ("config.json", "metrics.jsonl", "results.json"))
    (d / "results.json").write_text(content)
    with pytest.raises(RunDirError, match=r"results.json: .*delete it and run again"):
        run(TrainConfig(**TINY), d)


def test_a_damaged_config_is_named(finished, tmp_path):
    d = _copy_run(finished, tmp_path / "r", ("config.json", "results.json"))
    (d / "config.json").write_text('{"method": ')
    with pytest.raises(RunDirError, match=r"config.json: the run's config cannot be read"):
        run(TrainConfig(**TINY), d)


def _listed(root: Path, finished: Path, rows: dict[str, str | None]) -> None:
    """Copies of ``finished`` as the runs of table2's ``rows`` (content replacing results.json
    when given), listed in the table's index."""
    index = {}
    for row, content in rows.items():
        d = _copy_run(finished, root / "smoke" / "runs" / row, ("results.json",))
        if content is not None:
            (d / "results.json").write_text(content)
        index[row] = {"0": f"runs/{row}"}
    (root / "smoke" / "table2").mkdir(parents=True, exist_ok=True)
    (root / "smoke" / "table2" / "runs.json").write_text(json.dumps({"rows": index}))


def test_collect_names_or_skips_damaged_results(finished, tmp_path):
    _listed(tmp_path, finished, {"good": None, "bad": '{"top1_err": "x"}'})
    with pytest.raises(RunDirError, match="runs/bad/results.json"):
        collect(tmp_path, "smoke")
    damaged: list[str] = []
    found = collect(tmp_path, "smoke", damaged)
    assert list(found["table2"]) == ["good"] and len(damaged) == 1 and "bad" in damaged[0]
    (tmp_path / "smoke" / "table2" / "runs.json").write_text('{"rows": [1, 2]}')
    with pytest.raises(RunDirError, match="table2/runs.json: not an index"):
        collect(tmp_path, "smoke")


def test_the_report_lists_damaged_files_and_goes_on(finished, tmp_path):
    from puzzle_core.report import write_report

    _listed(tmp_path, finished, {"vanilla": "{}"})
    (tmp_path / "smoke" / "figure2").mkdir(parents=True)
    (tmp_path / "smoke" / "figure2" / "figure2_samples.json").write_text("{")
    md, _ = write_report(tmp_path, "smoke")
    text = md.read_text()
    assert "Damaged files" in text and "results.json" in text and "figure2_samples.json" in text


def test_the_driver_reruns_a_notebook_with_a_damaged_marker(tmp_path):
    from puzzle_core.reproduce import _finished

    marker = tmp_path / "done.json"
    marker.write_text('{"parameters": ')
    said: list[str] = []
    assert _finished(marker, {"profile": "smoke"}, said.append) is False
    assert "damaged" in said[0] and "done.json" in said[0]
    marker.write_text(json.dumps({"parameters": {"profile": "smoke"}, "seconds": 1.0}))
    assert _finished(marker, {"profile": "smoke"}, said.append) is True


def test_the_driver_refuses_a_device_this_machine_lacks(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "puzzle_core.reproduce", "--profile", "smoke", "--device", "cuda:99"]
        + ["--run-root", str(tmp_path), "--only", "table2"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "cuda:99" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "smoke").exists()


# -- one process per run directory --------------------------------------------------------------


def test_a_second_process_is_told_who_holds_the_run(tmp_path):
    d = tmp_path / "r"
    with RunLock(d):
        proc = subprocess.run(
            [sys.executable, "-m", "puzzle_core.run", "--run-dir", str(d), "--set"]
            + [f"{k}={json.dumps(v)}" for k, v in TINY.items()],
            capture_output=True,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        assert proc.returncode == 2, proc.stderr
        assert f"process {os.getpid()}" in proc.stderr and "is training" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (d / "run.lock.json").exists()
    assert run(TrainConfig(**TINY), d)["epochs"] == 2  # free again once released


def test_two_processes_started_together_train_once(tmp_path):
    d = tmp_path / "r"
    args = [sys.executable, "-m", "puzzle_core.run", "--run-dir", str(d), "--set"]
    args += [f"{k}={json.dumps(v)}" for k, v in TINY.items()]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    time.sleep(0.1)
    outs = [p.communicate(timeout=600) for p in procs]
    codes = sorted(p.returncode for p in procs)
    # either one trained while the other was refused, or the second found the run finished
    assert codes in ([0, 0], [0, 2]), outs
    if codes == [0, 2]:
        assert any("is training in this run directory" in err for _, err in outs)
    assert len((d / "metrics.jsonl").read_text().splitlines()) == 2
