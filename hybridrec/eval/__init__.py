"""Evaluation: metrics, protocols and the benchmark harness."""
