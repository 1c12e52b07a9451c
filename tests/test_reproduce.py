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
    with pytest.raises(ValueError, match="only"):
        run_notebooks("smoke", run_root=tmp_path, only=["table99"])
    assert "table2" in NOTEBOOKS and "figure2" in NOTEBOOKS
