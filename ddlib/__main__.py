"""``python -m ddlib <stage> ...``: the command line of :mod:`ddlib.cli` (experts, distill, evaluate)."""
import sys

from ddlib.cli import main

if __name__ == "__main__":  # importing this module (the API reference does) runs nothing
    sys.exit(main())
