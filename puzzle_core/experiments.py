"""The paper's runs as data: configs under ``experiments/configs`` (one YAML per table row,
scaled by the profiles of :mod:`puzzle_core.run.profiles`), the numbers the papers report
(``experiments/paper_results.csv``), where runs live, and a table's runs trained once per seed."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .run import TrainConfig, get_profile, load_config
from .run.profiles import dataset_present
from .run.rundir import RunDirError, atomic_write, identity, read_config, read_json_object

ROOT = Path(__file__).resolve().parent.parent

CONFIG_DIR = ROOT / "experiments" / "configs"

PAPER_RESULTS = ROOT / "experiments" / "paper_results.csv"

# Tables whose paper states its seeds: at the `paper` profile their notebooks run these seeds
# unless told otherwise (GuidedMixup Tables 6 and 7: "three different seeds",
# guidedmixup-aaai2023.txt l.679 and l.739-740; which seeds is not said)
PAPER_SEEDS: dict[str, tuple[int, ...]] = {"gm_table6": (0, 1, 2), "gm_table7": (0, 1, 2)}


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


def run_address(root: str | Path, cfg: TrainConfig) -> Path:
    """Where the run of ``cfg`` lives: ``root/<profile>/runs/<method>-<identity>``, the identity
    a hash of the resolved config and seed (:func:`puzzle_core.run.rundir.identity`), so that an
    identical run listed by several tables is trained once."""
    return Path(root) / cfg.profile / "runs" / f"{cfg.method}-{identity(cfg.to_dict())}"


def table_index(root: str | Path, profile: str, table: str) -> dict[str, dict[int, Path]]:
    """{row: {seed: run directory}} of the runs ``table`` lists at ``profile`` (its
    ``runs.json``, written by :func:`run_table`); {} when it has not run."""
    path = Path(root) / profile / table / "runs.json"
    if not path.is_file():
        return {}
    index = read_json_object(path, "the table's index of runs", "delete it and run the table")
    base = Path(root) / profile
    try:
        return {
            row: {int(seed): base / name for seed, name in by_seed.items()}
            for row, by_seed in index["rows"].items()
        }
    except (KeyError, AttributeError, TypeError, ValueError) as exc:
        raise RunDirError(f"{path}: not an index of rows and seeds ({exc}); delete it") from exc


def _write_index(root: Path, profile: str, table: str, entries: dict[str, dict[int, Path]]) -> None:
    """Merge ``entries`` into the table's ``runs.json`` (run paths relative to the profile)."""
    current = table_index(root, profile, table)
    for row, by_seed in entries.items():
        current.setdefault(row, {}).update(by_seed)
    base = root / profile
    rows = {
        row: {str(seed): d.relative_to(base).as_posix() for seed, d in sorted(by_seed.items())}
        for row, by_seed in sorted(current.items())
    }
    (base / table).mkdir(parents=True, exist_ok=True)
    atomic_write(base / table / "runs.json", json.dumps({"rows": rows}, indent=1).encode())


def adopt_legacy_runs(root: str | Path, profile: str) -> list[Path]:
    """Move runs of the earlier layout (``root/profile/<table>/<row>/seed<k>/``) to their
    addresses, and list them in their tables' indexes -> the new directories.  Finished and
    interrupted runs are kept, never retrained; a run whose address is taken is left in place."""
    from .run import TrainConfig

    base = Path(root) / profile
    moved = []
    for cfg_path in sorted(base.glob("*/*/seed*/config.json")):
        old = cfg_path.parent
        table, row, seed_name = old.parent.parent.name, old.parent.name, old.name
        if table == "runs" or not seed_name[4:].isdigit():
            continue
        cfg = TrainConfig(**read_config(cfg_path))
        new = run_address(root, cfg)
        if new.exists():
            continue
        new.parent.mkdir(parents=True, exist_ok=True)
        old.rename(new)
        _write_index(Path(root), profile, table, {row: {int(seed_name[4:]): new}})
        moved.append(new)
        if not any(old.parent.iterdir()):
            old.parent.rmdir()
    return moved


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
    launcher: str | None = None,
    cluster: Any = None,
) -> dict[str, dict[int, dict[str, Any]]]:
    """Train (or resume, or skip when finished) every row of ``table`` at ``profile``, once per
    seed (``seeds``, default: the profile's) -> {row: {seed: results}}.  Each run lives at its
    :func:`run_address` (shared with every table that lists the same run), and the table's
    ``runs.json`` maps its rows and seeds to them; ``jobs`` > 1 runs them in parallel processes
    (one thread each).  ``launcher="submitit"`` submits them as cluster jobs instead
    (:mod:`puzzle_core.launch`, ``cluster`` a :class:`~puzzle_core.launch.ClusterConfig`);
    by default the launcher and cluster come from PUZZLE_LAUNCHER / PUZZLE_CLUSTER."""
    from concurrent.futures import ProcessPoolExecutor

    from .launch import LAUNCHERS, launcher_from_env, submit_runs

    if launcher is None:
        launcher, env_cluster = launcher_from_env()
        cluster = cluster or env_cluster
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher must be one of {LAUNCHERS}, got {launcher!r}")
    if launcher == "submitit" and cluster is None:
        raise ValueError("launcher='submitit' needs a cluster (ClusterConfig or PUZZLE_CLUSTER)")

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
    adopt_legacy_runs(root, prof.name)
    work, keys = [], []
    index: dict[str, dict[int, Path]] = {}
    for row in names:  # row-major: the table's slow rows do not all wait for the end
        for seed in seeds:
            quiet = jobs > 1 or launcher != "local"
            extra = {"data_root": data_root, "device": device, "progress": progress and not quiet}
            cfg = load_config(configs[row], profile, **{**extra, **(overrides or {}), "seed": seed})
            where = run_address(root, cfg)
            index.setdefault(row, {})[seed] = where
            work.append((str(configs[row]), cfg.to_dict(), str(where)))
            keys.append((row, seed))
    _write_index(root, prof.name, table, index)
    if launcher == "submitit":
        results = submit_runs([(fields, where) for _, fields, where in work], cluster, root)
    elif jobs == 1:
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


def notebook_folder(run_root: str, profile: str, name: str, out_dir: str = "") -> tuple[Path, Path]:
    """(run root, the notebook's folder for its tables and figures) from a notebook's parameters;
    an empty string means the default (:func:`run_root_default`, ``<root>/<profile>/<name>``).
    The folder is created."""
    root = Path(run_root) if run_root else run_root_default()
    out = Path(out_dir) if out_dir else root / profile / name
    out.mkdir(parents=True, exist_ok=True)
    return root, out


def train_table(
    table: str,
    profile: str,
    root: Path,
    out: Path,
    *,
    data_root: str = "data",
    device: str = "cpu",
    jobs: int = 1,
    seeds: Sequence[int] = (),
    rows: Sequence[str] = (),
) -> dict[str, dict[int, dict[str, Any]]]:
    """A table notebook's training: every row (``rows``, default the profile's) once per seed
    (``seeds``, default the profile's, or at ``paper`` the table's :data:`PAPER_SEEDS`) ->
    {row: {seed: results}}.  When a data set the table
    needs is absent, says so, writes ``out/unavailable.txt`` (the report shows it) and returns
    {} instead of numbers."""
    missing = missing_data(table, profile, data_root)
    if missing:
        print("cannot reproduce", table, "at this profile:", missing)
        (out / "unavailable.txt").write_text(missing)
        return {}
    (out / "unavailable.txt").unlink(missing_ok=True)
    if not seeds and get_profile(profile).name == "paper":
        seeds = PAPER_SEEDS.get(table, ())
    return run_table(
        table,
        profile,
        run_root=root,
        data_root=data_root,
        device=device,
        jobs=jobs,
        seeds=list(seeds) or None,
        rows=list(rows) or None,
    )
