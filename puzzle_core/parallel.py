"""Worker pools for the batch's independent problems (``PuzzleMixConfig.mask_workers`` and
``mask_pool``): the swap masks, the exact min-cut per chunk of examples, the transports.

Pools live for the life of the process (creating workers per batch would cost more than a
small batch's solve).  Threads help where the work releases the GIL (the compiled transport
loop; gco's swap through ctypes); processes help everywhere, at the price of sending the
problems (a few hundred kB per batch) and of starting the workers once (spawned, so safe beside
torch's threads).  ``make bench`` measures both."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import numpy as np

POOLS = ("thread", "process")
_POOLS: dict[tuple[str, int], Executor] = {}


def pool(workers: int, kind: str = "thread") -> Executor:
    """The process-wide pool of ``workers`` threads or processes (created on first use)."""
    key = (kind, workers)
    ex = _POOLS.get(key)
    if ex is None:
        if kind == "thread":
            ex = ThreadPoolExecutor(workers, thread_name_prefix="puzzle-mask")
        elif kind == "process":
            ex = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        else:
            raise ValueError(f"pool must be one of {POOLS}, got {kind!r}")
        _POOLS[key] = ex
    return ex


def chunks(b: int, workers: int) -> list[slice]:
    """``workers`` contiguous, non-empty, nearly equal slices covering range(b)."""
    bounds = np.linspace(0, b, max(1, min(workers, b)) + 1).round().astype(int)
    pairs = zip(bounds[:-1], bounds[1:], strict=True)
    return [slice(int(lo), int(hi)) for lo, hi in pairs if hi > lo]


def run_chunks(solve: Callable[[slice], None], b: int, workers: int) -> None:
    """Call ``solve(chunk)`` on ``workers`` chunks of range(b) in the thread pool (inline for
    one worker); exceptions propagate."""
    if workers <= 1 or b <= 1:
        solve(slice(0, b))
        return
    list(pool(workers, "thread").map(solve, chunks(b, workers)))


def map_chunks(
    fn: Callable[..., Any], args: Sequence[Sequence[Any]], workers: int, kind: str = "thread"
) -> list[Any]:
    """[fn(*a) for a in args] on the pool (inline for one worker); ``fn`` must be a module-level
    function of picklable arguments when ``kind`` is "process"."""
    if workers <= 1 or len(args) <= 1:
        return [fn(*a) for a in args]
    ex = pool(workers, kind)
    return [f.result() for f in [ex.submit(fn, *a) for a in args]]
