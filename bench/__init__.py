"""Benchmarks: run as `python -m bench.<name>`; each prints medians and side-by-side ratios."""
