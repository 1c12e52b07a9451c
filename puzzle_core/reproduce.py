"""``make reproduce``: run every experiment notebook with papermill, then write the report.

``python -m puzzle_core.reproduce [--profile small|smoke|mini|paper] [--data-root D] [--device cpu]
[--jobs N] [--only table3 figure2 ...] [--run-root R] [--launcher submitit --cluster C.yaml]``

Each notebook runs into ``<run_root>/<profile>/<notebook>/`` (the executed copy, its tables and
figures).  A notebook that finished with the same parameters is skipped (``done.json``); one
that was interrupted runs again, and its training runs resume from their checkpoints, so an
interruption loses nothing that had finished.  A progress line per notebook, a summary at the
end, and ``<run_root>/<profile>/report.{md,html}``.

``--jobs N`` runs a table's independent training runs in N processes on this machine.
``--launcher submitit --cluster experiments/cluster.yaml`` submits each of them as a Slurm job
through submitit instead (requeued on preemption, resumed from its checkpoint), waits, and goes
on as before (:mod:`puzzle_core.launch`); ``executor: local`` in the YAML runs the same jobs on
this machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .experiments import ROOT, run_root_default
from .run import PROFILES
from .run.rundir import atomic_write

NOTEBOOK_DIR = ROOT / "notebooks"
# The order matters only for sharing: Table 7 and Figure 2 reuse Table 2's runs.
NOTEBOOKS = (
    "propositions",
    "mixup_gallery",
    "transport",
    "table2",
    "table3",
    "table4",
    "table5",
    "table6",
    "table7",
    "table8",
    "figure2",
    "gm_overhead",
    "gm_table3",
    "gm_table5",
    "gm_table6",
    "gm_table7",
    "gm_table8",
)
# What a profile runs when no notebook is named: at `small`, the notebooks whose claims the
# profile can test within its budget (45 minutes on 2 cores; README, "What reproduces on 2 CPU
# cores"): Tables 3 and 4 repeat Table 2's comparisons on the same stand-in network and data at
# this scale, Tables 5 and 6 and the GuidedMixup tables add runs but no claim this scale can
# test better, and stay available by name.
PROFILE_NOTEBOOKS = {
    "small": ("propositions", "mixup_gallery", "transport", "table2", "table7", "figure2"),
}


def notebook_parameters(
    name: str,
    profile: str,
    run_root: Path,
    data_root: str,
    device: str,
    jobs: int,
    seeds: Sequence[int] | None = None,
) -> dict[str, Any]:
    """What the driver passes to notebook ``name``: of profile, data_root, device, jobs,
    run_root, out_dir and seeds, those its ``parameters`` cell declares."""
    import papermill as pm

    full: dict[str, Any] = {
        "profile": profile,
        "data_root": data_root,
        "device": device,
        "jobs": jobs,
        "run_root": str(run_root),
        "out_dir": str(run_root / profile / name),
    }
    if seeds:
        full["seeds"] = list(seeds)
    declared = pm.inspect_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb"))
    return {k: v for k, v in full.items() if k in declared}


class RunWatcher:
    """Prints a line whenever a training run under ``base`` finishes an epoch: table, row, seed,
    epoch / epochs, seconds per epoch and the time left of that run (from ``metrics.jsonl``
    and ``config.json``, so it sees runs in any process: notebooks, their worker pools)."""

    def __init__(self, base: Path, log, every: float = 5.0) -> None:
        import threading

        self.base, self.log, self.every = base, log, every
        self.seen: dict[Path, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> RunWatcher:
        self.poll(report=False)  # runs finished before: not news
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.poll()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.poll()

    def poll(self, report: bool = True) -> None:
        for metrics in sorted(self.base.glob("**/metrics.jsonl")):
            try:
                lines = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
                cfg = json.loads((metrics.parent / "config.json").read_text())
            except (OSError, json.JSONDecodeError):
                continue  # being written: next time
            if self.seen.get(metrics) == len(lines):
                continue
            self.seen[metrics] = len(lines)
            if report and lines:
                self.log(self.describe(metrics.parent, cfg, lines))

    def describe(self, run_dir: Path, cfg: dict[str, Any], lines: list[dict]) -> str:
        where = ", ".join(self._listed_as(run_dir)) or run_dir.name
        done, total = len(lines), int(cfg["epochs"])
        per = sum(r["seconds"] for r in lines) / done
        left = (total - done) * per
        eta = "finished" if done >= total else f"ETA {left / 60:.1f} min"
        return (
            f"    {where} / seed {cfg['seed']}: epoch {done}/{total}, {per:.1f} s/epoch, "
            f"top-1 err {lines[-1]['test_top1_err']:.1f} %, {eta}"
        )

    def _listed_as(self, run_dir: Path) -> list[str]:
        """ "table / row" of every table index under ``base`` that lists ``run_dir``."""
        out = []
        for index in sorted(self.base.glob("*/runs.json")):
            try:
                rows = json.loads(index.read_text())["rows"]
            except (OSError, ValueError, KeyError):
                continue
            for row, by_seed in rows.items():
                if run_dir.relative_to(self.base).as_posix() in by_seed.values():
                    out.append(f"{index.parent.name} / {row}")
        return out


def _finished(marker: Path, params: dict[str, Any], log) -> bool:
    """Whether ``done.json`` says the notebook finished with ``params``; a damaged marker is
    reported and the notebook runs again (its finished training runs are read back)."""
    if not marker.is_file():
        return False
    try:
        stored = json.loads(marker.read_text())
        return isinstance(stored, dict) and stored.get("parameters") == params
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log(f"    {marker}: damaged ({exc}); running the notebook again")
        return False


def run_notebooks(
    profile: str = "small",
    *,
    data_root: str = "data",
    device: str = "cpu",
    jobs: int = 1,
    run_root: str | Path | None = None,
    only: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    launcher: str = "local",
    cluster: str | Path | None = None,
    log=print,
) -> dict[str, dict[str, Any]]:
    """Execute the notebooks (skipping finished ones) and write the report -> per notebook
    {"status": "ran" | "skipped" | "failed", "seconds", "output"}.  Raises after the report when
    a notebook failed.  ``launcher="submitit"`` sends every training run as a cluster job
    described by the ``cluster`` YAML (:mod:`puzzle_core.launch`; the notebooks get both
    through PUZZLE_LAUNCHER / PUZZLE_CLUSTER)."""
    import os

    from .launch import LAUNCHERS, ClusterConfig

    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher must be one of {LAUNCHERS}, got {launcher!r}")
    env = {"PUZZLE_LAUNCHER": launcher}
    if launcher == "submitit":
        if cluster is None:
            raise ValueError("launcher submitit needs --cluster, a cluster YAML")
        ClusterConfig.from_yaml(cluster)  # a bad file fails here, before any notebook
        env["PUZZLE_CLUSTER"] = str(Path(cluster).resolve())
    saved = {k: os.environ.get(k) for k in ("PUZZLE_LAUNCHER", "PUZZLE_CLUSTER")}
    os.environ.update(env)
    try:
        return _run_notebooks(profile, data_root, device, jobs, run_root, only, seeds, log)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run_notebooks(
    profile: str,
    data_root: str,
    device: str,
    jobs: int,
    run_root: str | Path | None,
    only: Sequence[str] | None,
    seeds: Sequence[int] | None,
    log,
) -> dict[str, dict[str, Any]]:
    import papermill as pm

    from .report import write_report
    from .run import check_device

    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {list(PROFILES)}, got {profile!r}")
    check_device(device)  # before any notebook starts a run
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    names = list(PROFILE_NOTEBOOKS.get(profile, NOTEBOOKS) if only is None else only)
    if only is None and len(names) < len(NOTEBOOKS):
        others = [n for n in NOTEBOOKS if n not in names]
        log(
            f"profile {profile} runs {', '.join(names)}; the others by name (--only): "
            f"{', '.join(others)}"
        )
    unknown = [n for n in names if n not in NOTEBOOKS]
    if unknown:
        raise ValueError(f"only: {unknown} are not notebooks of the pipeline: {list(NOTEBOOKS)}")
    root = (Path(run_root) if run_root is not None else run_root_default()).resolve()
    data_root = str(Path(data_root).resolve())  # the notebooks run in notebooks/
    status: dict[str, dict[str, Any]] = {}
    for k, name in enumerate(names, 1):
        params = notebook_parameters(name, profile, root, data_root, device, jobs, seeds)
        out = root / profile / name
        out.mkdir(parents=True, exist_ok=True)
        marker = out / "done.json"
        executed = out / f"{name}.ipynb"
        if _finished(marker, params, log):
            status[name] = {"status": "skipped", "seconds": 0.0, "output": str(executed)}
            log(f"[{k}/{len(names)}] {name}: finished earlier, skipped")
            continue
        log(f"[{k}/{len(names)}] {name}: running ...")
        t0 = time.perf_counter()
        try:
            with RunWatcher(root / profile, log):
                pm.execute_notebook(
                    str(NOTEBOOK_DIR / f"{name}.ipynb"),
                    str(executed),
                    parameters=params,
                    cwd=str(NOTEBOOK_DIR),
                    progress_bar=False,
                    kernel_name="python3",
                )
        except Exception as exc:  # keep going: the report says what failed
            seconds = time.perf_counter() - t0
            status[name] = {
                "status": "failed",
                "seconds": seconds,
                "output": str(executed),
                "error": f"{type(exc).__name__}: {str(exc)[:500]}",
            }
            log(f"[{k}/{len(names)}] {name}: FAILED after {seconds:.0f} s ({type(exc).__name__})")
            continue
        seconds = time.perf_counter() - t0
        atomic_write(marker, json.dumps({"parameters": params, "seconds": seconds}).encode())
        status[name] = {"status": "ran", "seconds": seconds, "output": str(executed)}
        log(f"[{k}/{len(names)}] {name}: done in {seconds:.0f} s")
    md_path, html_path = write_report(root, profile, status)
    counts = {
        s: sum(v["status"] == s for v in status.values()) for s in ("ran", "skipped", "failed")
    }
    log(
        f"ran {counts['ran']}, skipped {counts['skipped']}, failed {counts['failed']}; "
        f"report: {html_path} (and {md_path.name})"
    )
    failed = [n for n, v in status.items() if v["status"] == "failed"]
    if failed:
        raise RuntimeError(
            f"notebooks failed: {failed}; see their executed copies under {root / profile}"
        )
    return status


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--profile", default="small", choices=list(PROFILES))
    ap.add_argument("--data-root", default="data")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--run-root", default=None)
    ap.add_argument("--only", nargs="*", default=None, help=f"a subset of {list(NOTEBOOKS)}")
    ap.add_argument(
        "--seeds", nargs="*", type=int, default=None, help="seeds per row (default: the profile's)"
    )
    ap.add_argument("--launcher", default="local", help="local (default) or submitit")
    ap.add_argument("--cluster", default=None, help="the cluster YAML for --launcher submitit")
    ns = ap.parse_args(argv)
    try:
        run_notebooks(
            ns.profile,
            data_root=ns.data_root,
            device=ns.device,
            jobs=ns.jobs,
            run_root=ns.run_root,
            only=ns.only,
            seeds=ns.seeds,
            launcher=ns.launcher,
            cluster=ns.cluster,
        )
    except (ValueError, FileNotFoundError) as exc:  # a bad argument: one line, nothing started
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
