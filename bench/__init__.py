"""Benchmarks, run by hand (`python -m bench.restore`); figures live in bench/README.md."""
