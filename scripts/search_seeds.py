"""Evolution vs random search over seeds: ``python scripts/search_seeds.py --workdir=runs/seeds``."""

from evonorm.search.seeds import main

if __name__ == "__main__":
    main()
