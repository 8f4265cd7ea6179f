"""`python -m terra run SCRIPT [ARGS]`: see terra/run.py."""

import sys

from terra.run import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
