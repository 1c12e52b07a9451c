"""Writes the experiment notebooks (one per paper table / figure) into notebooks/.

Run by hand after editing (``python tools/make_experiment_notebooks.py``); the notebooks are
stored without outputs.  Every notebook is thin: parameters, calls into puzzle_core, a table.
"""

import nbformat as nbf
from _notebook import write_notebook

md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell

PARAMS = """profile = "smoke"   # smoke | small | mini | paper (puzzle_core.experiments.PROFILES)
data_root = "data"  # where real data sets live (CIFAR-100, Tiny-ImageNet, ImageNet)
device = "cpu"
jobs = 1            # training runs in parallel processes
run_root = ""       # default: experiments/runs
out_dir = ""        # this notebook's tables / figures (default: run_root/profile/<name>)
seeds = []          # seeds per row ([]: the profile's, e.g. 0, 1, 2 at small)
rows = []           # rows to run ([]: the table's, less the profile's skip_rows)
"""

SETUP = """from pathlib import Path

import pandas as pd
import torch

from puzzle_core.experiments import missing_data, run_root_default, run_table
from puzzle_core.results import check_claims, collect, ours_vs_paper

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
PIVOT = """top1 = pd.DataFrame({row: {"top1_err": sum(r["top1_err"] for r in by.values()) / len(by)}
                     for row, by in results.items()}).T
top1["method"] = [r.rsplit("_", 1)[0] for r in top1.index]
top1["variant"] = [r.rsplit("_", 1)[1] for r in top1.index]
pivot = top1.pivot(index="method", columns="variant", values="top1_err")
pivot.to_csv(out / "top1_pivot.csv")
pivot.round(2)"""


def table_notebook(name: str, title: str, text: str, pivot: bool = False) -> None:
    extra = ""
    if name == "table7":
        extra = """
if results:  # Table 7 prints Table 2's vanilla and Puzzle Mix rows: their runs are shared
    results.update(run_table("table2", profile, run_root=root, data_root=data_root,
                             device=device, rows=["puzzlemix", "vanilla"], jobs=jobs,
                             seeds=seeds or None))
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
                        jobs=jobs, seeds=seeds or None, rows=rows or None){extra}
columns = ["dataset", "model", "epochs", "loss", "top1_err", "top5_err", "seconds_per_epoch"]
per_seed = pd.DataFrame([{{"row": row, "seed": seed, **{{c: res.get(c) for c in columns}}}}
                         for row, by_seed in results.items() for seed, res in by_seed.items()])
per_seed if results else 'no runs'"""),
        md("""## Ours beside the paper

Our number is the mean over seeds with the half-width of its 95 % t-interval; `at chance` marks
a mean within 5 points of the chance error (such a row has not learned enough to compare).  Rows
the paper copied from other papers (Manifold mixup dagger) and rows a profile skips (`small`:
the half-length rows) show no number of ours."""),
        code("""table = ours_vs_paper(NAME, results)
table.to_csv(out / "ours_vs_paper.csv", index=False)
ran = table[table["row"].isin(list(results))]
assert missing or ran["ours"].notna().all(), "every row that ran has our number"
assert table["ours"].dropna().between(0, 100).all()
table"""),
        md("""## The paper's claims on this table, checked on our numbers

Verdicts: held / reversed when the 95 % interval of the difference (paired by seed) excludes 0,
inconclusive when it does not, untestable when both sides are at chance (`puzzle_core.verdicts`)."""),
        code("""claims = check_claims(collect(root, profile), profile)
mine = claims[claims["table"] == NAME]
assert mine["paper holds"].dropna().all(), "every claim checked holds in the paper's own numbers"
mine[["id", "claim", "paper", "ours", "verdict", "detail"]]"""),
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

The paper (Figure 2, l.225-229 of its text): "(a) Mixed saliency ||h(s(x0), s(x1))||1 [...]
(b) Total variation of mixed data. (c) Cross entropy loss of mixup data and the corresponding
soft-label evaluated by the vanilla classifier (ResNet18). (d) Top-1 prediction accuracy of mixed
data. Prediction is counted as correct if the Top-1 prediction belongs to {y0, y1}. (e) Top-2
prediction accuracy of mixed data. Prediction is counted as correct if the Top-2 predictions are
equal to {y0, y1}."  Its claims: the saliency is "well preserved" (a), and Puzzle Mix examples
"have the smallest loss and the highest accuracy compared to other methods" (c-e).

Here a vanilla classifier (Table 2's vanilla row at this profile, seed 0 — ResNet-8, not the
paper's ResNet18; at `smoke` trained longer with cross-entropy, `smoke_classifier`, so that it
is above chance) judges the mixed test images of every input-space method.  On the synthetic-objects data
the ground-truth object masks also tell how much of each *object* survives mixing — a
measurement the paper does not have (ours).  Definitions: `puzzle_core.mixstats`.  Every
statistic is a mean over the test images with a 95 % bootstrap interval over images; the claims
are judged on paired per-image differences (the same images for every method).  GuidedMixup runs
with `mix_prob = 1` here so that every batch is mixed."""),
        code(PARAMS + """batches = 2          # test batches of 100 per method
# at smoke: a classifier above chance (the smoke profile's 2 epochs on 200 images are not)
smoke_classifier = {"epochs": 8, "train_examples": 2000, "loss": "ce", "schedule": [6]}
"""),
        code(
            'NAME = "figure2"\n'
            + SETUP
            + """
import json

import matplotlib.pyplot as plt

from puzzle_core.experiments import load_config, seed_dir, table_configs
from puzzle_core.mixers import build
from puzzle_core.mixstats import mixing_statistics, summarize
from puzzle_core.run import batches_with_masks, load_run, run
from puzzle_core.verdicts import bootstrap_interval, chance_error"""
        ),
        code("""if profile == "smoke":  # a classifier of its own, above chance
    cfg = load_config(table_configs("table2")["vanilla"], profile, data_root=data_root,
                      device=device, **smoke_classifier)
    clf_dir = out / "classifier"
    clf = run(cfg, clf_dir)
else:  # Table 2's vanilla run, seed 0 (shared: trained once)
    clf = run_table("table2", profile, run_root=root, data_root=data_root, device=device,
                    rows=["vanilla"], seeds=[0])["vanilla"][0]
    clf_dir = seed_dir(root, profile, "table2", "vanilla", 0)
trained = load_run(clf_dir)
model, cfg, test_set, mean, std = (trained.model, trained.config, trained.test_set, trained.mean,
                                   trained.std)
chance = chance_error("top1_err", trained.num_classes)
methods = {  # registry name: (label, constructor arguments)
    "input_mixup": ("input mixup", {}),
    "cutmix": ("CutMix", {}),
    "saliencymix": ("SaliencyMix", {"mean": mean, "std": std}),
    "snapmix": ("SnapMix", {}),
    "guided_sr": ("Guided-SR", {"mix_prob": 1.0}),
    "guided_ap": ("Guided-AP", {"mix_prob": 1.0}),
    "comixup": ("Co-Mixup", {"part": 20}),
    "puzzlemix": ("Puzzle Mix", {"mean": mean, "std": std}),
    "puzzlemix_mask_only": ("Puzzle Mix (mask only)", {"mean": mean, "std": std}),
}
masks_available = hasattr(getattr(test_set, "dataset", test_set), "masks")
print(f"classifier: {cfg.model} on {cfg.dataset} ({cfg.profile}), {cfg.epochs} epochs, "
      f"top-1 error {clf['top1_err']:.1f} % (chance {chance:.0f} %); object masks: "
      f"{masks_available}")"""),
        code("""samples, rows = {}, {}
for name, (label, params) in methods.items():
    mixer = build(name, num_classes=trained.num_classes, **params)
    per = []
    for i, (x, y, m) in enumerate(batches_with_masks(test_set, 100, batches)):
        per.append(mixing_statistics(mixer, model, x.to(device), y.to(device), mean=mean, std=std,
                                     object_masks=m, generator=torch.Generator().manual_seed(i)))
    cat = {k: torch.cat([p[k] for p in per]) for k in per[0]}
    samples[name] = {k: v.tolist() for k, v in cat.items()}
    rows[label] = summarize(cat)
stats = pd.DataFrame(rows).T
stats.to_csv(out / "figure2.csv")
(out / "figure2_samples.json").write_text(json.dumps({
    "classifier": {"top1_err": clf["top1_err"], "chance": chance, "model": cfg.model,
                   "dataset": cfg.dataset, "profile": cfg.profile},
    "methods": samples}))
assert stats.notna().all().all() and len(stats) == len(methods)
intervals = pd.DataFrame({
    methods[name][0]: {k: "{:.3f} [{:.3f}, {:.3f}]".format(*bootstrap_interval(v))
                       for k, v in per_image.items() if k != "ratio"}
    for name, per_image in samples.items()}).T
intervals"""),
        code("""cols = [c for c in ["saliency_kept", "total_variation", "loss", "top1", "top2",
                    "object_kept", "label_mismatch"] if c in stats]
fig, axes = plt.subplots(1, len(cols), figsize=(3.1 * len(cols), 3.6))
for ax, c in zip(axes, cols):
    scale = 100 if c in ("top1", "top2") else 1
    lo_hi = [bootstrap_interval(samples[n][c]) for n in methods]
    means = [v[0] * scale for v in lo_hi]
    err = [[(v[0] - v[1]) * scale for v in lo_hi], [(v[2] - v[0]) * scale for v in lo_hi]]
    ax.barh(range(len(methods)), means, xerr=err, color="tab:blue", alpha=0.8)
    ax.set_yticks(range(len(methods)), [methods[n][0] for n in methods])
    ax.set_title(c.replace("_", " ") + (" (%)" if scale == 100 else ""))
    ax.invert_yaxis()
    if ax is not axes[0]:
        ax.set_yticklabels([])
fig.suptitle(f"Figure 2 statistics (95 % bootstrap intervals over images), {cfg.dataset} / "
             f"{cfg.model} / profile {cfg.profile}")
fig.tight_layout()
fig.savefig(out / "figure2.png", dpi=100)
plt.show()"""),
        md("## The paper's Figure 2 claims, judged on paired per-image differences"),
        code("""saved = json.loads((out / "figure2_samples.json").read_text())
claims = check_claims({}, profile, figure2=saved)
mine = claims[claims["table"] == NAME]
paper = mine[mine["origin"] == "paper"]  # ours (object survival) needs ground-truth masks
assert (paper["verdict"] != "not run").all(), "every Figure 2 claim of the paper is judged"
mine[["id", "origin", "claim", "ours", "verdict", "detail"]]"""),
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
        code("""import matplotlib.pyplot as plt

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
ax1.loglog(table["n"], table["Alg. 1 ms / problem"], "o-", label="Algorithm 1 (batched torch)")
ax1.loglog(table["n"], table["Hungarian ms / problem"], "s-", label="Hungarian (scipy)")
ax1.set_xlabel("cells n")
ax1.set_ylabel("ms per problem")
ax1.legend(fontsize=8)
ax2.semilogx(table["n"], table["rel. error (/|opt|)"], "o-", label="/ |optimum|")
ax2.semilogx(table["n"], table["rel. error (/(random - opt))"], "s-", label="/ (random - optimum)")
ax2.set_xlabel("cells n")
ax2.set_ylabel("relative error of Algorithm 1")
ax2.legend(fontsize=8)
fig.suptitle(f"Supplementary B on this machine ({device}), {instances} instances per n")
fig.tight_layout()
fig.savefig(out / "transport.png", dpi=100)
plt.show()"""),
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
