"""The paper's runs as data: configs under ``experiments/configs`` (one YAML per table row,
scaled by the profiles of :mod:`puzzle_core.run.profiles`), the numbers the papers report
(``experiments/paper_results.csv``), where runs live, and a table's runs trained once per seed."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .run import get_profile, load_config
from .run.profiles import dataset_present

ROOT = Path(__file__).resolve().parent.parent

CONFIG_DIR = ROOT / "experiments" / "configs"

PAPER_RESULTS = ROOT / "experiments" / "paper_results.csv"


def missing_data(table: str, profile: str, data_root: str = "data") -> str | None:
    """Why ``table`` cannot run at ``profile`` here (a data set whose files are not under
    ``data_root``), or None when it can."""
    missing = set()
    for path in table_configs(table).values():
        cfg = load_config(path, profile, data_root=data_root)
        if not dataset_present(cfg.dataset, data_root):
            missing.add(cfg.dataset)
    if not missing:
        return None
    return (
        f"{', '.join(sorted(missing))} not found under data_root={data_root!r}: the "
        f"{profile} profile of {table} needs it (see puzzle_core.data for where the files go)"
    )


def table_configs(table: str) -> dict[str, Path]:
    """{row: config path} of one table folder (e.g. ``"table3"``, ``"gm_table6"``)."""
    folder = CONFIG_DIR / table
    if not folder.is_dir():
        have = sorted(p.name for p in CONFIG_DIR.iterdir() if p.is_dir())
        raise ValueError(f"table must be one of {have}, got {table!r}")
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def paper_results(table: str | None = None) -> list[dict[str, Any]]:
    """Rows of ``experiments/paper_results.csv`` (table, row, metric, value, source), values as
    floats; ``table`` filters."""
    with open(PAPER_RESULTS, newline="") as f:
        rows = [dict(r, value=float(r["value"])) for r in csv.DictReader(f)]
    return [r for r in rows if table is None or r["table"] == table]


def run_root_default() -> Path:
    """Where runs go unless told: ``$PUZZLE_RUN_ROOT`` when set (the test suite points it at a
    temporary folder), else ``experiments/runs`` of the checkout."""
    env = os.environ.get("PUZZLE_RUN_ROOT")
    return Path(env) if env else ROOT / "experiments" / "runs"


def seed_dir(root: str | Path, profile: str, table: str, row: str, seed: int) -> Path:
    """The run directory of one seed of one row: ``root/profile/table/row/seed<k>``."""
    return Path(root) / profile / table / row / f"seed{seed}"


def _run_one(args: tuple[str, dict[str, Any], str]) -> dict[str, Any]:
    """One training run in a worker process (one thread: runs are the parallel unit)."""
    import torch

    from .run import TrainConfig, run

    torch.set_num_threads(1)
    path, fields, run_dir = args
    return run(TrainConfig(**fields), run_dir)


def run_table(
    table: str,
    profile: str = "smoke",
    *,
    run_root: str | Path | None = None,
    data_root: str = "data",
    device: str = "cpu",
    jobs: int = 1,
    rows: list[str] | None = None,
    seeds: Sequence[int] | None = None,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, dict[int, dict[str, Any]]]:
    """Train (or resume, or skip when finished) every row of ``table`` at ``profile``, once per
    seed (``seeds``, default: the profile's) -> {row: {seed: results}}.  Runs land in
    ``run_root/<profile>/<table>/<row>/seed<k>/``; ``jobs`` > 1 runs them in parallel processes
    (one thread each)."""
    from concurrent.futures import ProcessPoolExecutor

    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    prof = get_profile(profile)
    seeds = tuple(prof.seeds if seeds is None else seeds)
    if not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise ValueError(f"seeds must be non-negative integers, got {seeds!r}")
    configs = table_configs(table)
    names = [r for r in configs if r not in prof.skip_rows] if rows is None else rows
    unknown = [r for r in names if r not in configs]
    if unknown:
        raise ValueError(f"rows {unknown} are not rows of {table}: {list(configs)}")
    root = Path(run_root) if run_root is not None else run_root_default()
    work, keys = [], []
    for row in names:  # row-major: the table's slow rows do not all wait for the end
        for seed in seeds:
            extra = {"data_root": data_root, "device": device, "progress": progress and jobs == 1}
            cfg = load_config(configs[row], profile, **{**extra, **(overrides or {}), "seed": seed})
            where = seed_dir(root, prof.name, table, row, seed)
            work.append((str(configs[row]), cfg.to_dict(), str(where)))
            keys.append((row, seed))
    if jobs == 1:
        results = [_run_one(w) for w in work]
    else:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # no forked torch / OpenMP state
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            results = list(pool.map(_run_one, work))
    out: dict[str, dict[int, dict[str, Any]]] = {row: {} for row in names}
    for (row, seed), res in zip(keys, results, strict=True):
        out[row][seed] = res
    return out
