"""mlc db upgrade | downgrade | current"""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("upgrade")
def upgrade(revision: str = "head") -> None:
    """Create or upgrade the connector tables (idempotent)."""
    from ml_connector.store import db

    db.migrate(revision=revision)
    typer.echo(f"connector database at revision {db.current_revision()}")


@app.command("downgrade")
def downgrade(revision: str = typer.Argument(..., help="target revision, or 'base' to drop every table")) -> None:
    from ml_connector.store import db

    db.downgrade(revision=revision)
    typer.echo(f"connector database at revision {db.current_revision()}")


@app.command("current")
def current() -> None:
    from ml_connector.store import db

    typer.echo(db.current_revision() or "empty (run: mlc db upgrade)")
