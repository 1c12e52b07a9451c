"""Bad input to any mixer: a clear ValueError naming the argument, never a crashed process or a
silent wrong result (issue #10); uint8 images are mixed as float x / 255 and rounded back.  Ends
with a property-based test of every registered mixer on random batches, sizes and dtypes."""

import re
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from puzzle_core import mixers
from puzzle_core._checks import to_uint8
from puzzle_core.protocol import Mixer, _mix_keywords

K = 5
NAMES = mixers.available()
NEEDS_SALIENCY = [
    n for n in NAMES if mixers.build(n, num_classes=K).saliency in ("input_gradient", "cam")
]


def _build(name, **kw):
    if name == "manifold_mixup":
        kw.setdefault("layers", (0,))  # mixing the inputs: callable on images alone
    if name.startswith("guided"):
        kw.setdefault("mix_prob", 1.0)
    return mixers.build(name, num_classes=K, **kw)


def _batch(b=4, size=16, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, c, size, size, generator=g)
    return x, torch.arange(b) % K, torch.rand(b, size, size, generator=g)


def _call(name, x, y, sal=None, **kw):
    return _build(name).mix(x, y, sal, generator=torch.Generator().manual_seed(0), **kw)


def test_every_registered_mixer_goes_through_the_checked_entry():
    for name in NAMES:
        m = mixers.build(name, num_classes=K)
        assert isinstance(m, Mixer), name
        assert type(m).mix is Mixer.mix and type(m).__call__ is Mixer.__call__, name


# -- 1. Co-Mixup: a partition of one image never reaches gco (which aborts the process) ---------

_ONE_IMAGE = """
import torch
from puzzle_core import mixers
for b in (21, 1):  # default part 20: the last partition holds one image; a batch of one
    x, y, s = torch.rand(b, 3, 16, 16), torch.arange(b) % 10, torch.rand(b, 16, 16)
    out = mixers.build("comixup", num_classes=10).mix(x, y, s)
    assert torch.equal(out.x[-1], x[-1]), b  # kept unmixed
    assert torch.equal(out.y[-1], torch.nn.functional.one_hot(y[-1], 10).float()), b
    assert out.info["shares"][-1, -1] == 1, b
print("ok")
"""


def test_comixup_one_image_partition_keeps_the_image_and_the_process():
    res = subprocess.run(
        [sys.executable, "-c", _ONE_IMAGE], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


# -- 2. dtypes: uint8 mixed correctly, other non-float dtypes refused ---------------------------


def test_uint8_input_mixup_blends_the_pixels():
    x, y, _ = _batch()
    xu = (x * 255).round().to(torch.uint8)
    perm = torch.tensor([1, 0, 3, 2])
    out = _call("input_mixup", xu, y, perm=perm, lam=0.5)
    assert out.x.dtype == torch.uint8
    half = (xu.float() + xu[perm].float()) / 2
    assert (out.x.float() - half).abs().max() <= 0.5  # rounded, not the partner's pixel
    assert torch.allclose(out.y, 0.5 * F.one_hot(y, K) + 0.5 * F.one_hot(y[perm], K))


@pytest.mark.parametrize("name", NAMES)
def test_uint8_is_the_float_result_on_x_over_255_rounded(name):
    x, y, sal = _batch(6)
    xu = (x * 255).round().to(torch.uint8)
    a = _call(name, xu, y, sal)
    b = _call(name, xu.to(torch.float32) / 255, y, sal)
    assert a.x.dtype == torch.uint8 and torch.equal(a.x, to_uint8(b.x))
    assert torch.equal(a.y, b.y)
    if name == "augmix":  # the views too, and not only 0 and 1
        assert all(v.dtype == torch.uint8 for v in a.info["views"])
        assert a.x.unique().numel() > 100


@pytest.mark.parametrize(
    "dtype", [torch.int8, torch.int16, torch.int32, torch.int64, torch.bool, torch.complex64]
)
def test_other_integer_bool_complex_images_are_refused(dtype):
    x, y, _ = _batch()
    with pytest.raises(ValueError, match=r"x must be float16, .* or uint8 .* got dtype"):
        _call("input_mixup", x.to(dtype), y)


@pytest.mark.parametrize("name", ["puzzlemix", "augmix", "saliencymix"])
def test_uint8_with_mean_std_is_refused(name):
    x, y, sal = _batch()
    m = mixers.build(name, num_classes=K, mean=(0.5,) * 3, std=(0.25,) * 3)
    with pytest.raises(ValueError, match="x is uint8 .* without mean/std"):
        m.mix((x * 255).to(torch.uint8), y, sal)


def test_float_input_is_handed_over_unchanged_with_its_gradient():
    x, y, _ = _batch()
    xg = x.clone().requires_grad_(True)
    out = _call("input_mixup", xg, y, perm=torch.tensor([1, 0, 3, 2]), lam=0.25)
    out.x.sum().backward()
    assert torch.allclose(xg.grad, torch.ones_like(x))  # 0.25 + 0.75 per pixel


# -- 3. non-finite images -----------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_images_are_refused(name, bad):
    x, y, sal = _batch()
    x[1, 0, 3, 3] = bad
    with pytest.raises(ValueError, match=r"x must be finite"):
        _call(name, x, y, sal)


# -- 4. saliency --------------------------------------------------------------------------------


def _bad_saliency(sal):
    nan, neg = sal.clone(), sal.clone()
    nan[0, 2, 2] = float("nan")
    neg[0, 2, 2] = -0.1
    return [
        (sal[:, :8], r"saliency must have shape \(B, H, W\) = \(4, 16, 16\)"),
        (sal[:, :, :8], r"saliency must have shape \(B, H, W\) = \(4, 16, 16\)"),
        (sal[:3], "saliency has batch size 3"),
        (sal[:, None], r"saliency must have shape \(B, H, W\) \(3 dims\)"),
        (nan, "saliency must be finite"),
        (neg, "saliency must be non-negative"),
        (sal.bool(), "saliency must be a real map"),
        (sal.to("meta"), "saliency is on the 'meta' device"),
        (sal.numpy(), "saliency must be a torch.Tensor"),
        (None, r"saliency \(B, H, W\) is required: .* needs saliency"),
    ]


@pytest.mark.parametrize("name", NEEDS_SALIENCY)
def test_bad_saliency_is_refused(name):
    x, y, sal = _batch()
    for bad, match in _bad_saliency(sal):
        with pytest.raises(ValueError, match=match):
            _call(name, x, y, bad)


def test_all_zero_saliency_is_accepted_with_its_documented_meaning():
    x, y, sal = _batch()
    zero = torch.zeros_like(sal)
    guided = _call("guided_ap", x, y, zero)  # uniform maps: every pixel 0.5 / 0.5
    assert torch.allclose(guided.info["mask"], torch.full_like(sal, 0.5))
    checked = 0
    for seed in range(10):  # SnapMix: the area ratios (the code's NaN rule)
        snap = _build("snapmix").mix(x, y, zero, generator=torch.Generator().manual_seed(seed))
        (a1, a2, a3, a4), (b1, b2, b3, b4) = snap.info["boxes"]
        area_a, area_b = (a2 - a1) * (a4 - a3), (b2 - b1) * (b4 - b3)
        diff = y != y[snap.perm]
        if area_a and area_b and diff.any():
            assert torch.allclose(snap.ratio[diff], torch.tensor(1 - area_a / 256))
            assert torch.allclose(snap.info["rho_b"][diff], torch.tensor(area_a / 256))
            checked += 1
    assert checked


def test_degenerate_class_activation_map_is_zero_not_nan():
    from puzzle_core.mixers import semantic_percent_map

    feats = torch.zeros(2, 4, 4, 4)  # dead features: a constant CAM
    spm = semantic_percent_map(feats, torch.randn(K, 4), None, torch.tensor([0, 1]), (16, 16))
    assert torch.equal(spm, torch.zeros(2, 16, 16))


# -- 5. keywords --------------------------------------------------------------------------------

DECLARED = {
    "input_mixup": ["lam", "perm"],
    "cutmix": ["perm"],
    "saliencymix": ["perm"],
    "snapmix": ["perm"],
    "guided_sr": ["perm"],
    "guided_ap": ["perm"],
    "puzzlemix": ["adversarial", "grid", "lam", "num_classes", "partner_saliency", "perm", "timed"],
    "comixup": [],
    "augmix": [],
    "vanilla": [],
    "manifold_mixup": [],
}


@pytest.mark.parametrize("name", NAMES)
def test_unknown_keywords_are_refused_with_the_accepted_list(name):
    x, y, sal = _batch()
    accepted = DECLARED.get(name, DECLARED["puzzlemix"] if name.startswith("puzzlemix") else None)
    assert sorted(_mix_keywords(type(_build(name)))) == accepted
    listed = re.escape(str(accepted) if accepted else "none")
    with pytest.raises(ValueError, match=rf"\['bogus'\]; it accepts {listed}"):
        _call(name, x, y, sal, bogus=1)
    with pytest.raises(ValueError, match="bogus"):
        _build(name)(x, y, sal, bogus=1)


def test_cutmix_lam_is_refused_not_ignored():
    x, y, _ = _batch()
    with pytest.raises(
        ValueError, match=r"CutMix.mix got unexpected keyword argument\(s\) \['lam'\]"
    ):
        _call("cutmix", x, y, lam=1.0)


@pytest.mark.parametrize("name", ["input_mixup", "puzzlemix"])
def test_lam_and_perm_values_are_checked(name):
    x, y, sal = _batch()
    for lam in (1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match="lam must be a number in"):
            _call(name, x, y, sal, lam=lam)
    for perm, match in (
        (torch.tensor([0, 1, 2]), "perm has batch size 3"),
        (torch.tensor([0, 1, 2, 4]), r"perm must hold indices in \[0, 3\]"),
        (torch.tensor([0.0, 1.0, 2.0, 3.0]), "perm must be an integer tensor"),
    ):
        with pytest.raises(ValueError, match=match):
            _call(name, x, y, sal, perm=perm)


def test_generator_must_be_a_cpu_torch_generator():
    x, y, _ = _batch()
    with pytest.raises(ValueError, match="generator must be None or a CPU torch.Generator"):
        _build("cutmix").mix(x, y, generator=123)


# -- 6. channels, devices, layouts --------------------------------------------------------------


@pytest.mark.parametrize("c", [2, 4])
def test_augmix_states_the_channel_counts_it_takes(c):
    x, y, _ = _batch(c=c)
    with pytest.raises(ValueError, match=f"augmix takes x with 1 or 3 channels, got C={c}"):
        _call("augmix", x, y)
    with pytest.raises(ValueError, match="augment takes float x with 1 or 3 channels"):
        _build("augmix").augment(x)
    with pytest.raises(ValueError, match="augment takes float x with 1 or 3 channels"):
        mixers.build("puzzlemix_aug", num_classes=K).pre_transform(x)


@pytest.mark.parametrize("name", NAMES)
def test_meta_and_sparse_images_are_refused(name):
    x, y, sal = _batch()
    with pytest.raises(ValueError, match="x is on the 'meta' device"):
        _call(name, x.to("meta"), y, sal)
    with pytest.raises(ValueError, match="x must be a dense tensor"):
        _call(name, x.to_sparse(), y, sal)


def test_bad_image_shapes_are_refused():
    x, y, _ = _batch()
    for bad, match in (
        (x[0], r"x must have shape \(B, C, H, W\)"),
        (x[:0], "x must hold at least one example"),
        (x[:, :, :0], "x must have C, H, W >= 1"),
        (x.numpy(), "x must be a torch.Tensor"),
    ):
        with pytest.raises(ValueError, match=match):
            _call("cutmix", bad, y)  # x is checked before y


def test_one_cell_grids_are_refused_at_construction():
    from puzzle_core import PuzzleMixConfig

    with pytest.raises(ValueError, match="grid >= 2"):
        mixers.build("comixup", num_classes=K, grid=1)
    with pytest.raises(ValueError, match="grid_sizes must be an integer >= 2"):
        PuzzleMixConfig(grid_sizes=(1, 2))
    x, y, sal = _batch()
    with pytest.raises(ValueError, match="grid must be an integer >= 2"):
        _call("puzzlemix", x, y, sal, grid=1)


# -- y ------------------------------------------------------------------------------------------


def _bad_labels(y):
    soft = F.one_hot(y, K).float()
    nan, neg = soft.clone(), soft.clone()
    nan[0, 0] = float("nan")
    neg[0, 0] = -0.5
    return [
        (y + K, rf"y must hold class indices in \[0, {K - 1}\]"),
        (y - 1, rf"y must hold class indices in \[0, {K - 1}\]"),
        (y[:3], "y has batch size 3 but x has batch size 4"),
        (y.float(), "got floats"),
        (y.bool(), "y must be integer labels or real soft targets"),
        (y.view(4, 1, 1), r"y must have shape \(B,\) or \(B, K\)"),
        (nan, "y must be finite"),
        (neg, "y must be non-negative"),
        (soft[:, :3], "y has 3 classes .* num_classes is 5"),
        (y.to("meta"), "y is on the 'meta' device"),
    ]


@pytest.mark.parametrize("name", NAMES)
def test_bad_labels_are_refused(name):
    x, _, sal = _batch()
    y = torch.tensor([0, 1, 4, 2])
    for bad, match in _bad_labels(y):
        with pytest.raises(ValueError, match=match):
            _call(name, x, bad, sal)


def test_integer_labels_need_num_classes():
    x, y, _ = _batch()
    with pytest.raises(ValueError, match="num_classes is required"):
        mixers.build("cutmix").mix(x, y)


# -- property: every mixer on random batches ----------------------------------------------------


def _config(m):
    return getattr(m, "config", None)


def _takes_alpha(m):
    return hasattr(m, "alpha") or hasattr(_config(m), "alpha")


@st.composite
def _cases(draw, name):
    b = draw(st.integers(1, 33))
    h, w = draw(st.sampled_from((8, 16, 32))), draw(st.sampled_from((8, 16, 32)))
    c = draw(st.sampled_from((1, 3)))  # AugMix: PIL "L" or "RGB"
    dtype = draw(st.sampled_from((torch.float32, torch.float64, torch.uint8)))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.uint8:
        lo = draw(st.integers(0, 255))
        hi = draw(st.integers(lo, 255))
        x = torch.randint(lo, hi + 1, (b, c, h, w), generator=g, dtype=torch.uint8)
    else:  # AugMix (no mean/std) takes images in [0, 1]; the others any finite range
        lo, span = (
            (0.0, 1.0)
            if name == "augmix"
            else (
                draw(st.floats(-3, 1, allow_subnormal=False)),
                draw(st.floats(0, 4, allow_subnormal=False)),
            )
        )
        x = (lo + span * torch.rand(b, c, h, w, generator=g, dtype=torch.float64)).to(dtype)
    labels = torch.randint(0, K, (b,), generator=g)
    sal = torch.rand(b, h, w, generator=g) * draw(st.sampled_from((0.0, 1.0, 1e3)))
    alpha = draw(st.floats(0, 1, allow_subnormal=False))
    lam = draw(st.one_of(st.none(), st.floats(0, 1, allow_subnormal=False)))
    return x, labels, sal, alpha, lam, seed


@pytest.mark.parametrize("name", NAMES)
@settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_property_clear_error_or_a_valid_mix(name, data):
    x, y, sal, alpha, lam, seed = data.draw(_cases(name))
    m = _build(name)
    kw = {"lam": lam} if "lam" in _mix_keywords(type(m)) and lam is not None else {}
    given_sal = sal if m.saliency in ("input_gradient", "cam") else None
    try:
        if _takes_alpha(m):
            m = _build(name, alpha=alpha)
        out = m.mix(x, y, given_sal, generator=torch.Generator().manual_seed(seed), **kw)
    except ValueError as e:  # the refusals valid draws can meet
        if "must divide the image size" in str(e):  # a Puzzle Mix grid of 16 on a side of 8
            assert _config(m) is not None and (x.shape[2] % 16 or x.shape[3] % 16)
        else:  # AugMix's Beta(alpha, alpha) at construction
            assert name == "augmix" and alpha == 0 and "alpha must be > 0" in str(e), str(e)
        return
    b = x.shape[0]
    assert out.x.shape == x.shape and out.x.dtype == x.dtype and out.y.shape == (b, K)
    xf, xm = x.double(), out.x.double()
    assert torch.isfinite(xm).all() and torch.isfinite(out.y).all()
    lo, hi = xf.min().item(), xf.max().item()
    if _config(m) is not None and _config(m).transport:  # the reference's zero patches
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    if name == "augmix":  # PIL operations (equalize, solarize...): the image range [0, 1]
        lo, hi = 0.0, 255.0 if x.dtype == torch.uint8 else 1.0
    tol = 0 if x.dtype == torch.uint8 else 1e-5 * (1 + max(abs(lo), abs(hi)))
    assert xm.min() >= lo - tol and xm.max() <= hi + tol
    onehot = F.one_hot(y, K).double()
    yd, ratio = out.y.double(), out.ratio.double()
    assert sorted(out.perm.tolist()) == list(range(b))
    if name == "snapmix":  # rho_a y + rho_b y[perm], not normalised (equal labels: both sums)
        rho_b = out.info["rho_b"].double()
        assert ((ratio >= -1e-6) & (ratio <= 2 + 1e-6) & (rho_b >= 0) & (rho_b <= 2 + 1e-6)).all()
        expect = ratio[:, None] * onehot + rho_b[:, None] * onehot[out.perm]
    elif name == "comixup":  # area shares of several inputs
        expect = out.info["shares"].double() @ onehot
        assert torch.allclose(yd.sum(1), torch.ones(b, dtype=torch.float64), atol=1e-5)
    else:
        assert ((ratio >= 0) & (ratio <= 1)).all()
        expect = ratio[:, None] * onehot + (1 - ratio[:, None]) * onehot[out.perm]
        assert torch.allclose(yd.sum(1), torch.ones(b, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(yd, expect, atol=1e-5)
