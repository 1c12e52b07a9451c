"""Saliency-discounted transport (Eq. 5) and its solvers (Algorithm 1, exact assignment).

A plan is stored as ``source`` (B, n): for every target cell j the source cell i with
Pi[i, j] = 1, or -1 when column j has no winner.  Applying a plan gathers patches (a permutation),
never a dense matmul.  Cells are numbered row-major on a (th, tw) grid.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ._checks import check_choice


@dataclass(frozen=True)
class TransportPlan:
    """source (B, n) long, -1 = empty column; iterations (B,) steps run; converged (B,) bool;
    trace: per-step winners (list of (B, n)) when requested."""

    source: torch.Tensor
    iterations: torch.Tensor
    converged: torch.Tensor
    trace: list[torch.Tensor] | None = None

    def matrix(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The plan as a 0/1 matrix (B, n, n), Pi[i, j] = 1 iff source[j] == i."""
        return plan_matrix(self.source, dtype)

    def is_permutation(self) -> torch.Tensor:
        """(B,) bool: every column has a source and no source is used twice."""
        b, n = self.source.shape
        full = (self.source >= 0).all(1)
        counts = torch.zeros((b, n + 1), dtype=torch.long, device=self.source.device)
        counts.scatter_add_(1, self.source.clamp(min=-1) + 1, torch.ones_like(self.source))
        return full & (counts[:, 1:] <= 1).all(1)


def plan_matrix(source: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    b, n = source.shape
    mat = torch.zeros((b, n + 1, n), dtype=dtype, device=source.device)
    rows = torch.where(source >= 0, source, torch.full_like(source, n))
    mat.scatter_(1, rows.unsqueeze(1), 1.0)
    return mat[:, :n]


def grid_cost_matrix(
    th: int, tw: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """C of Eq. (5): squared distance between cell positions, divided by (side - 1)^2 as in the
    reference code (max value 2 on a square grid); side = max(th, tw).  -> (n, n)."""
    r = torch.arange(th, device=device).repeat_interleave(tw)
    c = torch.arange(tw, device=device).repeat(th)
    d2 = (r[:, None] - r[None, :]) ** 2 + (c[:, None] - c[None, :]) ** 2
    side = max(th, tw)
    return (d2.to(dtype) / max(side - 1, 1) ** 2).to(dtype)


@functools.lru_cache(maxsize=32)
def cached_grid_cost_matrix(th: int, tw: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    """:func:`grid_cost_matrix`, built once per (grid, device, dtype); read-only by contract."""
    return grid_cost_matrix(th, tw, device, dtype)


def transport_cost(
    saliency: torch.Tensor, shown: torch.Tensor, eps: float, cost: torch.Tensor
) -> torch.Tensor:
    """C' = xi C - s z^T (Eq. 5): cost[b, i, j] = eps * C[i, j] - s[b, i] * z[b, j].

    saliency (B, th, tw) pooled and normalised; shown (B, th, tw) the mask weight of this input
    (soft z for the paper, 1[z > 0] for the reference code); cost (n, n)."""
    b = saliency.shape[0]
    s = saliency.reshape(b, -1, 1)
    z = shown.reshape(b, 1, -1).to(s.dtype)
    base = (eps * cost.to(s.dtype)).expand(b, -1, -1)
    return torch.baddbmm(base, s, z, alpha=-1)  # one fused pass over (B, n, n)


def masked_transport(
    cost: torch.Tensor,
    *,
    conflict: str = "paper",
    penalty: float = float("inf"),
    max_iter: int | None = None,
    trace: bool = False,
    first_choice: torch.Tensor | None = None,
) -> TransportPlan:
    """Algorithm 1 (Masked Transport) on C' (B, n, n), batched with scatter/gather on the
    cost's device.  ``cost`` is not modified.

    Each step: every row picks its cheapest column (Pi); each column keeps its cheapest chooser
    (Pi_win, ties to the lowest row index); every losing row pays ``penalty`` on the entry it
    chose (C^(t+1) = C^(t) + v Pi_lose).  Only rows that lost re-pick, the others' rows of C are
    unchanged, so the argmin is recomputed for losers only.

    conflict="paper": C_conflict = C (.) Pi + v (1 - Pi) with v = infinity (non-choosers never
        win), run until no row loses (at most n(n-1)/2 + 1 steps, Prop. 5) or ``max_iter``;
        the converged Pi_win is a permutation.
    conflict="reference": the official ``mask_transport``: C_conflict = C (.) Pi (non-choosers
        count as 0, so a column whose choosers all cost >= 0 may get no winner), ``penalty`` 1,
        exactly ``max_iter`` (= grid side) steps, the last Pi_win returned (a partial plan).
        The loop stops early for an example once its Pi_win provably cannot change any more
        (identical result, fewer steps).
    ``first_choice`` (B, n) may give rows' known first pick (-1 = unknown, computed here).
    converged (B,) says whether the last step had no loser (then Pi_win = Pi).
    """
    if cost.dim() != 3 or cost.shape[1] != cost.shape[2]:
        raise ValueError(f"cost must have shape (B, n, n), got {tuple(cost.shape)}")
    b, n, _ = cost.shape
    flat = cost.reshape(b * n, n)
    return _algorithm1(
        lambda ids: flat.index_select(0, ids),
        lambda ids, cols: flat[ids, cols],
        b,
        n,
        cost.dtype,
        cost.device,
        conflict=conflict,
        penalty=penalty,
        max_iter=max_iter,
        trace=trace,
        first_choice=first_choice,
    )


def saliency_transport(
    saliency: torch.Tensor,
    shown: torch.Tensor,
    eps: float,
    cost_matrix: torch.Tensor,
    backend: str = "auto",
    workers: int = 1,
    **kwargs,
) -> TransportPlan:
    """:func:`masked_transport` of C' = xi C - s z^T (Eq. 5) without forming the (B, n, n)
    cost: a row of C' is computed only when that row has to (re-)pick, and rows showing z = 1
    start at their own cell (:func:`own_cell_choice`).  Same result, bit for bit.

    saliency, shown (B, th, tw); cost_matrix (n, n); kwargs as for :func:`masked_transport`.
    ``backend``: "torch" (batched tensor ops, any device), "cpu" (a compiled per-example loop,
    CPU tensors, no trace) or "auto" (cpu for CPU tensors without trace, else torch).
    ``workers``: threads sharing the examples on the cpu backend (same result)."""
    b = saliency.shape[0]
    s = saliency.reshape(b, -1)
    n = s.shape[1]
    z = shown.reshape(b, n).to(s.dtype)
    base = eps * cost_matrix.to(s.dtype)
    s_flat = s.reshape(-1)

    def rows(ids: torch.Tensor) -> torch.Tensor:
        zr = z.index_select(0, ids // n)
        return base.index_select(0, ids % n).sub_(zr.mul_(s_flat[ids].unsqueeze(1)))

    def entries(ids: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        return base[ids % n, cols] - s_flat[ids] * z[ids // n, cols]

    kwargs.setdefault("first_choice", own_cell_choice(shown, eps))
    if backend == "auto":
        backend = "cpu" if (s.device.type == "cpu" and not kwargs.get("trace")) else "torch"
    check_choice("backend", backend, ("torch", "cpu"))
    if backend == "cpu":
        return _compiled(base, s, z, workers=workers, **kwargs)
    return _algorithm1(rows, entries, b, n, s.dtype, s.device, **kwargs)


def _compiled(
    base: torch.Tensor,
    s: torch.Tensor,
    z: torch.Tensor,
    *,
    conflict: str = "paper",
    penalty: float = float("inf"),
    max_iter: int | None = None,
    first_choice: torch.Tensor | None = None,
    trace: bool = False,
    workers: int = 1,
) -> TransportPlan:
    from ._transport_cpu import saliency_transport_cpu

    if trace:
        raise ValueError("trace is only available with backend='torch'")
    b, n = s.shape
    max_iter = _loop_settings(conflict, penalty, max_iter, n)
    first = first_choice if first_choice is not None else torch.full((b, n), -1)
    winner, iters, conv = saliency_transport_cpu(
        base.detach().cpu().float().numpy(),
        s.detach().cpu().float().numpy(),
        z.detach().cpu().float().numpy(),
        first.reshape(b, n).cpu().numpy(),
        reference=conflict == "reference",
        penalty=penalty,
        max_iter=max_iter,
        workers=workers,
    )
    dev = s.device
    return TransportPlan(
        torch.from_numpy(winner).to(dev),
        torch.from_numpy(iters).to(dev),
        torch.from_numpy(conv).to(dev),
    )


def _loop_settings(conflict: str, penalty: float, max_iter: int | None, n: int) -> int:
    """Validate the loop's options -> the step budget (Prop. 5's bound when unset)."""
    check_choice("conflict", conflict, ("paper", "reference"))
    if not penalty > 0:
        raise ValueError(f"penalty must be > 0, got {penalty}")
    if max_iter is None:
        if conflict == "reference":
            raise ValueError("max_iter is required for conflict='reference' (the grid side)")
        max_iter = n * (n - 1) // 2 + 1
    return max_iter


def _algorithm1(
    rows_of: Callable[[torch.Tensor], torch.Tensor],
    entries_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    b: int,
    n: int,
    dtype: torch.dtype,
    dev: torch.device,
    *,
    conflict: str = "paper",
    penalty: float = float("inf"),
    max_iter: int | None = None,
    trace: bool = False,
    first_choice: torch.Tensor | None = None,
) -> TransportPlan:
    """The loop of Algorithm 1.  ``rows_of(flat_row_ids)`` returns those rows of C^(0) (L, n)
    and ``entries_of(flat_row_ids, cols)`` single entries (L,); penalties are kept aside as
    (row, column) records per step and replayed in order, so C^(t) is exact."""
    max_iter = _loop_settings(conflict, penalty, max_iter, n)
    records: list[torch.Tensor] = []  # flat entry ids penalised at each step
    position = torch.full((b * n,), -1, dtype=torch.long, device=dev)

    def current_rows(ids: torch.Tensor) -> torch.Tensor:
        block = rows_of(ids)
        if records:
            position[ids] = torch.arange(ids.numel(), device=dev)
            flat_block = block.view(-1)
            for rec in records:  # replay the additions in the order the loop made them
                at = position[rec // n]
                sel = at >= 0
                where = at[sel] * n + rec[sel] % n
                if penalty == float("inf"):
                    flat_block[where] = float("inf")
                else:
                    flat_block[where] = flat_block[where] + penalty
            position[ids] = -1
        return block

    choice = torch.full((b, n), -1, dtype=torch.long, device=dev)
    if first_choice is not None:
        choice.copy_(first_choice)
    ch = choice.view(-1)
    c = torch.empty((b, n), dtype=dtype, device=dev)  # C^(t) at each row's current pick
    kid = (ch >= 0).nonzero().squeeze(1)
    if kid.numel():
        c.view(-1)[kid] = entries_of(kid, ch[kid])
    todo = (ch < 0).nonzero().squeeze(1)
    if todo.numel():
        block = rows_of(todo)
        pick = block.argmin(-1)
        ch[todo] = pick
        c.view(-1)[todo] = block.gather(1, pick.unsqueeze(1)).squeeze(1)

    rows = torch.arange(n, device=dev).expand(b, n)
    iterations = torch.zeros(b, dtype=torch.long, device=dev)
    converged = torch.zeros(b, dtype=torch.bool, device=dev)
    frozen = torch.zeros(b, dtype=torch.bool, device=dev)
    winner = torch.full((b, n), -1, dtype=torch.long, device=dev)
    steps: list[torch.Tensor] = []
    big = torch.full((b, n), n, dtype=torch.long, device=dev)
    for _ in range(max_iter):
        colmin = torch.full((b, n), float("inf"), dtype=dtype, device=dev)
        colmin = colmin.scatter_reduce(1, choice, c, "amin")
        at_min = c == colmin.gather(1, choice)
        first_min = big.scatter_reduce(1, choice, torch.where(at_min, rows, n), "amin")
        if conflict == "paper":
            col_win = first_min
        else:  # argmin over the column of C (.) Pi: non-choosers hold 0
            count = torch.zeros((b, n), dtype=torch.long, device=dev)
            count.scatter_add_(1, choice, torch.ones_like(choice))
            zero = c == 0
            first_zero = big.scatter_reduce(1, choice, torch.where(zero, rows, n), "amin")
            before = (c > 0) & (rows < first_zero.gather(1, choice))
            n_before = torch.zeros((b, n), dtype=torch.long, device=dev)
            n_before.scatter_add_(1, choice, before.long())
            neg_or_all = (colmin < 0) | (count == n)
            zero_wins = (first_zero < n) & (n_before == first_zero)
            col_win = torch.where(neg_or_all, first_min, torch.where(zero_wins, first_zero, big))
        won = col_win.gather(1, choice) == rows
        has = col_win < n
        active = ~frozen
        winner = torch.where(active[:, None], torch.where(has, col_win, -1), winner)
        iterations += active.long()
        if trace:
            steps.append(winner.clone())
        lost = ~won & active[:, None]
        done_now = ~lost.any(1) & active
        converged |= done_now
        frozen |= done_now
        if bool(frozen.all()):
            break
        li = lost.view(-1).nonzero().squeeze(1)  # flat row ids of the losers
        old = ch[li]
        records.append(li * n + old)
        block = current_rows(li)
        pick = block.argmin(-1)
        ch[li] = pick
        c.view(-1)[li] = block.gather(1, pick.unsqueeze(1)).squeeze(1)
        if conflict == "reference":
            # Early exit, same result: an example is final once no loser can ever beat a column's
            # holder (losers' costs only grow) and no zero-rule winner can lose its guard rows.
            hold = torch.where(has, c.gather(1, col_win.clamp(max=n - 1)), torch.zeros_like(c))
            bi = li // n
            hazard = (has & (hold >= 0)).view(-1)[bi * n + old]
            # a row whose new minimum exceeds every holder of its example is no threat
            maybe = c.view(-1)[li] <= hold.amax(1)[bi]
            threat = torch.zeros_like(maybe)
            mi = maybe.nonzero().squeeze(1)
            if mi.numel():
                threat[mi] = (block[mi] <= hold.index_select(0, bi[mi])).any(1)
            unstable = torch.zeros(b, dtype=torch.bool, device=dev)
            unstable.index_fill_(0, bi[threat | hazard], True)
            frozen |= active & ~unstable
            if bool(frozen.all()):
                break
    return TransportPlan(winner, iterations, converged, steps if trace else None)


def own_cell_choice(shown: torch.Tensor, eps: float) -> torch.Tensor:
    """Rows whose first pick under C' = xi C - s z^T is known without a scan: with xi > 0 a cell
    showing the largest weight (z_i = 1) has C'_ii = -s_i z_i < xi C_ij - s_i z_j for all j != i.
    shown (B, th, tw) -> (B, n) long, the cell itself or -1 (unknown)."""
    z = shown.reshape(shown.shape[0], -1)
    own = torch.arange(z.shape[1], device=z.device).expand_as(z)
    known = (z >= 1) if eps > 0 else torch.zeros_like(z, dtype=torch.bool)
    return torch.where(known, own, torch.full_like(own, -1))


def exact_transport(cost: torch.Tensor) -> TransportPlan:
    """Exact minimiser of <Pi, C'> over permutations (Hungarian / LAPJV via
    ``scipy.optimize.linear_sum_assignment``), one problem per example.  The oracle for Alg. 1."""
    b, n, _ = cost.shape
    arr = cost.detach().to("cpu", torch.float64).numpy()
    src = np.empty((b, n), dtype=np.int64)
    for i in range(b):
        r, c = linear_sum_assignment(arr[i])
        src[i, c] = r
    dev = cost.device
    return TransportPlan(
        torch.from_numpy(src).to(dev),
        torch.ones(b, dtype=torch.long, device=dev),
        torch.ones(b, dtype=torch.bool, device=dev),
    )


def plan_objective(cost: torch.Tensor, source: torch.Tensor, columns: torch.Tensor | None = None):
    """<Pi, C'> of a plan -> (B,); restricted to ``columns`` (B, n) bool when given (empty
    columns contribute 0)."""
    valid = source >= 0
    if columns is not None:
        valid = valid & columns.reshape(valid.shape).bool()
    vals = cost.gather(1, source.clamp(min=0).unsqueeze(1)).squeeze(1)
    return torch.where(valid, vals, torch.zeros_like(vals)).sum(1)


_COMPILED_DTYPES = (torch.float32, torch.float64, torch.uint8)


def apply_plan(x: torch.Tensor, source: torch.Tensor, th: int, tw: int) -> torch.Tensor:
    """Pi^T x: output cell j receives the patch of source cell source[j]; -1 gives a zero patch.

    x (B, C, H, W) with th | H and tw | W; source (B, th*tw) -> (B, C, H, W).  CPU tensors of
    the common real dtypes take a compiled patch copy, the rest batched gathers (same values)."""
    if x.device.type == "cpu" and x.dtype in _COMPILED_DTYPES and not x.requires_grad:
        from ._transport_cpu import apply_plan_cpu

        out_np = apply_plan_cpu(x.detach().contiguous().numpy(), source.cpu().numpy(), th, tw)
        return torch.from_numpy(out_np)
    return gather_plan(x, source, th, tw)


def gather_plan(x: torch.Tensor, source: torch.Tensor, th: int, tw: int) -> torch.Tensor:
    """:func:`apply_plan` as batched tensor gathers (any device and dtype, differentiable)."""
    b, ch, h, w = x.shape
    ph, pw = h // th, w // tw
    dev = x.device
    src = source.clamp(min=0)
    # pixel index map: output pixel (rj*ph + dr, cj*pw + dc) reads source cell src[j]'s pixel
    offset = ((src // tw) * (ph * w) + (src % tw) * pw).view(b, th, 1, tw, 1)
    local = (torch.arange(ph, device=dev).view(ph, 1) * w + torch.arange(pw, device=dev)).view(
        1, 1, ph, 1, pw
    )
    index = (offset + local).reshape(b, 1, h * w)
    out = x.reshape(b, ch, h * w).gather(2, index.expand(b, ch, h * w)).view(b, ch, h, w)
    empty = source < 0
    if bool(empty.any()):  # a column without a winner receives a zero patch
        keep = (~empty).view(b, 1, th, 1, tw, 1).expand(b, 1, th, ph, tw, pw).reshape(b, 1, h, w)
        out = torch.where(keep, out, torch.zeros((), dtype=out.dtype, device=dev))
    return out
