"""The mixer protocol: the training step, the benchmark and the Figure 2 statistics ask the mixer
(``apply``, ``loss``, ``mixes_pixels``), never its name; a mixer defined outside the package trains
through the same step."""

import ast

import torch
from conftest import ROOT

from puzzle_core.losses import soft_cross_entropy
from puzzle_core.mixers import available, build_for_data
from puzzle_core.models import build_model
from puzzle_core.protocol import Mixer, MixResult
from puzzle_core.run.step import StageTimer, train_step


class HalfFlip(Mixer):
    """A mixer this package does not know: mixes each image with its mirror image, and counts
    the protocol calls."""

    name = "half_flip"

    def __init__(self, num_classes=None):
        super().__init__(num_classes)
        self.calls = []

    def _mix(self, x, y, saliency, *, generator):
        targets = self._targets(x, y)
        ident = torch.arange(x.shape[0])
        return MixResult(0.5 * (x + x.flip(-1)), targets, ident, torch.ones(x.shape[0]))

    def apply(self, model, x, y, *, generator=None, timer=None):
        self.calls.append("apply")
        return super().apply(model, x, y, generator=generator, timer=timer)

    def loss(self, model, x, y, mixed, criterion):
        self.calls.append("loss")
        return super().loss(model, x, y, mixed, criterion)


def _batch(b=6):
    g = torch.Generator().manual_seed(0)
    return torch.randn(b, 3, 32, 32, generator=g), torch.arange(b) % 10


def test_a_mixer_from_outside_trains_through_the_protocol():
    mixer, model = HalfFlip(num_classes=10), build_model("resnet8", num_classes=10)
    x, y = _batch()
    timer = StageTimer()
    loss = train_step(mixer, model, x, y, "ce", torch.Generator().manual_seed(1), timer)
    assert mixer.calls == ["apply", "loss"] and torch.isfinite(loss)
    expected = soft_cross_entropy(model(0.5 * (x + x.flip(-1))), torch.eye(10)[y])
    assert torch.allclose(loss, expected, atol=1e-6)
    assert set(timer.seconds) == {"mix", "forward"}


def test_every_registered_mixer_gives_a_finite_loss_through_apply_and_loss():
    model = build_model("resnet8", num_classes=10)
    x, y = _batch(8)
    for name in available():
        mixer = build_for_data(name, {}, num_classes=10, mean=(0.5,) * 3, std=(0.25,) * 3)
        mixed = mixer.apply(model, x, y, generator=torch.Generator().manual_seed(2))
        assert isinstance(mixed, MixResult), name
        loss = mixer.loss(model, x, y, mixed, soft_cross_entropy)
        assert loss.dim() == 0 and torch.isfinite(loss), name
        loss.backward()
        model.zero_grad(set_to_none=True)


def test_the_loop_the_benchmark_and_the_statistics_never_ask_a_mixer_its_name():
    for rel in ("puzzle_core/run/step.py", "puzzle_core/bench.py", "puzzle_core/mixstats.py"):
        tree = ast.parse((ROOT / rel).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in (
                "hasattr",
                "getattr",
            ):
                target = ast.unparse(node.args[0])
                assert "mixer" not in target, f"{rel}: {ast.unparse(node)}"
            if isinstance(node, ast.Compare) and ast.unparse(node.left).endswith(".name"):
                raise AssertionError(f"{rel}: dispatch on a name: {ast.unparse(node)}")


def test_apply_checks_the_batch_before_the_model_sees_it():
    import pytest

    model = build_model("resnet8", num_classes=10)
    x, y = _batch(4)
    bad_x = x.clone()
    bad_x[0, 0, 0, 0] = float("nan")
    pixels = (torch.rand(4, 3, 32, 32) * 255).to(torch.uint8)
    for name in available():
        mixer = build_for_data(name, {}, num_classes=10, mean=(0.5,) * 3, std=(0.25,) * 3)
        with pytest.raises(ValueError, match="x must be finite"):
            mixer.apply(model, bad_x, y)
        with pytest.raises(ValueError, match="uint8"):
            mixer.apply(model, pixels, y)
        with pytest.raises(ValueError, match="y"):
            mixer.apply(model, x, torch.tensor([0, 1, 2, 10]))


def test_apply_staged_is_apply_in_two_steps_for_every_mixer():
    """apply_staged(...)() draws as apply(...) does: the same mixed batch for every registered
    mixer; a mixer that overrides apply (this file's HalfFlip) is not split and does not loop."""
    model = build_model("resnet8", num_classes=10)
    x, y = _batch(8)
    for name in available():
        mixer = build_for_data(name, {}, num_classes=10, mean=(0.5,) * 3, std=(0.25,) * 3)
        a = mixer.apply(model, x, y, generator=torch.Generator().manual_seed(5))
        finish = mixer.apply_staged(model, x, y, generator=torch.Generator().manual_seed(5))
        b = finish()
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y), name
    outside = HalfFlip(num_classes=10)
    assert not outside.stages_apart
    out = outside.apply_staged(model, x, y)()
    assert outside.calls == ["apply"] and torch.equal(out.x, 0.5 * (x + x.flip(-1)))
    splits = {n for n in available() if build_for_data(n, {}, num_classes=10, mean=(0.5,) * 3,
                                                        std=(0.25,) * 3).stages_apart}  # fmt: skip
    assert {"puzzlemix", "puzzlemix_aug", "cutmix", "vanilla"} <= splits
    assert not {"manifold_mixup", "snapmix"} & splits
