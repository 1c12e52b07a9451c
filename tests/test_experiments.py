"""The configs that pin every paper run, checked against the documented hyper-parameters
(reference-implementation notes 1c), and the paper numbers they are compared with."""

import csv

import pytest
import yaml
from conftest import ROOT

from puzzle_core.train import TrainConfig, build_mixer

CONFIGS = sorted((ROOT / "experiments" / "configs").glob("*/*.yaml"))
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
    assert len(names) == 36
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


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_config_matches_the_documented_recipe(path):
    fields = yaml.safe_load(path.read_text())
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
        assert (p.parent.name, p.stem) in reported, p
    values = {(r["table"], r["row"], r["metric"]): float(r["value"]) for r in rows}
    assert values[("table3", "puzzlemix_adv", "top1_err")] == 19.84  # the shipped log's median
    assert all(0 <= v <= 100 for v in values.values())


def test_profiles_scale_a_row_honestly(tmp_path):
    from puzzle_core.experiments import PROFILES, apply_profile, load_config, table_configs

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
    assert set(PROFILES) == {"smoke", "mini", "paper"}
    with pytest.raises(ValueError, match="profile"):
        apply_profile(full, "huge")
    with pytest.raises(ValueError, match="unknown"):
        load_config(rows["vanilla"], epochs_typo=3)
