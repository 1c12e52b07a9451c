"""Our finished runs read back, summarised over seeds beside the papers' numbers, and the
papers' claims judged on them (the verdict rules: :mod:`puzzle_core.verdicts`; the claims and
their quotes: :mod:`puzzle_core.claims`).

Runs: ``<run_root>/<profile>/runs/<method>-<identity>/`` (``results.json``, ``metrics.jsonl``),
listed by each table's ``<run_root>/<profile>/<table>/runs.json``; Figure 2's per-image
statistics: ``<run_root>/<profile>/figure2/figure2_samples.json``.  Nothing here is written by
hand: every number and verdict is computed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .claims import BASELINES, BEST_BASELINE, Claim, paper_claims
from .experiments import paper_results, table_index
from .run.rundir import RunDirError, read_metrics, read_results
from .verdicts import CHANCE_MARGIN, chance_error, estimate, judge, judge_samples, load_noise_floors

METRICS = ("top1_err", "top5_err", "fgsm_err", "pgd_err", "corruption_err")
# fields that must agree for two runs of one seed to share data, data order and draws
DATA_IDENTITY = ("dataset", "image_size", "train_examples", "test_examples", "train_fraction")
Found = dict[str, dict[str, dict[int, dict[str, Any]]]]  # {table: {row: {seed: results}}}


def metric_values(results: Mapping[str, Any]) -> dict[str, float]:
    """The paper-comparable metrics of one results dict (FGSM / PGD at the run's radius)."""
    out = {k: float(results[k]) for k in ("top1_err", "top5_err", "corruption_err") if k in results}
    for key, value in results.items():
        for name in ("fgsm_err", "pgd_err"):
            if key.startswith(name + "@"):
                out[name] = float(value)
    return out


def collect(run_root: str | Path, profile: str, damaged: list[str] | None = None) -> Found:
    """{table: {row: {seed: results}}} of every finished run each table lists (its
    ``runs.json``) under ``run_root/profile``; a run several tables list appears in each.

    A ``results.json`` that is not valid (:func:`puzzle_core.run.rundir.read_results`) raises a
    RunDirError naming it, or, when a ``damaged`` list is given, is skipped and its message
    appended there (the report lists them)."""
    found: Found = {}
    base = Path(run_root) / profile
    for index in sorted(base.glob("*/runs.json")):
        table = index.parent.name
        try:
            rows = table_index(run_root, profile, table)
        except RunDirError as exc:
            if damaged is None:
                raise
            damaged.append(str(exc))
            continue
        for row, by_seed in rows.items():
            for seed, run_dir in by_seed.items():
                if not (run_dir / "results.json").is_file():
                    continue
                try:
                    res = read_results(run_dir / "results.json")
                except RunDirError as exc:
                    if damaged is None:
                        raise
                    damaged.append(str(exc))
                    continue
                found.setdefault(table, {}).setdefault(row, {})[seed] = res
    return found


def learning_curves(run_root: str | Path, profile: str, table: str) -> dict[str, dict[int, list]]:
    """{row: {seed: [test top-1 error per epoch]}} from the runs' ``metrics.jsonl``."""
    out: dict[str, dict[int, list]] = {}
    for row, by_seed in table_index(run_root, profile, table).items():
        for seed, run_dir in by_seed.items():
            rows = read_metrics(run_dir / "metrics.jsonl")
            if rows:
                out.setdefault(row, {})[seed] = [r["test_top1_err"] for r in rows]
    return out


def _per_seed(by_seed: Mapping[int, Mapping[str, Any]], metric: str) -> dict[int, float]:
    return {s: v for s, r in by_seed.items() if (v := metric_values(r).get(metric)) is not None}


def _chance(by_seed: Mapping[int, Mapping[str, Any]], metric: str) -> float | None:
    classes = {r.get("num_classes") for r in by_seed.values()} - {None}
    return chance_error(metric, int(next(iter(classes)))) if len(classes) == 1 else None


def commit_of(results: Mapping[str, Any]) -> str:
    """Short commit of a run's code (+dirty), "unknown" for runs that predate provenance."""
    prov = results.get("provenance") or {}
    return (prov.get("commit") or "unknown")[:10] + ("+dirty" if prov.get("dirty") else "")


def _origin(by_seed: Mapping[int, Mapping[str, Any]]) -> str:
    r = next(iter(by_seed.values()))
    return f"{r['profile']} / {r['dataset']} / {r['model']} / {r['epochs']} ep"


def ours_vs_paper(table: str, results: Mapping[str, Mapping[int, Mapping[str, Any]]]) -> Any:
    """pandas DataFrame, one line per (row, metric): our mean over seeds, the half-width of its
    95 % t-interval, the number of seeds, the paper's number, ours - paper, the chance level and
    whether our mean is within the chance margin of it, and where our number comes from."""
    import pandas as pd

    lines = []

    def line(row: str, metric: str, paper: float | None) -> dict[str, Any]:
        by_seed = results.get(row, {})
        vals = _per_seed(by_seed, metric)
        est = estimate(list(vals.values())) if vals else None
        chance = _chance(by_seed, metric) if by_seed else None
        return {
            "row": row,
            "metric": metric,
            "ours": None if est is None else est.mean,
            "± 95 %": None if est is None else est.half_width,
            "seeds": len(vals),
            "paper": paper,
            "ours - paper": None if est is None or paper is None else est.mean - paper,
            "chance": chance,
            "at chance": bool(
                est is not None and chance is not None and est.mean >= chance - CHANCE_MARGIN
            ),
            "ours from": _origin(by_seed) if by_seed else "not run",
            "code": ", ".join(sorted({commit_of(r) for r in by_seed.values()})),
        }

    reported = paper_results(table)
    for ref in reported:
        lines.append(line(ref["row"], ref["metric"], ref["value"]))
    known = {(r["row"], r["metric"]) for r in reported}
    for row in sorted(results):  # what the paper does not report (its numbers absent)
        metrics = {m for r in results[row].values() for m in metric_values(r)}
        for metric in sorted(metrics):
            if (row, metric) not in known:
                lines.append(line(row, metric, None))
    return pd.DataFrame(lines)


def _paper_numbers() -> dict[str, dict[str, dict[str, float]]]:
    paper: dict[str, dict[str, dict[str, float]]] = {}
    for r in paper_results():
        paper.setdefault(r["table"], {}).setdefault(r["row"], {})[r["metric"]] = r["value"]
    return paper


def _best(values: Mapping[str, float]) -> str | None:
    have = {b: v for b, v in values.items() if b in BASELINES}
    return min(have, key=have.__getitem__) if have else None


def _paired(a: Mapping[int, Mapping[str, Any]], b: Mapping[int, Mapping[str, Any]]) -> bool:
    """Runs of one seed share data and data order when their data identity agrees."""
    for s in set(a) & set(b):
        ra, rb = a[s], b[s]
        if any(f not in ra or f not in rb or ra[f] != rb[f] for f in DATA_IDENTITY):
            return False
    return bool(set(a) & set(b))


def _judge_runs(c: Claim, found: Found, profile: str, floors: dict) -> dict[str, Any]:
    b_runs = found.get(c.table, {}).get(c.better, {})
    rows = found.get(c.table, {})
    worse = c.worse
    if worse == BEST_BASELINE:
        means = {
            r: estimate(list(v.values())).mean for r in rows if (v := _per_seed(rows[r], c.metric))
        }
        worse = _best(means) or BEST_BASELINE
    w_runs = rows.get(worse, {})
    b, w = _per_seed(b_runs, c.metric), _per_seed(w_runs, c.metric)
    if not b or not w:
        return {"ours": None, "worse (ours)": worse, "verdict": "not run", "detail": "not run"}
    v = judge(
        b,
        w,
        lower_is_better=c.lower_is_better,
        chance=_chance(b_runs, c.metric),
        paired=_paired(b_runs, w_runs),
        floor=floors.get((profile, c.metric)),
    )
    eb, ew = estimate(list(b.values())), estimate(list(w.values()))
    return {
        "ours": f"{eb.text()} vs {ew.text()}" + (f" ({worse})" if c.worse != worse else ""),
        "worse (ours)": worse,
        "verdict": v.verdict,
        "detail": v.text(),
    }


def figure2_samples(run_root: str | Path, profile: str) -> dict[str, Any] | None:
    """Figure 2's per-image statistics saved by its notebook (None when it has not run)."""
    path = Path(run_root) / profile / "figure2" / "figure2_samples.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); rerun the figure2 notebook") from exc


def _judge_figure2(c: Claim, samples: Mapping[str, Any] | None) -> dict[str, Any]:
    none = {"ours": None, "worse (ours)": c.worse, "verdict": "not run", "detail": "not run"}
    if not samples:
        return none
    per = samples["methods"]
    if c.better not in per or c.worse not in per or c.metric not in per[c.better]:
        return none
    b, w = per[c.better][c.metric], per[c.worse][c.metric]
    clf = samples.get("classifier", {})
    err, chance = clf.get("top1_err"), clf.get("chance")
    ours = f"{sum(b) / len(b):.3f} vs {sum(w) / len(w):.3f} ({len(b)} images)"
    if c.origin == "paper" and err is not None and chance is not None:
        if err >= chance - CHANCE_MARGIN:
            return {
                "ours": ours,
                "worse (ours)": c.worse,
                "verdict": "untestable",
                "detail": f"the fixed classifier is at chance ({err:.1f} % top-1 error, "
                f"chance {chance:.1f} %)",
            }
    v = judge_samples(b, w, lower_is_better=c.lower_is_better)
    return {"ours": ours, "worse (ours)": c.worse, "verdict": v.verdict, "detail": v.text()}


def check_claims(
    found: Found,
    profile: str,
    *,
    figure2: Mapping[str, Any] | None = None,
    floors: dict | None = None,
) -> Any:
    """pandas DataFrame, one line per claim (:func:`puzzle_core.claims.paper_claims`): where it
    comes from and its quote, the paper's own numbers, ours (mean ± 95 % interval per side),
    the verdict (held / reversed / inconclusive / untestable / not run) and its detail (the
    difference, its interval or noise floor, the basis)."""
    import pandas as pd

    floors = load_noise_floors() if floors is None else floors
    paper = _paper_numbers()
    lines = []
    for c in paper_claims():
        p_b = paper.get(c.table, {}).get(c.better, {}).get(c.metric)
        p_rows = {r: m[c.metric] for r, m in paper.get(c.table, {}).items() if c.metric in m}
        p_worse = _best(p_rows) if c.worse == BEST_BASELINE else c.worse
        p_w = p_rows.get(p_worse) if p_worse else None
        if c.table == "figure2":
            mine = _judge_figure2(c, figure2)
        else:
            mine = _judge_runs(c, found, profile, floors)
        lines.append(
            {
                "id": c.id,
                "table": c.table,
                "source": c.source,
                "origin": c.origin,
                "claim": c.text(),
                "quote": c.quote,
                "paper": None
                if p_b is None or p_w is None
                else f"{p_b:.2f} vs {p_w:.2f} ({p_worse})",
                "paper holds": None if p_b is None or p_w is None else bool(p_b < p_w),
                **mine,
            }
        )
    return pd.DataFrame(lines)


def per_seed_table(results: Mapping[str, Mapping[int, Mapping[str, Any]]]) -> Any:
    """One line per row and seed: data set, model, epochs, loss, Top-1 / Top-5 error, seconds
    per epoch (a pandas DataFrame; empty when nothing ran)."""
    import pandas as pd

    columns = ["dataset", "model", "epochs", "loss", "top1_err", "top5_err", "seconds_per_epoch"]
    return pd.DataFrame(
        [
            {"row": row, "seed": seed, **{c: res.get(c) for c in columns}}
            for row, by_seed in results.items()
            for seed, res in by_seed.items()
        ],
        columns=["row", "seed", *columns],
    )


def variant_pivot(results: Mapping[str, Mapping[int, Mapping[str, Any]]]) -> Any:
    """Mean Top-1 error over seeds, methods x variants, for tables whose rows are named
    ``<method>_<variant>`` (GuidedMixup Tables 6 and 8: ``cutmix_10``, ``puzzlemix_greedy``)."""
    import pandas as pd

    top1 = pd.DataFrame(
        [
            {
                "method": row.rsplit("_", 1)[0],
                "variant": row.rsplit("_", 1)[1],
                "top1_err": sum(r["top1_err"] for r in by.values()) / len(by),
            }
            for row, by in results.items()
            if by
        ],
        columns=["method", "variant", "top1_err"],
    )
    return top1.pivot(index="method", columns="variant", values="top1_err")
