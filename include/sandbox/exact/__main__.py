"""``python -m sandbox.exact [--port 8701] [--host 127.0.0.1]``: run the Exact Online sandbox alone."""

from __future__ import annotations

import argparse

from sandbox.common.server import run_servers
from sandbox.exact import DEFAULT_PORT, create_app


def main() -> None:
    parser = argparse.ArgumentParser(description="Exact Online sandbox")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args()
    run_servers([("Exact Online", create_app(), args.port)], host=args.host)


if __name__ == "__main__":
    main()
