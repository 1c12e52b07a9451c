"""The papers' numbers of ``experiments/paper_results.csv``: one number per key, each a finite
value in range, each source naming its paper, table and line of the paper's text file; the
accuracies GuidedMixup prints converted to errors; the two papers' numbers for the same run
kept apart; spot checks against printed lines, and against the text files where present."""

import csv
import math
import os
import re
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import ROOT

from puzzle_core.experiments import paper_results, table_configs

CSV = ROOT / "experiments" / "paper_results.csv"
PM, GM = "Puzzle Mix", "GuidedMixup"
FILES = {PM: "puzzle-mix-icml2020.txt", GM: "guidedmixup-aaai2023.txt"}
# GuidedMixup's tables by the name this project gives them (Table 2 is the overhead notebook's;
# Table 8's data sets are tables of their own, as none of them is gm_table8's CIFAR-100)
GM_TABLES = {
    "gm_table1": 1,
    "gm_table1_tiny": 1,
    "gm_overhead": 2,
    "gm_table3": 3,
    "gm_table3_cub": 3,
    "gm_table3_cars": 3,
    "gm_table3_aircraft": 3,
    "gm_table3_caltech": 3,
    "gm_table4": 4,
    "gm_table5": 5,
    "gm_table5_corrupted": 5,
    "gm_table6": 6,
    "gm_table7": 7,
    "gm_table7_val": 7,
    "gm_table8_tiny": 8,
    "gm_table8_cub": 8,
    "gm_table8_aircraft": 8,
}
FGVC = r"(cub|cars|aircraft|caltech)_(resnet50|densenet121)_top1_err"
METRIC = re.compile(
    r"(top1_err|top5_err|fgsm_err|pgd_err|corruption_err|gaussian_noise_err"
    rf"|random_replacement_err|overhead_pct_bs(16|32|64)|{FGVC})"
)
# the metrics a run of ours measures (puzzle_core.results.metric_values)
RUN_METRICS = {"top1_err", "top5_err", "fgsm_err", "pgd_err", "corruption_err"}
CITE = re.compile(r"^(Puzzle Mix|GuidedMixup) Table (\d)\b.*; (\S+\.txt) l\.(\d+)(:|$)")
ACC = re.compile(r"printed Top-1 accuracy (\d+\.\d+)")
DERIVED = re.compile(
    r"printed Top-1 accuracy (\d+\.\d+) with the pairing minus printed improvement (\d+\.\d+)"
)


def _rows() -> list[dict[str, str]]:
    with open(CSV, newline="") as f:
        return list(csv.DictReader(f))


def _printed(r: dict[str, str]) -> list[str]:
    """The numbers of the paper's line this row comes from."""
    if m := DERIVED.search(r["source"]):
        return list(m.groups())
    if m := ACC.search(r["source"]):
        return [m.group(1)]
    return [r["value"]]


def _expected(r: dict[str, str]) -> Decimal:
    """The value the printed numbers give: an error as printed, 100 - a printed accuracy, or
    100 - (accuracy with GuidedMixup's pairing - the improvement it prints) for the random rows."""
    if m := DERIVED.search(r["source"]):
        return 100 - (Decimal(m.group(1)) - Decimal(m.group(2)))
    if m := ACC.search(r["source"]):
        return 100 - Decimal(m.group(1))
    return Decimal(r["value"])


def test_one_number_per_key():
    rows = _rows()
    assert list(rows[0]) == ["table", "row", "metric", "value", "source"]
    full = [(r["table"], r["row"], r["metric"], r["source"]) for r in rows]
    assert len(full) == len(set(full))
    # (table, row, metric) too: a second source for one cell would be silently dropped by the
    # readers ({table: {row: {metric: value}}}), so each paper's numbers have tables of their own
    keys = [k[:3] for k in full]
    assert len(keys) == len(set(keys)), [k for k in keys if keys.count(k) > 1]


def test_values_are_finite_and_in_range():
    for r in paper_results():
        v = r["value"]
        assert METRIC.fullmatch(r["metric"]), r
        assert math.isfinite(v), r
        if r["metric"].startswith("overhead_pct"):
            assert 0 <= v <= 1000, r  # +% training time over vanilla (GuidedMixup Table 2)
        else:
            assert 0 < v < 100, r  # error rates in %


def test_every_source_names_its_paper_table_and_line():
    for r in _rows():
        m = CITE.match(r["source"])
        assert m, r
        paper, number, fname, _, _ = m.groups()
        assert fname == FILES[paper], r
        if r["table"].startswith("gm_"):
            assert (paper, int(number)) == (GM, GM_TABLES[r["table"]]), r
        else:
            assert (paper, r["table"]) == (PM, f"table{number}"), r


def test_accuracies_are_converted_to_errors():
    converted = 0
    for r in _rows():
        assert Decimal(r["value"]) == _expected(r), r
        if ACC.search(r["source"]):
            assert "value = 100 - " in r["source"], r
            converted += 1
    # Tables 3, 6, 7 and 8 print accuracies: 108 + 24 + 18 + 30 cells
    assert converted == 180


def test_counts_per_table():
    count: dict[str, int] = {}
    for r in _rows():
        count[r["table"]] = count.get(r["table"], 0) + 1
    assert {t: count[t] for t in GM_TABLES} == {
        "gm_table1": 19,  # 10 methods x Top-1 / Top-5, Co-Mixup's Top-5 printed as -
        "gm_table1_tiny": 19,
        "gm_overhead": 30,  # 10 methods x batch 16 / 32 / 64
        "gm_table3": 72,  # 9 methods x ResNet-50 / DenseNet-121 x 4 data sets
        "gm_table3_cub": 9,  # the ResNet-18 column, run by the gm_table3_<data set> configs
        "gm_table3_cars": 9,
        "gm_table3_aircraft": 9,
        "gm_table3_caltech": 9,
        "gm_table4": 16,  # 8 methods x Top-1 / corruption
        "gm_table5": 16,  # 8 methods x clean Top-1 / Top-5
        "gm_table5_corrupted": 14,  # 7 methods x 2 columns, AugMix's printed as -
        "gm_table6": 24,  # 8 methods x 10 / 20 / 50 %
        "gm_table7": 9,  # 9 methods, test set
        "gm_table7_val": 9,  # 9 methods, validation set (not evaluated by a run of ours)
        "gm_table8_tiny": 10,  # 5 methods x greedy / random
        "gm_table8_cub": 10,
        "gm_table8_aircraft": 10,
    }


def test_rows_we_run_are_compared_on_metrics_we_measure():
    """A row that runs gets our number on every metric the CSV gives it (the notebooks assert
    it), so those metrics are ones a run measures; other columns go to tables of their own."""
    tables = {r["table"] for r in _rows()}
    for table in tables:
        try:
            rows = table_configs(table)
        except ValueError:
            continue  # no configs: the paper's numbers only
        for r in paper_results(table):
            if r["row"] in rows:
                assert r["metric"] in RUN_METRICS, r


def test_the_two_papers_numbers_for_one_run_stay_apart():
    from puzzle_core.results import _paper_numbers, ours_vs_paper

    paper = _paper_numbers()
    # GuidedMixup Table 1 reprints Puzzle Mix Table 4, with two Top-5 cells differing
    assert paper["table4"]["puzzlemix"]["top5_err"] == 18.95
    assert paper["gm_table1_tiny"]["puzzlemix"]["top5_err"] == 24.48
    assert paper["table4"]["cutmix"]["top5_err"] == 24.48
    assert paper["gm_table1_tiny"]["cutmix"]["top5_err"] == 26.41
    assert paper["table6"]["puzzlemix_aug"]["top1_err"] == 16.50
    assert paper["gm_table4"]["puzzlemix_aug"]["top1_err"] == 16.60
    assert paper["table5"]["vanilla"]["top1_err"] == 24.31
    assert paper["gm_table5"]["vanilla"]["top1_err"] == 24.03
    pm = ours_vs_paper("table4", {}).set_index(["row", "metric"])
    assert pm.loc[("puzzlemix", "top5_err"), "paper"] == 18.95
    gm = ours_vs_paper("gm_table1_tiny", {}).set_index(["row", "metric"])
    assert gm.loc[("puzzlemix", "top5_err"), "paper"] == 24.48
    assert gm.index.is_unique and pm.index.is_unique


# Lines as the text files print them (tables lose their layout; the line numbers are the
# files'): {(file, line): text}
PRINTED = {
    (FILES[PM], 997): "Manifold† 18.04 - -",
    (FILES[PM], 1055): "Manifold† 41.30 26.41 -",
    (FILES[PM], 1170): "Vanilla 21.14 6.33",
    (FILES[PM], 1172): "Puzzle Mix 15.95 3.92",
    (FILES[GM], 457): "CutMix 23.20 8.09 43.33 26.41",
    (FILES[GM], 462): "PuzzleMix 19.62 5.85 36.52 24.48",
    (FILES[GM], 519): "SaliencyMix 353.3 701.8 923.3",
    (FILES[GM], 569): "Guided-AP 74.47 87.71 81.58 91.32 77.08 90.27 84.32 91.49 77.52 90.47 "
    "84.09 91.94",
    (FILES[GM], 580): "PuzzleMix (Aug) 16.60 29.91",
    (FILES[GM], 626): "AugMix† 23.25 6.70 - -",
    (FILES[GM], 666): "Vanilla 40.10 (0.70) 55.56 (0.21) 70.16 (0.17)",
    (FILES[GM], 735): "Guided-AP 74.74 (0.40) 70.44 (0.69)",
    (FILES[GM], 746): "CutMix 57.81(+1.14) 64.41(+0.77) 80.09(+0.19)",
}
SPOT = [  # (table, row, metric, value, file, line)
    ("table2", "manifold_mixup_dagger", "top1_err", 18.04, FILES[PM], 997),
    ("table4", "manifold_mixup_dagger", "top1_err", 41.30, FILES[PM], 1055),
    ("table4", "manifold_mixup_dagger", "top5_err", 26.41, FILES[PM], 1055),
    ("table7", "vanilla", "top1_err", 21.14, FILES[PM], 1170),
    ("table7", "vanilla", "top5_err", 6.33, FILES[PM], 1170),
    ("table7", "puzzlemix", "top1_err", 15.95, FILES[PM], 1172),
    ("table7", "puzzlemix", "top5_err", 3.92, FILES[PM], 1172),
    ("gm_table1", "cutmix", "top5_err", 8.09, FILES[GM], 457),
    ("gm_table1_tiny", "cutmix", "top5_err", 26.41, FILES[GM], 457),
    ("gm_table1_tiny", "puzzlemix", "top1_err", 36.52, FILES[GM], 462),
    ("gm_overhead", "saliencymix", "overhead_pct_bs64", 923.3, FILES[GM], 519),
    ("gm_table3", "guided_ap", "aircraft_densenet121_top1_err", 100 - 84.09, FILES[GM], 569),
    ("gm_table3_cub", "guided_ap", "top1_err", 100 - 74.47, FILES[GM], 569),
    ("gm_table4", "puzzlemix_aug", "top1_err", 16.60, FILES[GM], 580),
    ("gm_table5", "augmix", "top5_err", 6.70, FILES[GM], 626),
    ("gm_table6", "vanilla_10", "top1_err", 100 - 40.10, FILES[GM], 666),
    ("gm_table6", "vanilla_50", "top1_err", 100 - 70.16, FILES[GM], 666),
    ("gm_table7_val", "guided_ap", "top1_err", 100 - 74.74, FILES[GM], 735),
    ("gm_table7", "guided_ap", "top1_err", 100 - 70.44, FILES[GM], 735),
    ("gm_table8_tiny", "cutmix_greedy", "top1_err", 100 - 57.81, FILES[GM], 746),
    ("gm_table8_tiny", "cutmix_random", "top1_err", 100 - (57.81 - 1.14), FILES[GM], 746),
    ("gm_table8_aircraft", "cutmix_random", "top1_err", 100 - (80.09 - 0.19), FILES[GM], 746),
]


def _cell(table: str, row: str, metric: str) -> dict[str, str]:
    (hit,) = [r for r in _rows() if (r["table"], r["row"], r["metric"]) == (table, row, metric)]
    return hit


@pytest.mark.parametrize("table,row,metric,value,fname,line", SPOT)
def test_spot_checks_against_printed_lines(table, row, metric, value, fname, line):
    r = _cell(table, row, metric)
    assert float(r["value"]) == pytest.approx(value, abs=1e-9)
    assert r["source"].endswith(f"{fname} l.{line}") or f"{fname} l.{line}:" in r["source"]
    tokens = re.findall(r"\d+\.\d+", PRINTED[(fname, line)])
    assert all(p in tokens for p in _printed(r)), (r, PRINTED[(fname, line)])


def test_cells_printed_as_a_dash_have_no_row():
    keys = {(r["table"], r["row"], r["metric"]) for r in _rows()}
    for dash in [
        ("table2", "manifold_mixup_dagger", "top5_err"),
        ("table2", "manifold_mixup_dagger", "fgsm_err"),
        ("table4", "manifold_mixup_dagger", "fgsm_err"),
        ("gm_table1", "comixup", "top5_err"),
        ("gm_table1_tiny", "comixup", "top5_err"),
        ("gm_table5_corrupted", "augmix", "gaussian_noise_err"),
        ("gm_table5_corrupted", "augmix", "random_replacement_err"),
    ]:
        assert dash not in keys


def _papers_dir() -> Path | None:
    """The papers' text files: $PUZZLE_PAPERS, else shared/papers in or beside the checkout."""
    env = os.environ.get("PUZZLE_PAPERS")
    for d in (
        [Path(env)] if env else [ROOT / "shared" / "papers", ROOT.parent / "shared" / "papers"]
    ):
        if all((d / f).is_file() for f in FILES.values()):
            return d
    return None


@pytest.mark.skipif(_papers_dir() is None, reason="the papers' text files are not here")
def test_every_number_is_on_the_line_it_cites():
    d = _papers_dir()
    assert d is not None
    text = {f: (d / f).read_text().split("\n") for f in FILES.values()}
    for key, printed in PRINTED.items():
        assert text[key[0]][key[1] - 1].strip() == printed, key
    for r in _rows():
        _, _, fname, line, _ = CITE.match(r["source"]).groups()
        tokens = re.findall(r"\d+\.\d+", text[fname][int(line) - 1])
        assert all(p in tokens for p in _printed(r)), (r, text[fname][int(line) - 1])
