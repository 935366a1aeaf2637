"""Benchmarks: dreamstyle's engine against a naive reference, timed in the same run."""
