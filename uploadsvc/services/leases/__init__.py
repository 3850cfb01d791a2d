"""Locks every host honours: leases in the database (locker), this thread's holds and the
fence of every commit (holds), who holds them (owners) and the thread that keeps this
process's holds alive (renewer)."""
from .holds import fence, release_in_commit
from .locker import DatabaseLocker, init_app, sweep

__all__ = ["DatabaseLocker", "fence", "init_app", "release_in_commit", "sweep"]
