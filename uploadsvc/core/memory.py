"""Process memory tuning for gunicorn workers (glibc malloc)."""
import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # mallopt() parameter, from glibc's malloc.h

# glibc gives each thread that allocates its own arena (up to 8 per core), and each arena
# keeps its high-water mark: with 1 MiB body buffers in every request thread, a worker's RSS
# grew with its threads' peaks. Two shared arenas keep it near what is in use. (Fixing the
# mmap threshold instead does as well for memory but costs page faults on every buffer.)
ARENAS = 2


def tune_malloc() -> bool:
    """Limit glibc's malloc arenas for this process; False if not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    if mallopt(M_ARENA_MAX, ARENAS) != 1:
        log.warning("mallopt refused M_ARENA_MAX; memory use may grow with threads")
        return False
    return True
