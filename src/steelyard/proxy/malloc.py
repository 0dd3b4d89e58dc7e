"""The C allocator's thresholds for a data-plane process (glibc only; elsewhere nothing).

Relaying large responses allocates and frees buffers of up to a few hundred KiB (one per read)
many thousand times a second. With glibc's defaults, whether those come from the heap or from
``mmap`` and whether a freed one at the top of the heap is handed back to the kernel (``brk``)
depends on what the process happened to allocate before: one start-up without the admin API's
imports made every 1 MiB response cost ~30% more CPU (measured: a ``brk`` call per two reads).
Fixing both thresholds makes it steady: buffers below ``MMAP_THRESHOLD`` come from the heap, and
the heap keeps up to ``TRIM_THRESHOLD`` of free memory at its top instead of returning it.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
MMAP_THRESHOLD = 4 << 20
TRIM_THRESHOLD = 32 << 20


def tune() -> bool:
    """Set both thresholds; False when the C library has no ``mallopt`` (not glibc)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def freeze_started() -> None:
    """Put every object alive once a process serves out of the cyclic collector's reach.

    A full (generation 2) collection visits every tracked object: with pools of 10,000 servers
    (their ``Server``, load, state and check objects, the config model, the balancers) that is
    50–150 ms during which the event loop stands still. What exists when serving starts lives
    until a reload, so ``gc.freeze()`` moves it to the permanent generation and later full
    collections visit only what came after. Garbage is collected first (what is frozen is only
    what is alive). Cost: cycles among these objects are never freed, so the first reload leaves
    the start-up configuration's pool objects behind, once (objects of later configurations are
    collected as usual).
    """
    import gc

    gc.collect()
    gc.freeze()
