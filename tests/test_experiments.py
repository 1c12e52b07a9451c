"""The configs that pin every paper run, checked against the documented hyper-parameters
(docs/reference-implementation.md §1c), and the paper numbers they are compared with."""

import csv

import pytest
import yaml
from conftest import ROOT

from puzzle_core.run import TrainConfig
from puzzle_core.run.step import build_mixer

CONFIGS = sorted((ROOT / "experiments" / "configs").glob("*/*.yaml"))
PM_TABLES = ("table2", "table3", "table4", "table6", "table7", "table8")
# table -> (model, dataset, full epochs/lr/schedule, half epochs/lr/schedule)
RECIPES = {
    "table2": ("wrn28_10", "cifar100", (400, 0.1, [200, 300]), (200, 0.2, [120, 170])),
    "table3": ("preactresnet18", "cifar100", (1200, 0.1, [400, 800]), (600, 0.2, [350, 500])),
    "table4": ("preactresnet18", "tiny_imagenet", (1200, 0.2, [600, 900]), (600, 0.2, [300, 450])),
    "table6": ("wrn28_10", "cifar100", (400, 0.1, [200, 300]), None),
    "table7": ("wrn28_10", "cifar100", (400, 0.1, [200, 300]), None),
    "table8": ("wrn28_10", "cifar100", (400, 0.1, [200, 300]), None),
}
ALPHA = {
    ("cifar100", "input_mixup"): 1.0,
    ("cifar100", "manifold_mixup"): 2.0,
    ("cifar100", "cutmix"): 1.0,
    ("tiny_imagenet", "input_mixup"): 0.2,
    ("tiny_imagenet", "manifold_mixup"): 0.2,
    ("tiny_imagenet", "cutmix"): 0.2,
}


def test_there_is_a_config_for_every_row():
    names = {(p.parent.name, p.stem) for p in CONFIGS}
    # Table 7 lists Table 2's Puzzle Mix and vanilla rows again (the same configs: one run each)
    assert len([n for n in names if n[0] in PM_TABLES]) == 38
    for row in ("puzzlemix", "vanilla"):
        same = [
            (ROOT / "experiments" / "configs" / t / f"{row}.yaml").read_text().split("\n", 1)[1]
            for t in ("table2", "table7")
        ]
        assert same[0] == same[1], row
    assert len([n for n in names if n[0] == "table5"]) == 6
    assert len([n for n in names if n[0] in ("gm_table1", "gm_table1_tiny", "gm_table4")]) == 6
    assert len([n for n in names if n[0] == "gm_table6"]) == 24  # 8 methods x 10/20/50 %
    for ds in ("cub", "cars", "aircraft", "caltech"):  # 9 methods per data set, ResNet-18
        assert len([n for n in names if n[0] == f"gm_table3_{ds}"]) == 9
    assert len([n for n in names if n[0] == "gm_table5"]) == 8
    assert len([n for n in names if n[0] == "gm_table7"]) == 9
    for ds in ("tiny", "cub", "aircraft"):  # 5 methods x random/greedy per data set
        assert len([n for n in names if n[0] == f"gm_table8_{ds}"]) == 10
    assert not [n for n in names if n[0] == "gm_table8"]  # not the paper's data sets: gone
    for table in ("table2", "table3", "table4"):
        for row in (
            "vanilla",
            "input_mixup",
            "manifold_mixup",
            "cutmix",
            "augmix",
            "puzzlemix",
            "puzzlemix_half",
            "puzzlemix_adv",
            "puzzlemix_half_adv",
        ):
            assert (table, row) in names


@pytest.mark.parametrize(
    "path",
    [p for p in CONFIGS if p.parent.name in PM_TABLES],
    ids=lambda p: f"{p.parent.name}/{p.stem}",
)
def test_config_matches_the_documented_recipe(path):
    fields = yaml.safe_load(path.read_text(encoding="utf-8"))
    cfg = TrainConfig(**fields)
    model, dataset, full, half = RECIPES[path.parent.name]
    assert (cfg.model, cfg.dataset, cfg.batch_size) == (model, dataset, 100)
    assert (cfg.momentum, cfg.nesterov, cfg.weight_decay, cfg.loss) == (
        0.9,
        True,
        1e-4,
        "bce_softmax",
    )
    recipe = half if "half" in path.stem else full
    assert (cfg.epochs, cfg.lr, list(cfg.schedule)) == recipe
    params = cfg.method_params
    if (dataset, cfg.method) in ALPHA:
        assert params["alpha"] == ALPHA[(dataset, cfg.method)]
    if cfg.method.startswith("puzzlemix"):
        assert params["t_size"] == (-1 if dataset == "tiny_imagenet" else 4)
        assert params.get("clean_lam", 0.0) == (1.0 if dataset == "tiny_imagenet" else 0.0)
        if "adv" in cfg.method or path.parent.name == "table8":
            assert params["adv_p"] == (0.15 if dataset == "tiny_imagenet" else 0.1)
            assert params["adv_eps"] == pytest.approx(10 / 255)
    table = path.parent.name
    if table in ("table2", "table3", "table4", "table8"):  # FGSM columns: 8/255, Tiny 4/255
        assert cfg.fgsm_eps == ((4 if table == "table4" else 8) / 255,)
    if table == "table8":  # PGD column: 7 steps of 2/255 in the 8/255 ball, random start
        assert cfg.pgd == (8 / 255, 2 / 255, 7.0)
    classes = 200 if dataset == "tiny_imagenet" else 100
    mixer = build_mixer(cfg, classes, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # builds from names
    assert mixer is not None


def test_paper_numbers_cover_every_config_row():
    with open(ROOT / "experiments" / "paper_results.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"table", "row", "metric", "value", "source"} <= set(rows[0])
    reported = {(r["table"], r["row"]) for r in rows}
    for p in CONFIGS:
        # GuidedMixup Table 8 reports Tiny-ImageNet / CUB / Aircraft (gm_table8_tiny, ...), not
        # the CIFAR-100 runs of gm_table8, and has no Input mixup row
        if p.parent.name != "gm_table8" and not p.parent.name.startswith("gm_table3_"):
            assert (p.parent.name, p.stem) in reported, p
    values = {(r["table"], r["row"], r["metric"]): float(r["value"]) for r in rows}
    assert values[("table3", "puzzlemix_adv", "top1_err")] == 19.84  # the shipped log's median
    assert all(0 <= v <= 100 for (_, _, m), v in values.items() if m.endswith("_err"))


def test_profiles_scale_a_row_honestly(tmp_path):
    from puzzle_core.experiments import table_configs
    from puzzle_core.run import PROFILES, apply_profile, load_config

    rows = table_configs("table3")
    full, half = load_config(rows["puzzlemix"]), load_config(rows["puzzlemix_half"])
    smoke = apply_profile(full, "smoke")
    assert (smoke.profile, smoke.dataset, smoke.model, smoke.epochs) == (
        "smoke",
        "synthetic",
        "resnet8",
        2,
    )
    assert smoke.method_params == full.method_params and smoke.lr == full.lr
    assert apply_profile(half, "smoke").epochs == 1  # half rows stay half as long
    mini = load_config(rows["puzzlemix"], "mini", data_root=str(tmp_path))  # no CIFAR here
    assert (mini.dataset, mini.epochs, mini.schedule, mini.median_last) == (
        "fashion_mnist",
        10,
        (3, 7),
        3,
    )
    mini_half = load_config(rows["puzzlemix_half"], "mini", data_root=str(tmp_path))
    assert (mini_half.epochs, mini_half.schedule, mini_half.lr) == (5, (3, 4), 0.2)
    (tmp_path / "cifar-100-python").mkdir()
    (tmp_path / "cifar-100-python" / "train").write_bytes(b"")
    assert load_config(rows["vanilla"], "mini", data_root=str(tmp_path)).dataset == "cifar100"
    assert apply_profile(full, "paper") == full
    tiny = apply_profile(load_config(table_configs("table4")["vanilla"]), "smoke")
    assert (tiny.dataset, tiny.image_size) == ("synthetic", 64)
    t6 = load_config(table_configs("table6")["augmix"])
    assert t6.corruption == "published"
    assert apply_profile(t6, "smoke").corruption == "generate"
    assert set(PROFILES) == {"smoke", "small", "fmnist", "mini", "paper"}
    # small: the documented deviations (CE, half lr, late decays), 3 seeds; half rows stay half
    small = load_config(rows["vanilla"], "small")
    assert (small.loss, small.lr, small.epochs, small.schedule) == ("ce", 0.05, 16, (12, 15))
    assert (small.dataset, small.model, small.train_examples) == ("synthetic", "resnet8", 3000)
    small_half = load_config(rows["puzzlemix_half"], "small")
    assert (small_half.epochs, small_half.lr) == (8, 0.1)
    assert PROFILES["small"].seeds == (0, 1, 2) and PROFILES["smoke"].seeds == (0,)
    assert "augmix" in PROFILES["small"].skip_rows and PROFILES["small"].skip_reason
    with pytest.raises(ValueError, match="profile"):
        apply_profile(full, "huge")
    with pytest.raises(ValueError, match="unknown"):
        load_config(rows["vanilla"], epochs_typo=3)


def test_table5_configs_pin_the_fast_at_protocol():
    from puzzle_core.experiments import load_config, table_configs

    rows = table_configs("table5")
    assert set(rows) == {
        "vanilla",
        "input_mixup",
        "manifold_mixup",
        "cutmix",
        "augmix",
        "puzzlemix",
    }
    for path in rows.values():
        cfg = load_config(path)
        assert (cfg.model, cfg.dataset, cfg.epochs, cfg.loss) == ("resnet50", "imagenet", 100, "ce")
        assert (cfg.nesterov, cfg.bn_weight_decay) == (False, False)
        assert [p["start"] for p in cfg.phases] == [0, 15, 40]
        assert cfg.at_epoch(0).batch_size == 1024 and cfg.at_epoch(20).batch_size == 448
        assert cfg.at_epoch(20).image_size == 224 and cfg.phase_scale(20) == (0.087, 1.0)
        assert cfg.lr_knots[0] == (0, 0.5) and cfg.lr_knots[-1] == (100, 2e-5)
    pm = load_config(rows["puzzlemix"])
    p = pm.method_params
    assert (p["beta"], p["gamma"], p["eta"], p["neigh_size"], p["t_eps"]) == (1.5, 0.5, 0.2, 2, 0.8)
    assert pm.at_epoch(10).method_params["clean_lam"] == 1.0
    assert pm.at_epoch(50).method_params["clean_lam"] == 0.0
    build_mixer(pm.at_epoch(0), 1000, (0.5,) * 3, (0.5,) * 3)
    from puzzle_core.run.loop import _lr_at

    assert _lr_at(pm.lr_knots, 4) == pytest.approx(0.75)  # halfway 0.5 -> 1.0
    assert _lr_at(pm.lr_knots, 15) == pytest.approx(0.2)  # the jump at the phase change
    assert _lr_at(pm.lr_knots, 14.999) == pytest.approx(0.125, abs=1e-3)


@pytest.mark.parametrize("table", ["gm_table1", "gm_table1_tiny", "gm_table4"])
def test_guidedmixup_configs(table):
    from puzzle_core.experiments import load_config, table_configs

    rows = table_configs(table)
    assert set(rows) == {"guided_sr", "guided_ap"}
    for name, path in rows.items():
        cfg = load_config(path)
        assert cfg.method_params["mix_prob"] == (0.5 if name == "guided_sr" else 0.8)
        recipe = {
            "gm_table1": (1200, 0.1, (400, 800)),
            "gm_table1_tiny": (1200, 0.2, (600, 900)),
            "gm_table4": (400, 0.1, (200, 300)),
        }[table]
        assert (cfg.epochs, cfg.lr, cfg.schedule) == recipe
        assert build_mixer(cfg, 100, (0.5,) * 3, (0.5,) * 3).pairing == "greedy"
    assert (table == "gm_table4") == (load_config(rows["guided_sr"]).corruption == "published")


def test_guidedmixup_scarcity_and_pairing_configs():
    from puzzle_core.experiments import load_config, table_configs

    for row, path in table_configs("gm_table6").items():
        cfg = load_config(path)
        assert cfg.train_fraction == int(row.rsplit("_", 1)[1]) / 100
        assert load_config(path, "smoke").train_fraction == cfg.train_fraction  # kept by profiles
    for table in ("gm_table8_tiny", "gm_table8_cub", "gm_table8_aircraft"):
        for row, path in table_configs(table).items():
            cfg = load_config(path)
            assert cfg.method_params["pairing"] == row.rsplit("_", 1)[1]
            mixer = build_mixer(cfg, 100, (0.5,) * 3, (0.5,) * 3)
            pairing = getattr(mixer, "pairing", None) or mixer.config.pairing
            assert pairing == cfg.method_params["pairing"]


# GuidedMixup's tables as its text states them (guidedmixup-aaai2023.txt): data set, network,
# methods; the recipes the text leaves out come from its code (docs/baselines.md §8.4, §8.6)
GM_FGVC = ("cub200", "stanford_cars", "fgvc_aircraft", "caltech101")
GM_NINE = {
    "vanilla",
    "input_mixup",
    "cutmix",
    "saliencymix",
    "guided_sr",
    "snapmix",
    "puzzlemix",
    "comixup",
    "guided_ap",
}


def _first_line(path) -> str:
    return path.read_text(encoding="utf-8").split("\n", 1)[0]


def _fgvc_recipe(cfg) -> None:
    """GuidedMixup's FGVC trainer (docs/baselines.md §8.6)."""
    assert (cfg.model, cfg.image_size, cfg.batch_size, cfg.loss) == ("resnet18", 224, 16, "ce")
    assert (cfg.epochs, cfg.lr, cfg.schedule, cfg.weight_decay) == (300, 0.01, (150, 225), 5e-4)
    assert (cfg.momentum, cfg.nesterov, cfg.train_fraction) == (0.9, True, None)
    p = cfg.method_params
    if cfg.method.startswith("guided"):
        assert p["mix_prob"] == (0.5 if cfg.method == "guided_sr" else 0.8)
    if cfg.method in ("input_mixup", "cutmix", "saliencymix", "snapmix"):
        assert p["alpha"] == 1.0
    if cfg.method == "puzzlemix":
        assert (p["t_size"], p["clean_lam"]) == (-1, 1.0)
        assert "loss" not in p  # the run's loss (cfg.loss above), not a Puzzle Mix option


def test_gm_table3_fine_grained_configs():
    from puzzle_core.experiments import load_config, table_configs

    for short, dataset in zip(("cub", "cars", "aircraft", "caltech"), GM_FGVC, strict=True):
        rows = table_configs(f"gm_table3_{short}")
        assert set(rows) == GM_NINE
        for name, path in rows.items():
            assert _first_line(path).startswith(
                f"# gm_table3_{short} row {name}: GuidedMixup Table 3 ("
            )
            cfg = load_config(path)
            assert (cfg.dataset, cfg.method) == (dataset, name)
            _fgvc_recipe(cfg)
            # Table 3 pairs the baselines randomly, GuidedMixup greedily (Table 8 adds the rest)
            if "pairing" in cfg.method_params:
                want = "greedy" if name.startswith("guided") else "random"
                assert cfg.method_params["pairing"] == want
            build_mixer(cfg, 200, (0.5,) * 3, (0.5,) * 3)
            smoke = load_config(path, "smoke")
            assert (smoke.dataset, smoke.image_size, smoke.model) == ("synthetic", 64, "resnet8")
            assert smoke.epochs == 2 and smoke.method_params == cfg.method_params
    # the smoke stand-in is one data set: each method is one run for the four tables
    from puzzle_core.run.rundir import identity

    same = {
        identity(load_config(table_configs(f"gm_table3_{s}")["cutmix"], "smoke").to_dict())
        for s in ("cub", "cars", "aircraft", "caltech")
    }
    assert len(same) == 1


def test_gm_table5_imagenet_configs():
    from puzzle_core.experiments import load_config, table_configs

    rows = table_configs("gm_table5")
    pm = table_configs("table5")
    assert set(rows) == {
        "vanilla",
        "input_mixup",
        "cutmix",
        "augmix",
        "guided_sr",
        "puzzlemix",
        "comixup",
        "guided_ap",
    }
    for name, path in rows.items():
        assert _first_line(path).startswith(f"# gm_table5 row {name}: GuidedMixup Table 5 (")
        cfg = load_config(path)
        assert (cfg.model, cfg.dataset, cfg.epochs) == ("resnet50", "imagenet", 100)
        if name in pm:  # "All the results are from PuzzleMix" (l.635-637): the same run
            assert cfg == load_config(pm[name])
        else:  # the same protocol as Puzzle Mix Table 5
            ref = load_config(pm["vanilla"])
            for f in ("lr_knots", "phases", "batch_size", "loss", "nesterov", "bn_weight_decay"):
                assert getattr(cfg, f) == getattr(ref, f), f
        assert cfg.corruption == ""  # the corrupted-ImageNet columns are not evaluated here
        build_mixer(cfg.at_epoch(0), 1000, (0.5,) * 3, (0.5,) * 3)
    assert load_config(rows["guided_ap"]).method_params["mix_prob"] == 0.8
    assert load_config(rows["guided_ap"], "smoke").dataset == "synthetic"


def test_gm_table6_scarcity_on_wrn28_10():
    from puzzle_core.experiments import load_config, table_configs

    rows = table_configs("gm_table6")
    methods = {r.rsplit("_", 1)[0] for r in rows}
    assert methods == {
        "vanilla",
        "input_mixup",
        "manifold_mixup",
        "cutmix",
        "guided_sr",
        "puzzlemix",
        "comixup",
        "guided_ap",
    }
    assert {r.rsplit("_", 1)[1] for r in rows} == {"10", "20", "50"}
    for name, path in rows.items():
        assert _first_line(path).startswith(f"# gm_table6 row {name}: GuidedMixup Table 6 (")
        cfg = load_config(path)
        assert (cfg.model, cfg.dataset, cfg.batch_size) == ("wrn28_10", "cifar100", 100)
        assert (cfg.epochs, cfg.lr, cfg.schedule) == (400, 0.1, (200, 300))  # PM Table 2's WRN
        build_mixer(cfg, 100, (0.5,) * 3, (0.5,) * 3)


def test_gm_table7_flowers_configs():
    from puzzle_core.experiments import load_config, table_configs

    rows = table_configs("gm_table7")
    assert set(rows) == GM_NINE
    for name, path in rows.items():
        assert _first_line(path).startswith(f"# gm_table7 row {name}: GuidedMixup Table 7 (")
        cfg = load_config(path)
        assert cfg.dataset == "flowers102"  # its own 10 images per class: no train_fraction
        _fgvc_recipe(cfg)
        build_mixer(cfg, 102, (0.5,) * 3, (0.5,) * 3)


def test_gm_table8_configs_share_table3s_runs():
    from puzzle_core.experiments import load_config, table_configs

    for short in ("cub", "aircraft"):
        t3 = table_configs(f"gm_table3_{short}")
        for name, path in table_configs(f"gm_table8_{short}").items():
            assert _first_line(path).startswith(
                f"# gm_table8_{short} row {name}: GuidedMixup Table 8 ("
            )
            cfg = load_config(path)
            _fgvc_recipe(cfg)
            method, pairing = name.rsplit("_", 1)
            ref = load_config(t3[method])
            if ref.method_params["pairing"] == pairing:  # the Table reprints Table 3's number
                assert cfg == ref
    for path in table_configs("gm_table8_tiny").values():
        cfg = load_config(path)
        assert (cfg.model, cfg.dataset, cfg.image_size) == ("preactresnet18", "tiny_imagenet", 64)
        assert (cfg.epochs, cfg.lr, cfg.schedule, cfg.batch_size) == (1200, 0.2, (600, 900), 100)
        if cfg.method == "cutmix":
            assert cfg.method_params["alpha"] == 0.2  # PM's Tiny-ImageNet CutMix row


def test_paper_seeds_apply_at_the_paper_profile_only(monkeypatch, tmp_path):
    from puzzle_core import experiments

    seen = []
    monkeypatch.setattr(experiments, "missing_data", lambda *a: None)
    monkeypatch.setattr(experiments, "run_table", lambda *a, **k: seen.append(k["seeds"]))
    for profile in ("smoke", "paper"):
        experiments.train_table("gm_table6", profile, tmp_path, tmp_path)
    experiments.train_table("gm_table6", "paper", tmp_path, tmp_path, seeds=[5])
    experiments.train_table("table3", "paper", tmp_path, tmp_path)
    assert seen == [None, [0, 1, 2], [5], None]
    assert experiments.PAPER_SEEDS["gm_table7"] == (0, 1, 2)
