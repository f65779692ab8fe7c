"""mlc sandbox: both simulators in one process."""

from __future__ import annotations

import typer


def sandbox(
    host: str = typer.Option("127.0.0.1", help="bind address (keep it on loopback)"),
    exact_port: int = typer.Option(8701, help="Exact Online sandbox port"),
    jaggaer_port: int = typer.Option(8702, help="JAGGAER sandbox port"),
) -> None:
    """Run the Exact Online and JAGGAER sandboxes until Ctrl-C."""
    # The sandbox is not part of the product: imported only here, on demand.
    from sandbox.cli import serve

    serve(exact_port=exact_port, jaggaer_port=jaggaer_port, host=host)
