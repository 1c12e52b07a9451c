"""Model zoo: exact parameter counts of the reference architectures, forward shapes for the three
input regimes (32x32 RGB, 28x28 grey, 64x64 Tiny stem), the manifold-mixup hook and bad input."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from puzzle_core.models import (
    MODEL_NAMES,
    CifarResNet,
    PreActResNet18,
    ResNet18,
    ResNet50,
    WideResNet,
    build_model,
)

FAST = ("preactresnet18_w16", "resnet8", "resnet20")


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@functools.cache
def _model(name: str, k: int = 10, in_channels: int = 3, stem: str = "cifar") -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, k, in_channels=in_channels, stem=stem).eval()


# ------------------------------------------------------------------ sizes and shapes


@pytest.mark.parametrize(
    "name,k,count",
    [
        ("preactresnet18", 100, 11_217_316),  # docs/reference-implementation.md §1f
        ("preactresnet18", 200, 11_268_616),  # docs/reference-implementation.md §1f
        ("wrn28_10", 100, 36_546_980),  # docs/reference-implementation.md §1f
        ("wrn28_10", 200, 36_611_080),  # docs/reference-implementation.md §1f
        ("resnet50", 1000, 25_557_032),  # torchvision's documented count
        ("resnet18", 1000, 11_689_512),  # torchvision's documented count
        ("preactresnet18_w16", 100, 712_372),
        ("resnet8", 100, 81_140),
        ("resnet20", 100, 275_572),
    ],
)
def test_parameter_counts(name, k, count):
    assert n_params(build_model(name, k)) == count


def test_registry():
    assert set(MODEL_NAMES) == {
        "preactresnet18",
        "preactresnet18_w16",
        "wrn28_10",
        "resnet50",
        "resnet18",
        "resnet8",
        "resnet20",
    }
    for name in FAST:
        m = _model(name)
        assert m.mix_layers == (0, 1, 2, 3)


@pytest.mark.parametrize("name", [*FAST, "preactresnet18"])
@pytest.mark.parametrize(
    "in_channels,stem,size", [(3, "cifar", 32), (1, "cifar", 28), (3, "tiny", 64)]
)
def test_forward_shapes(name, in_channels, stem, size):
    m = _model(name, 7, in_channels, stem)
    out = m(torch.randn(2, in_channels, size, size))
    assert out.shape == (2, 7) and torch.isfinite(out).all()


def test_wrn_forward_shapes():
    m = _model("wrn28_10", 7)
    assert m(torch.randn(1, 3, 32, 32)).shape == (1, 7)
    small = WideResNet(5, depth=10, widen_factor=1, in_channels=1).eval()
    assert small(torch.randn(2, 1, 28, 28)).shape == (2, 5)
    tiny = WideResNet(5, depth=10, widen_factor=1, stem="tiny").eval()
    assert tiny(torch.randn(2, 3, 64, 64)).shape == (2, 5)


def test_resnet50_forward_and_keys():
    torchvision = pytest.importorskip("torchvision")
    m = _model("resnet50", 7)
    assert isinstance(m, ResNet50)
    assert m(torch.randn(1, 3, 64, 64)).shape == (1, 7)
    ref = torchvision.models.resnet50(weights=None, num_classes=7)
    assert list(m.state_dict()) == list(ref.state_dict())  # torchvision checkpoints load as is
    grey = ResNet50(4, in_channels=1).eval()
    assert grey(torch.randn(1, 1, 64, 64)).shape == (1, 4)


def test_resnet18_forward_keys_and_hook():
    torchvision = pytest.importorskip("torchvision")
    m = _model("resnet18", 7)
    assert isinstance(m, ResNet18) and m.mix_layers == (0, 1, 2, 3)
    assert m(torch.randn(1, 3, 64, 64)).shape == (1, 7)
    ref = torchvision.models.resnet18(weights=None, num_classes=7)
    assert list(m.state_dict()) == list(ref.state_dict())  # torchvision checkpoints load as is
    seen = []

    def record(h):
        seen.append(tuple(h.shape))
        return h

    for k in m.mix_layers:
        m(torch.randn(1, 3, 64, 64), mix_layer=k, mix_fn=record)
    assert seen == [(1, 3, 64, 64), (1, 64, 16, 16), (1, 128, 8, 8), (1, 256, 4, 4)]
    assert m.forward_features(torch.randn(1, 3, 64, 64)).shape == (1, 512, 2, 2)
    assert m.classifier.out_features == 7  # SnapMix's CAM weights


def test_stems():
    assert _model("preactresnet18", 10).conv1.stride == (1, 1)
    assert _model("preactresnet18", 10, 3, "tiny").conv1.stride == (2, 2)
    assert WideResNet(10, depth=10, widen_factor=1, stem="tiny").conv1.stride == (2, 2)
    assert _model("resnet8", 10, 3, "tiny").conv1.stride == (2, 2)


def test_reference_quirks():
    m = _model("preactresnet18")
    # no final BN-ReLU: the last module before the linear layer is a block's conv path
    assert [n for n, _ in m.named_children()] == [
        "conv1",
        "layer1",
        "layer2",
        "layer3",
        "layer4",
        "linear",
    ]
    assert m.conv1.bias is None and m.layer2[0].shortcut is not None
    assert m.layer1[0].shortcut is None
    w = _model("wrn28_10")
    assert w.bn1.momentum == 0.9  # reference quirk, kept (docs/reference-implementation.md §1f)
    assert w.conv1.bias is not None and w.layer1[0].conv2.bias is not None
    assert w.layer2[0].conv2.stride == (2, 2) and w.layer2[0].conv1.stride == (1, 1)
    assert len(w.layer1) == len(w.layer2) == len(w.layer3) == 4


def test_pool_matches_reference_avg_pool():
    """32x32 inputs: the logits are exactly linear(avg_pool2d(layer4(...), 4)) as the reference."""
    m = _model("preactresnet18_w16")
    x = torch.randn(3, 3, 32, 32)
    h = m.layer4(m.layer3(m.layer2(m.layer1(m.conv1(x)))))
    ref = m.linear(F.avg_pool2d(h, 4).reshape(3, -1))
    assert torch.equal(m(x), ref)


# ------------------------------------------------------------------ the hook


def _stages(m: nn.Module) -> list:
    """The model as four stages around the mix points 0..3 (written out independently)."""
    if isinstance(m, PreActResNet18):
        return [
            lambda h: m.layer1(m.conv1(h)),
            m.layer2,
            m.layer3,
            lambda h: m.linear(F.avg_pool2d(m.layer4(h), 4).flatten(1)),
        ]
    if isinstance(m, CifarResNet):
        return [
            lambda h: m.layer1(F.relu(m.bn1(m.conv1(h)))),
            m.layer2,
            m.layer3,
            lambda h: m.linear(h.mean((2, 3))),
        ]
    if isinstance(m, WideResNet):
        return [
            lambda h: m.layer1(m.conv1(h)),
            m.layer2,
            m.layer3,
            lambda h: m.linear(F.relu(m.bn1(h)).mean((2, 3))),
        ]
    raise AssertionError(type(m))


def _hook_models() -> list[tuple[str, nn.Module]]:
    torch.manual_seed(1)
    return [
        ("preactresnet18_w16", _model("preactresnet18_w16")),
        ("resnet8", _model("resnet8")),
        ("wrn10_1", WideResNet(10, depth=10, widen_factor=1).eval()),
    ]


@pytest.mark.parametrize("name,m", _hook_models(), ids=lambda v: v if isinstance(v, str) else "")
def test_hook_identity_and_manual(name, m):
    torch.manual_seed(2)
    x = torch.randn(4, 3, 32, 32)
    plain = m(x)
    assert torch.equal(m(x, mix_layer=0, mix_fn=lambda h: h), plain)
    lam, perm = 0.3, torch.tensor([2, 0, 3, 1])

    def mix(h):
        return lam * h + (1 - lam) * h[perm]

    for k in m.mix_layers:
        assert torch.equal(m(x, mix_layer=k, mix_fn=lambda h: h), plain)
        h = x
        for i, stage in enumerate(_stages(m)):
            h = stage(mix(h) if i == k else h)
        torch.testing.assert_close(m(x, mix_layer=k, mix_fn=mix), h, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", FAST)
def test_hook_shapes_recorded(name):
    m = _model(name)
    seen: list[tuple[int, ...]] = []

    def record(h):
        seen.append(tuple(h.shape))
        return h

    for k in m.mix_layers:
        m(torch.randn(2, 3, 32, 32), mix_layer=k, mix_fn=record)
    w = 16  # all FAST models have a 16-channel first stage
    assert seen == [(2, 3, 32, 32), (2, w, 32, 32), (2, 2 * w, 16, 16), (2, 4 * w, 8, 8)]
    # a plain forward never calls mix_fn
    m(torch.randn(2, 3, 32, 32))
    assert len(seen) == 4


def test_hook_shapes_big_models():
    seen = []

    def record(h):
        seen.append(tuple(h.shape))
        return h

    w = _model("wrn28_10")
    x = torch.randn(1, 3, 32, 32)
    w(x, mix_layer=3, mix_fn=record)
    r = _model("resnet50", 7)
    for k in r.mix_layers:
        r(torch.randn(1, 3, 64, 64), mix_layer=k, mix_fn=record)
    assert seen == [
        (1, 640, 8, 8),
        (1, 3, 64, 64),
        (1, 256, 16, 16),
        (1, 512, 8, 8),
        (1, 1024, 4, 4),
    ]
    p = _model("preactresnet18")
    assert p(x, mix_layer=2, mix_fn=record).shape == (1, 10) and seen[-1] == (1, 128, 16, 16)


@pytest.mark.parametrize("name", FAST)
def test_hook_zeroing(name):
    m = _model(name)
    x = torch.randn(3, 3, 32, 32)
    # zeroing the input = the plain forward of a zero batch
    assert torch.equal(m(x, mix_layer=0, mix_fn=torch.zeros_like), m(torch.zeros_like(x)))
    for k in m.mix_layers:
        out = m(x, mix_layer=k, mix_fn=torch.zeros_like)
        # eval mode: after zeroing, every example carries the same activation -> same logits
        torch.testing.assert_close(out, out[:1].expand_as(out))
        assert not torch.allclose(out, m(x))

    # zeroing only the first example at layer 2 leaves the others untouched (eval mode)
    def zero_first(h):
        h = h.clone()
        h[0] = 0
        return h

    out = m(x, mix_layer=2, mix_fn=zero_first)
    assert torch.equal(out[1:], m(x)[1:]) and not torch.allclose(out[0], m(x)[0])


def test_hook_train_mode_gradients():
    m = build_model("resnet8", 5).train()
    x = torch.randn(4, 3, 32, 32, requires_grad=True)
    out = m(x, mix_layer=1, mix_fn=lambda h: 0.5 * h + 0.5 * h.flip(0))
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


# ------------------------------------------------------------------ bad input


def test_bad_arguments():
    with pytest.raises(ValueError, match="name must be one of.*preactresnet18"):
        build_model("resnet34", 10)
    with pytest.raises(ValueError, match="stem"):
        build_model("resnet8", 10, stem="imagenet")
    with pytest.raises(ValueError, match="stem"):
        build_model("resnet50", 10, stem="big")
    with pytest.raises(ValueError, match="num_classes"):
        build_model("resnet8", 0)
    with pytest.raises(ValueError, match="in_channels"):
        build_model("resnet8", 10, in_channels=0)
    with pytest.raises(ValueError, match="width"):
        PreActResNet18(10, width=0)
    with pytest.raises(ValueError, match="depth"):
        WideResNet(10, depth=27)
    with pytest.raises(ValueError, match="depth"):
        CifarResNet(10, depth=9)


@pytest.mark.parametrize("name", FAST)
def test_bad_mix_arguments(name):
    m = _model(name)
    x = torch.randn(2, 3, 32, 32)
    for bad in (4, -1, True, 1.0, "1"):
        with pytest.raises(ValueError, match="mix_layer"):
            m(x, mix_layer=bad, mix_fn=lambda h: h)
    with pytest.raises(ValueError, match="mix_fn"):
        m(x, mix_layer=1)
    with pytest.raises(ValueError, match="mix_fn"):
        m(x, mix_fn=lambda h: h)
    with pytest.raises(ValueError, match="mix_fn must return"):
        m(x, mix_layer=2, mix_fn=lambda h: None)


@pytest.mark.parametrize("name", ["resnet8", "preactresnet18_w16"])
def test_forward_features_and_classifier_give_the_logits(name):
    from puzzle_core.mixers import class_activation_spm

    torch.manual_seed(0)
    model = build_model(name, num_classes=7).eval()
    x = torch.randn(3, 3, 32, 32)
    feats = model.forward_features(x)
    assert feats.dim() == 4 and isinstance(model.classifier, torch.nn.Linear)
    expect = model.classifier(torch.nn.functional.adaptive_avg_pool2d(feats, 1).flatten(1))
    assert torch.allclose(model(x), expect, atol=1e-5)
    spm = class_activation_spm(model, x, torch.tensor([0, 3, 6]))
    assert spm.shape == (3, 32, 32) and torch.allclose(spm.sum((1, 2)), torch.ones(3), atol=1e-5)
