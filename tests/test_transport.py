"""Algorithm 1 (both conflict rules) vs a literal dense transcription, Props. 3-5, the exact
assignment oracle and plan application."""

import pytest
import torch

from puzzle_core import apply_plan, exact_transport, grid_cost_matrix, masked_transport
from puzzle_core.propositions import check_transport, random_transport_instances
from puzzle_core.transport import own_cell_choice, plan_matrix, plan_objective, transport_cost


def dense_reference(cost, n_iter):
    """The official mask_transport, transcribed literally (dense one-hot matrices)."""
    cost = cost.clone()
    win = None
    for _ in range(n_iter):
        row_best = cost.min(-1)[1]
        plan = torch.zeros_like(cost).scatter_(-1, row_best.unsqueeze(-1), 1)
        col_best = (plan * cost).min(-2)[1]
        win = torch.zeros_like(cost).scatter_(-2, col_best.unsqueeze(-2), 1) * plan
        cost += (1 - win) * plan
    return win


def dense_paper(cost):
    """Algorithm 1 as printed with v = inf, until no row loses -> (Pi_win, steps)."""
    cost = cost.clone()
    n = cost.shape[-1]
    for t in range(n * (n - 1) // 2 + 1):
        plan = torch.zeros_like(cost).scatter_(-1, cost.argmin(-1).unsqueeze(-1), 1)
        fight = torch.where(plan > 0, cost, torch.full_like(cost, float("inf")))
        win = torch.zeros_like(cost).scatter_(-2, fight.argmin(-2).unsqueeze(-2), 1) * plan
        lose = (1 - win) * plan
        if lose.sum() == 0:
            return win, t + 1
        cost = torch.where(lose > 0, torch.full_like(cost, float("inf")), cost)
    raise AssertionError("did not converge")


def _instances(gen, side, batch, zero_saliency=False):
    s = torch.rand(batch, side, side, generator=gen)
    s = s / s.sum((1, 2), keepdim=True)
    if zero_saliency:
        s[:, : side // 2] = 0
    z = (torch.rand(batch, side, side, generator=gen) > 0.5).float()
    return transport_cost(s, z, 0.8, grid_cost_matrix(side, side)), z


@pytest.mark.parametrize("side", [2, 3, 4, 8, 16])
def test_reference_rule_matches_literal_transcription(side, gen):
    for trial in range(6):
        cost, z = _instances(gen, side, 16, zero_saliency=trial % 2 == 0)
        expect = dense_reference(cost, side)
        got = masked_transport(cost, conflict="reference", penalty=1.0, max_iter=side)
        assert torch.equal(got.matrix(), expect)
        hint = own_cell_choice(z, 0.8)
        got2 = masked_transport(
            cost, conflict="reference", penalty=1.0, max_iter=side, first_choice=hint
        )
        assert torch.equal(got2.source, got.source)


@pytest.mark.parametrize("side", [2, 3, 4, 8])
def test_paper_rule_matches_literal_transcription(side, gen):
    cost, _ = _instances(gen, side, 12)
    got = masked_transport(cost)
    for b in range(cost.shape[0]):
        win, steps = dense_paper(cost[b : b + 1])
        assert torch.equal(got.matrix()[b : b + 1], win)
        assert got.iterations[b] == steps


def test_masked_transport_leaves_cost_untouched(gen):
    cost, _ = _instances(gen, 4, 8)
    before = cost.clone()
    masked_transport(cost, conflict="reference", penalty=1.0, max_iter=4)
    assert torch.equal(cost, before)


@pytest.mark.parametrize("side,count", [(2, 1500), (4, 1500), (8, 300), (16, 40)])
def test_propositions_3_4_5(side, count):
    n = side * side
    cost, z = random_transport_instances(count, side, torch.Generator().manual_seed(side))
    res = check_transport(cost, z, torch.Generator().manual_seed(0))
    assert res.prop3.all()  # Prop. 3: a z = 1 column has exactly one winner at every step
    assert (res.prop4_max_increase <= 1e-12).all()  # Prop. 4: partial objective non-increasing
    # Prop. 5, with a budget above the bound so that the bound is measured, not imposed
    assert res.bound == n * (n - 1) // 2 + 1 and res.max_iter > res.bound
    assert res.converged.all() and (res.steps <= res.bound).all() and res.prop5().all()
    assert (res.steps > 1).any()  # some instances have conflicts to resolve
    assert (res.objective >= res.optimum - 1e-9).all()  # Hungarian is a lower bound


def test_prop5_check_detects_a_run_that_did_not_converge():
    """With a budget one step short of what some instances need, the check reports them as not
    converged (Prop. 5 failing) instead of passing by construction."""
    cost, z = random_transport_instances(300, 4, torch.Generator().manual_seed(4))
    full = check_transport(cost, z)
    short = check_transport(cost, z, max_iter=int(full.steps.max()) - 1)
    assert full.prop5().all()
    assert not short.converged.all() and not short.prop5().all()
    assert (short.steps <= short.max_iter).all()


def test_exact_transport_is_optimal_by_enumeration(gen):
    import itertools

    cost = torch.randn(20, 4, 4, generator=gen, dtype=torch.float64)
    perms = torch.tensor(list(itertools.permutations(range(4))))
    plan = exact_transport(cost)
    for b in range(20):
        objs = torch.stack([plan_objective(cost[b : b + 1], p[None])[0] for p in perms])
        assert torch.isclose(plan_objective(cost[b : b + 1], plan.source[b : b + 1])[0], objs.min())


@pytest.mark.parametrize("path", ["compiled", "gather"])
def test_apply_plan_is_a_patch_permutation(path, gen):
    from puzzle_core.transport import gather_plan

    apply = apply_plan if path == "compiled" else gather_plan
    x = torch.rand(3, 2, 8, 12, generator=gen)
    src = torch.stack([torch.randperm(4 * 6, generator=gen) for _ in range(3)])
    out = apply(x, src, 4, 6)
    for b in range(3):
        for j in range(24):
            i = int(src[b, j])
            ri, ci, rj, cj = i // 6, i % 6, j // 6, j % 6
            assert torch.equal(
                out[b, :, 2 * rj : 2 * rj + 2, 2 * cj : 2 * cj + 2],
                x[b, :, 2 * ri : 2 * ri + 2, 2 * ci : 2 * ci + 2],
            )
    # the dense formulation Pi^T x gives the same
    pm = plan_matrix(src)
    patches = x.reshape(3, 2, 4, 2, 6, 2).permute(0, 2, 4, 1, 3, 5).reshape(3, 24, -1)
    dense = torch.bmm(pm.transpose(1, 2), patches)
    assert torch.allclose(
        dense.reshape(3, 4, 6, 2, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(x.shape), out
    )
    # an empty column gives a zero patch
    src[0, 0] = -1
    assert (apply(x, src, 4, 6)[0, :, :2, :2] == 0).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.uint8, torch.float16])
def test_compiled_apply_plan_equals_the_gathers(dtype, gen):
    from puzzle_core.transport import gather_plan

    for th, tw, h, w in ((2, 2, 32, 32), (8, 8, 32, 32), (16, 16, 32, 32), (3, 5, 6, 20)):
        x = (torch.rand(5, 3, h, w, generator=gen) * 200).to(dtype)
        src = torch.stack([torch.randperm(th * tw, generator=gen) for _ in range(5)])
        src[::2, :: max(1, tw - 1)] = -1
        assert torch.equal(apply_plan(x, src, th, tw), gather_plan(x, src, th, tw))
    # a channels-last input and one that needs gradients (gather path) agree too
    x = torch.rand(2, 3, 8, 8, generator=gen).to(memory_format=torch.channels_last)
    src = torch.stack([torch.randperm(16, generator=gen) for _ in range(2)])
    assert torch.equal(apply_plan(x, src, 4, 4), gather_plan(x.contiguous(), src, 4, 4))
    xg = x.clone().requires_grad_(True)
    assert torch.equal(apply_plan(xg, src, 4, 4).detach(), apply_plan(x, src, 4, 4))


def test_bad_transport_input():
    with pytest.raises(ValueError, match="cost"):
        masked_transport(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="conflict"):
        masked_transport(torch.zeros(1, 2, 2), conflict="nope")
    with pytest.raises(ValueError, match="max_iter"):
        masked_transport(torch.zeros(1, 2, 2), conflict="reference")


def _saliency_instances(gen, side, soft, conflict, batch=12):
    """Saliency with zero regions, z in {0, 1/2, 1} (or binarised), and the loop options."""
    s = torch.rand(batch, side, side, generator=gen) ** 3
    s[: batch // 3, : side // 2] = 0
    s = s / s.sum((1, 2), keepdim=True)
    z = torch.randint(0, 3, (batch, side, side), generator=gen).float() / 2
    if not soft:
        z = (z > 0).float()
    ref = conflict == "reference"
    kw = dict(
        conflict=conflict, penalty=1.0 if ref else float("inf"), max_iter=side if ref else None
    )
    return s, z, kw


@pytest.mark.parametrize("conflict", ["reference", "paper"])
@pytest.mark.parametrize("soft", [False, True])
def test_saliency_transport_equals_dense(conflict, soft, gen):
    from puzzle_core.transport import saliency_transport

    for side in (2, 4, 8, 16):
        s, z, kw = _saliency_instances(gen, side, soft, conflict)
        cmat = grid_cost_matrix(side, side)
        dense = masked_transport(transport_cost(s, z, 0.8, cmat), **kw)
        lazy = saliency_transport(s, z, 0.8, cmat, **kw)
        assert torch.equal(dense.source, lazy.source)
        assert torch.equal(dense.converged, lazy.converged)


@pytest.mark.parametrize("conflict", ["reference", "paper"])
def test_compiled_cpu_backend_equals_torch_backend(conflict, gen):
    from puzzle_core.transport import saliency_transport

    for side in (2, 4, 8, 16):
        for soft in (False, True):
            s, z, kw = _saliency_instances(gen, side, soft, conflict)
            cmat = grid_cost_matrix(side, side)
            a = saliency_transport(s, z, 0.8, cmat, backend="torch", **kw)
            for workers in (1, 3):
                b = saliency_transport(s, z, 0.8, cmat, backend="cpu", workers=workers, **kw)
                assert torch.equal(a.source, b.source)
                assert torch.equal(a.iterations, b.iterations)
                assert torch.equal(a.converged, b.converged)


@pytest.mark.parametrize("conflict", ["reference", "paper"])
def test_compiled_scan_without_its_bound_equals_torch_backend(conflict, gen):
    """The compiled loop stops a row's scan early only when s >= 0 and 0 <= z <= 1 make
    fl(base - s) a lower bound of the row; outside that (z > 1 here) it scans whole rows and
    must still agree with the batched torch path."""
    from puzzle_core.transport import saliency_transport

    for side in (3, 8):
        s, z, kw = _saliency_instances(gen, side, True, conflict)
        z = z * 1.7  # weights above 1: no bound, full scans
        cmat = grid_cost_matrix(side, side)
        kw["first_choice"] = torch.full((s.shape[0], side * side), -1)
        a = saliency_transport(s, z, 0.8, cmat, backend="torch", **kw)
        b = saliency_transport(s, z, 0.8, cmat, backend="cpu", **kw)
        assert torch.equal(a.source, b.source)
        assert torch.equal(a.iterations, b.iterations)
