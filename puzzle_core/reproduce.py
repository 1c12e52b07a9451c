"""``make reproduce``: run every experiment notebook with papermill, then write the report.

``python -m puzzle_core.reproduce [--profile smoke|mini|paper] [--data-root D] [--device cpu]
[--jobs N] [--only table3 figure2 ...] [--run-root R]``

Each notebook runs into ``<run_root>/<profile>/<notebook>/`` (the executed copy, its tables and
figures).  A notebook that finished with the same parameters is skipped (``done.json``); one
that was interrupted runs again, and its training runs resume from their checkpoints, so an
interruption loses nothing that had finished.  A progress line per notebook, a summary at the
end, and ``<run_root>/<profile>/report.{md,html}``.

``--jobs N`` runs a table's independent training runs in N processes on this machine.  To send
the same runs to a cluster, submit one ``python -m puzzle_core.train --config ... --profile ...
--run-dir <run_root>/<profile>/<table>/<row>`` per row through the cluster's scheduler (e.g.
``submitit`` for Slurm, or a job array), then run ``make reproduce``: the finished runs are read
back, not retrained.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .experiments import PROFILES, ROOT, run_root_default

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
    "gm_table6",
    "gm_table8",
)
# Parameters the older notebooks take (they are not training notebooks).
_OWN_PARAMETERS = {"propositions": (), "mixup_gallery": ("out_dir",)}


def notebook_parameters(
    name: str, profile: str, run_root: Path, data_root: str, device: str, jobs: int
) -> dict[str, Any]:
    out = run_root / profile / name
    full = {
        "profile": profile,
        "data_root": data_root,
        "device": device,
        "jobs": jobs,
        "run_root": str(run_root),
        "out_dir": str(out),
    }
    if name in _OWN_PARAMETERS:
        return {k: v for k, v in full.items() if k in _OWN_PARAMETERS[name]}
    return full


def run_notebooks(
    profile: str = "smoke",
    *,
    data_root: str = "data",
    device: str = "cpu",
    jobs: int = 1,
    run_root: str | Path | None = None,
    only: Sequence[str] | None = None,
    log=print,
) -> dict[str, dict[str, Any]]:
    """Execute the notebooks (skipping finished ones) and write the report -> per notebook
    {"status": "ran" | "skipped" | "failed", "seconds", "output"}.  Raises after the report when
    a notebook failed."""
    import papermill as pm

    from .report import write_report

    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {list(PROFILES)}, got {profile!r}")
    names = list(NOTEBOOKS if only is None else only)
    unknown = [n for n in names if n not in NOTEBOOKS]
    if unknown:
        raise ValueError(f"only: {unknown} are not notebooks of the pipeline: {list(NOTEBOOKS)}")
    root = (Path(run_root) if run_root is not None else run_root_default()).resolve()
    data_root = str(Path(data_root).resolve())  # the notebooks run in notebooks/
    status: dict[str, dict[str, Any]] = {}
    for k, name in enumerate(names, 1):
        params = notebook_parameters(name, profile, root, data_root, device, jobs)
        out = root / profile / name
        out.mkdir(parents=True, exist_ok=True)
        marker = out / "done.json"
        executed = out / f"{name}.ipynb"
        if marker.is_file() and json.loads(marker.read_text()).get("parameters") == params:
            status[name] = {"status": "skipped", "seconds": 0.0, "output": str(executed)}
            log(f"[{k}/{len(names)}] {name}: finished earlier, skipped")
            continue
        log(f"[{k}/{len(names)}] {name}: running ...")
        t0 = time.perf_counter()
        try:
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
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(json.dumps({"parameters": params, "seconds": seconds}))
        tmp.replace(marker)
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
    ap.add_argument("--profile", default="smoke", choices=list(PROFILES))
    ap.add_argument("--data-root", default="data")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--run-root", default=None)
    ap.add_argument("--only", nargs="*", default=None, help=f"a subset of {list(NOTEBOOKS)}")
    ns = ap.parse_args(argv)
    try:
        run_notebooks(
            ns.profile,
            data_root=ns.data_root,
            device=ns.device,
            jobs=ns.jobs,
            run_root=ns.run_root,
            only=ns.only,
        )
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
