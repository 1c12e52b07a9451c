"""Eq. (4) as built by puzzle_energy vs the formulas written out independently, and the
submodularity propositions (Prop. 1, Lemma 1, Prop. 2)."""

import itertools
import math

import pytest
import torch

from puzzle_core import GridEnergy, boundary_distances, propositions, puzzle_energy
from puzzle_core.propositions import (
    binary_phi_margins,
    check_prop2,
    def3_pairwise_tables,
    multilabel_margins,
    random_edge_distances,
)


def _paper_energy(k, s_self, s_part, d_v, d_h, lam, m, beta, gamma, eta, phi):
    """Eq. (4) written out for one 2x2 example, label vector k (4,) row-major."""
    z = [ki / m for ki in k]
    e = 0.0
    for i, zi in enumerate(z):  # unary: -(1-z) s(x0) - z s(x1) - eta log p(z)
        r, c = divmod(i, 2)
        p = math.comb(m, k[i]) * lam ** k[i] * (1 - lam) ** (m - k[i])
        e += -(1 - zi) * s_part[r, c] - zi * s_self[r, c] - eta * math.log(p)
    edges = [
        ((0, 0), (1, 0), d_v[:, :, 0, 0]),
        ((0, 1), (1, 1), d_v[:, :, 0, 1]),
        ((0, 0), (0, 1), d_h[:, :, 0, 0]),
        ((1, 0), (1, 1), d_h[:, :, 1, 0]),
    ]
    for a, b, d in edges:
        zi, zj = z[a[0] * 2 + a[1]], z[b[0] * 2 + b[1]]
        w = (d[1, 0] + d[0, 1] - d[0, 0] - d[1, 1]) / 2
        tab = d if phi == "def2" else d - w * torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=d.dtype)
        wt = lambda v: (1 - v, v)  # noqa: E731
        ph = sum(wt(zi)[p] * wt(zj)[q] * tab[p, q] for p in (0, 1) for q in (0, 1))
        e += beta * (zi - zj) ** 2 + gamma * ph
    return float(e)


@pytest.mark.parametrize("n_labels,phi", [(2, "def2"), (3, "def3"), (4, "def3")])
def test_paper_energy_matches_eq4_up_to_a_constant(n_labels, phi, gen):
    m = n_labels - 1
    for _ in range(5):
        s_self = torch.rand(2, 2, generator=gen, dtype=torch.float64)
        s_part = torch.rand(2, 2, generator=gen, dtype=torch.float64)
        d_v = torch.rand(2, 2, 1, 2, generator=gen, dtype=torch.float64)
        d_h = torch.rand(2, 2, 2, 1, generator=gen, dtype=torch.float64)
        lam, beta, gamma, eta = 0.3, 0.7, 0.4, 0.2
        energy = puzzle_energy(
            s_self[None],
            s_part[None],
            d_v[None],
            d_h[None],
            torch.tensor([lam], dtype=torch.float64),
            n_labels=n_labels,
            beta=beta,
            gamma=gamma,
            eta=eta,
            phi="paper",
            prior_eps=0.0,
        )
        diffs = []
        for k in itertools.product(range(n_labels), repeat=4):
            ours = float(energy.evaluate(torch.tensor(k).view(1, 2, 2)))
            ref = _paper_energy(k, s_self, s_part, d_v, d_h, lam, m, beta, gamma, eta, phi)
            diffs.append(ours - ref)
        assert max(diffs) - min(diffs) < 1e-9  # equal up to the constant sum of saliencies


def test_reference_phi_keeps_interaction_and_equals_def2_for_binary(gen):
    args = [torch.rand(3, 4, 4, generator=gen, dtype=torch.float64) for _ in range(2)]
    d_v = torch.rand(3, 2, 2, 3, 4, generator=gen, dtype=torch.float64)
    d_h = torch.rand(3, 2, 2, 4, 3, generator=gen, dtype=torch.float64)
    lam = torch.rand(3, generator=gen, dtype=torch.float64)
    kw = dict(beta=0.05, gamma=0.02, eta=0.01)
    ref2 = puzzle_energy(*args, d_v, d_h, lam, n_labels=2, phi="reference", **kw)
    pap2 = puzzle_energy(*args, d_v, d_h, lam, n_labels=2, phi="paper", **kw)
    assert torch.equal(ref2.pair_v, pap2.pair_v) and torch.equal(ref2.unary, pap2.unary)
    ref3 = puzzle_energy(*args, d_v, d_h, lam, n_labels=3, phi="reference", **kw)
    pap3 = puzzle_energy(*args, d_v, d_h, lam, n_labels=3, phi="paper", **kw)
    assert torch.allclose(pap3.pair_v, torch.full_like(pap3.pair_v, 0.05))
    assert not torch.allclose(ref3.pair_v, pap3.pair_v)
    assert torch.equal(ref3.unary, pap3.unary)


def test_prior_mean_is_lambda():
    from puzzle_core.mask.energy import binomial_log_prior

    lam = torch.tensor([0.0, 0.2, 0.5, 0.9, 1.0], dtype=torch.float64)
    for n_labels in (2, 3, 5):
        p = binomial_log_prior(lam, n_labels, 0.0).exp()
        z = torch.arange(n_labels, dtype=torch.float64) / (n_labels - 1)
        assert torch.allclose(p.sum(1), torch.ones(5, dtype=torch.float64))
        assert torch.allclose((p * z).sum(1), lam, atol=1e-12)


def test_boundary_distances_know_the_answer():
    """Two flat images, 0.2 and 0.7: d_p is 0 within a source and 0.5 across sources."""
    a = torch.full((1, 3, 8, 8), 0.2)
    b = torch.full((1, 3, 8, 8), 0.7)
    d_v, d_h = boundary_distances(a, b, 4, 1)
    for d in (d_v, d_h):
        assert torch.allclose(d[:, 0, 0], torch.zeros_like(d[:, 0, 0]))
        assert torch.allclose(d[:, 1, 1], torch.zeros_like(d[:, 1, 1]))
        assert torch.allclose(d[:, 0, 1], torch.full_like(d[:, 0, 1], 0.5))


def test_prop1_binary_submodular_when_gamma_le_beta():
    g = torch.Generator().manual_seed(1)
    for ratio in (0.0, 0.5, 1.0):
        assert (binary_phi_margins(3000, ratio, g) >= -1e-12).all()


def test_prop1_fails_when_gamma_gt_beta():
    margins = binary_phi_margins(3000, 2.5, torch.Generator().manual_seed(2))
    assert (margins < 0).any()


@pytest.mark.parametrize("n_labels", [3, 4, 5])
def test_lemma1_and_prop2_def3_submodular(n_labels):
    """Prop. 2 on the project's energy: the tables puzzle_energy(phi="paper") builds equal
    beta psi + gamma phi of Defs. 1-3 (built independently) and are submodular, for gamma up to
    5 beta."""
    res = check_prop2(3000, n_labels, torch.Generator().manual_seed(n_labels))
    assert (multilabel_margins(res.psi) > 0).all()  # Lemma 1: psi
    assert (res.gamma_over_beta > 1).any()  # not only the gamma <= beta regime of Prop. 1
    assert res.max_deviation() < 1e-12  # the energy is Def. 3's
    assert res.violations() == 0  # Prop. 2
    assert res.holds()


@pytest.mark.parametrize("n_labels", [3, 5])
def test_prop2_check_fails_with_the_interaction_kept(n_labels):
    """phi="reference" keeps w (z_i - z_j)^2: not Def. 3, and not submodular for gamma > beta."""
    res = check_prop2(3000, n_labels, torch.Generator().manual_seed(7), phi="reference")
    assert res.max_deviation() > 1e-3
    assert res.violations() > 0
    assert not res.holds()


def test_unmodified_phi_extension_is_not_submodular():
    """Without the phi^b' modification the bilinear extension (Def. 3 of phi^b) breaks
    submodularity for large gamma: the margin check can fail."""
    g = torch.Generator().manual_seed(9)
    d_v, _ = random_edge_distances(3000, g)
    beta = torch.rand(3000, generator=g, dtype=torch.float64) + 1e-3
    _, theta = def3_pairwise_tables(d_v, beta, 5.0 * beta, 3, keep_interaction=True)
    assert (multilabel_margins(theta) < 0).any()


def _perturbed(kind):
    def energy(*args, **kwargs):
        e = puzzle_energy(*args, **kwargs)
        if kind == "unary":  # a modular error: still submodular, but not Def. 3
            z = torch.linspace(0, 1, e.n_labels, dtype=torch.float64)
            return GridEnergy(e.unary + 0.01 * z**2, e.pair_v, e.pair_h)
        # a pairwise error: the smoothness weight loses beta, breaking submodularity
        return GridEnergy(e.unary, e.pair_v - 1.5 * kwargs["beta"], e.pair_h - 1.5 * kwargs["beta"])

    return energy


@pytest.mark.parametrize("kind", ["unary", "pairwise"])
def test_prop2_check_catches_a_broken_energy(kind, monkeypatch):
    """The check reads the tables out of puzzle_energy: a wrong energy makes it fail, even one
    whose margins stay >= 0."""
    monkeypatch.setattr(propositions, "puzzle_energy", _perturbed(kind))
    res = check_prop2(500, 3, torch.Generator().manual_seed(3))
    assert res.max_deviation() > 1e-6
    assert not res.holds()
    if kind == "unary":
        assert res.violations() == 0  # the margins alone would not have caught it
    else:
        assert res.violations() > 0
