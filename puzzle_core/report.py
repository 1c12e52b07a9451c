"""Our numbers beside the papers', and the papers' claims checked on our numbers.

Every verdict here is computed from results files; nothing is written by hand.  Results carry
their profile and data set, and the report prints them at the top and beside every table.
"""

from __future__ import annotations

import html
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .experiments import paper_results

METRICS = ("top1_err", "top5_err", "fgsm_err", "pgd_err", "corruption_err")
BASELINES = ("vanilla", "input_mixup", "manifold_mixup", "cutmix", "augmix")


def metric_values(results: dict[str, Any]) -> dict[str, float]:
    """The paper-comparable metrics of one results dict (FGSM / PGD at the run's radius)."""
    out = {k: float(results[k]) for k in ("top1_err", "top5_err", "corruption_err") if k in results}
    for key, value in results.items():
        for name in ("fgsm_err", "pgd_err"):
            if key.startswith(name + "@"):
                out[name] = float(value)
    return out


def collect(run_root: str | Path, profile: str) -> dict[str, dict[str, dict[str, Any]]]:
    """{table: {row: results}} of every finished run under ``run_root/profile/<table>/<row>``."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    base = Path(run_root) / profile
    for path in sorted(base.glob("*/*/results.json")):
        found.setdefault(path.parent.parent.name, {})[path.parent.name] = json.loads(
            path.read_text()
        )
    return found


def ours_vs_paper(table: str, results: dict[str, dict[str, Any]]) -> Any:
    """pandas DataFrame, one line per (row, metric) the paper reports: ours, paper, ours - paper,
    and the profile / data set of our number ("not run" where a row has no result)."""
    import pandas as pd

    lines = []

    def line(row: str, metric: str, paper: float | None) -> dict[str, Any]:
        res = results.get(row)
        ours = metric_values(res).get(metric) if res else None
        return {
            "row": row,
            "metric": metric,
            "ours": ours,
            "paper": paper,
            "ours - paper": None if ours is None or paper is None else ours - paper,
            "ours from": f"{res['profile']} / {res['dataset']} / {res['model']}"
            if res
            else "not run",
        }

    reported = paper_results(table)
    for ref in reported:
        lines.append(line(ref["row"], ref["metric"], ref["value"]))
    known = {r["row"] for r in reported}
    for row in sorted(set(results) - known):  # rows whose numbers the notes do not have
        for metric in metric_values(results[row]):
            lines.append(line(row, metric, None))
    return pd.DataFrame(lines)


@dataclass(frozen=True)
class Claim:
    """ "``better`` has a lower ``metric`` than ``worse``" in table ``table`` (``worse_table``
    when the comparison row lives in another table, e.g. Table 7 against Table 2's full model)."""

    table: str
    metric: str
    better: str
    worse: str
    worse_table: str | None = None

    def text(self) -> str:
        where = f" ({self.worse_table})" if self.worse_table else ""
        return f"{self.table}: {self.better} has lower {self.metric} than {self.worse}{where}"


def paper_claims() -> list[Claim]:
    """The comparisons the paper's text draws from its tables (Puzzle Mix beats every baseline
    on Top-1 in Tables 2-5; adversarial training lowers FGSM error; Puzzle Mix (aug) has the
    lowest corruption error; both parts of the method matter (Table 7); the stochastic
    adversarial variant keeps clean accuracy and beats nu0=nu1 on FGSM (Table 8))."""
    claims = [
        Claim(t, "top1_err", "puzzlemix", b)
        for t in ("table2", "table3", "table4")
        for b in BASELINES
    ]
    claims += [Claim("table5", "top1_err", "puzzlemix", b) for b in BASELINES]
    claims += [
        Claim(t, "fgsm_err", "puzzlemix_adv", "puzzlemix") for t in ("table2", "table3", "table4")
    ]
    claims += [
        Claim("table6", "corruption_err", "puzzlemix_aug", r)
        for r in ("vanilla", "augmix", "puzzlemix")
    ]
    claims += [Claim("table6", "corruption_err", "puzzlemix", "vanilla")]
    claims += [
        Claim("table2", "top1_err", "puzzlemix", r, "table7") for r in ("binary", "mask_only")
    ]
    claims += [
        Claim("table8", "fgsm_err", "adv", "nu0_nu1"),
        Claim("table8", "top1_err", "adv", "fgsm"),
    ]
    return claims


def _value(source: dict[str, dict[str, float]], row: str, metric: str) -> float | None:
    return source.get(row, {}).get(metric)


def check_claims(found: dict[str, dict[str, dict[str, Any]]], profile: str) -> Any:
    """pandas DataFrame: per claim, whether it holds in the paper's numbers and in ours
    ("held" / "did not hold" at ``profile`` scale, or "not run")."""
    import pandas as pd

    paper: dict[str, dict[str, dict[str, float]]] = {}
    for r in paper_results():
        paper.setdefault(r["table"], {}).setdefault(r["row"], {})[r["metric"]] = r["value"]
    ours = {t: {row: metric_values(res) for row, res in rows.items()} for t, rows in found.items()}
    lines = []
    for c in paper_claims():
        wt = c.worse_table or c.table
        p_b, p_w = (
            _value(paper.get(c.table, {}), c.better, c.metric),
            _value(paper.get(wt, {}), c.worse, c.metric),
        )
        o_b, o_w = (
            _value(ours.get(c.table, {}), c.better, c.metric),
            _value(ours.get(wt, {}), c.worse, c.metric),
        )
        if o_b is None or o_w is None:
            verdict = "not run"
        elif o_b < o_w:
            verdict = f"held at {profile} scale"
        else:
            tie = " (a tie)" if o_b == o_w else ""
            verdict = f"did not hold at {profile} scale{tie}"
        lines.append(
            {
                "claim": c.text(),
                "paper": None if p_b is None or p_w is None else f"{p_b:.2f} vs {p_w:.2f}",
                "paper holds": None if p_b is None or p_w is None else bool(p_b < p_w),
                "ours": None if verdict == "not run" else f"{o_b:.2f} vs {o_w:.2f}",
                "verdict": verdict,
            }
        )
    return pd.DataFrame(lines)


def hardware() -> dict[str, str]:
    import torch

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
        "torch threads": str(torch.get_num_threads()),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _md_table(df: Any) -> str:
    cols = list(df.columns)
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            cells.append(
                f"{v:.2f}"
                if isinstance(v, float) and v == v
                else ("" if v is None or v != v else str(v))
            )
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def write_report(
    run_root: str | Path,
    profile: str,
    notebooks: dict[str, dict[str, Any]] | None = None,
) -> tuple[Path, Path]:
    """``run_root/profile/report.md`` and ``report.html``: the header (profile, data sets,
    models, epochs, seeds, hardware), every table as ours-vs-paper, the figures the notebooks
    saved, and the claims.  -> (markdown path, html path)."""
    from .experiments import PROFILES

    base = Path(run_root) / profile
    base.mkdir(parents=True, exist_ok=True)
    found = collect(run_root, profile)
    runs = [r for rows in found.values() for r in rows.values()]
    md: list[str] = [f"# Reproduction report: profile `{profile}`", ""]
    prof = PROFILES.get(profile)
    md.append(f"* profile: **{profile}**: {prof.description if prof else 'custom'}")
    datasets = sorted({r["dataset"] for r in runs})
    md.append(
        f"* data sets of our numbers: {', '.join(datasets) or 'none'}"
        + (
            "  (synthetic-objects is the project's generated data; Fashion-MNIST is not a "
            "data set of the papers)"
            if datasets
            else ""
        )
    )
    md.append(
        f"* models: {', '.join(sorted({r['model'] for r in runs})) or 'none'}; epochs: "
        f"{', '.join(str(e) for e in sorted({r['epochs'] for r in runs})) or 'none'}; seeds: "
        f"{', '.join(str(s) for s in sorted({r['seed'] for r in runs})) or 'none'}"
    )
    md.append("* hardware: " + "; ".join(f"{k} {v}" for k, v in hardware().items()))
    chance = sorted({(r["dataset"], r["num_classes"]) for r in runs if r.get("num_classes")})
    if chance:
        md.append(
            "* chance-level top-1 error: "
            + ", ".join(f"{d} {100 * (1 - 1 / k):.0f} % ({k} classes)" for d, k in chance)
            + "; a method near it has not learned enough for its claims to be tested"
        )
    md.append(
        "* the paper's numbers are CIFAR-100 / Tiny-ImageNet / ImageNet at full scale: at "
        "a reduced profile the differences measure the scale, not the method"
    )
    md.append("")
    tables = sorted({r["table"] for r in paper_results()} | set(found))
    for t in tables:
        md.append(f"## {t}")
        why = base / t / "unavailable.txt"
        if why.is_file():
            md.append(f"cannot be reproduced at this profile: {why.read_text().strip()}")
            md.append("")
            continue
        if t not in found:
            md.append("not run at this profile (no results under the run folder)")
            md.append("")
            continue
        md.append(_md_table(ours_vs_paper(t, found[t])))
        md.append("")
    md.append("## Claims of the paper, checked on our numbers")
    md.append(_md_table(check_claims(found, profile)))
    md.append("")
    figures = sorted(base.glob("*/*.png"))
    if figures:
        md.append("## Figures")
        for f in figures:
            md.append(f"![{f.stem}]({f.relative_to(base).as_posix()})")
            md.append("")
    extra = sorted(base.glob("*/summary.md"))
    for f in extra:
        md.append(f"## {f.parent.name}")
        md.append(f.read_text())
        md.append("")
    if notebooks:
        md.append("## Notebooks")
        for name, info in notebooks.items():
            md.append(f"* {name}: {info.get('status')} ({info.get('seconds', 0):.0f} s)")
    text = "\n".join(md) + "\n"
    md_path, html_path = base / "report.md", base / "report.html"
    tmp = md_path.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(md_path)
    tmp = html_path.with_suffix(".html.tmp")
    tmp.write_text(_to_html(text))
    tmp.replace(html_path)
    return md_path, html_path


def _inline(text: str) -> str:
    """Escape, then render **bold** and `code`."""
    import re

    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def _to_html(markdown: str) -> str:
    """A small renderer for the report's own Markdown (headings, bullets, tables, images)."""
    out = [
        "<!doctype html><meta charset='utf-8'><title>report</title>",
        "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}</style>",
    ]
    in_table = False
    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set("".join(cells)) <= set("-"):
                continue
            if not in_table:
                out.append("<table>")
                in_table, tag = True, "th"
            else:
                tag = "td"
            out.append(
                "<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>"
            )
            continue
        if in_table:
            out.append("</table>")
            in_table = False
        if line.startswith("!["):
            src = line[line.index("(") + 1 : line.rindex(")")]
            out.append(f"<p><img src='{html.escape(src)}' style='max-width:100%'></p>")
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
        elif line.startswith("* "):
            out.append(f"<li>{_inline(line[2:])}</li>")
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
    if in_table:
        out.append("</table>")
    return "\n".join(out) + "\n"
