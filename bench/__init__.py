"""Benchmark of uploadsvc against its references (python -m bench)."""
