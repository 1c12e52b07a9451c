"""Parity with cases produced by running the official mixup_graph (vendored fixtures: a missing
fixture fails, never skips)."""

import json

import numpy as np
import pytest
import torch
from conftest import FIXTURES

from puzzle_core.compat import official_mixup_graph


def _cases():
    meta = json.loads((FIXTURES / "mixup_graph_cases.json").read_text())
    return [(meta, c) for c in meta["cases"]]


@pytest.fixture(scope="module")
def arrays():
    return np.load(FIXTURES / "mixup_graph_cases.npz")


def _run(meta, case, arrays, solver="swap"):
    p = case["prefix"]
    g = lambda k: torch.from_numpy(arrays[p + k])  # noqa: E731
    noise = g("noise") if p + "noise" in arrays else None
    out = official_mixup_graph(
        g("x_norm"),
        g("saliency"),
        g("indices"),
        block_num=case["block_num"],
        lam=case["alpha"],
        beta=case["beta"],
        gamma=case["gamma"],
        eta=case["eta"],
        neigh_size=case["neigh_size"],
        n_labels=case["n_labels"],
        mean=meta["mean"],
        std=meta["std"],
        transport=case["transport"],
        t_eps=case["t_eps"],
        t_size=case["t_size"],
        noise=noise,
        adv_mask1=case["adv_mask1"],
        adv_mask2=case["adv_mask2"],
        solver=solver,
    )
    return out, g


@pytest.mark.parametrize("meta,case", _cases(), ids=lambda c: c["name"] if "name" in c else "")
def test_reference_parity(meta, case, arrays):
    out, g = _run(meta, case, arrays)
    for key in ("gc_unary_partner", "gc_unary_self", "gc_pw_x", "gc_pw_y"):
        assert torch.equal(out[key], g(key)), key
    assert torch.equal(out["mask_block"], g("mask_block").float())
    assert torch.allclose(out["mixed"], g("mixed"), atol=1e-5, rtol=0)
    assert torch.allclose(out["ratio"], g("ratio"), atol=1e-5, rtol=0)
    if case["transport"]:
        for key, mkey in (("plan_self", "t_mask"), ("plan_partner", "t_mask_partner")):
            ref = g(key).float()
            shown = g(mkey).reshape(ref.shape[0], -1) > 0
            for b in range(ref.shape[0]):
                assert torch.equal(out[key][b][:, shown[b]], ref[b][:, shown[b]]), (key, b)
    else:
        assert out["plan_self"] is None


@pytest.mark.parametrize("meta,case", _cases(), ids=lambda c: c["name"] if "name" in c else "")
def test_exact_solver_never_worse_on_the_reference_energy(meta, case, arrays):
    from puzzle_core import GridEnergy

    swap, g = _run(meta, case, arrays, "swap")
    exact, _ = _run(meta, case, arrays, "exact")
    m = case["n_labels"] - 1
    # the real-valued reference energy, rebuilt from the fixture's graph-cut terms
    a = g("gc_unary_partner").double()
    b = g("gc_unary_self").double()
    lam, eta, grid = case["alpha"], case["eta"], case["block_num"]
    z = torch.arange(m + 1, dtype=torch.float64) / m
    from math import comb, log

    prior = torch.tensor(
        [
            -eta * log(comb(m, k) * lam**k * (1 - lam) ** (m - k) + 1e-8) / grid**2
            for k in range(m + 1)
        ],
        dtype=torch.float64,
    )
    beta_s = case["beta"] / grid / 16
    energy = GridEnergy(
        a[..., None] * z + b[..., None] * (1 - z) + prior,
        g("gc_pw_x").double() + beta_s,
        g("gc_pw_y").double() + beta_s,
    )
    e_swap = energy.evaluate((swap["mask_block"] * m).round().long())
    e_exact = energy.evaluate((exact["mask_block"] * m).round().long())
    assert (e_exact <= e_swap + 1e-9).all()
