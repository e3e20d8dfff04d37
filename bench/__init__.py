"""Benchmarks (programs, not tests): ``python -m bench [module ...]``."""
