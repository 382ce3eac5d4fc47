"""Thin wrapper: ``python scripts/search.py --config=tiny --workdir=/tmp/search`` == ``evonorm-search``."""

from evonorm.search.main import run

if __name__ == "__main__":
    run()
