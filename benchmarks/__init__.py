"""Benchmarks (not part of the test run): each prints its figures and a ratio against a baseline measured in
the same run. Run all with `make benchmark`, or one with `.venv/bin/python -m benchmarks.<name>`."""
