"""mlc status — being built (issue 5)."""

from __future__ import annotations

import typer


def status() -> None:
    typer.echo("mlc status is not built yet (issue 5)", err=True)
    raise typer.Exit(2)
