"""Benchmarks: a simulated fleet speaking the real protocol, plus runs against real engines."""
