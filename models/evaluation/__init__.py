"""Evaluation: the library code behind the benchmarks and evals (held-out figures, not live paths)."""
