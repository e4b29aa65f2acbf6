"""`python -m batch.streaming` runs the streaming job until SIGTERM."""

import sys

from batch.streaming.job import main

if __name__ == "__main__":
    sys.exit(main())
