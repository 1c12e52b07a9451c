"""The reproduction driver on a subset: notebooks run through papermill, the report has every
row of the tables that ran, and a second call skips finished work."""

import json

import pytest

from puzzle_core.experiments import table_index
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
    page = (base / "report.html").read_text()
    assert "data:image/png;base64," in page and "<img" in page  # one self-contained file
    section = report.split("## table7")[1].split("\n## ")[0]
    for row in ("binary", "mask_only"):
        assert f"| {row} | top1_err |" in section and f"| {row} | top5_err |" in section
    assert "not run at this profile" in report.split("## table3")[1].split("\n## ")[0]
    assert "profile: **smoke**" in report and "synthetic" in report
    claims = report.split("## Claims")[1].split("\n## ")[0]
    line = next(x for x in claims.splitlines() if x.startswith("| t7_binary |"))
    # smoke models sit at chance: the verdict says so, with the reason next to it
    assert "| untestable |" in line and "chance" in line
    assert "Table 7 shows that Puzzle Mix with the binary label space" in line
    assert "tr.untestable" in page and "class='untestable'" in page
    binary = table_index(tmp_path, "smoke", "table7")["binary"][0]
    assert binary.parent == base / "runs"  # runs live at their address
    stamp = (binary / "results.json").stat().st_mtime_ns
    # publishing copies results, curves and the report, never checkpoints, with provenance
    from puzzle_core.publish import publish

    pub = publish("smoke", run_root=tmp_path, dest=tmp_path / "published")
    assert table_index(pub.parent, pub.name, "table7") == {
        row: {seed: pub / d.relative_to(base) for seed, d in by.items()}
        for row, by in table_index(tmp_path, "smoke", "table7").items()
    }
    assert (pub / binary.relative_to(base) / "metrics.jsonl").is_file()
    assert (pub / "report.html").is_file() and (pub / "transport" / "transport.csv").is_file()
    assert not list(pub.glob("**/checkpoint.pt"))
    from puzzle_core.experiments import ROOT

    for f in pub.glob("**/*.json"):  # no path of this checkout in a published record
        assert str(ROOT) not in f.read_text(), f
    record = json.loads((pub / "provenance.json").read_text())
    assert record["summed_training_seconds"] > 0 and set(record["notebook_wall_seconds"]) == {
        "table7",
        "transport",
    }

    again = run_notebooks(
        "smoke", run_root=tmp_path, only=["table7", "transport"], log=lines.append
    )
    assert {v["status"] for v in again.values()} == {"skipped"}
    assert (binary / "results.json").stat().st_mtime_ns == stamp
    assert any("skipped" in line for line in lines) and any("report:" in line for line in lines)
    # a table whose data set is absent says so instead of showing numbers
    run_notebooks("mini", run_root=tmp_path, data_root=str(tmp_path / "empty"), only=["table5"])
    mini = (tmp_path / "mini" / "report.md").read_text().split("## table5")[1].split("\n## ")[0]
    assert "cannot be reproduced at this profile: imagenet not found" in mini
    with pytest.raises(ValueError, match="only"):
        run_notebooks("smoke", run_root=tmp_path, only=["table99"])
    assert "table2" in NOTEBOOKS and "figure2" in NOTEBOOKS


def _res(top1, fgsm=50.0, seed=0, classes=10):
    return {
        "top1_err": top1,
        "top5_err": 1.0,
        "fgsm_err@8/255": fgsm,
        "profile": "small",
        "dataset": "synthetic",
        "model": "resnet8",
        "epochs": 12,
        "seed": seed,
        "num_classes": classes,
        "image_size": 32,
        "train_examples": 3000,
        "test_examples": 1000,
        "train_fraction": None,
    }


def _rows(**means):
    """{row: {seed: results}} with three seeds around each mean (+-0.5, shared seed effect)."""
    return {row: {s: _res(m + (s - 1) * 0.5, seed=s) for s in range(3)} for row, m in means.items()}


def test_claim_verdicts_are_computed_from_the_numbers():
    from puzzle_core.results import check_claims, ours_vs_paper

    found = {
        "table3": _rows(
            puzzlemix=30.0,
            puzzlemix_half=35.4,
            cutmix=35.0,
            vanilla=36.0,
            input_mixup=40.0,
            manifold_mixup=37.0,
        ),
        "table2": _rows(puzzlemix=88.0, vanilla=89.0),
    }
    found["table3"]["puzzlemix_half"][1]["top1_err"] = 33.0  # noise: the interval spans 0
    claims = check_claims(found, "small", floors={}).set_index("id")
    pm = claims.loc["t3_pm_top1"]
    assert pm["verdict"] == "held" and pm["worse (ours)"] == "cutmix"  # our best baseline
    assert "(manifold_mixup)" in pm["paper"] and pm["paper holds"]
    assert "paired over seeds 0,1,2" in pm["detail"]
    assert claims.loc["t3_half_top1", "verdict"] == "inconclusive"
    assert claims.loc["t2_pm_top1", "verdict"] == "untestable"  # both within 5 of 90
    assert claims.loc["t4_pm_top1", "verdict"] == "not run"
    found["table3"]["puzzlemix"] = {s: _res(40.0 + s, seed=s) for s in range(3)}
    claims = check_claims(found, "small", floors={}).set_index("id")
    assert claims.loc["t3_pm_top1", "verdict"] == "reversed"
    assert claims["paper holds"].dropna().all()  # the claims are the paper's own orderings
    assert set(claims["origin"]) == {"paper", "ours"}
    paper = claims[claims["origin"] == "paper"]
    assert paper["quote"].str.contains(r"\(l\.\d+").all()  # each cites its lines

    table = ours_vs_paper("table3", found["table3"]).set_index(["row", "metric"])
    assert table.loc[("cutmix", "fgsm_err"), "ours"] == 50.0
    assert table.loc[("cutmix", "top1_err"), "ours - paper"] == pytest.approx(35.0 - 23.20)
    assert table.loc[("cutmix", "top1_err"), "± 95 %"] == pytest.approx(
        4.3027 * 0.5 / 3**0.5, rel=1e-3
    )
    assert table.loc[("cutmix", "top1_err"), "seeds"] == 3
    assert table.loc[("augmix", "top1_err"), "ours from"] == "not run"
    at_chance = ours_vs_paper("table2", found["table2"]).set_index(["row", "metric"])
    assert at_chance.loc[("vanilla", "top1_err"), "at chance"]
    assert not table.loc[("cutmix", "top1_err"), "at chance"]


def test_single_runs_use_the_profile_noise_floor():
    from puzzle_core.results import check_claims
    from puzzle_core.verdicts import NoiseFloor

    found = {"table8": {"adv": {0: _res(30.0, fgsm=60.0)}, "nu0_nu1": {0: _res(31.0, fgsm=70.0)}}}
    floor = NoiseFloor("small", "fgsm_err", 1.5, 5, "table2/vanilla", "test")
    claims = check_claims(found, "small", floors={("small", "fgsm_err"): floor}).set_index("id")
    assert claims.loc["t8_nu_fgsm", "verdict"] == "held"
    assert "noise floor ±4.16" in claims.loc["t8_nu_fgsm", "detail"]
    assert claims.loc["t8_fgsm_top1", "verdict"] == "not run"
    none = check_claims(found, "small", floors={}).set_index("id")
    assert none.loc["t8_nu_fgsm", "verdict"] == "inconclusive"


def test_figure2_claims_from_per_image_samples():
    import numpy as np

    from puzzle_core.results import check_claims

    rng = np.random.default_rng(0)
    base = rng.normal(1.5, 0.3, 200)

    def method(shift):
        vals = (base + shift + rng.normal(0, 0.05, 200)).tolist()
        return {
            "loss": vals,
            "saliency_kept": vals,
            "top1": vals,
            "top2": vals,
            "object_kept": vals,
        }

    samples = {
        "classifier": {"top1_err": 20.0, "chance": 90.0},
        "methods": {"puzzlemix": method(-0.3), "input_mixup": method(0.0), "cutmix": method(0.0)},
    }
    claims = check_claims({}, "small", figure2=samples, floors={}).set_index("id")
    assert claims.loc["f2c_loss_cutmix", "verdict"] == "held"  # lower loss
    assert claims.loc["f2a_saliency_cutmix", "verdict"] == "reversed"  # lower saliency kept
    assert "paired bootstrap over 200 images" in claims.loc["f2c_loss_cutmix", "detail"]
    samples["classifier"]["top1_err"] = 88.0
    claims = check_claims({}, "small", figure2=samples, floors={}).set_index("id")
    assert claims.loc["f2c_loss_cutmix", "verdict"] == "untestable"
    assert claims.loc["ours_f2_objects_cutmix", "verdict"] == "reversed"  # ours: no chance rule


def test_noise_floor_is_measured_with_five_seeds_and_stored(tmp_path):
    from puzzle_core.noise_floor import measure_noise_floor
    from puzzle_core.verdicts import load_noise_floors

    with pytest.raises(ValueError, match="5 or more seeds"):
        measure_noise_floor("smoke", seeds=[0, 1])
    path = tmp_path / "floors.json"
    floors = measure_noise_floor(
        "smoke", "table7", "mask_only", seeds=[0, 1, 2, 3, 4], run_root=tmp_path, path=path
    )
    stored = load_noise_floors(path)
    assert {f.metric for f in floors} == {"top1_err", "top5_err"}
    top1 = stored[("smoke", "top1_err")]
    assert top1.seeds == 5 and top1.row == "table7/mask_only" and "commit" in top1.provenance
    assert top1.sd > 0  # five seeds of a real run do differ
    runs = table_index(tmp_path, "smoke", "table7")["mask_only"]
    assert sorted(runs) == [0, 1, 2, 3, 4] and all(
        (d / "results.json").is_file() for d in runs.values()
    )


def test_run_table_runs_every_seed_and_skips_the_profile_skip_rows(tmp_path):
    import dataclasses

    from puzzle_core.experiments import run_table
    from puzzle_core.run import PROFILES

    skip = ("binary", "puzzlemix", "vanilla")
    prof = dataclasses.replace(PROFILES["smoke"], skip_rows=skip, seeds=(0, 1))
    out = run_table("table7", prof, run_root=tmp_path, progress=False)
    assert set(out) == {"mask_only"} and set(out["mask_only"]) == {0, 1}
    assert [out["mask_only"][s]["seed"] for s in (0, 1)] == [0, 1]
    res = out["mask_only"][1]
    assert res["provenance"]["packages"]["torch"] and "commit" in res["provenance"]
    assert res["provenance"]["hardware"]["cpus"] >= 1
    index = table_index(tmp_path, "smoke", "table7")
    assert set(index) == {"mask_only"} and sorted(index["mask_only"]) == [0, 1]
    assert len(list((tmp_path / "smoke" / "runs").iterdir())) == 2
    # named rows run even when the profile skips them; seeds override the profile's
    named = run_table("table7", prof, run_root=tmp_path, rows=["binary"], seeds=[2])
    assert set(named["binary"]) == {2}
    with pytest.raises(ValueError, match="seeds"):
        run_table("table7", prof, run_root=tmp_path, seeds=[-1])


def test_live_progress_line_per_run_and_epoch(tmp_path):
    from puzzle_core.reproduce import RunWatcher

    run = tmp_path / "runs" / "puzzlemix-0123456789abcdef"
    run.mkdir(parents=True)
    for table in ("table2", "table7"):  # one run listed by two tables
        (tmp_path / table).mkdir()
        index = {"rows": {"puzzlemix": {"1": "runs/puzzlemix-0123456789abcdef"}}}
        (tmp_path / table / "runs.json").write_text(json.dumps(index))
    (run / "config.json").write_text(json.dumps({"epochs": 16, "seed": 1}))
    epoch = {"seconds": 12.0, "test_top1_err": 71.5}
    (run / "metrics.jsonl").write_text(json.dumps(epoch) + "\n")
    lines = []
    watcher = RunWatcher(tmp_path, lines.append)
    watcher.poll(report=False)  # what was there before is not news
    assert lines == []
    (run / "metrics.jsonl").write_text((json.dumps(epoch) + "\n") * 5)
    watcher.poll()
    watcher.poll()  # no new epoch: no new line
    assert lines == [
        "    table2 / puzzlemix, table7 / puzzlemix / seed 1: epoch 5/16, 12.0 s/epoch, top-1 err "
        "71.5 %, ETA 2.2 min"
    ]


def test_identical_runs_are_trained_once_and_shared_by_tables(tmp_path):
    import dataclasses

    from puzzle_core.experiments import run_table
    from puzzle_core.run import PROFILES

    prof = dataclasses.replace(PROFILES["smoke"], seeds=(0,))
    t2 = run_table("table2", prof, run_root=tmp_path, rows=["puzzlemix"], progress=False)
    runs = tmp_path / "smoke" / "runs"
    stamp = {d.name: (d / "results.json").stat().st_mtime_ns for d in runs.iterdir()}
    t7 = run_table("table7", prof, run_root=tmp_path, rows=["puzzlemix"], progress=False)
    assert t7 == t2  # read back, not retrained
    assert {d.name: (d / "results.json").stat().st_mtime_ns for d in runs.iterdir()} == stamp
    assert (
        table_index(tmp_path, "smoke", "table2")["puzzlemix"][0]
        == table_index(tmp_path, "smoke", "table7")["puzzlemix"][0]
    )
    from puzzle_core.results import collect

    found = collect(tmp_path, "smoke")
    assert found["table2"]["puzzlemix"] == found["table7"]["puzzlemix"]


def test_runs_of_the_earlier_layout_are_adopted_not_retrained(tmp_path):
    import dataclasses

    from puzzle_core.experiments import adopt_legacy_runs, run_address, run_table
    from puzzle_core.run import PROFILES, TrainConfig

    prof = dataclasses.replace(PROFILES["smoke"], seeds=(0,))
    first = run_table("table7", prof, run_root=tmp_path, rows=["binary"], progress=False)
    new = table_index(tmp_path, "smoke", "table7")["binary"][0]
    legacy = tmp_path / "smoke" / "table7" / "binary" / "seed0"  # where earlier versions kept it
    legacy.parent.mkdir(parents=True)
    new.rename(legacy)
    (tmp_path / "smoke" / "table7" / "runs.json").unlink()
    stamp = (legacy / "results.json").stat().st_mtime_ns
    assert adopt_legacy_runs(tmp_path, "smoke") == [new]
    cfg = TrainConfig(**json.loads((new / "config.json").read_text()))
    assert run_address(tmp_path, cfg) == new and not legacy.parent.exists()
    again = run_table("table7", prof, run_root=tmp_path, rows=["binary"], progress=False)
    assert again == first and (new / "results.json").stat().st_mtime_ns == stamp
