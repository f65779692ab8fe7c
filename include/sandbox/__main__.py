"""``python -m sandbox``: both sandboxes in one process (see :func:`sandbox.cli.serve`)."""

import sys

from sandbox.cli import main

if __name__ == "__main__":
    sys.exit(main())
