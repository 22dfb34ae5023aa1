"""Benchmarks (not part of the test suite): ``lfr bench <name>`` (see bench/cli.py)."""
