"""Algorithm 1 for C' = xi C - s z^T as a compiled CPU loop (numba), one example at a time.

Same semantics as :func:`puzzle_core.transport._algorithm1` step for step (both conflict rules,
the reference's sequential float32 penalties, the early exit), without building any (n, n)
temporary per step; the tests check the two against each other and against a literal dense
transcription of the official code.  Used for CPU tensors; CUDA tensors take the batched torch
path.
"""

from __future__ import annotations

import numba
import numpy as np

from .parallel import run_chunks

# Every row is scanned along ``order[r]``, its columns sorted by base[r, j] (then by j).  With
# s_r >= 0 and 0 <= z_j <= 1, and penalties > 0, every entry of row r of C^(t) is at least
# lb_j = fl(base[r, j] - s_r) (rounding is monotone), and lb_j grows along the order: the scan
# stops at the first column with lb_j > the best value found, having seen every column that
# can reach it.  Ties go to the lowest column index, as a left-to-right strict-< scan.
# Without those sign conditions (``bounded`` False) the scan runs over the whole row.


@numba.njit(cache=True, nogil=True)
def _argmin(base, s_r, z, r, row, materialised, order_r, bounded):
    """argmin_j C^(t)[r, j] -> (first index on ties, value).  The entries are row[j] when the
    row is materialised (penalties applied in place), else base[r, j] - s_r z[j]."""
    best = np.float32(np.inf)
    arg = -1
    for k in range(order_r.shape[0]):
        j = order_r[k]
        if bounded and arg >= 0 and base[r, j] - s_r > best:
            break
        v = row[j] if materialised else base[r, j] - s_r * z[j]
        if v < best or arg < 0 or (v == best and j < arg):
            best = v
            arg = j
    return arg, best


@numba.njit(cache=True, nogil=True)
def _can_beat(base, s_r, r, row, hold, hold_max, order_r, bounded):
    """Whether some entry of the (materialised) row is <= what column j's holder pays."""
    for k in range(order_r.shape[0]):
        j = order_r[k]
        if bounded and base[r, j] - s_r > hold_max:
            return False
        if row[j] <= hold[j]:
            return True
    return False


@numba.njit(cache=True, nogil=True)
def _one(
    base, s, z, first, reference, penalty, inf_penalty, max_iter, winner_out, cur, order, bounded
):
    """One problem.  ``cur`` (n, n) float32 scratch: row r of C^(t) once row r has lost a
    round (materialised then, penalties added in place), untouched otherwise."""
    n = z.shape[0]
    has_row = np.zeros(n, dtype=np.bool_)
    choice = np.empty(n, dtype=np.int64)
    c = np.empty(n, dtype=np.float32)
    for r in range(n):
        if first[r] >= 0:
            choice[r] = first[r]
            c[r] = base[r, first[r]] - s[r] * z[first[r]]
        else:
            choice[r], c[r] = _argmin(base, s[r], z, r, cur[r], False, order[r], bounded)
    colmin = np.empty(n, dtype=np.float32)
    first_min = np.empty(n, dtype=np.int64)
    first_zero = np.empty(n, dtype=np.int64)
    count = np.empty(n, dtype=np.int64)
    n_before = np.empty(n, dtype=np.int64)
    col_win = np.empty(n, dtype=np.int64)
    hold = np.empty(n, dtype=np.float32)
    lost = np.empty(n, dtype=np.bool_)
    iterations = 0
    converged = False
    for _ in range(max_iter):
        iterations += 1
        for j in range(n):
            colmin[j] = np.inf
            first_min[j] = n
            first_zero[j] = n
            count[j] = 0
            n_before[j] = 0
        for r in range(n):
            j = choice[r]
            count[j] += 1
            if c[r] < colmin[j]:
                colmin[j] = c[r]
        for r in range(n):  # rows in increasing order: the first index wins ties
            j = choice[r]
            if c[r] == colmin[j] and first_min[j] == n:
                first_min[j] = r
            if c[r] == 0 and first_zero[j] == n:
                first_zero[j] = r
        if reference:  # argmin over the column of C (.) Pi: non-choosers hold 0
            for r in range(n):
                j = choice[r]
                if c[r] > 0 and r < first_zero[j]:
                    n_before[j] += 1
            for j in range(n):
                if count[j] > 0 and (colmin[j] < 0 or count[j] == n):
                    col_win[j] = first_min[j]
                elif first_zero[j] < n and n_before[j] == first_zero[j]:
                    col_win[j] = first_zero[j]
                else:
                    col_win[j] = n
        else:
            for j in range(n):
                col_win[j] = first_min[j]
        n_lost = 0
        for j in range(n):
            winner_out[j] = col_win[j] if col_win[j] < n else -1
        for r in range(n):
            lost[r] = col_win[choice[r]] != r
            if lost[r]:
                n_lost += 1
        if n_lost == 0:
            converged = True
            break
        for j in range(n):
            hold[j] = c[col_win[j]] if col_win[j] < n else np.float32(0.0)
        hold_max = np.float32(-np.inf)
        for j in range(n):
            if hold[j] > hold_max:
                hold_max = hold[j]
        unstable = False
        for r in range(n):
            if not lost[r]:
                continue
            j_old = choice[r]
            row = cur[r]
            if not has_row[r]:
                has_row[r] = True
                s_r = s[r]
                for j in range(n):
                    row[j] = base[r, j] - s_r * z[j]
            if inf_penalty:
                row[j_old] = np.float32(np.inf)
            else:
                row[j_old] = row[j_old] + penalty
            choice[r], c[r] = _argmin(base, s[r], z, r, row, True, order[r], bounded)
            if reference and not unstable:
                if col_win[j_old] < n and hold[j_old] >= 0:
                    unstable = True  # a zero-rule winner may lose its guard row
                elif c[r] <= hold_max:
                    # can this row ever beat a column's holder?
                    unstable = _can_beat(base, s[r], r, row, hold, hold_max, order[r], bounded)
        if reference and not unstable:
            break
    return iterations, converged


@numba.njit(cache=True, nogil=True)
def _batch(
    base, s, z, first, reference, penalty, inf_penalty, max_iter, order, bounded, winner, iters,
    conv,
):  # fmt: skip
    cur = np.empty((s.shape[1], s.shape[1]), dtype=np.float32)  # reused by every problem
    for b in range(s.shape[0]):
        it, cv = _one(
            base, s[b], z[b], first[b], reference, penalty, inf_penalty, max_iter, winner[b], cur,
            order, bounded,
        )  # fmt: skip
        iters[b] = it
        conv[b] = cv


_ORDERS: dict[tuple[tuple[int, ...], bytes], np.ndarray] = {}


def scan_order(base: np.ndarray) -> np.ndarray:
    """(n, n) int64: row r's columns sorted by base[r, j], ties by j (cached per base)."""
    key = (base.shape, base.tobytes())
    order = _ORDERS.get(key)
    if order is None:
        if len(_ORDERS) >= 16:
            _ORDERS.clear()
        order = np.ascontiguousarray(np.argsort(base, axis=1, kind="stable"))
        _ORDERS[key] = order
    return order


def saliency_transport_cpu(
    base: np.ndarray,
    s: np.ndarray,
    z: np.ndarray,
    first: np.ndarray,
    *,
    reference: bool,
    penalty: float,
    max_iter: int,
    workers: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """base (n, n) float32 = xi C; s, z (B, n) float32; first (B, n) int64 (-1 = unknown)
    -> (winner (B, n) int64, iterations (B,) int64, converged (B,) bool).

    ``workers`` > 1 splits the batch over that many threads (the compiled loop releases the
    GIL); every problem is solved alone, so the result does not depend on it."""
    b, n = s.shape
    base = np.ascontiguousarray(base, dtype=np.float32)
    s = np.ascontiguousarray(s, dtype=np.float32)
    z = np.ascontiguousarray(z, dtype=np.float32)
    first = np.ascontiguousarray(first, dtype=np.int64)
    winner = np.full((b, n), -1, dtype=np.int64)
    iters = np.zeros(b, dtype=np.int64)
    conv = np.zeros(b, dtype=np.bool_)
    inf_penalty = bool(np.isinf(penalty))
    pen = np.float32(0.0 if inf_penalty else penalty)
    bounded = bool((s >= 0).all() and (z >= 0).all() and (z <= 1).all() and penalty > 0)
    order = scan_order(base)

    def solve(sl: slice) -> None:
        _batch(
            base, s[sl], z[sl], first[sl], reference, pen, inf_penalty, max_iter, order, bounded,
            winner[sl], iters[sl], conv[sl],
        )  # fmt: skip

    run_chunks(solve, b, workers)
    return winner, iters, conv


@numba.njit(cache=True, nogil=True)
def _apply_plan(x, source, th, tw, out):
    b, ch, h, w = x.shape
    ph, pw = h // th, w // tw
    for e in range(b):
        for j in range(th * tw):
            i = source[e, j]
            r0, c0 = (j // tw) * ph, (j % tw) * pw
            if i < 0:
                out[e, :, r0 : r0 + ph, c0 : c0 + pw] = 0
                continue
            ri, ci = (i // tw) * ph, (i % tw) * pw
            for c in range(ch):
                for dr in range(ph):
                    for dc in range(pw):
                        out[e, c, r0 + dr, c0 + dc] = x[e, c, ri + dr, ci + dc]


def apply_plan_cpu(x: np.ndarray, source: np.ndarray, th: int, tw: int) -> np.ndarray:
    """Pi^T x as a compiled copy of patches: x (B, C, H, W) C-contiguous, source (B, th*tw)
    int64 (-1 = zero patch) -> (B, C, H, W), same dtype."""
    out = np.empty_like(x)
    _apply_plan(x, np.ascontiguousarray(source, dtype=np.int64), th, tw, out)
    return out
