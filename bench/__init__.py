"""Benchmarks: every hot path as a ratio to a raw baseline measured in the same run."""
