"""Exact minimisation of the grid energy by one s-t min-cut for the whole mini-batch.

With a pairwise term c_ij (z_i - z_j)^2, c_ij >= 0, the energy is convex in the label difference,
so Ishikawa's construction (Ishikawa 2003, "Exact optimization for Markov random fields with
convex priors") turns it into a single min-cut whose optimum is the *global* optimum.  We use the
layered binary encoding x_{i,t} = [k_i >= t], t = 1..m:

* unary:      U_i(k) = U_i(0) + sum_t x_{i,t} (U_i(t) - U_i(t-1))
* ordering:   x_{i,t+1} <= x_{i,t} (an infinite edge)
* pairwise:   (k_i - k_j)^2 = sum_t (2t-1) x_{i,t} + sum_s (2s-1) x_{j,s}
                              - 2 sum_{t,s} x_{i,t} x_{j,s},
              and -2xy = -x - y + x(1-y) + y(1-x) is a submodular (graph-representable) term.

Every example of the batch is a disjoint component of one graph, solved by one call of the
Boykov-Kolmogorov max-flow (PyMaxflow, double precision).  With m = 1 this is the classic binary
min-cut (paper Table 7, "binary").
"""

from __future__ import annotations

import maxflow
import numpy as np
import torch

from ..parallel import chunks, map_chunks
from .energy import GridEnergy


def solve_exact(energy: GridEnergy, workers: int = 1, pool: str = "thread") -> torch.Tensor:
    """Global minimiser of ``energy`` -> integer labels (B, gh, gw) on the energy's device.

    ``workers`` > 1 splits the batch into that many graphs solved on the ``pool`` ("thread" or
    "process", :mod:`puzzle_core.parallel`); each is still solved exactly, so the minimum does
    not change.

    Raises ValueError when a pairwise weight is negative (the energy is then not submodular and
    no single min-cut is exact; in Puzzle Mix this happens only with gamma > beta, Prop. 1).
    """
    unary = energy.unary.detach().to("cpu", torch.float64).numpy()
    pv = energy.pair_v.detach().to("cpu", torch.float64).numpy()
    ph = energy.pair_h.detach().to("cpu", torch.float64).numpy()
    if (pv < 0).any() or (ph < 0).any():
        raise ValueError(
            "energy pairwise weights must be >= 0 for the exact solver (got a negative weight: "
            "the energy is not submodular; with Puzzle Mix this means gamma > beta, Prop. 1); "
            "use solver='swap'"
        )
    if not np.isfinite(unary).all():
        raise ValueError("energy unary terms must be finite")
    b, gh, gw, n_labels = unary.shape
    if n_labels == 1:
        return torch.zeros((b, gh, gw), dtype=torch.long, device=energy.unary.device)
    args = [(unary[c], pv[c], ph[c]) for c in chunks(b, workers)]
    labels = np.concatenate(map_chunks(_min_cut, args, workers, pool))
    return torch.from_numpy(labels).to(energy.unary.device)


def _min_cut(unary: np.ndarray, pv: np.ndarray, ph: np.ndarray) -> np.ndarray:
    """The Ishikawa graph of a (sub-)batch, one max-flow -> labels (B, gh, gw) int64.
    unary (B, gh, gw, L), pv (B, gh-1, gw), ph (B, gh, gw-1) float64, weights >= 0."""
    b, gh, gw, n_labels = unary.shape
    m = n_labels - 1
    g = gh * gw

    # linear coefficient of every x_{i,t}: unary differences ...
    lin = np.moveaxis(np.diff(unary, axis=-1), -1, 1).copy()  # (b, m, gh, gw)
    # ... plus the pairwise linear parts c' (2t - 1 - m) from each incident edge (t = 1..m)
    tcoef = (2.0 * np.arange(1, m + 1) - 1.0 - m).reshape(1, m, 1, 1)
    cv = pv / (m * m)  # (b, gh-1, gw)
    ch = ph / (m * m)  # (b, gh, gw-1)
    inc = np.zeros((b, gh, gw))
    inc[:, :-1, :] += cv
    inc[:, 1:, :] += cv
    inc[:, :, :-1] += ch
    inc[:, :, 1:] += ch
    lin += tcoef * inc[:, None]

    graph = maxflow.GraphFloat(b * m * g, b * m * g * 2 + 4 * m * m * g)
    ids = graph.add_grid_nodes((b, m, gh, gw))  # x_{b,t,cell}, t = 0..m-1: label >= t+1
    graph.add_grid_tedges(ids, np.maximum(lin, 0.0), np.maximum(-lin, 0.0))

    big = 4.0 * (np.abs(lin).sum() + m * m * (cv.sum() + ch.sum())) + 1.0
    if m > 1:  # ordering constraints: cut (1 - x_t) x_{t+1} forbidden (edge x_t -> x_{t+1})
        order = np.zeros((1, 3, 1, 1))
        order[0, 2, 0, 0] = 1.0
        graph.add_grid_edges(ids, big, order, symmetric=False)

    # interaction edges x_{i,t} -- x_{j,s} with capacity c' both ways, for every (t, s): from
    # each node to the cell below (right) in every layer, layer offsets -(m-1)..m-1; the last
    # row (column) has no such neighbour
    w_v = np.zeros((b, 1, gh, gw))
    w_v[:, 0, :-1, :] = cv
    w_h = np.zeros((b, 1, gh, gw))
    w_h[:, 0, :, :-1] = ch
    down = np.zeros((1, 2 * m - 1, 3, 1))
    down[0, :, 2, 0] = 1.0
    right = np.zeros((1, 2 * m - 1, 1, 3))
    right[0, :, 0, 2] = 1.0
    graph.add_grid_edges(ids, w_v, down, symmetric=True)
    graph.add_grid_edges(ids, w_h, right, symmetric=True)
    graph.maxflow()
    x = graph.get_grid_segments(ids)  # True = sink side = x_{i,t} = 1
    return x.sum(axis=1).astype(np.int64)
