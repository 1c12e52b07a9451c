"""Figure-2 statistics: exact contribution maps checked against the mixers' own boxes/masks,
invariants of the statistics, and the definitions of top-1/top-2 on hand-made labels."""

import pytest
import torch

from puzzle_core.data import SyntheticObjects
from puzzle_core.mixers import build
from puzzle_core.mixstats import contribution_maps, label_classes, mixing_statistics, summarize
from puzzle_core.models import build_model

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


@pytest.fixture(scope="module")
def batch():
    ds = SyntheticObjects(train=False, image_size=32, seed=0, n_per_class=2)
    assert len(ds.classes) == 10
    idx = torch.arange(12)
    x = torch.stack([torch.from_numpy(ds.data[i]).permute(2, 0, 1).float() / 255 for i in idx])
    x = (x - 0.5) / 0.25
    y = torch.tensor([ds.targets[i] for i in idx])
    masks = torch.stack([torch.from_numpy(ds.masks[i]).float() for i in idx])
    torch.manual_seed(0)
    model = build_model("resnet8", len(ds.classes))
    return x, y, masks, model


def test_contribution_maps_of_a_known_linear_mix():
    x = torch.rand(3, 2, 4, 4, requires_grad=True)
    w = torch.rand(4, 4)
    mixed = w * x + (1 - w) * x[[1, 2, 0]]
    g = contribution_maps(mixed, x)
    assert torch.allclose(g[0, 0], w) and torch.allclose(g[0, 1], 1 - w)
    assert torch.allclose(g[2, 0], 1 - w) and float(g[0, 2].abs().sum()) == 0


def test_vanilla_and_input_mixup_keep_everything(batch):
    x, y, masks, model = batch
    for name in ("vanilla", "input_mixup"):
        st = mixing_statistics(
            build(name, num_classes=10),
            model,
            x,
            y,
            mean=MEAN,
            std=STD,
            object_masks=masks,
            generator=torch.Generator().manual_seed(1),
        )
        assert torch.allclose(st["saliency_kept"], torch.ones(12), atol=1e-5)
        assert torch.allclose(st["object_kept"], torch.ones(12), atol=1e-5)
        assert float(st["label_mismatch"].max()) < 1e-5  # pixel weights = label weights
    assert (
        float(
            mixing_statistics(
                build("vanilla", num_classes=10),
                model,
                x,
                y,
                mean=MEAN,
                std=STD,
                object_masks=masks,
            )["both_objects"].max()
        )
        == 0
    )


def test_cutmix_object_survival_equals_the_box_count(batch):
    x, y, masks, model = batch
    mixer = build("cutmix", num_classes=10)
    gen = torch.Generator().manual_seed(4)
    st = mixing_statistics(
        mixer, model, x, y, mean=MEAN, std=STD, object_masks=masks, generator=gen
    )
    out = mixer.mix(x, y, generator=torch.Generator().manual_seed(4))  # the same draws
    r1, r2, c1, c2 = out.info["boxes"][0]
    box = torch.zeros(32, 32)
    box[r1:r2, c1:c2] = 1
    own = ((1 - box) * masks).flatten(1).sum(1) / masks.flatten(1).sum(1)
    partner = (box * masks[out.perm]).flatten(1).sum(1) / masks[out.perm].flatten(1).sum(1)
    expect = torch.where(out.perm == torch.arange(12), torch.ones(12), own + partner)
    assert torch.allclose(st["object_kept"], expect, atol=1e-5)
    assert torch.allclose(st["ratio"], torch.where(y[out.perm] == y, 1.0, out.ratio), atol=1e-6)


def test_puzzlemix_outputs_are_made_of_whole_pixels(batch):
    x, y, masks, model = batch
    mixer = build("puzzlemix", num_classes=10, mean=MEAN, std=STD)
    xr = x.clone().requires_grad_(True)
    out = mixer.apply(model, xr, y, generator=torch.Generator().manual_seed(2))
    g = contribution_maps(out.x, xr)
    # every output pixel is one convex combination of source pixels (Eq. 2 with transport)
    assert torch.allclose(g.sum((1, 2, 3)), torch.full((12,), 32 * 32.0), atol=1e-3)
    assert float(g.min()) >= -1e-6
    st = summarize(
        mixing_statistics(
            mixer,
            model,
            x,
            y,
            mean=MEAN,
            std=STD,
            object_masks=masks,
            generator=torch.Generator().manual_seed(2),
        )
    )
    assert set(st) >= {
        "saliency_kept",
        "total_variation",
        "loss",
        "top1",
        "top2",
        "object_kept",
        "both_objects",
        "label_mismatch",
    }
    assert 0 <= st["top2"] <= st["top1"] <= 100  # top-2 exact implies top-1 in the set


def test_top1_top2_definitions():
    y_mix = torch.tensor([[0.7, 0.3, 0.0], [1.0, 0.0, 0.0], [0.2, 0.0, 0.8]])
    assert label_classes(y_mix) == [[0, 1], [0], [2, 0]]


def test_non_pixel_mixers_get_panels_c_to_e_only_and_bad_masks_are_refused(batch):
    x, y, _, model = batch
    st = mixing_statistics(build("augmix", num_classes=10), model, x, y, mean=MEAN, std=STD)
    assert set(st) == {"loss", "top1", "top2", "ratio"}
    with pytest.raises(ValueError, match="object_masks"):
        mixing_statistics(
            build("vanilla", num_classes=10),
            model,
            x,
            y,
            mean=MEAN,
            std=STD,
            object_masks=torch.ones(12, 8, 8),
        )


def test_manifold_mixup_gets_panels_c_to_e_from_its_hidden_space_mix(batch):
    """Figure 2 omits manifold mixup from (a), (b) (caption); its (c)-(e) come from the logits of
    the hidden-space mix, the same ones its training loss uses."""
    x, y, _, model = batch
    mixer = build("manifold_mixup", num_classes=10, layers=(1,))
    st = mixing_statistics(mixer, model, x, y, mean=MEAN, std=STD, generator=torch.Generator())
    assert set(st) == {"loss", "top1", "top2", "ratio"}
    mixed = mixer.apply(model, x, y, generator=torch.Generator())
    with torch.no_grad():
        logits = mixer.logits(model, x, mixed)
        plain = model(x)
    expect = -(mixed.y * torch.log_softmax(logits, 1)).sum(1)
    assert torch.allclose(st["loss"], expect, atol=1e-5)
    assert not torch.allclose(logits, plain)  # mixed at layer 1, not the clean forward
