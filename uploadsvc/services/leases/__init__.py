"""Locks every host honours: leases in the database (locker), who holds them (owners) and
the thread that keeps this process's holds alive (renewer)."""
from .locker import DatabaseLocker, fence, init_app, release_in_commit, sweep

__all__ = ["DatabaseLocker", "fence", "init_app", "release_in_commit", "sweep"]
