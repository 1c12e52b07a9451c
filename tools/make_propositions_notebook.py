"""Writes notebooks/propositions.ipynb (run once by hand after editing; kept for review)."""

import nbformat as nbf
from _notebook import write_notebook

md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
cells = [
    md("""# Puzzle Mix: the propositions and the solver oracles, checked numerically

*Puzzle Mix* (Kim, Choo, Song, ICML 2020) states five propositions about its mask energy (Eq. 4)
and its transport algorithm (Algorithm 1). This notebook checks each of them on thousands of
seeded random instances, and checks the project's solvers against independent oracles:

* the **exact** mask solver (one Ishikawa min-cut per batch) against exhaustive search;
* **alpha-beta swap** (gco, the paper's solver) against the exact optimum;
* **Algorithm 1** against the Hungarian / LAPJV optimum (`scipy.optimize.linear_sum_assignment`).

Every `assert` below is a test: `make test` runs this notebook with nbval. The instances are
synthetic (random saliency, random boundary distances in [0, 1]), generated from `seed`."""),
    code("""instances = 2000          # random instances per proposition check
seed = 0
grid_sizes = [2, 3, 4]    # mask grids for exact vs exhaustive search
oracle_instances = 300    # instances per (grid, labels) for the oracle comparison
transport_sides = [2, 4, 8, 16]   # n = side * side = 4, 16, 64, 256
transport_instances = 200"""),
    code("""import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch

from puzzle_core import solve_exact, solve_swap
from puzzle_core.oracles import brute_force_mask, random_puzzle_energy, row_dp_mask
from puzzle_core.propositions import (
    binary_phi_margins, check_transport, def3_pairwise_tables, multilabel_margins,
    random_transport_instances,
)

torch.set_num_threads(1)
gen = lambda k: torch.Generator().manual_seed(seed * 1000 + k)  # noqa: E731"""),
    md("""## Proposition 1 (binary labels)
With d_p in [0, 1], beta psi + gamma phi^b is submodular when gamma <= beta. The margins
E(0,1) + E(1,0) - E(0,0) - E(1,1) of the energy our code builds must be >= 0; with gamma > beta
the check must find violations (otherwise it could not fail)."""),
    code("""rows = []
for ratio in [0.0, 0.5, 1.0, 1.5, 2.5]:
    m = binary_phi_margins(instances, ratio, gen(int(ratio * 10)))
    rows.append({"gamma/beta": ratio, "min margin": m.min().item(),
                 "violations": int((m < -1e-12).sum())})
prop1 = pd.DataFrame(rows)
assert (prop1[prop1["gamma/beta"] <= 1]["violations"] == 0).all()
assert (prop1[prop1["gamma/beta"] > 2]["violations"] > 0).all()
prop1"""),
    md("""## Lemma 1 and Proposition 2 (multi-label, Def. 3)
On ordered labels L = {t/m}, a pairwise term theta is submodular when
theta(a+1, b) + theta(a, b+1) - theta(a, b) - theta(a+1, b+1) >= 0. Lemma 1: psi = (z_i - z_j)^2
is; Prop. 2: beta psi + gamma phi with phi the bilinear interpolation of phi^b' is, for any gamma.
The unmodified extension (phi^b with its interaction) is shown to fail."""),
    code("""rows = []
for n_labels in [3, 4, 5]:
    psi, theta = def3_pairwise_tables(instances, n_labels, gen(n_labels), gamma_over_beta=5.0)
    _, bad = def3_pairwise_tables(instances, n_labels, gen(n_labels + 10), gamma_over_beta=5.0,
                                  keep_interaction=True)
    rows.append({"labels": n_labels, "psi min margin": multilabel_margins(psi).min().item(),
                 "Def. 3 min margin": multilabel_margins(theta).min().item(),
                 "unmodified phi violations": int((multilabel_margins(bad) < 0).sum())})
prop2 = pd.DataFrame(rows)
assert (prop2["psi min margin"] > 0).all() and (prop2["Def. 3 min margin"] >= -1e-12).all()
assert (prop2["unmodified phi violations"] > 0).all()
prop2"""),
    md("""## Mask solvers against exhaustive search
The exact solver must reach the minimum found by exhaustive search on every instance (the
labelling may differ only by a tie), and swap may never go below it."""),
    code("""rows, gaps = [], []
for grid in grid_sizes:
    for n_labels in (2, 3):
        energy = random_puzzle_energy(oracle_instances, grid, n_labels, gen(10 * grid + n_labels))
        exact = solve_exact(energy)
        e_exact = energy.evaluate(exact)
        ref_labels, e_ref = row_dp_mask(energy)  # exhaustive over row states
        if n_labels ** (grid * grid) <= 20000:   # and plain enumeration where cheap
            _, e_bf = brute_force_mask(type(energy)(energy.unary[:50], energy.pair_v[:50],
                                                    energy.pair_h[:50]))
            assert torch.allclose(e_bf, e_ref[:50], atol=1e-12)
        e_swap = energy.evaluate(solve_swap(energy))
        differ = (exact != ref_labels).flatten(1).any(1)
        rows.append({"grid": f"{grid}x{grid}", "labels": n_labels, "instances": oracle_instances,
                     "max |E_exact - E_min|": (e_exact - e_ref).abs().max().item(),
                     "labellings differing (ties)": int(differ.sum()),
                     "swap above optimum": int((e_swap > e_exact + 1e-9).sum()),
                     "min (E_swap - E_exact)": (e_swap - e_exact).min().item()})
        gaps += [{"grid": f"{grid}x{grid}", "labels": n_labels, "gap": g.item()}
                 for g in (e_swap - e_exact)]
oracle = pd.DataFrame(rows)
assert (oracle["max |E_exact - E_min|"] < 1e-9).all()
assert (oracle["min (E_swap - E_exact)"] > -1e-9).all()
oracle"""),
    code("""gap_df = pd.DataFrame(gaps)
ax = sns.stripplot(data=gap_df, x="grid", y="gap", hue="labels", dodge=True, size=3)
ax.set(title="alpha-beta swap energy minus the exact optimum (0 = optimal)",
       ylabel="E_swap - E_exact")
plt.show()"""),
    md("""## Propositions 3-5 and Algorithm 1 vs the exact assignment
Algorithm 1 with the paper's conflict rule (v = infinity) until convergence. Prop. 3: at every
step, every column with z* = 1 of Pi_win has exactly one 1. Prop. 4: the partial objective
(the cost of the z* = 1 columns' winners) is non-increasing. Prop. 5: convergence within
n(n-1)/2 + 1 steps, to a permutation. The relative error is (Alg. 1 - optimum) / |optimum|; the
normalised error is sum(Alg. 1 - optimum) / sum(random permutation - optimum) over the instances."""),
    code("""rows = []
for side in transport_sides:
    n = side * side
    count = transport_instances if side < 16 else max(transport_instances // 5, 1)
    cost, z = random_transport_instances(count, side, gen(100 + side))
    res = check_transport(cost, z, gen(200 + side))
    assert res.prop3.all() and (res.prop4_max_increase <= 1e-12).all()
    assert (res.steps <= n * (n - 1) // 2 + 1).all() and res.converged.all()
    assert (res.objective >= res.optimum - 1e-9).all()
    rows.append({"n": n, "instances": count, "max steps": int(res.steps.max()),
                 "bound n(n-1)/2+1": n * (n - 1) // 2 + 1,
                 "mean relative error": res.relative_error().mean().item(),
                 "normalised error": res.normalised_error()})
transport = pd.DataFrame(rows)
transport"""),
    code("""fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
sns.barplot(data=transport, x="n", y="mean relative error", ax=axes[0], color="C0")
sns.barplot(data=transport, x="n", y="max steps", ax=axes[1], color="C1")
axes[0].set(title="Algorithm 1 vs Hungarian")
axes[1].set(title="steps to convergence")
plt.tight_layout()
plt.show()"""),
]
write_notebook(cells, "notebooks/propositions.ipynb")
