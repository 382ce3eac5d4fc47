# The two commands of the README. Each builds the environment on first use (scripts/bootstrap.sh).
.PHONY: demo test test-slow bench

VENV = $(shell ./scripts/bootstrap.sh)

demo:  ## Main job: compare BN-ReLU, GN-ReLU, EvoNorm-B0, EvoNorm-S0 on Fashion-MNIST (offline), 8-15 min on 2 cores
	$(VENV)/bin/python scripts/compare_layers.py

test:  ## Default test suite (< 15 min on 2 cores)
	$(VENV)/bin/python -m pytest -q tests

test-slow:  ## Also the tests marked slow
	$(VENV)/bin/python -m pytest -q -m "slow or not slow" tests

bench:  ## Speed benchmark of every layer against fused BN-ReLU (writes BENCHMARKS.md)
	$(VENV)/bin/python scripts/benchmark_layers.py
