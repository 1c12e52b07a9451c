"""CPU performance settings measured on small (2-core) machines; opt-in, process-wide."""

from __future__ import annotations

import ctypes
import ctypes.util

import torch

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_cpu(threads: int = 1, allocator: bool = True) -> None:
    """Settings for the mixing and saliency code on CPU:

    * ``torch.set_num_threads(threads)``: the mixing code is many small tensor operations, for
      which one thread was measured fastest on 2-core machines;
    * ``torch.set_flush_denormal(True)``: saliency passes on untrained networks hit denormals;
    * with ``allocator`` (glibc only): keep freed blocks of up to 32 MiB in the heap instead of
      returning them to the OS (mallopt M_MMAP_THRESHOLD / M_TRIM_THRESHOLD), so that the
      transport's per-step temporaries are not page-faulted in again at every call (measured
      several times faster for a 10 MB gather).  Process-wide; costs some resident memory.
    """
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    if allocator:
        name = ctypes.util.find_library("c")
        if name:
            try:
                libc = ctypes.CDLL(name)
                libc.mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)
                libc.mallopt(_M_TRIM_THRESHOLD, 512 * 1024 * 1024)
            except (OSError, AttributeError):  # not glibc: nothing to tune
                pass
