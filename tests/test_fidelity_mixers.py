"""Fidelity to the official codes (issue #11, items 1-3): GuidedMixup's greedy pairing and its
distances, SnapMix's undefined-CAM fallback, Co-Mixup's hard threshold.  Each oracle is a literal
transcription of the official rule (docs/baselines.md §6, §7, §8.3), written here in NumPy/torch."""

import itertools

import numpy as np
import pytest
import torch

from puzzle_core import mixers
from puzzle_core.mixers.comixup import (
    CoMixupProblem,
    energy,
    label_vectors,
    modular_penalty,
    official_objective,
    optimise,
)
from puzzle_core.pairing import (
    greedy_pairing,
    make_pairing,
    pairing_maps,
    saliency_distances,
)

K = 5

# -- 1. GuidedMixup greedy pairing ---------------------------------------------------------------


def _official_l2(maps):
    """GuidedMixup ``distance_function(a, a, 'l2')``: the (B, B, N) broadcast of differences."""
    ra = maps.reshape(maps.shape[0], -1).unsqueeze(1)
    rb = maps.reshape(maps.shape[0], -1).unsqueeze(0)
    return (ra - rb).norm(dim=-1)


def _official_onecycle_cover(distance_matrix):
    """``pairing.pyx onecycle_cover``, statement by statement (argmax before the diagonal fill,
    as the root version), on a copy."""
    dm = np.array(distance_matrix, dtype=np.float32)
    max_idx = np.argmax(dm)
    sorted_indices = np.zeros(dm.shape[0], dtype=np.int32)
    np.fill_diagonal(dm, -np.inf)
    row, col = max_idx // dm.shape[0], max_idx % dm.shape[0]
    first_row = row
    sorted_indices[row] = col
    dm[:, row] = -np.inf
    idx = 0
    while idx < dm.shape[0] - 2:
        idx += 1
        row = col
        col = np.argmax(dm[row])
        sorted_indices[row] = col
        dm[:, row] = -np.inf
    sorted_indices[col] = first_row
    return sorted_indices


@pytest.mark.parametrize("form", ["official", "gram"])
def test_distances_are_exactly_symmetric(form):
    g = torch.Generator().manual_seed(0)
    for b, size in [(2, 4), (7, 8), (33, 16), (100, 32)]:
        maps = torch.rand(b, size, size, generator=g) ** 4
        maps = maps / maps.sum((1, 2), keepdim=True)
        w = saliency_distances(maps, form)
        assert torch.equal(w, w.T)  # bitwise
        assert (w.diagonal() == 0).all()
        assert w.dtype == (torch.float32 if form == "official" else torch.float64)
        ref = _official_l2(maps.float())
        if form == "official":  # the official formula and dtype, value for value
            assert torch.equal(w, ref.fill_diagonal_(0))
        else:
            assert torch.allclose(w, ref.double().fill_diagonal_(0), atol=1e-6)


def test_distances_in_row_blocks_equal_the_full_broadcast(monkeypatch):
    import puzzle_core.pairing as pairing

    maps = torch.rand(9, 8, 8, generator=torch.Generator().manual_seed(1))
    whole = saliency_distances(maps)
    monkeypatch.setattr(pairing, "_CHUNK_ELEMENTS", 1)  # one row per block
    assert torch.equal(saliency_distances(maps), whole)


def test_ties_break_row_major():
    # two equal largest distances, (0, 2) and (1, 3), each present twice (w symmetric)
    w = torch.tensor(
        [[0.0, 1.0, 5.0, 2.0], [1.0, 0.0, 3.0, 5.0], [5.0, 3.0, 0.0, 1.0], [2.0, 5.0, 1.0, 0.0]]
    )
    perm = greedy_pairing(w)
    assert perm[0] == 2  # the first maximum in row-major order is w[0, 2]
    assert np.array_equal(perm.numpy(), _official_onecycle_cover(w.numpy()))
    # the symmetric tie of a unique largest pair: z_1, z_2 far apart, the rest close
    eye = torch.eye(4, 16).view(4, 4, 4)
    maps = eye * torch.tensor([1.0, 3.0, 3.0, 1.0]).view(4, 1, 1)
    for form in ("official", "gram"):
        w = saliency_distances(maps, form)
        assert w[1, 2] == w[2, 1] == w.max()
        perm = greedy_pairing(w)
        assert perm[1] == 2  # (1, 2), not (2, 1)
        assert np.array_equal(perm.numpy(), _official_onecycle_cover(w.float().numpy()))
    # every distance equal (one-hot maps): row-major ties all the way, the cycle 0 -> 1 -> ... -> 0
    for form in ("official", "gram"):
        perm = make_pairing("greedy", 6, maps=torch.eye(6).view(6, 2, 3), distance=form)
        assert perm.tolist() == [1, 2, 3, 4, 5, 0]


def test_greedy_pairing_equals_the_official_rule_on_40_batches():
    g = torch.Generator().manual_seed(11)
    for t in range(40):
        b = (100, 32, 17, 64)[t % 4]
        if t % 2:  # GuidedMixup's own maps (spectral residual, blurred, sum 1)
            maps = pairing_maps(torch.rand(b, 3, 32, 32, generator=g))
        else:
            maps = torch.rand(b, 16, 16, generator=g) ** 4
            maps = maps / maps.sum((1, 2), keepdim=True)
        official = _official_onecycle_cover(_official_l2(maps.float()).numpy())
        ours = make_pairing("greedy", b, maps=maps)
        assert np.array_equal(ours.numpy(), official), t


def test_distance_form_is_checked():
    with pytest.raises(ValueError, match="form"):
        saliency_distances(torch.rand(3, 4, 4), "cdist")
    with pytest.raises(ValueError, match="distance"):
        make_pairing("greedy", 3, maps=torch.rand(3, 4, 4), distance="cdist")


# -- 2. SnapMix: undefined (constant) CAMs -------------------------------------------------------


def _official_snapmix_weights(cams, target, rand_index, box_a, box_b, h, w):
    """SnapMix utils/mixmethod.py: ``get_spm``'s normalisation (NaN for a constant CAM) and the
    label weights of ``snapmix``, statement by statement (float32)."""
    wfmaps = cams.clone().float()
    for i in range(wfmaps.shape[0]):
        wfmaps[i] -= wfmaps[i].min()
        wfmaps[i] /= wfmaps[i].sum()
    wfmaps_b = wfmaps[rand_index, :, :]
    target_b = target[rand_index]
    same_label = target == target_b
    bbx1, bbx2, bby1, bby2 = box_a
    bbx1_1, bbx2_1, bby1_1, bby2_1 = box_b
    lam_a = 1 - wfmaps[:, bbx1:bbx2, bby1:bby2].sum(2).sum(1) / (wfmaps.sum(2).sum(1) + 1e-8)
    lam_b = wfmaps_b[:, bbx1_1:bbx2_1, bby1_1:bby2_1].sum(2).sum(1) / (
        wfmaps_b.sum(2).sum(1) + 1e-8
    )
    tmp = lam_a.clone()
    lam_a[same_label] += lam_b[same_label]
    lam_b[same_label] += tmp[same_label]
    lam = 1 - ((bbx2 - bbx1) * (bby2 - bby1) / (w * h))
    lam_a[torch.isnan(lam_a)] = lam
    lam_b[torch.isnan(lam_b)] = 1 - lam
    return lam_a, lam_b


def _mixed_boxes(out):
    if not out.info["boxes"]:
        return None
    (a1, a2, a3, a4), (b1, b2, b3, b4) = out.info["boxes"]
    if not ((a2 - a1) * (a4 - a3) and (b2 - b1) * (b4 - b3)):
        return None
    return (a1, a2, a3, a4), (b1, b2, b3, b4)


def test_snapmix_all_undefined_maps_give_the_area_of_box_a_and_rows_sum_to_one():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 16, 16, generator=g)
    y = torch.tensor([0, 0, 1, 1, 2, 0, 1, 2])  # same-label pairs too
    checked = 0
    for seed in range(20):
        out = mixers.build("snapmix", num_classes=K).mix(
            x, y, torch.zeros(8, 16, 16), generator=torch.Generator().manual_seed(seed)
        )
        boxes = _mixed_boxes(out)
        if boxes is None:
            continue
        (a1, a2, a3, a4), (b1, b2, b3, b4) = boxes
        frac = (a2 - a1) * (a4 - a3) / 256
        if frac == (b2 - b1) * (b4 - b3) / 256:
            continue  # box b's area would give the same numbers
        assert torch.allclose(out.ratio, torch.full((8,), 1 - frac))
        assert torch.allclose(out.info["rho_b"], torch.full((8,), frac))
        assert torch.allclose(out.y.sum(1), torch.ones(8))
        checked += 1
    assert checked >= 5


def test_snapmix_mixed_maps_follow_the_official_order():
    g = torch.Generator().manual_seed(1)
    b, h = 10, 16
    x = torch.rand(b, 3, h, h, generator=g)
    y = torch.tensor([0, 0, 0, 1, 1, 1, 0, 1, 0, 1])
    cams = torch.randn(b, h, h, generator=g)
    undefined = torch.tensor([1, 0, 0, 1, 0, 1, 0, 0, 1, 0], dtype=torch.bool)
    cams[undefined] = 0.7  # constant CAMs: NaN SPMs in the code
    spm = cams - cams.flatten(1).min(1).values.view(-1, 1, 1)  # ours: all zero when undefined
    same_one_undefined = checked = 0
    for seed in range(40):
        out = mixers.build("snapmix", num_classes=K).mix(
            x, y, spm, generator=torch.Generator().manual_seed(seed)
        )
        boxes = _mixed_boxes(out)
        if boxes is None:
            continue
        lam_a, lam_b = _official_snapmix_weights(cams, y, out.perm, *boxes, h, h)
        assert torch.allclose(out.ratio, lam_a, atol=1e-6), seed
        assert torch.allclose(out.info["rho_b"], lam_b, atol=1e-6), seed
        same = y == y[out.perm]
        one = undefined ^ undefined[out.perm]
        same_one_undefined += int((same & one).sum())
        checked += 1
    assert checked >= 10 and same_one_undefined > 0  # the order really was exercised


# -- 3. Co-Mixup: the hard threshold as the code parses it, and the objectives -------------------


def test_modular_penalty_official_parse_and_intended_form():
    compat = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.25], [0.0, 0.25, 1.0]])
    p = np.array([4.0, 1.0, 2.0])
    thres, gamma = 3.0, 0.5
    # literal transcriptions of match.py's line: Python precedence decides, in NumPy and torch
    official_np = 2 * gamma * ((compat @ p > thres).astype(float) * compat @ p)
    at, pt = torch.tensor(compat), torch.tensor(p)
    official_torch = (2 * gamma * ((at @ pt > thres).float() * at @ pt)).numpy()
    intended_np = 2 * gamma * ((compat @ p > thres).astype(float) * (compat @ p))
    # by hand: A p = (4.5, 3.5, 2.25), mask = (1, 1, 0)
    assert np.allclose(official_np, [4.5, 3.0, 0.25])  # A (mask * p) = A (4, 1, 0)
    assert np.allclose(official_torch, official_np)
    assert np.allclose(intended_np, [4.5, 3.5, 0.0])  # mask * (A p)
    assert np.allclose(modular_penalty(compat, p, thres, gamma), official_np)  # the default
    assert np.allclose(
        modular_penalty(compat, p, thres, gamma, threshold_form="official"), official_np
    )
    assert np.allclose(
        modular_penalty(compat, p, thres, gamma, threshold_form="intended"), intended_np
    )
    soft = 2 * gamma * ((compat @ p > thres).astype(float) * (compat @ p - thres))
    for form in ("official", "intended"):  # the soft branch is parenthesised in the code
        assert np.allclose(modular_penalty(compat, p, thres, gamma, "soft", form), soft)
    eye = np.eye(3)  # with A = I the two forms coincide
    assert np.allclose(
        modular_penalty(eye, p, thres, gamma, threshold_form="official"),
        modular_penalty(eye, p, thres, gamma, threshold_form="intended"),
    )


def test_modular_penalty_matches_the_code_on_random_problems():
    rng = np.random.default_rng(0)
    for _ in range(50):
        m = int(rng.integers(2, 8))
        a_hat = rng.random((m, m))
        compat = (1 - 0.3) * np.eye(m) + 0.3 * (a_hat + a_hat.T)
        p = rng.integers(0, 20, m).astype(float)
        thres = float(rng.random() * 15)
        at, pt = torch.tensor(compat), torch.tensor(p)
        code = (2 * 0.1 * ((at @ pt > thres).float() * at @ pt)).numpy()
        assert np.allclose(modular_penalty(compat, p, thres, 0.1), code)


def test_threshold_form_default_and_choices():
    assert mixers.build("comixup", num_classes=K).threshold_form == "official"
    with pytest.raises(ValueError, match="threshold_form"):
        mixers.build("comixup", num_classes=K, threshold_form="paper")
    prob = CoMixupProblem(-np.full((2, 4), 0.25), np.eye(2), 2, 0.1, 0.1, 1.0)
    with pytest.raises(ValueError, match="threshold_form"):
        optimise(prob, np.random.default_rng(0), threshold_form="paper")


def _obj_fn_thres(cost_matrix, mask_onehot, beta, gamma, thres):
    """match.py ``obj_fn_thres``, statement by statement: cost (m, g, g), mask (m_out, g, g, m)."""
    n_output, height, width, n_input = mask_onehot.shape
    mask_idx_sum = mask_onehot.reshape(n_output, height * width, n_input).sum(1)
    loss = 0
    loss += torch.sum(cost_matrix.permute(1, 2, 0).unsqueeze(0) * mask_onehot)
    loss += (
        beta
        / 2
        * (
            ((mask_onehot[:, :-1, :, :] - mask_onehot[:, 1:, :, :]) ** 2).sum()
            + ((mask_onehot[:, :, :-1, :] - mask_onehot[:, :, 1:, :]) ** 2).sum()
        )
    )
    penalty = mask_idx_sum.sum(0, keepdim=True) - mask_idx_sum
    modular_penalty = (penalty > thres).float() * penalty
    loss += gamma * torch.sum(modular_penalty * mask_idx_sum)
    return float(loss)


def test_official_objective_is_obj_fn_thres_and_energy_is_ours():
    rng = np.random.default_rng(3)
    for t in range(20):
        m, g = 4, 3
        n = g * g
        cost = rng.random((m, n))
        cost = -cost / cost.sum(1, keepdims=True)
        a_hat = rng.random((m, m))
        compat = 0.9 * np.eye(m) + 0.1 * (a_hat + a_hat.T)
        prob = CoMixupProblem(cost, compat, g, 0.05, 0.2, float(rng.random() * 4))
        halves = list(itertools.combinations(range(m), 2)) if t % 2 else []
        vecs = label_vectors(m, halves)
        weights = vecs[rng.integers(len(vecs), size=(m, n))]  # (m_out, n, m)
        mask = torch.tensor(weights.reshape(m, g, g, m))
        ref = _obj_fn_thres(
            torch.tensor(cost.reshape(m, g, g)), mask, prob.beta, prob.gamma, prob.tau
        )
        assert np.isclose(official_objective(prob, weights), ref)
        plain = CoMixupProblem(cost, np.eye(m), g, prob.beta, prob.gamma, prob.tau)
        half_cells = int(np.isclose(weights.max(2), 0.5).sum())
        # E_ours = the official objective (A = I) minus the half labels' bonus
        assert np.isclose(energy(plain, weights), ref - 5e-4 * half_cells)


def test_comixup_reports_both_objectives():
    x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    sal = torch.rand(6, 16, 16, generator=torch.Generator().manual_seed(1))
    y = torch.arange(6) % K
    outs = {}
    for form in ("official", "intended"):
        m = mixers.build("comixup", num_classes=K, part=3, niter=2, threshold_form=form)
        outs[form] = m.mix(x, y, sal, generator=torch.Generator().manual_seed(0))
        assert len(outs[form].info["official_objective"]) == len(outs[form].info["energy"]) == 2
    # omega = 0: A = I, where both forms are one rule
    for form in ("official", "intended"):
        m = mixers.build("comixup", num_classes=K, part=3, niter=2, omega=0.0, threshold_form=form)
        outs[form] = m.mix(x, y, sal, generator=torch.Generator().manual_seed(0))
    assert torch.equal(outs["official"].x, outs["intended"].x)
