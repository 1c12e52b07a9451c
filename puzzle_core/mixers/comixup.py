"""Co-Mixup (Kim et al., ICLR 2021): batch-level mixing of several inputs per output with a
submodular-diversity term, solved by block coordinate descent with modular approximation and a
multi-label graph cut per output (gco alpha-beta swap), as its code does (docs/baselines.md §7).

Per partition of ``part`` consecutive examples (m inputs -> m outputs), grid g x g (n = g^2):

* unary of input k at a cell: c_k = -s_k (pooled saliency, sum 1) - eta' log(q_k + 1e-8),
  q ~ Dirichlet(alpha 1_m) once per partition;
* a label is a vector v over inputs (pure: e_k; "half": (e_a + e_b) / 2, offered from the
  second sweep when an output uses 2 inputs, or for the pairs of its 3 most used inputs),
  unary v . c (halves get a -5e-4 bonus), smoothness (beta'/2) ||v(u) - v(w)||^2 between
  4-neighbours (Potts beta' between pure labels, beta'/4 to a parent half);
* diversity: gamma' sum_j sum_k o_jk [p_-j,k > tau'] p_-j,k with o_j the per-input cell counts
  of output j and p_-j = sum_{j' != j} o_j' (the code's ``obj_fn_thres``); the solver's penalty
  brings in A = (1 - omega) I + omega A_hat (A_hat: L1 distance between the inputs' saliency
  peaks, scaled to sum m);
* scales: beta' = beta / n, gamma' = gamma / n, eta' = eta / n, tau' = tau n.
* optimisation: random initial labels; ``niter`` sweeps over the outputs; each output's
  subproblem gets a modular penalty on every cell of input k (:func:`modular_penalty`) and is
  solved by swap (label cost: Potts, 0.25 between a half and its parents, as the code); after
  the second-to-last sweep outputs using the identical input set get a unit extra cost to break
  the tie (``set_resolve``); stop when the code's un-thresholded objective changes by < 1e-6
  relatively.
* the "hard" penalty, with p = sum_{j' != j} o_j' and mask = [A p > tau']: match.py writes
  ``(A @ p > thres).float() * A @ p``, which Python parses as ``((mask * A) @ p)`` (``*`` and
  ``@`` share one precedence level, left to right; mask (m,) broadcasts over A's columns), i.e.
  2 gamma' A (mask * p).  ``threshold_form="official"`` (default: what produced the published
  numbers) computes exactly that; ``"intended"`` the evident intent 2 gamma' mask * (A p).  They
  differ only through A's off-diagonal (omega A_hat); the "soft" threshold is parenthesised in
  the code, 2 gamma' mask * (A p - tau'), and is the same in both forms (docs/baselines.md §7).

Outputs: x~_j = sum_k z_jk x_k (cells are pure copies or half/half averages), labels = the
area share of every input (rows sum to 1).  gco is given integer energies (scaled to 1e5)
instead of the code's float mode.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .._checks import check_choice
from .._random import numpy_rng
from ..mask.swap import gco_swap_grid
from ..protocol import Mixer, MixResult
from .registry import register

_HALF_BONUS = 5e-4
_INT_SCALE = 1e5
THRESHOLD_FORMS = ("official", "intended")


@dataclass(frozen=True)
class CoMixupProblem:
    """One partition: cost (m, n) unary per input and cell, A (m, m), scaled coefficients."""

    cost: np.ndarray
    compat: np.ndarray
    grid: int
    beta: float
    gamma: float
    tau: float


def label_vectors(m: int, halves: list[tuple[int, int]]) -> np.ndarray:
    """(m + len(halves), m): pure labels e_k, then (e_a + e_b) / 2 per half."""
    vecs = [np.eye(m)[k] for k in range(m)]
    vecs += [(np.eye(m)[a] + np.eye(m)[b]) / 2 for a, b in halves]
    return np.array(vecs)


def modular_penalty(
    compat: np.ndarray,
    p: np.ndarray,
    tau: float,
    gamma: float,
    thres_type: str = "hard",
    threshold_form: str = "official",
) -> np.ndarray:
    """The solver's modular approximation of the diversity term for one output (match.py
    ``get_onehot_matrix``): compat A (m, m), p (m,) the other outputs' cell counts per input,
    tau' and gamma' scaled -> penalty per input (m,).  With mask = [A p > tau']:

    * hard, ``"official"``: 2 gamma' ((mask * A) @ p) = 2 gamma' A (mask * p), the code as Python
      parses it (mask broadcast along A's last axis, then the matrix product);
    * hard, ``"intended"``: 2 gamma' mask * (A p);
    * soft (either form): 2 gamma' mask * (A p - tau')."""
    check_choice("thres_type", thres_type, ("hard", "soft"))
    check_choice("threshold_form", threshold_form, THRESHOLD_FORMS)
    ap = compat @ p
    mask = (ap > tau).astype(ap.dtype)
    if thres_type == "soft":
        return 2 * gamma * mask * (ap - tau)
    if threshold_form == "official":
        return 2 * gamma * ((mask * compat) @ p)
    return 2 * gamma * mask * ap


def official_objective(problem: CoMixupProblem, weights: np.ndarray) -> float:
    """The official thresholded objective (match.py ``obj_fn_thres``) of a solution: unary
    sum c . z + (beta'/2) sum_{4-neighbours} ||z(u) - z(v)||^2 + gamma' sum_j sum_k o_jk
    [p_-j,k > tau'] p_-j,k with p_-j = sum_{j' != j} o_j' (no A, no half-label bonus).  weights
    (m_out, n, m) the label vector of every output's cells."""
    g, m = problem.grid, problem.cost.shape[0]
    unary = float(np.einsum("jnk,kn->", weights, problem.cost))
    w = weights.reshape(weights.shape[0], g, g, m)
    smooth = ((w[:, 1:] - w[:, :-1]) ** 2).sum() + ((w[:, :, 1:] - w[:, :, :-1]) ** 2).sum()
    o = weights.sum(1)
    penalty = o.sum(0, keepdims=True) - o
    div = float((np.where(penalty > problem.tau, penalty, 0.0) * o).sum())
    return unary + problem.beta / 2 * float(smooth) + problem.gamma * div


def energy(problem: CoMixupProblem, weights: np.ndarray) -> float:
    """E_ours of a solution: the official objective (:func:`official_objective`) with two of our
    additions, so that it scores what the solver's subproblems see: A in the diversity term
    (p_-j = A sum_{j' != j} o_j', thresholded as the "intended" penalty) and the half labels'
    -5e-4 bonus per half cell.  Equal to :func:`official_objective` when A = I and no cell is a
    half.  Not the official objective: do not compare it with the code's numbers.  weights
    (m_out, n, m) the label vector of every output's cells."""
    g, m = problem.grid, problem.cost.shape[0]
    unary = float(np.einsum("jnk,kn->", weights, problem.cost))
    w = weights.reshape(weights.shape[0], g, g, m)
    smooth = ((w[:, 1:] - w[:, :-1]) ** 2).sum() + ((w[:, :, 1:] - w[:, :, :-1]) ** 2).sum()
    o = weights.sum(1)  # (m_out, m) cell counts per input
    total = o.sum(0)
    div = 0.0
    for j in range(o.shape[0]):
        p = problem.compat @ (total - o[j])
        div += float((o[j] * np.where(p > problem.tau, p, 0.0)).sum())
    half_cells = float((np.isclose(weights.max(2), 0.5)).sum())
    smooth_e = problem.beta / 2 * float(smooth)
    return unary + smooth_e + problem.gamma * div - _HALF_BONUS * half_cells


def _label_cost(m: int, halves: list[tuple[int, int]]) -> np.ndarray:
    """The code's graph-cut label cost: Potts (1 - I) between labels, 0.25 between a half and
    each of its two parents (match.py ``graphcut_multi``)."""
    n_lab = m + len(halves)
    cost = np.ones((n_lab, n_lab)) - np.eye(n_lab)
    for h, (a, b) in enumerate(halves):
        for parent in (a, b):
            cost[m + h, parent] = cost[parent, m + h] = 0.25
    return cost


def solve_output(
    unary_k: np.ndarray, halves: list[tuple[int, int]], grid: int, beta: float
) -> np.ndarray:
    """One output's subproblem, min_z sum_cells u(z) + beta sum_nbrs V(z_u, z_w) with the code's
    label cost V, by gco swap.  unary_k (m, n) per input; a half's unary is the mean of its
    parents' minus 5e-4 -> label index per cell (n,).  With a single label (a partition of one
    input) the only labelling, every cell label 0, is returned without gco (which aborts the
    process below 2 labels)."""
    m = unary_k.shape[0]
    vecs = label_vectors(m, halves)
    if len(vecs) == 1:
        return np.zeros(grid * grid, dtype=np.int64)
    unary = vecs @ unary_k  # (L, n)
    unary[m:] -= _HALF_BONUS
    unary = unary - unary.min(0, keepdims=True)  # per-cell shift: same minimiser
    top = max(float(unary.max()), beta, 1e-12)
    scale = _INT_SCALE / top
    u_int = np.ascontiguousarray(np.rint(unary.T.reshape(grid, grid, -1) * scale), dtype=np.int32)
    v_int = np.rint(_label_cost(m, halves) * 4).astype(np.int32)  # quarters are exact
    w_int = int(round(beta * scale / 4))
    cost_v = np.full((grid - 1, grid), w_int, dtype=np.int32)
    cost_h = np.full((grid, grid - 1), w_int, dtype=np.int32)
    return gco_swap_grid(u_int, v_int, cost_v, cost_h)


def _unthresholded(problem: CoMixupProblem, weights: np.ndarray) -> float:
    """The code's convergence objective: gamma' (|sum_j o_j|^2 - sum_j |o_j|^2) as diversity."""
    g, m = problem.grid, problem.cost.shape[0]
    w = weights.reshape(weights.shape[0], g, g, m)
    smooth = ((w[:, 1:] - w[:, :-1]) ** 2).sum() + ((w[:, :, 1:] - w[:, :, :-1]) ** 2).sum()
    o = weights.sum(1)
    div = float((o.sum(0) ** 2).sum() - (o**2).sum())
    unary = float(np.einsum("jnk,kn->", weights, problem.cost))
    return unary + problem.beta / 2 * float(smooth) + problem.gamma * div


def resolve_identical(weights: np.ndarray) -> np.ndarray:
    """The code's ``resolve_label``: outputs that use the identical set of inputs get a unit
    extra cost, the first on its first input, the second on its second -> (m_out, m)."""
    used = weights.sum(1) > 0
    add = np.zeros(used.shape)
    for i1, i2 in itertools.combinations(range(used.shape[0]), 2):
        if np.array_equal(used[i1], used[i2]):
            nz = np.flatnonzero(used[i1])
            if len(nz) > 1:
                add[i1, nz[0]] = 1.0
                add[i2, nz[1]] = 1.0
    return add


def optimise(
    problem: CoMixupProblem,
    rng: np.random.Generator,
    niter: int = 4,
    half_labels: bool = True,
    thres_type: str = "hard",
    set_resolve: bool = True,
    threshold_form: str = "official",
) -> tuple[np.ndarray, float]:
    """Block coordinate descent (match.py ``get_onehot_matrix``) -> (weights (m, n, m): the
    label vector of every output's cells, E_ours (:func:`energy`)).  The penalty of each
    output's subproblem is :func:`modular_penalty` (``thres_type``, ``threshold_form``)."""
    m, n = problem.cost.shape
    weights = np.eye(m)[rng.integers(m, size=(m, n))]  # random initial labels
    prev = _unthresholded(problem, weights)
    add = None
    for it in range(niter):
        for j in range(m):
            counts = weights[j].sum(0)
            others = weights.sum((0, 1)) - counts  # p: the other outputs' counts per input
            pen = modular_penalty(
                problem.compat, others, problem.tau, problem.gamma, thres_type, threshold_form
            )
            if add is not None:
                pen = pen + problem.gamma * add[j]
            halves: list[tuple[int, int]] = []
            if half_labels and it > 0:
                used = np.flatnonzero(counts > 0)
                if len(used) == 2:
                    halves = [(int(used[0]), int(used[1]))]
                elif len(used) >= 3:
                    top3 = sorted(int(k) for k in np.argsort(-counts, kind="stable")[:3])
                    halves = list(itertools.combinations(top3, 2))
            lab = solve_output(problem.cost + pen[:, None], halves, problem.grid, problem.beta)
            weights[j] = label_vectors(m, halves)[lab]
        if set_resolve and it == niter - 2:
            add = resolve_identical(weights)
        loss = _unthresholded(problem, weights)
        if abs(prev - loss) <= 1e-6 * max(abs(loss), 1e-12):
            break
        prev = loss
    return weights, energy(problem, weights)


def peak_distances(saliency: torch.Tensor) -> np.ndarray:
    """A_hat: L1 distance between the argmax locations of each input's saliency after an 8x8
    stride-1 average pool, scaled so that the matrix sums to m.  saliency (m, H, W) -> (m, m)."""
    m, h, w = saliency.shape
    k = min(8, h, w)
    pooled = F.avg_pool2d(saliency.float().unsqueeze(1), k, stride=1)[:, 0]
    idx = pooled.flatten(1).argmax(1)
    pos = torch.stack([idx // pooled.shape[-1], idx % pooled.shape[-1]], 1).double()
    d = torch.cdist(pos, pos, p=1).numpy()
    return d * (m / d.sum()) if d.sum() > 0 else d


@register("comixup")
class CoMixup(Mixer):
    """Co-Mixup behind the common interface: x (B, C, H, W) with ``grid`` dividing H and W;
    ``saliency`` the input-gradient map (B, H, W), >= 0 (required).  Defaults: the README's
    CIFAR-100 settings (part 20, grid 4, alpha 2.0, beta 0.32, gamma 1.0, tau 0.83 hard, eta
    0.05, omega 0.001, 4 sweeps).

    ``threshold_form`` (the "hard" penalty, see :func:`modular_penalty`): ``"official"``
    (default) = the public match.py as Python parses it, 2 gamma' A (mask * p), which produced
    the published numbers; ``"intended"`` = 2 gamma' mask * (A p).  Issue #11 measured 359 of
    1,024 cells labelled differently between the two on 4 batches, neither better.
    ``info["energy"]`` is E_ours (:func:`energy`), ``info["official_objective"]`` the code's
    ``obj_fn_thres`` (:func:`official_objective`), one value per partition.

    Partitions are consecutive runs of ``part`` examples, the last one shorter (the code's
    ``ceil(B / part)`` loop).  A partition of one image (B = 1, or B = k part + 1) has a single
    feasible labelling, every cell from that image: its output is the image itself with its own
    label (share 1).  The code hands that case to gco, which aborts the process (gco needs >= 2
    labels); here the subproblem's only solution is returned without gco."""

    name = "comixup"
    saliency = "input_gradient"
    pairwise = False

    def __init__(
        self,
        alpha: float = 2.0,
        beta: float = 0.32,
        gamma: float = 1.0,
        eta: float = 0.05,
        thres: float = 0.83,
        thres_type: str = "hard",
        omega: float = 0.001,
        grid: int = 4,
        part: int = 20,
        niter: int = 4,
        half_labels: bool = True,
        set_resolve: bool = True,
        threshold_form: str = "official",
        num_classes: int | None = None,
    ) -> None:
        super().__init__(num_classes)
        check_choice("thres_type", thres_type, ("hard", "soft"))
        check_choice("threshold_form", threshold_form, THRESHOLD_FORMS)
        for name, v in (("alpha", alpha), ("beta", beta), ("gamma", gamma), ("eta", eta)):
            if v < 0:
                raise ValueError(f"{name} must be >= 0, got {v}")
        if part < 1 or niter < 1 or not (grid == -1 or grid >= 2):
            raise ValueError("part and niter must be >= 1 and grid >= 2 (or -1 for random)")
        self.alpha, self.beta, self.gamma, self.eta = alpha, beta, gamma, eta
        self.thres, self.thres_type, self.omega = thres, thres_type, omega
        self.grid, self.part, self.niter, self.half_labels = grid, part, niter, half_labels
        self.set_resolve, self.threshold_form = set_resolve, threshold_form

    def problem(
        self, saliency: torch.Tensor, grid: int, rng: np.random.Generator
    ) -> CoMixupProblem:
        """The Co-Mixup objective of one partition from its saliency maps (m, H, W)."""
        m, h, w = saliency.shape
        n = grid * grid
        pooled = F.avg_pool2d(saliency.float().unsqueeze(1), (h // grid, w // grid))[:, 0]
        s = pooled.flatten(1).double()
        s = (s / s.sum(1, keepdim=True).clamp(min=1e-12)).numpy()
        q = rng.dirichlet([self.alpha] * m) if self.alpha > 0 else np.full(m, 1.0 / m)
        cost = -s - (self.eta / n) * np.log(q + 1e-8)[:, None]
        compat = (1 - self.omega) * np.eye(m) + self.omega * peak_distances(saliency)
        return CoMixupProblem(cost, compat, grid, self.beta / n, self.gamma / n, self.thres * n)

    def _mix(self, x, y, saliency, *, generator) -> MixResult:
        targets = self._targets(x, y)
        b, _, h, w = x.shape
        rng = numpy_rng(generator)
        grid = self.grid if self.grid > 0 else int(2 ** rng.integers(1, 5))
        if h % grid or w % grid:
            raise ValueError(f"grid={grid} must divide the image size {h}x{w}")
        out_x = torch.empty_like(x)
        out_y = torch.empty_like(targets)
        shares = torch.zeros(b, b)
        energies, objectives = [], []
        for start in range(0, b, self.part):
            sl = slice(start, min(start + self.part, b))
            prob = self.problem(saliency[sl].detach().cpu(), grid, rng)
            weights, e = optimise(
                prob,
                rng,
                self.niter,
                self.half_labels,
                self.thres_type,
                self.set_resolve,
                self.threshold_form,
            )
            energies.append(e)
            objectives.append(official_objective(prob, weights))
            m = weights.shape[0]
            wt = torch.from_numpy(weights).float().view(m, grid, grid, m)  # output, cell, input
            up = (
                wt.permute(0, 3, 1, 2)
                .repeat_interleave(h // grid, 2)
                .repeat_interleave(w // grid, 3)
            )  # (m_out, m_in, H, W)
            up = up.to(x.device, x.dtype)
            xs = x[sl]
            mixed = torch.zeros_like(xs)
            for k in range(m):  # x~_o = sum_k z_ok x_k
                mixed += up[:, k : k + 1] * xs[k : k + 1]
            out_x[sl] = mixed
            share = wt.sum((1, 2)) / (grid * grid)  # (m_out, m_in) area shares
            out_y[sl] = share.to(targets.device) @ targets[sl]
            shares[sl, sl] = share
        ratio = shares.diagonal().to(x.device)
        info = {
            "shares": shares,
            "grid": grid,
            "energy": energies,
            "official_objective": objectives,
        }
        return MixResult(out_x, out_y, torch.arange(b, device=x.device), ratio, info)
