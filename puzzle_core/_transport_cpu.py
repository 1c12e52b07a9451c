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


@numba.njit(cache=True, nogil=True)
def _row_argmin(base, s_r, z, pen_row, r, penalty, inf_penalty):
    """argmin_j C^(t)[r, j] (first index on ties) and its value, float32 arithmetic."""
    n = z.shape[0]
    best = np.float32(np.inf)
    arg = -1
    for j in range(n):
        v = base[r, j] - s_r * z[j]
        k = pen_row[j]
        if k > 0:
            if inf_penalty:
                v = np.float32(np.inf)
            else:
                for _ in range(k):
                    v = v + penalty
        if v < best or arg < 0:
            best = v
            arg = j
    return arg, best


@numba.njit(cache=True, nogil=True)
def _one(base, s, z, first, reference, penalty, inf_penalty, max_iter, winner_out):
    n = z.shape[0]
    pen = np.zeros((n, n), dtype=np.int16)
    choice = np.empty(n, dtype=np.int64)
    c = np.empty(n, dtype=np.float32)
    for r in range(n):
        if first[r] >= 0:
            choice[r] = first[r]
            c[r] = base[r, first[r]] - s[r] * z[first[r]]
        else:
            choice[r], c[r] = _row_argmin(base, s[r], z, pen[r], r, penalty, inf_penalty)
    colmin = np.empty(n, dtype=np.float32)
    first_min = np.empty(n, dtype=np.int64)
    first_zero = np.empty(n, dtype=np.int64)
    count = np.empty(n, dtype=np.int64)
    n_before = np.empty(n, dtype=np.int64)
    col_win = np.empty(n, dtype=np.int64)
    hold = np.empty(n, dtype=np.float32)
    lost = np.empty(n, dtype=np.bool_)
    old = np.empty(n, dtype=np.int64)
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
            old[r] = j_old
            pen[r, j_old] += 1
            choice[r], c[r] = _row_argmin(base, s[r], z, pen[r], r, penalty, inf_penalty)
            if reference and not unstable:
                if col_win[j_old] < n and hold[j_old] >= 0:
                    unstable = True  # a zero-rule winner may lose its guard row
                elif c[r] <= hold_max:
                    for j in range(n):  # can this row ever beat column j's holder?
                        v = base[r, j] - s[r] * z[j]
                        k = pen[r, j]
                        if k > 0:
                            for _ in range(k):
                                v = v + penalty
                        if v <= hold[j]:
                            unstable = True
                            break
        if reference and not unstable:
            break
    return iterations, converged


@numba.njit(cache=True, nogil=True)
def _batch(base, s, z, first, reference, penalty, inf_penalty, max_iter, winner, iters, conv):
    for b in range(s.shape[0]):
        it, cv = _one(
            base, s[b], z[b], first[b], reference, penalty, inf_penalty, max_iter, winner[b]
        )
        iters[b] = it
        conv[b] = cv


def saliency_transport_cpu(
    base: np.ndarray,
    s: np.ndarray,
    z: np.ndarray,
    first: np.ndarray,
    *,
    reference: bool,
    penalty: float,
    max_iter: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """base (n, n) float32 = xi C; s, z (B, n) float32; first (B, n) int64 (-1 = unknown)
    -> (winner (B, n) int64, iterations (B,) int64, converged (B,) bool)."""
    b, n = s.shape
    winner = np.full((b, n), -1, dtype=np.int64)
    iters = np.zeros(b, dtype=np.int64)
    conv = np.zeros(b, dtype=np.bool_)
    inf_penalty = bool(np.isinf(penalty))
    _batch(
        np.ascontiguousarray(base, dtype=np.float32),
        np.ascontiguousarray(s, dtype=np.float32),
        np.ascontiguousarray(z, dtype=np.float32),
        np.ascontiguousarray(first, dtype=np.int64),
        reference,
        np.float32(0.0 if inf_penalty else penalty),
        inf_penalty,
        max_iter,
        winner,
        iters,
        conv,
    )
    return winner, iters, conv
