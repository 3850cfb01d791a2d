"""Upload bytes: the storage interface, its errors, its backends and their locks."""
