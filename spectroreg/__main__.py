"""``python -m spectroreg serve CONFIG``: the same as the ``spectroreg`` command."""

import sys

from spectroreg.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="spectroreg"))
