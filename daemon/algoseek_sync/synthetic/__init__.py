"""Deterministic synthetic drops for tests and benchmarks, with planted quality problems."""
