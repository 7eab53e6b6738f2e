"""Benchmark harness: `python -m bench` prints one JSON document (see bench/README.md)."""
