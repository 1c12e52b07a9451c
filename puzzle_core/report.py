"""The reproduction report: ``<run_root>/<profile>/report.html`` (one self-contained file, the
figures embedded, readable offline) and ``report.md`` beside it.

What a reader gets, all computed from the results files (:mod:`puzzle_core.results`): the scale
and provenance of the numbers at the top (profile, data, networks, epochs, seeds, commits,
package versions, hardware, chance levels), per table a figure of ours (mean and 95 % interval
over seeds) beside the paper's numbers, the table itself with rows at chance marked, learning
curves from ``metrics.jsonl``, the claims of the paper coloured by verdict with the difference
and interval (or noise floor) next to each, and the figures the notebooks saved (the gallery,
Figure 2, Supplementary B).
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .experiments import paper_results
from .provenance import hardware, package_versions
from .results import (
    check_claims,
    collect,
    commit_of,
    figure2_samples,
    learning_curves,
    ours_vs_paper,
)
from .run import PROFILES
from .verdicts import CHANCE_MARGIN, load_noise_floors

VERDICT_COLOURS = {
    "held": "#c8ecc8",
    "reversed": "#f6c4c4",
    "inconclusive": "#f3eac0",
    "untestable": "#e2e2e2",
    "not run": "#ffffff",
}
NOTEBOOK_FIGURES = {  # notebook whose PNGs the report embeds -> caption
    "mixup_gallery": "Figure 1 / 5: the mixup gallery",
    "figure2": "Figure 2: statistics of mixed data on a fixed classifier",
    "transport": "Supplementary B: Algorithm 1 against the exact assignment",
}


@dataclass
class _Doc:
    """Blocks rendered to both Markdown and HTML."""

    base: Path
    md: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)

    def heading(self, level: int, text: str, anchor: str | None = None) -> None:
        self.md += [f"{'#' * level} {text}", ""]
        aid = f" id='{anchor}'" if anchor else ""
        self.html.append(f"<h{level}{aid}>{_inline(text)}</h{level}>")

    def para(self, text: str) -> None:
        self.md += [text, ""]
        self.html.append(f"<p>{_inline(text)}</p>")

    def bullets(self, items: list[str]) -> None:
        self.md += [f"* {i}" for i in items] + [""]
        self.html.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")

    def table(self, df: Any, row_class: list[str] | None = None) -> None:
        cols = list(df.columns)
        self.md += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        out = ["<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>"]
        for k, (_, r) in enumerate(df.iterrows()):
            cells = [_cell(r[c]) for c in cols]
            self.md.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
            cls = f" class='{row_class[k]}'" if row_class else ""
            out.append(
                f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"
            )
        self.md.append("")
        self.html.append("\n".join(out) + "</table>")

    def image(self, path: Path, caption: str) -> None:
        rel = path.relative_to(self.base).as_posix() if path.is_relative_to(self.base) else path
        self.md += [f"![{caption}]({rel})", ""]
        data = base64.b64encode(path.read_bytes()).decode()
        self.html.append(
            f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return ""
    if isinstance(v, bool):
        return "yes" if v else ""
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def _inline(text: str) -> str:
    """Escape, then render **bold** and `code`."""
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


_STYLE = (
    "body{font-family:sans-serif;max-width:80em;margin:2em auto;line-height:1.35}"
    "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;"
    "font-size:90%;vertical-align:top}th{background:#f4f4f4}img{max-width:100%}"
    "tr.chance td{color:#999;font-style:italic}"
    + "".join(f"tr.{k.replace(' ', '_')} td{{background:{v}}}" for k, v in VERDICT_COLOURS.items())
)


def _table_figure(table: str, df: Any, path: Path) -> Path | None:
    """Ours (mean, 95 % interval over seeds) beside the paper's number, one panel per metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [
        m for m in dict.fromkeys(df["metric"]) if df[df["metric"] == m]["ours"].notna().any()
    ]
    if not metrics:
        return None
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(4.2 * len(metrics), 0.45 * df["row"].nunique() + 1.4)
    )
    axes = [axes] if len(metrics) == 1 else list(axes)
    for ax, m in zip(axes, metrics, strict=True):
        sub = df[df["metric"] == m].reset_index(drop=True)
        ys = range(len(sub))
        err = sub["± 95 %"].fillna(0).to_numpy(dtype=float)
        ax.errorbar(sub["ours"], ys, xerr=err, fmt="o", color="tab:blue", label="ours (95 % CI)")
        ax.plot(sub["paper"], ys, "D", color="tab:orange", label="paper")
        chance = sub["chance"].dropna()
        if len(chance):
            ax.axvline(float(chance.iloc[0]), ls="--", color="grey", lw=1, label="chance")
        ax.set_yticks(list(ys), sub["row"])
        ax.invert_yaxis()
        ax.set_title(m.replace("_", " ") + " (%)")
        ax.grid(axis="x", alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle(f"{table}: ours beside the paper's numbers", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _curves_figure(table: str, curves: dict[str, dict[int, list]], path: Path) -> Path | None:
    """Test top-1 error per epoch: mean over seeds, the band between the extreme seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for row, by_seed in sorted(curves.items()):
        n = min(len(v) for v in by_seed.values())
        if n == 0:
            continue
        arr = np.array([v[:n] for v in by_seed.values()], dtype=float)
        x = np.arange(1, n + 1)
        (line,) = ax.plot(x, arr.mean(0), label=f"{row} ({len(arr)})")
        ax.fill_between(x, arr.min(0), arr.max(0), color=line.get_color(), alpha=0.15)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test top-1 error (%)")
    ax.set_title(f"{table}: learning curves (mean over seeds, band: min-max)", fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _header(doc: _Doc, profile: str, found: dict, floors: dict) -> None:
    runs = [r for rows in found.values() for by in rows.values() for r in by.values()]
    prof = PROFILES.get(profile)
    items = [f"profile: **{profile}**: {prof.description if prof else 'custom'}"]
    datasets = sorted({r["dataset"] for r in runs})
    items.append(
        f"data sets of our numbers: {', '.join(datasets) or 'none'}"
        + (
            " (synthetic-objects is the project's generated data; Fashion-MNIST is not a "
            "data set of the papers)"
            if datasets
            else ""
        )
    )
    seeds = sorted({r["seed"] for r in runs})
    items.append(
        f"models: {', '.join(sorted({r['model'] for r in runs})) or 'none'}; epochs: "
        f"{', '.join(str(e) for e in sorted({r['epochs'] for r in runs})) or 'none'}; losses: "
        f"{', '.join(sorted({str(r.get('loss', '?')) for r in runs})) or 'none'}; seeds: "
        f"{', '.join(map(str, seeds)) or 'none'}"
    )
    commits = sorted({commit_of(r) for r in runs})
    flag = (
        " — **results from different commits: compare with care** (the tables' `code` column "
        "names each row's)"
        if len(commits) > 1
        else ""
    )
    items.append(f"code: {', '.join(commits) or 'no runs'}{flag}")
    items.append("packages: " + ", ".join(f"{k} {v}" for k, v in package_versions().items() if v))
    items.append("hardware (this report): " + "; ".join(f"{k} {v}" for k, v in hardware().items()))
    chance = sorted({(r["dataset"], r["num_classes"]) for r in runs if r.get("num_classes")})
    if chance:
        items.append(
            "chance-level top-1 error: "
            + ", ".join(f"{d} {100 * (1 - 1 / k):.0f} % ({k} classes)" for d, k in chance)
            + f"; a row within {CHANCE_MARGIN:g} points of chance is marked *at chance* and a "
            "claim whose two sides are both at chance is *untestable*"
        )
    items.append(
        "verdicts: **held** / **reversed** when the 95 % interval of the difference (paired by "
        "seed where the runs share data and data order, else Welch) lies on one side of 0; with "
        "a single run per side, when the difference exceeds the profile's noise floor; "
        "**inconclusive** otherwise"
    )
    mine = [f for (p, _), f in sorted(floors.items()) if p == profile]
    if mine:
        items.append(
            "noise floors of this profile: " + "; ".join(f"{f.metric}: {f.text()}" for f in mine)
        )
    items.append(
        "the paper's numbers are CIFAR-100 / Tiny-ImageNet / ImageNet at full scale: at a "
        "reduced profile a difference from them measures the scale, not the method"
    )
    doc.bullets(items)


def write_report(
    run_root: str | Path,
    profile: str,
    notebooks: dict[str, dict[str, Any]] | None = None,
) -> tuple[Path, Path]:
    """Write ``run_root/profile/report.md`` and ``report.html`` -> (markdown, html) paths."""
    base = Path(run_root) / profile
    base.mkdir(parents=True, exist_ok=True)
    figdir = base / "report_figures"
    figdir.mkdir(exist_ok=True)
    damaged: list[str] = []
    found = collect(run_root, profile, damaged)
    try:
        samples = figure2_samples(run_root, profile)
    except ValueError as exc:
        samples = None
        damaged.append(str(exc))
    floors = load_noise_floors()
    doc = _Doc(base)
    doc.heading(1, f"Reproduction report: profile `{profile}`")
    _header(doc, profile, found, floors)
    if damaged:
        doc.heading(2, "Damaged files (left out of this report)", "damaged")
        doc.bullets(damaged)

    claims = check_claims(found, profile, figure2=samples, floors=floors)
    doc.heading(2, "Claims of the paper, checked on our numbers", "claims")
    counts = claims["verdict"].value_counts().to_dict()
    doc.para(
        "Verdict counts: "
        + ", ".join(f"{k} {counts.get(k, 0)}" for k in VERDICT_COLOURS)
        + ". Each claim quotes the paper (Puzzle Mix, ICML 2020; line numbers of the text); "
        "`best baseline` is chosen in each source separately."
    )
    for origin, title in (("paper", None), ("ours", "Comparisons the paper does not make (ours)")):
        part = claims[claims["origin"] == origin]
        if part.empty:
            continue
        if title:
            doc.heading(3, title)
        judged = part[part["verdict"] != "not run"]
        cols = ["id", "source", "claim", "paper", "ours", "verdict", "detail", "quote"]
        if not judged.empty:
            doc.table(judged[cols], [v.replace(" ", "_") for v in judged["verdict"]])
        idle = part[part["verdict"] == "not run"]
        if not idle.empty:
            doc.para(
                "not run at this profile (their rows or tables have no results): "
                + ", ".join(
                    f"{i} ({src})" for i, src in zip(idle["id"], idle["source"], strict=True)
                )
            )

    prof = PROFILES.get(profile)
    paper_rows: dict[str, set] = {}
    for r in paper_results():
        paper_rows.setdefault(r["table"], set()).add(r["row"])
    tables = sorted(set(paper_rows) | set(found))
    for t in tables:
        doc.heading(2, t, t)
        why = base / t / "unavailable.txt"
        if why.is_file():
            doc.para(f"cannot be reproduced at this profile: {why.read_text().strip()}")
            continue
        if t not in found:
            doc.para("not run at this profile (no results under the run folder)")
            continue
        skip = prof.skip_rows if prof else ()
        skipped = [r for r in skip if r in paper_rows.get(t, ()) and r not in found[t]]
        if skipped:
            doc.para(
                f"rows run at this profile only when named: {', '.join(skipped)} "
                f"({prof.skip_reason})"
            )
        df = ours_vs_paper(t, found[t])
        fig = _table_figure(t, df, figdir / f"{t}_ours_vs_paper.png")
        if fig:
            doc.image(fig, f"{t}: ours (mean, 95 % interval over seeds) beside the paper")
        doc.table(df, ["chance" if c else "" for c in df["at chance"]])
        curves = _curves_figure(
            t, learning_curves(run_root, profile, t), figdir / f"{t}_curves.png"
        )
        if curves:
            doc.image(curves, f"{t}: test top-1 error per epoch")

    doc.heading(2, "Figures of the notebooks", "figures")
    for name, caption in NOTEBOOK_FIGURES.items():
        for f in sorted((base / name).glob("*.png")):
            doc.image(f, f"{caption} ({f.name})")
    for f in sorted(base.glob("*/summary.md")):
        doc.heading(2, f.parent.name)
        doc.md += [f.read_text(), ""]
        doc.html.append(f"<pre>{html.escape(f.read_text())}</pre>")
    if notebooks:
        doc.heading(2, "Notebooks")
        doc.bullets(
            [f"{n}: {i.get('status')} ({i.get('seconds', 0):.0f} s)" for n, i in notebooks.items()]
        )
    md_path, html_path = base / "report.md", base / "report.html"
    _atomic_text(md_path, "\n".join(doc.md) + "\n")
    page = (
        f"<!doctype html><meta charset='utf-8'><title>report: {html.escape(profile)}</title>"
        f"<style>{_STYLE}</style>\n" + "\n".join(doc.html) + "\n"
    )
    _atomic_text(html_path, page)
    return md_path, html_path


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
