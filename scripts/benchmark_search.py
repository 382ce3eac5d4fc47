"""Throughput of the layer-search stages: ``python scripts/benchmark_search.py --config=default``."""

from evonorm.search.bench import main

if __name__ == "__main__":
    main()
