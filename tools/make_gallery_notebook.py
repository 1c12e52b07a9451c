"""Writes notebooks/mixup_gallery.ipynb (run once by hand after editing; kept for review)."""

import nbformat as nbf
from _notebook import write_notebook

md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
cells = [
    md("""# The mixup family on real photographs (Puzzle Mix Figure 1 and Figure 5)

The same two pairs of real photographs (scikit-image's astronaut and cat, coffee and rocket)
mixed by every method of the project, side by side, with the saliency maps and masks; then the
Puzzle Mix lambda sweep and beta/gamma sweep (the paper's Figure 5).

**Where the saliency comes from:** no pretrained network can be downloaded here, so a small
ResNet-8 is trained *in this notebook* to tell which photograph a random crop comes from
(4 classes, a few hundred steps on the CPU). Saliency = the l2 norm over channels of its input
gradient (Puzzle Mix, Section 3); CAMs (SnapMix) come from the same network. This is a toy
classifier, so the maps show where *it* looks, not where an ImageNet model would."""),
    code("""image_size = 64
train_steps = 60
seed = 0
lams = [0.2, 0.35, 0.5, 0.65, 0.8]
beta_gamma = [(0.0, 0.0), (1.2, 0.0), (1.2, 0.5), (3.6, 1.0)]
out_dir = ""  # write the figures there when set"""),
    code("""from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from skimage import data
from torchvision.transforms import v2

from puzzle_core import PuzzleMixConfig, compute_saliency
from puzzle_core.mixers import build, class_activation_spm
from puzzle_core.models import build_model

torch.manual_seed(seed)
torch.set_num_threads(1)
torch.set_flush_denormal(True)
names = ["astronaut", "chelsea", "coffee", "rocket"]
photos = [torch.from_numpy(np.ascontiguousarray(getattr(data, n)()[..., :3])).permute(2, 0, 1)
          for n in names]
mean = std = (0.5, 0.5, 0.5)
normalise = v2.Normalize(mean, std)
def square(img, size):
    s = min(img.shape[1:])
    return v2.functional.resize(v2.functional.center_crop(img, [s, s]), [size, size],
                                antialias=True)
x01 = torch.stack([square(p, image_size) for p in photos]).float() / 255
x = normalise(x01)
y = torch.arange(4)"""),
    md("## A small classifier to provide saliency (trained here)"),
    code("""crop = v2.Compose([v2.RandomResizedCrop(image_size, scale=(0.1, 1.0), antialias=True),
                   v2.RandomHorizontalFlip()])
small = [square(p, 2 * image_size) for p in photos]  # crop from 2x-size copies: cheap
def batch(n, g):
    idx = torch.randint(0, 4, (n,), generator=g)
    imgs = torch.stack([crop(small[i]) for i in idx.tolist()]).float() / 255
    return normalise(imgs), idx

model = build_model("resnet8", num_classes=4)
opt = torch.optim.Adam(model.parameters(), lr=2e-3)
g = torch.Generator().manual_seed(seed)
model.train()
for step in range(train_steps):
    xb, yb = batch(32, g)
    loss = F.cross_entropy(model(xb), yb)
    opt.zero_grad()
    loss.backward()
    opt.step()
model.eval()
with torch.no_grad():
    xt, yt = batch(200, torch.Generator().manual_seed(seed + 1))
    crop_acc = (model(xt).argmax(1) == yt).float().mean().item()
    full_acc = (model(x).argmax(1) == y).float().mean().item()
print(f"held-out random crops: {crop_acc:.2f} accuracy (chance 0.25); full photos: {full_acc:.2f}")
assert crop_acc > 0.4"""),
    code("""sal = compute_saliency(model, x, y, norm="l2").saliency   # (4, H, W), one backward pass
spm = class_activation_spm(model, x, y)                      # SnapMix's semantic percent maps
fig, ax = plt.subplots(3, 4, figsize=(9, 7))
for i, n in enumerate(names):
    ax[0, i].imshow(x01[i].permute(1, 2, 0)); ax[0, i].set_title(n)
    ax[1, i].imshow(sal[i], cmap="inferno"); ax[1, i].set_title("input-gradient saliency")
    ax[2, i].imshow(spm[i], cmap="inferno"); ax[2, i].set_title("CAM (SnapMix)")
for a in ax.ravel(): a.axis("off")
plt.tight_layout(); plt.show()"""),
    md("""## Every method on the same pairs (Figure 1)
Pairs: astronaut with the cat, coffee with the rocket (`perm = [1, 0, 3, 2]`), one seed. The
title gives the label weight of the first image (for Co-Mixup, which mixes several inputs per
output, the share of the first). AugMix is not a pairwise mix: its row shows one AugMix view."""),
    code("""perm = torch.tensor([1, 0, 3, 2])
methods = {
    "input mixup": build("input_mixup", num_classes=4),
    "CutMix": build("cutmix", num_classes=4),
    "SaliencyMix": build("saliencymix", num_classes=4, mean=mean, std=std),
    "SnapMix": build("snapmix", num_classes=4),
    "Guided-SR": build("guided_sr", num_classes=4, mix_prob=1.0),
    "Guided-AP": build("guided_ap", num_classes=4, mix_prob=1.0),
    "Co-Mixup": build("comixup", num_classes=4, part=4, grid=4),
    "AugMix": build("augmix", num_classes=4, mean=mean, std=std),
    "Puzzle Mix": build("puzzlemix", num_classes=4, mean=mean, std=std),
}
saliency_for = {"SnapMix": spm}
results = {}
for name, mixer in methods.items():
    kw = {"perm": perm} if name not in ("Co-Mixup", "AugMix") else {}
    if name == "Puzzle Mix":
        kw.update(grid=8, lam=0.5)
    if name == "input mixup":
        kw.update(lam=0.5)
    results[name] = mixer.mix(x, y, saliency_for.get(name, sal),
                              generator=torch.Generator().manual_seed(seed), **kw)
    rows = results[name].y
    if name != "SnapMix":
        assert torch.allclose(rows.sum(1), torch.ones(4), atol=1e-5), name

fig, ax = plt.subplots(len(results), 2, figsize=(4.6, 2.3 * len(results)))
for r, (name, out) in enumerate(results.items()):
    for c, i in enumerate((0, 2)):
        img = (out.x[i] * 0.5 + 0.5).clamp(0, 1).permute(1, 2, 0)
        ax[r, c].imshow(img)
        ax[r, c].set_title(f"{name}: {out.ratio[i].item():.2f}", fontsize=9)
        ax[r, c].axis("off")
plt.tight_layout()
if out_dir:
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    fig.savefig(Path(out_dir) / "figure1_gallery.png", dpi=120)
plt.show()"""),
    md("""How much of the two sources' saliency each mixed image keeps (the quantity of Figure 2a:
the saliency, under the *unmixed* maps, of the pixels each source contributes, summed over both
sources and divided by the total of one image; 1 = as salient as an unmixed image)."""),
    code("""def kept_saliency(out, name):
    if name in ("AugMix", "Co-Mixup"):
        return float("nan")
    s = sal / sal.flatten(1).sum(1).view(-1, 1, 1)
    if "mask" in out.info:  # Puzzle Mix, GuidedMixup: the pixel weight of self
        m = out.info["mask"]
        m = m if m.shape[-1] == image_size else m.repeat_interleave(image_size // m.shape[-1], 1
            ).repeat_interleave(image_size // m.shape[-1], 2)
    else:  # pixel weight of self from the mixed image itself: (x~ - x[perm]) / (x - x[perm])
        diff = (x - x[out.perm]).mean(1)
        m = ((out.x - x[out.perm]).mean(1) / diff.where(diff.abs() > 1e-3, torch.ones(()))
             ).clamp(0, 1)
    kept = (m * s).sum((1, 2)) + ((1 - m) * s[out.perm]).sum((1, 2))
    return kept[[0, 2]].mean().item()  # the first image of each pair (the pair is symmetric)

table = pd.DataFrame({"kept saliency": {n: kept_saliency(o, n) for n, o in results.items()}})
print("boxes:", {n: o.info.get("boxes") for n, o in results.items() if "boxes" in o.info})
table"""),
    md("""## Greedy pairing vs the exact optimum of GuidedMixup's Eq. 1
Batches of 8 random crops of the photographs; maps = blurred spectral-residual saliency (as
GuidedMixup pairs). The objective is the summed distance between partners' maps; the exact
optimum is found by enumerating every admissible permutation."""),
    code("""from puzzle_core.pairing import (exact_pairing, greedy_pairing, pairing_maps,
                                 pairing_objective, saliency_distances)
rows = []
g = torch.Generator().manual_seed(seed + 2)
for t in range(20):
    xb, _ = batch(8, g)
    w = saliency_distances(pairing_maps(xb))
    best = pairing_objective(w, exact_pairing(w))
    rows.append({"greedy / exact": pairing_objective(w, greedy_pairing(w)) / best,
                 "random / exact": pairing_objective(w, torch.randperm(8, generator=g)) / best})
pairs = pd.DataFrame(rows)
assert (pairs["greedy / exact"] <= 1 + 1e-9).all()
pairs.describe().loc[["mean", "min", "max"]]"""),
    md("## Puzzle Mix: lambda sweep (Figure 5a) and beta/gamma sweep (Figure 5b)"),
    code("""pm = build("puzzlemix", num_classes=4, mean=mean, std=std)
fig, ax = plt.subplots(2, len(lams), figsize=(2.2 * len(lams), 4.6))
for c, lam in enumerate(lams):
    out = pm.mix(x, y, sal, perm=perm, lam=lam, grid=8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out.mask * 2, (out.mask * 2).round())  # z in L = {0, 1/2, 1}
    ax[0, c].imshow((out.x[0] * 0.5 + 0.5).clamp(0, 1).permute(1, 2, 0))
    ax[0, c].set_title(f"lambda {lam}: {out.ratio[0]:.2f}", fontsize=9)
    ax[1, c].imshow(out.mask[0], cmap="gray", vmin=0, vmax=1)
    for a in ax[:, c]: a.axis("off")
plt.tight_layout(); plt.show()"""),
    code("""fig, ax = plt.subplots(2, len(beta_gamma), figsize=(2.2 * len(beta_gamma), 4.6))
for c, (beta, gamma) in enumerate(beta_gamma):
    mixer = build("puzzlemix", num_classes=4, mean=mean, std=std, beta=beta, gamma=gamma)
    out = mixer.mix(x, y, sal, perm=perm, lam=0.5, grid=8,
                    generator=torch.Generator().manual_seed(0))
    ax[0, c].imshow((out.x[0] * 0.5 + 0.5).clamp(0, 1).permute(1, 2, 0))
    ax[0, c].set_title(f"beta {beta}, gamma {gamma}", fontsize=9)
    ax[1, c].imshow(out.mask[0], cmap="gray", vmin=0, vmax=1)
    for a in ax[:, c]: a.axis("off")
plt.tight_layout()
if out_dir:
    fig.savefig(Path(out_dir) / "figure5_sweeps.png", dpi=120)
plt.show()"""),
]
write_notebook(cells, "notebooks/mixup_gallery.ipynb")
