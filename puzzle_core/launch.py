"""Fan the training runs of a table out as cluster jobs through submitit (Slurm, or submitit's
local executor on one machine).

``make reproduce LAUNCHER=submitit CLUSTER=experiments/cluster.yaml`` (or ``run_table(...,
launcher="submitit", cluster=...)``) submits one job per run (a job array), waits for them, and
hands the results back to the notebook, which builds its table as usual; the report follows.
Each job trains its run in its run directory (:func:`puzzle_core.experiments.run_address`):

* preemption or the time limit: submitit signals the job, :meth:`TrainingJob.checkpoint` asks
  for the same job again, and the new one resumes from the run's own last checkpoint (the run
  engine saves one per epoch and resumes bit-identically), up to ``max_num_timeout`` times;
* a run that already finished is read back, not retrained (the engine skips it);
* ``gpus_per_node`` > 1: the job starts ``torchrun --standalone --nproc_per_node G -m
  puzzle_core.run`` (DDP inside the job).

The cluster settings come from a small YAML (:class:`ClusterConfig`; see
``experiments/cluster.yaml``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

EXECUTORS = ("slurm", "local")
LAUNCHERS = ("local", "submitit")


@dataclass(frozen=True)
class ClusterConfig:
    """Where and how the jobs run.

    executor: "slurm" (sbatch through submitit) or "local" (submitit's local executor: jobs are
        processes on this machine; for testing and small machines).
    folder: submitit's job folder (logs, pickled calls); relative paths are under the run root.
    partition, gpus_per_node, cpus_per_task, mem_gb, timeout_min: the job's resources (the
        training's device is the run's own, ``make reproduce DEVICE=cuda``: it is part of what
        a run is, and of its address).
    max_num_timeout: how many times a timed-out job is requeued (preemptions do not count).
    signal_delay_s: how long before the time limit the job is told to requeue itself.
    torch_threads: CPU threads of the training (1, as ``make reproduce`` runs them: the same
        numbers bit for bit; CPU reductions depend on the thread count).
    array_parallelism: at most this many jobs of the array run at once.
    slurm_additional_parameters: passed to sbatch as is (account, qos, constraint, ...).
    """

    executor: str = "slurm"
    folder: str = "submitit"
    partition: str | None = None
    gpus_per_node: int = 0
    cpus_per_task: int = 4
    mem_gb: int = 16
    timeout_min: int = 240
    max_num_timeout: int = 10
    signal_delay_s: int = 120
    torch_threads: int = 1
    array_parallelism: int = 64
    slurm_additional_parameters: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {EXECUTORS}, got {self.executor!r}")
        for name in (
            "cpus_per_task",
            "mem_gb",
            "timeout_min",
            "array_parallelism",
            "torch_threads",
        ):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        for name in ("gpus_per_node", "max_num_timeout", "signal_delay_s"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
        if not isinstance(self.slurm_additional_parameters, dict):
            raise ValueError("slurm_additional_parameters must be a mapping")

    @classmethod
    def from_yaml(cls, path: str | Path) -> ClusterConfig:
        """Read the YAML; unknown keys and bad values are errors naming the file."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"cluster config {p} does not exist")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"cluster config {p} is not valid YAML: {err}") from None
        if not isinstance(data, dict):
            raise ValueError(f"cluster config {p} must be a mapping of settings")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"cluster config {p}: unknown key(s) {unknown}; known: {sorted(known)}"
            )
        try:
            return cls(**data)
        except (TypeError, ValueError) as err:
            raise ValueError(f"cluster config {p}: {err}") from None


class TrainingJob:
    """One training run as a submitit job: ``job()`` trains (or resumes, or reads back) the run
    in ``run_dir``; ``checkpoint()`` (called by submitit on preemption or time-out) requeues the
    same call, which resumes from the run's last checkpoint.  -> the run's results."""

    def __init__(
        self, fields: dict[str, Any], run_dir: str, gpus: int = 0, threads: int = 1
    ) -> None:
        self.fields = fields
        self.run_dir = run_dir
        self.gpus = gpus
        self.threads = threads

    def __call__(self) -> dict[str, Any]:
        import torch

        from .run import TrainConfig, run

        fields = dict(self.fields)
        if self.gpus <= 1:
            torch.set_num_threads(self.threads)
            return run(TrainConfig(**fields), self.run_dir)
        # DDP inside the job: one process per GPU, the engine's torchrun path
        Path(self.run_dir).mkdir(parents=True, exist_ok=True)
        cfg_path = Path(self.run_dir) / "submitted_config.json"
        cfg_path.write_text(json.dumps(fields, indent=1))
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={self.gpus}", "-m", "puzzle_core.run",
            "--config", str(cfg_path), "--run-dir", self.run_dir,
        ]  # fmt: skip
        subprocess.run(cmd, check=True)
        return json.loads((Path(self.run_dir) / "results.json").read_text())

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit

        again = TrainingJob(self.fields, self.run_dir, self.gpus, self.threads)
        return submitit.helpers.DelayedSubmission(again)


def executor_for(cluster: ClusterConfig, run_root: Path) -> Any:
    """A submitit executor configured from ``cluster`` (its folder under ``run_root`` when
    relative)."""
    import submitit

    folder = Path(cluster.folder)
    if not folder.is_absolute():
        folder = run_root / folder
    if cluster.executor == "local":
        ex: Any = submitit.LocalExecutor(folder=folder, max_num_timeout=cluster.max_num_timeout)
        ex.update_parameters(
            timeout_min=cluster.timeout_min,
            gpus_per_node=cluster.gpus_per_node,
            signal_delay_s=cluster.signal_delay_s,
        )
        return ex
    ex = submitit.AutoExecutor(
        folder=folder, cluster="slurm", slurm_max_num_timeout=cluster.max_num_timeout
    )
    params: dict[str, Any] = dict(
        timeout_min=cluster.timeout_min,
        gpus_per_node=cluster.gpus_per_node,
        cpus_per_task=cluster.cpus_per_task,
        mem_gb=cluster.mem_gb,
        slurm_array_parallelism=cluster.array_parallelism,
        slurm_signal_delay_s=cluster.signal_delay_s,
        slurm_additional_parameters=dict(cluster.slurm_additional_parameters),
    )
    if cluster.partition:
        params["slurm_partition"] = cluster.partition
    ex.update_parameters(**params)
    return ex


def submit_runs(
    work: Sequence[tuple[dict[str, Any], str]],
    cluster: ClusterConfig,
    run_root: Path,
    *,
    poll_s: float = 5.0,
    log: Any = print,
) -> list[dict[str, Any]]:
    """Submit one job per (config fields, run directory), as one array; wait, printing a line
    whenever the number of finished jobs changes -> results in the order of ``work``.  A job
    that failed raises, naming its run directory and submitit's log folder."""
    ex = executor_for(cluster, run_root)
    jobs = []
    with ex.batch():
        for fields, run_dir in work:
            job = TrainingJob(fields, run_dir, cluster.gpus_per_node, cluster.torch_threads)
            jobs.append(ex.submit(job))
    log(f"submitted {len(jobs)} job(s) to {cluster.executor} (logs in {ex.folder})")
    done = -1
    while True:
        finished = sum(j.done() for j in jobs)
        if finished != done:
            done = finished
            log(f"jobs finished: {done}/{len(jobs)}")
        if done == len(jobs):
            break
        time.sleep(poll_s)
    results = []
    for job, (_, run_dir) in zip(jobs, work, strict=True):
        try:
            results.append(job.result())
        except Exception as err:
            raise RuntimeError(
                f"the job for run {run_dir} failed (submitit job {job.job_id}, logs in "
                f"{ex.folder}): {err}"
            ) from err
    return results


def launcher_from_env() -> tuple[str, ClusterConfig | None]:
    """(launcher, cluster) from PUZZLE_LAUNCHER / PUZZLE_CLUSTER, which ``make reproduce``
    sets for the notebooks it runs; ("local", None) when unset."""
    launcher = os.environ.get("PUZZLE_LAUNCHER", "local") or "local"
    if launcher not in LAUNCHERS:
        raise ValueError(f"PUZZLE_LAUNCHER must be one of {LAUNCHERS}, got {launcher!r}")
    if launcher == "local":
        return launcher, None
    path = os.environ.get("PUZZLE_CLUSTER")
    if not path:
        raise ValueError("PUZZLE_LAUNCHER=submitit needs PUZZLE_CLUSTER (a cluster YAML)")
    return launcher, ClusterConfig.from_yaml(path)
