"""Helpers for testing the .cdnn format (numpy only, like numpy.testing; never torch).

`craft` takes files apart and puts (possibly broken) ones together with valid checksums, and
finds the golden files; `fuzz` is the mutation fuzzer behind tests/test_fuzz.py and
benchmarks/fuzz.py. Nothing in cdnn_runtime imports this package.
"""
