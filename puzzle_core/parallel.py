"""Worker pools shared by the mask solvers and the transport (``PuzzleMixConfig.mask_workers``).

One thread pool per size for the life of the process: creating threads per batch would cost
more than a small batch's solve.  The work handed to them (PyMaxflow's max-flow, gco's swap,
the compiled transport loop) runs in C with the GIL released, so threads scale on cores."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_POOLS: dict[int, ThreadPoolExecutor] = {}


def thread_pool(workers: int) -> ThreadPoolExecutor:
    """The process-wide pool of ``workers`` threads (created on first use)."""
    pool = _POOLS.get(workers)
    if pool is None:
        pool = _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="puzzle-mask")
    return pool


def run_chunks(solve: Callable[[slice], None], b: int, workers: int) -> None:
    """Call ``solve(chunk)`` on ``workers`` contiguous chunks of range(b) (in the pool's threads
    when workers > 1, else inline); exceptions propagate."""
    if workers <= 1 or b <= 1:
        solve(slice(0, b))
        return
    bounds = np.linspace(0, b, min(workers, b) + 1).round().astype(int)
    pairs = zip(bounds[:-1], bounds[1:], strict=True)
    chunks = [slice(int(lo), int(hi)) for lo, hi in pairs if hi > lo]
    list(thread_pool(workers).map(solve, chunks))
