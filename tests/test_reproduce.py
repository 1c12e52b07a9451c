"""The reproduction driver on a subset: notebooks run through papermill, the report has every
row of the tables that ran, and a second call skips finished work."""

import pytest

from puzzle_core.reproduce import NOTEBOOKS, run_notebooks


def test_reproduce_a_subset_then_resume(tmp_path):
    lines = []
    status = run_notebooks(
        "smoke", run_root=tmp_path, only=["table7", "transport"], log=lines.append
    )
    assert {v["status"] for v in status.values()} == {"ran"}
    base = tmp_path / "smoke"
    for name in ("table7", "transport"):
        assert (base / name / f"{name}.ipynb").is_file() and (base / name / "done.json").is_file()
    report = (base / "report.md").read_text()
    assert (base / "report.html").is_file()
    section = report.split("## table7")[1].split("## ")[0]
    for row in ("binary", "mask_only"):
        assert f"| {row} | top1_err |" in section and f"| {row} | top5_err |" in section
    assert "not run at this profile" in report.split("## table3")[1].split("## ")[0]
    assert "profile: **smoke**" in report and "synthetic" in report
    claims = report.split("## Claims")[1]
    assert "puzzlemix has lower top1_err than binary (table7)" in claims
    assert "held at smoke scale" in claims or "did not hold at smoke scale" in claims
    stamp = (base / "table7" / "binary" / "results.json").stat().st_mtime_ns

    again = run_notebooks(
        "smoke", run_root=tmp_path, only=["table7", "transport"], log=lines.append
    )
    assert {v["status"] for v in again.values()} == {"skipped"}
    assert (base / "table7" / "binary" / "results.json").stat().st_mtime_ns == stamp
    assert any("skipped" in line for line in lines) and any("report:" in line for line in lines)
    # a table whose data set is absent says so instead of showing numbers
    run_notebooks("mini", run_root=tmp_path, data_root=str(tmp_path / "empty"), only=["table5"])
    mini = (tmp_path / "mini" / "report.md").read_text().split("## table5")[1].split("## ")[0]
    assert "cannot be reproduced at this profile: imagenet not found" in mini
    with pytest.raises(ValueError, match="only"):
        run_notebooks("smoke", run_root=tmp_path, only=["table99"])
    assert "table2" in NOTEBOOKS and "figure2" in NOTEBOOKS


def test_claim_verdicts_are_computed_from_the_numbers():
    from puzzle_core.report import check_claims, ours_vs_paper

    def res(top1, fgsm=50.0):
        return {
            "top1_err": top1,
            "top5_err": 1.0,
            "fgsm_err@8/255": fgsm,
            "profile": "smoke",
            "dataset": "synthetic",
            "model": "resnet8",
        }

    found = {"table3": {"puzzlemix": res(30.0), "cutmix": res(35.0), "vanilla": res(25.0)}}
    claims = check_claims(found, "smoke").set_index("claim")
    assert claims.loc["table3: puzzlemix has lower top1_err than cutmix", "verdict"] == (
        "held at smoke scale"
    )
    assert claims.loc["table3: puzzlemix has lower top1_err than vanilla", "verdict"] == (
        "did not hold at smoke scale"
    )
    assert claims.loc["table3: puzzlemix has lower top1_err than augmix", "verdict"] == "not run"
    assert claims["paper holds"].all()  # the claims are the paper's own orderings
    table = ours_vs_paper("table3", found["table3"]).set_index(["row", "metric"])
    assert table.loc[("cutmix", "fgsm_err"), "ours"] == 50.0
    assert table.loc[("cutmix", "top1_err"), "ours - paper"] == pytest.approx(35.0 - 23.20)
    assert table.loc[("augmix", "top1_err"), "ours from"] == "not run"
