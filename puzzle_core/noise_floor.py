"""Measure a profile's noise floor: one row trained with five or more seeds, the seed standard
deviation of each metric stored in ``experiments/noise_floors.json`` with its provenance.

``python -m puzzle_core.noise_floor --profile smoke [--table table2 --row vanilla]
[--seeds 0 1 2 3 4] [--jobs 2] [--run-root R]``

A claim judged on single runs (one seed per side) is held or reversed only when the difference
exceeds 1.96 * sqrt(2) * sd of the metric at that profile (:class:`puzzle_core.verdicts.
NoiseFloor`): the 95 % range of the difference of two runs that differ only by their seed.
"""

from __future__ import annotations

import argparse
import datetime
from collections.abc import Sequence
from pathlib import Path

from .experiments import run_table
from .provenance import code_version
from .results import metric_values
from .verdicts import NOISE_FLOORS, NoiseFloor, estimate, save_noise_floors


def measure_noise_floor(
    profile: str,
    table: str = "table2",
    row: str = "vanilla",
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    *,
    jobs: int = 1,
    run_root: str | Path | None = None,
    path: str | Path = NOISE_FLOORS,
) -> list[NoiseFloor]:
    """Train ``row`` of ``table`` at ``profile`` once per seed (finished runs are reused), then
    store and return one :class:`NoiseFloor` per metric the runs report."""
    if len(seeds) < 5:
        raise ValueError(f"a noise floor needs 5 or more seeds, got {list(seeds)}")
    runs = run_table(
        table, profile, rows=[row], seeds=seeds, jobs=jobs, run_root=run_root, progress=False
    )[row]
    version = code_version()
    commit = (version["commit"] or "unknown")[:10] + ("+dirty" if version["dirty"] else "")
    when = datetime.date.today().isoformat()
    per_metric: dict[str, list[float]] = {}
    for res in runs.values():
        for metric, value in metric_values(res).items():
            per_metric.setdefault(metric, []).append(value)
    floors = [
        NoiseFloor(
            profile=profile,
            metric=metric,
            sd=float(estimate(vals).sd),
            seeds=len(vals),
            row=f"{table}/{row}",
            provenance=f"commit {commit}, {when}",
        )
        for metric, vals in sorted(per_metric.items())
        if len(vals) == len(seeds)
    ]
    save_noise_floors(floors, path)
    return floors


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--profile", required=True)
    ap.add_argument("--table", default="table2")
    ap.add_argument("--row", default="vanilla")
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--run-root", default=None)
    ns = ap.parse_args(argv)
    for f in measure_noise_floor(
        ns.profile, ns.table, ns.row, ns.seeds, jobs=ns.jobs, run_root=ns.run_root
    ):
        print(f"{f.profile} {f.metric}: {f.text()}")


if __name__ == "__main__":
    main()
