"""GuidedMixup's Tables 3, 5 and 7 through the reproduction driver: without their data sets the
`mini` profile says that they cannot be reproduced instead of showing numbers."""

from puzzle_core.reproduce import NOTEBOOKS, PROFILE_NOTEBOOKS, run_notebooks


def test_gm_tables_without_their_files_cannot_be_reproduced_at_mini(tmp_path):
    empty = tmp_path / "empty"
    status = run_notebooks(
        "mini", run_root=tmp_path, data_root=str(empty), only=["gm_table7", "gm_table3"]
    )
    assert {v["status"] for v in status.values()} == {"ran"}
    report = (tmp_path / "mini" / "report.md").read_text()
    t7 = report.split("## gm_table7\n")[1].split("\n## ")[0]
    assert "cannot be reproduced at this profile: flowers102 not found" in t7
    t3 = report.split("## gm_table3\n")[1].split("\n## ")[0]
    assert "cannot be reproduced at this profile: cub200 not found" in t3
    for ds, name in (("cub", "cub200"), ("cars", "stanford_cars"), ("caltech", "caltech101")):
        why = (tmp_path / "mini" / f"gm_table3_{ds}" / "unavailable.txt").read_text()
        assert why.startswith(f"{name} not found")
    assert not list((tmp_path / "mini").glob("runs/*"))  # nothing trained
    assert {"gm_table3", "gm_table5", "gm_table7"} <= set(NOTEBOOKS)
    assert not {"gm_table3", "gm_table5", "gm_table7"} & set(PROFILE_NOTEBOOKS["small"])
