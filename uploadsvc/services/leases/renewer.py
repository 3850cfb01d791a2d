"""The thread of each process that renews its leases (services.leases) a third of a lease
after each was taken or last renewed, so that a hold may last as long as its request."""
import logging
import os
import threading
import time

log = logging.getLogger(__name__)

_holds: dict = {}  # token: Hold, of every thread of this process
_lock = threading.Lock()
_pid: int | None = None  # the process whose thread runs (none yet after gunicorn's fork)
_wake = threading.Event()  # a new hold: the renewer looks again at when to renew


def keep(held) -> None:
    """Renew this hold until drop()."""
    with _lock:
        _holds[held.token] = held
    _start()


def drop(held) -> None:
    with _lock:
        _holds.pop(held.token, None)


def _start() -> None:
    """The process's renewing thread: started once per process (after gunicorn's fork)."""
    global _pid
    _wake.set()
    with _lock:
        if _pid == os.getpid():
            return
        _pid = os.getpid()
    threading.Thread(target=_renew_all, name="lease-renewer", daemon=True).start()


def _renew_all() -> None:
    """Renew every hold of the process a third of its lease after its last renewal."""
    while True:
        with _lock:
            holds = list(_holds.values())
        now = time.monotonic()
        due = [held for held in holds if now >= held.renewed + held.locker.lease_ms / 3000]
        for locker in {held.locker for held in due}:
            mine = [held for held in due if held.locker is locker]
            try:
                renewed = locker.renew(mine)
            except Exception:  # the database is away now: the fence decides at commit
                log.warning("could not renew %d leases", len(mine), exc_info=True)
                continue
            for held in mine:
                held.renewed = now
            if renewed < len(mine):
                log.warning("%d of %d leases lapsed before they were renewed",
                            len(mine) - renewed, len(mine))
        waits = [held.renewed + held.locker.lease_ms / 3000 - time.monotonic()
                 for held in holds]
        _wake.wait(max(min(waits, default=60.0), 0.01))
        _wake.clear()
