"""Writes the experiment notebooks (one per paper table / figure) into notebooks/.

Run by hand after editing (``python tools/make_experiment_notebooks.py``); the notebooks are
stored without outputs.  Every notebook is thin: parameters, calls into puzzle_core, a table.
"""

import nbformat as nbf
from _notebook import write_notebook

md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell

PARAMS = """profile = "smoke"   # smoke | mini | paper (puzzle_core.experiments.PROFILES)
data_root = "data"  # where real data sets live (CIFAR-100, Tiny-ImageNet, ImageNet)
device = "cpu"
jobs = 1            # training runs in parallel processes
run_root = ""       # default: experiments/runs
out_dir = ""        # this notebook's tables / figures (default: run_root/profile/<name>)
"""

SETUP = """from pathlib import Path

import pandas as pd
import torch

from puzzle_core.experiments import missing_data, run_root_default, run_table
from puzzle_core.report import check_claims, collect, ours_vs_paper

torch.set_num_threads(1)
root = Path(run_root) if run_root else run_root_default()
out = Path(out_dir) if out_dir else root / profile / NAME
out.mkdir(parents=True, exist_ok=True)
pd.set_option("display.width", 160)"""

TABLES = {
    "table2": (
        "Table 2: CIFAR-100, WRN-28-10",
        "Vanilla, Input mixup, Manifold mixup, CutMix, AugMix and Puzzle Mix with its half-"
        "length and adversarial variants; Top-1 / Top-5 error and FGSM error at 8/255.",
    ),
    "table3": (
        "Table 3: CIFAR-100, PreActResNet18",
        "The rows of Table 2 with PreActResNet18 (1,200 epochs in the paper).",
    ),
    "table4": (
        "Table 4: Tiny-ImageNet, PreActResNet18",
        "The same rows on Tiny-ImageNet (64 px, first convolution of stride 2); FGSM at "
        "4/255. At the smoke profile the 64 px synthetic-objects set stands in.",
    ),
    "table5": (
        "Table 5: ImageNet, ResNet-50",
        "The fast-AT three-phase protocol (batch / crop / clean_lam per phase, "
        "piecewise-linear learning rate). Runnable at `paper` scale where ImageNet exists; "
        "at the smoke profile the 64 px synthetic data exercises the code path, and at "
        "`mini` without ImageNet files it falls back to Fashion-MNIST.",
    ),
    "table6": (
        "Table 6: corruption robustness (CIFAR-100-C)",
        "Vanilla, AugMix, Puzzle Mix and Puzzle Mix on AugMix images; Top-1 and the "
        "corruption error (100 - mean accuracy over corruptions and severities). Where "
        "the published CIFAR-100-C files are absent (and always off CIFAR-100) the "
        "corrupted set is generated from the run's test set with imagecorruptions.",
    ),
    "table7": (
        "Table 7: ablation of the mixing (binary labels, mask only)",
        "Puzzle Mix with 2 labels and without transport; the full model is Table 2's "
        "Puzzle Mix row (its run is shared with the Table 2 notebook).",
    ),
    "table8": (
        "Table 8: ablation of the adversarial training",
        "Stochastic adversarial Puzzle Mix (adv), deterministic FGSM noise (fgsm) and "
        "the same noise decision for both inputs (nu0=nu1); Top-1, FGSM and PGD error.",
    ),
}


GM_TABLES = {
    "gm_table6": ("GuidedMixup Table 6: data scarcity",
                  "Vanilla, CutMix, Puzzle Mix and Guided-AP trained on 10 %, 20 % and 50 % of "
                  "each class (seeded, class-stratified, taken from the profile's training set). "
                  "GuidedMixup's numbers for this table are not in the project's notes: ours "
                  "only."),
    "gm_table8": ("GuidedMixup Table 8: pairing with other methods",
                  "Input mixup, CutMix, Puzzle Mix and Guided-SR with random pairing and with "
                  "GuidedMixup's greedy saliency-distance pairing. GuidedMixup's numbers for this "
                  "table are not in the project's notes: ours only."),
}
PIVOT = """top1 = pd.DataFrame({row: {"top1_err": r["top1_err"]} for row, r in results.items()}).T
top1["method"] = [r.rsplit("_", 1)[0] for r in top1.index]
top1["variant"] = [r.rsplit("_", 1)[1] for r in top1.index]
pivot = top1.pivot(index="method", columns="variant", values="top1_err")
pivot.to_csv(out / "top1_pivot.csv")
pivot.round(2)"""


def table_notebook(name: str, title: str, text: str, pivot: bool = False) -> None:
    extra = ""
    if name == "table7":
        extra = """
full = run_table("table2", profile, run_root=root, data_root=data_root, device=device,
                 rows=["puzzlemix"], jobs=1)
"""
    cells = [
        md(f"""# {"" if name.startswith("gm_") else "Puzzle Mix "}{title}

{text}

Every number below was computed by this notebook (or read back from its finished runs: a run
that has finished is skipped, an interrupted one resumes). Our numbers come from the profile in
the parameters cell: `smoke` and `mini` change data set, network and length, and each row says
which; the paper's numbers are full-scale CIFAR-100 / Tiny-ImageNet / ImageNet."""),
        code(PARAMS),
        code(f'NAME = "{name}"\n' + SETUP),
        md("## Training every row"),
        code(f"""missing = missing_data(NAME, profile, data_root)
if missing:  # say so instead of showing numbers
    print("cannot reproduce", NAME, "at this profile:", missing)
    (out / "unavailable.txt").write_text(missing)
    results = {{}}
else:
    (out / "unavailable.txt").unlink(missing_ok=True)
    results = run_table(NAME, profile, run_root=root, data_root=data_root, device=device,
                        jobs=jobs){extra}
columns = ["dataset", "model", "epochs", "top1_err", "top5_err", "seconds_per_epoch"]
pd.DataFrame(results).T[columns] if results else 'no runs'"""),
        md("## Ours beside the paper"),
        code("""table = ours_vs_paper(NAME, results)
table.to_csv(out / "ours_vs_paper.csv", index=False)
assert missing or table["ours"].notna().all(), "every row of the table has our number"
assert table["ours"].dropna().between(0, 100).all()
table"""),
        md("## The paper's claims on this table, checked on our numbers"),
        code("""claims = check_claims(collect(root, profile), profile)
mine = claims[claims["claim"].str.startswith(NAME + ":") | claims["claim"].str.contains(NAME)]
assert mine["paper holds"].all(), "every claim checked holds in the paper's own numbers"
mine"""),
    ]
    if pivot:
        cells += [md("## Top-1 error per method and variant"), code(PIVOT)]
    write_notebook(cells, f"notebooks/{name}.ipynb")


for name, (title, text) in TABLES.items():
    table_notebook(name, title, text)
for name, (title, text) in GM_TABLES.items():
    table_notebook(name, title, text, pivot=True)


# -- Figure 2 -------------------------------------------------------------------------------------
write_notebook(
    [
        md("""# Puzzle Mix Figure 2: statistics of mixed data on a fixed classifier

A vanilla classifier (Table 2's vanilla row at this profile; at `smoke` trained longer on more
images with cross-entropy — `smoke_classifier` — so that it is above chance) judges
the mixed examples of every input-space method: how much of the two sources' saliency is kept,
the total variation of the mixed images, the classifier's loss on them and whether its top-1 /
top-2 predictions are the mixed classes.  On the synthetic-objects data the ground-truth object
masks also tell how much of each *object* survives mixing and how far the mixed label is from
the visible object content — a measurement no paper had.  Definitions: `puzzle_core.mixstats`
(the paper's text for Figure 2 was not available; these definitions are the project's).
GuidedMixup runs with `mix_prob = 1` here so that every batch is mixed."""),
        code(PARAMS + """batches = 2          # test batches of 100 per method
# at smoke: a classifier above chance (the smoke profile's 2 epochs on 300 images are not)
smoke_classifier = {"epochs": 8, "train_examples": 2000, "loss": "ce", "schedule": [6]}
"""),
        code(
            'NAME = "figure2"\n'
            + SETUP
            + """
import matplotlib.pyplot as plt

from puzzle_core.mixers import build
from puzzle_core.mixstats import mixing_statistics, summarize
from puzzle_core.train import load_run"""
        ),
        code("""import json

from puzzle_core.experiments import load_config, table_configs
from puzzle_core.train import run

cfg = load_config(table_configs("table2")["vanilla"], profile, data_root=data_root, device=device,
                  **(smoke_classifier if profile == "smoke" else {}))
run(cfg, out / "classifier")
trained = load_run(out / "classifier")
model, cfg, test_set, mean, std = (trained.model, trained.config, trained.test_set, trained.mean,
                                   trained.std)
methods = {
    "input mixup": ("input_mixup", {}),
    "CutMix": ("cutmix", {}),
    "SaliencyMix": ("saliencymix", {"mean": mean, "std": std}),
    "SnapMix": ("snapmix", {}),
    "Guided-SR": ("guided_sr", {"mix_prob": 1.0}),
    "Guided-AP": ("guided_ap", {"mix_prob": 1.0}),
    "Co-Mixup": ("comixup", {"part": 20}),
    "Puzzle Mix": ("puzzlemix", {"mean": mean, "std": std}),
    "Puzzle Mix (mask only)": ("puzzlemix_mask_only", {"mean": mean, "std": std}),
}
masks_available = hasattr(getattr(test_set, "dataset", test_set), "masks")
clf = json.loads((out / "classifier" / "results.json").read_text())
print(f"classifier: {cfg.model} on {cfg.dataset} ({cfg.profile}), {cfg.epochs} epochs, final "
      f"top-1 error {clf['final_top1_err']:.1f} %; object masks: {masks_available}")"""),
        code("""from puzzle_core.train import test_batches

rows = {}
for label, (name, params) in methods.items():
    mixer = build(name, num_classes=trained.num_classes, **params)
    per = []
    for i, (x, y, m) in enumerate(test_batches(test_set, 100, batches)):
        per.append(mixing_statistics(mixer, model, x.to(device), y.to(device), mean=mean, std=std,
                                     object_masks=m, generator=torch.Generator().manual_seed(i)))
    rows[label] = summarize({k: torch.cat([p[k] for p in per]) for k in per[0]})
stats = pd.DataFrame(rows).T
stats.to_csv(out / "figure2.csv")
assert stats.notna().all().all() and len(stats) == len(methods)
stats.round(3)"""),
        code("""cols = [c for c in ["saliency_kept", "total_variation", "loss", "top1", "top2",
                    "object_kept", "label_mismatch"] if c in stats]
fig, axes = plt.subplots(1, len(cols), figsize=(3.1 * len(cols), 3.4))
for ax, c in zip(axes, cols):
    stats[c].plot.barh(ax=ax, color="tab:blue")
    ax.set_title(c.replace("_", " "))
    ax.invert_yaxis()
    if ax is not axes[0]:
        ax.set_yticklabels([])
fig.suptitle(f"Figure 2 statistics, {cfg.dataset} / {cfg.model} / profile {cfg.profile}")
fig.tight_layout()
fig.savefig(out / "figure2.png", dpi=110)
plt.show()"""),
    ],
    "notebooks/figure2.ipynb",
)


# -- Supplementary B: transport ------------------------------------------------------------
write_notebook(
    [
        md("""# Supplementary B: Algorithm 1 against the exact assignment

Random transport problems of Eq. (5) (normalised random saliency, masks in the label set,
random xi) at n = 4, 16, 64, 256 cells: the wall clock of the batched Algorithm 1 (the paper's
conflict rule, run to convergence: a permutation) and of the exact Hungarian assignment
(scipy), and the relative error of Algorithm 1's objective, normalised both by |optimum| and by the
random-to-optimal range."""),
        code(PARAMS + "sides = [2, 4, 8, 16]\ninstances = 100\nseed = 0\n"),
        code(
            'NAME = "transport"\n'
            + SETUP
            + """
import time

from puzzle_core.propositions import random_transport_instances
from puzzle_core.transport import exact_transport, masked_transport, plan_objective"""
        ),
        code("""rows = []
for side in sides:
    g = torch.Generator().manual_seed(seed + side)
    cost, z = random_transport_instances(instances, side, g)
    t0 = time.perf_counter()
    alg = masked_transport(cost)  # the paper's rule: v = inf, until convergence
    t_alg = time.perf_counter() - t0
    t0 = time.perf_counter()
    opt = exact_transport(cost)
    t_opt = time.perf_counter() - t0
    f_alg = plan_objective(cost, alg.source)
    f_opt = plan_objective(cost, opt.source)
    rand = torch.stack([torch.randperm(side * side, generator=g) for _ in range(instances)])
    f_rand = plan_objective(cost, rand)
    rows.append({"n": side * side, "Alg. 1 ms / problem": 1e3 * t_alg / instances,
                 "Hungarian ms / problem": 1e3 * t_opt / instances,
                 "rel. error (/|opt|)": float(((f_alg - f_opt) / f_opt.abs()).mean()),
                 "rel. error (/(random - opt))":
                     float((f_alg - f_opt).sum() / (f_rand - f_opt).sum())})
table = pd.DataFrame(rows)
table.to_csv(out / "transport.csv", index=False)
assert (table["rel. error (/|opt|)"] >= -1e-9).all(), "no plan beats the exact optimum"
table.round(4)"""),
    ],
    "notebooks/transport.ipynb",
)


# -- GuidedMixup Table 2: augmentation overhead --------------------------------------------
write_notebook(
    [
        md("""# GuidedMixup Table 2: augmentation overhead of every method

The extra time of a whole training step over vanilla training, every method on the same
network and batch, measured side by side (methods interleaved within every repeat) on this
machine; differences below about 10 % are noise on shared CPUs.  ResNet-8 on 32x32 RGB, 100
classes — not GuidedMixup's GPU setting; the ratios, not the milliseconds, are the result."""),
        code(PARAMS + "batch_sizes = [16, 32]\nrepeats = 3\n"),
        code(
            'NAME = "gm_overhead"\n'
            + SETUP
            + """
from puzzle_core.bench import OVERHEAD_METHODS, overhead"""
        ),
        code("""med = overhead(tuple(batch_sizes), repeats=repeats)
table = pd.DataFrame({f"batch {b}": {m: 100 * (med[(m, b)] / med[("vanilla", b)] - 1)
                                     for m in OVERHEAD_METHODS} for b in batch_sizes})
table.to_csv(out / "overhead.csv")
assert table.notna().all().all()
table.round(1)"""),
    ],
    "notebooks/gm_overhead.ipynb",
)
