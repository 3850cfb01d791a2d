"""The local backend: bytes under one data directory (store), its paths and fsync policy
(layout), an /api upload's chunks in its data file (chunkfiles) and what a restart of the
machine undoes (restarts)."""
from .store import LocalStore

__all__ = ["LocalStore"]
