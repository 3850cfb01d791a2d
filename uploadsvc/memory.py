"""Process memory tuning for gunicorn workers (glibc malloc)."""
import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

# mallopt() parameters from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

# Buffers of this size or more (the 1 MiB read buffers of request bodies) get their own
# mapping, returned to the kernel when freed. Left alone, glibc raises this threshold after
# the first such buffer is freed and serves later ones from per-thread arenas, which keep
# their high-water mark: a worker's RSS then grows with its threads' peak, not its use.
MMAP_THRESHOLD = 256 * 1024
ARENAS = 2


def tune_malloc() -> bool:
    """Fix glibc's mmap threshold and arena count for this process; False if not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    done = all(mallopt(param, value) == 1 for param, value in (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD),
        (M_ARENA_MAX, ARENAS)))
    if not done:
        log.warning("mallopt refused a setting; memory use may grow with threads")
    return done
