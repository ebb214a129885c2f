"""``python -m minivq``: the same command as the ``minivq`` console script (:mod:`minivq.cli`)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
