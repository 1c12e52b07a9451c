"""Fan-out through submitit, tested with submitit's local executor (jobs are processes here)."""

import dataclasses
from pathlib import Path

import pytest

from puzzle_core.experiments import ROOT, run_table
from puzzle_core.launch import ClusterConfig, TrainingJob, executor_for, launcher_from_env
from puzzle_core.run import PROFILES, TrainConfig, run

METRICS = ("train_loss", "top1_err", "top5_err", "final_top1_err")


def _same_numbers(a, b):
    for key in METRICS:
        assert a[key] == b[key], key


def test_the_shipped_cluster_yaml_and_bad_ones(tmp_path):
    cfg = ClusterConfig.from_yaml(ROOT / "experiments" / "cluster.yaml")
    assert cfg.executor == "slurm" and cfg.gpus_per_node == 1 and cfg.timeout_min > 0
    bad = {
        "unknown.yaml": ("executor: local\nnodes: 2\n", "unknown key.*nodes"),
        "value.yaml": ("executor: local\nmem_gb: -4\n", "mem_gb"),
        "executor.yaml": ("executor: pbs\n", "executor"),
        "list.yaml": ("- a\n- b\n", "mapping"),
    }
    for name, (text, match) in bad.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=match) as err:
            ClusterConfig.from_yaml(tmp_path / name)
        assert name in str(err.value)
    with pytest.raises(FileNotFoundError, match="absent.yaml"):
        ClusterConfig.from_yaml(tmp_path / "absent.yaml")


def test_launcher_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("PUZZLE_LAUNCHER", raising=False)
    assert launcher_from_env() == ("local", None)
    monkeypatch.setenv("PUZZLE_LAUNCHER", "submitit")
    monkeypatch.delenv("PUZZLE_CLUSTER", raising=False)
    with pytest.raises(ValueError, match="PUZZLE_CLUSTER"):
        launcher_from_env()
    (tmp_path / "c.yaml").write_text("executor: local\n")
    monkeypatch.setenv("PUZZLE_CLUSTER", str(tmp_path / "c.yaml"))
    assert launcher_from_env()[1].executor == "local"
    monkeypatch.setenv("PUZZLE_LAUNCHER", "pbs")
    with pytest.raises(ValueError, match="PUZZLE_LAUNCHER"):
        launcher_from_env()
    with pytest.raises(ValueError, match="launcher"):
        run_table("table7", "smoke", run_root=tmp_path, launcher="pbs")


def test_a_table_through_submitit_jobs_equals_the_in_process_runs(tmp_path):
    prof = dataclasses.replace(
        PROFILES["smoke"], skip_rows=("binary", "puzzlemix", "vanilla"), seeds=(0,)
    )
    cluster = ClusterConfig(executor="local", folder=str(tmp_path / "jobs"))
    jobs = run_table("table7", prof, run_root=tmp_path / "a", launcher="submitit", cluster=cluster)
    here = run_table("table7", prof, run_root=tmp_path / "b", launcher="local", progress=False)
    assert set(jobs) == set(here) == {"mask_only"}
    _same_numbers(jobs["mask_only"][0], here["mask_only"][0])
    assert list((tmp_path / "jobs").glob("*_log.out"))  # they ran as submitit jobs
    # a finished run is read back by the next launch, not retrained
    again = run_table("table7", prof, run_root=tmp_path / "a", launcher="submitit", cluster=cluster)
    assert again["mask_only"][0]["train_loss"] == jobs["mask_only"][0]["train_loss"]


def test_a_timed_out_job_is_requeued_and_resumes_bit_identically(tmp_path):
    """The local executor tells the job to requeue itself partway through its run (a 1-minute
    limit with the warning placed at half the run's measured length plus the job's start-up):
    the job checkpoints, is requeued, and resumes from the run's own checkpoint."""
    import time

    cfg = TrainConfig(
        method="vanilla", train_examples=300, test_examples=100, batch_size=50, epochs=10,
        lr=0.05, progress=False,
    )  # fmt: skip
    t0 = time.perf_counter()
    reference = run(cfg, Path(tmp_path / "uninterrupted"))
    warn_after = int(4 + (time.perf_counter() - t0) / 2)
    assert warn_after < 50
    cluster = ClusterConfig(
        executor="local", folder="jobs", timeout_min=1, signal_delay_s=60 - warn_after,
        max_num_timeout=8,
    )  # fmt: skip
    job = executor_for(cluster, tmp_path).submit(TrainingJob(cfg.to_dict(), str(tmp_path / "r")))
    result = job.result()
    assert "Requeued job" in job.stdout(), job.stdout()
    _same_numbers(result, reference)
