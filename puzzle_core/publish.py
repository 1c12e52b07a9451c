"""Publish a finished reproduction: copy what a reader needs to check it into
``experiments/published/<profile>/`` (committed), with its provenance.

``python -m puzzle_core.publish --profile fmnist [--run-root R] [--dest D]``

Copied: the report (``report.html``, ``report.md``, ``report_figures/``), every finished run's
``config.json``, ``results.json`` and ``metrics.jsonl`` (``runs/<method>-<identity>/``; never
checkpoints), each table's ``runs.json`` (its rows and seeds -> runs), and the notebooks'
tables, figures and markers (``*.csv``, ``*.png``, ``*.json``, ``summary.md``).  Written:
``provenance.json``: the commits the results came from, package versions, hardware, the date,
the notebooks' wall times and the summed training time.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .experiments import ROOT, run_root_default
from .provenance import code_version, hardware, package_versions

RUN_FILES = ("config.json", "results.json", "metrics.jsonl")
NOTEBOOK_FILES = ("*.csv", "*.png", "*.json", "summary.md")


def _copy(src: Path, dst: Path) -> None:
    """Copy a file; in JSON text, paths inside the checkout become relative to it (a published
    record names no path of the machine it ran on)."""
    if src.suffix == ".json":
        prefix = json.dumps(str(ROOT) + "/")[1:-1]
        dst.write_text(src.read_text().replace(prefix, "").replace(json.dumps(str(ROOT)), '"."'))
    else:
        shutil.copy2(src, dst)


def publish(
    profile: str, run_root: str | Path | None = None, dest: str | Path | None = None
) -> Path:
    """Copy the finished work of ``profile`` (see the module docstring) -> the destination."""
    src = (Path(run_root) if run_root is not None else run_root_default()) / profile
    if not (src / "report.html").is_file():
        raise FileNotFoundError(f"{src / 'report.html'} not found: run `make reproduce` first")
    out = Path(dest) if dest is not None else ROOT / "experiments" / "published" / profile
    out.mkdir(parents=True, exist_ok=True)
    for name in ("report.html", "report.md"):
        shutil.copy2(src / name, out / name)
    if (src / "report_figures").is_dir():
        shutil.copytree(src / "report_figures", out / "report_figures", dirs_exist_ok=True)
    commits: set[str] = set()
    train_seconds = 0.0
    for results in sorted(src.glob("**/results.json")):
        run_dir = results.parent
        target = out / run_dir.relative_to(src)
        target.mkdir(parents=True, exist_ok=True)
        for name in RUN_FILES:
            if (run_dir / name).is_file():
                _copy(run_dir / name, target / name)
        res = json.loads(results.read_text())
        prov = res.get("provenance", {})
        commits.add(f"{prov.get('commit')}{'+dirty' if prov.get('dirty') else ''}")
        metrics = (run_dir / "metrics.jsonl").read_text().splitlines()
        train_seconds += sum(json.loads(x)["seconds"] for x in metrics if x.strip())
    notebooks: dict[str, Any] = {}
    for index in sorted(src.glob("*/runs.json")):  # the tables' rows -> runs
        (out / index.parent.name).mkdir(exist_ok=True)
        _copy(index, out / index.parent.name / index.name)
    for nb_dir in sorted(p for p in src.iterdir() if p.is_dir() and (p / "done.json").is_file()):
        notebooks[nb_dir.name] = json.loads((nb_dir / "done.json").read_text()).get("seconds")
        for pattern in NOTEBOOK_FILES:
            for f in nb_dir.glob(pattern):
                (out / nb_dir.name).mkdir(exist_ok=True)
                _copy(f, out / nb_dir.name / f.name)
    record = {
        "profile": profile,
        "published": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "results_from_commits": sorted(commits),
        "published_from": code_version(),
        "packages": package_versions(),
        "hardware": hardware(),
        "notebook_wall_seconds": notebooks,
        "total_notebook_wall_seconds": sum(v for v in notebooks.values() if v),
        "summed_training_seconds": round(train_seconds, 1),
    }
    (out / "provenance.json").write_text(json.dumps(record, indent=1) + "\n")
    return out


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--profile", required=True)
    ap.add_argument("--run-root", default=None)
    ap.add_argument("--dest", default=None)
    ns = ap.parse_args(argv)
    print(publish(ns.profile, ns.run_root, ns.dest))


if __name__ == "__main__":
    main()
