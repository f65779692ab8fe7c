"""mlc keys generate | rotate"""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)

# (table, primary-key columns, encrypted columns): what `rotate` re-encrypts.
_ENCRYPTED = {
    "mlc_token": ("access_token", "refresh_token"),
    "mlc_vendor_map": ("vat_number", "coc_number", "email"),
}


@app.command("generate")
def generate() -> None:
    """Print a new Fernet key (put it first in [ml_connector] fernet_keys to rotate)."""
    from ml_connector.crypto import generate_key

    typer.echo(generate_key())


@app.command("rotate")
def rotate() -> None:
    """Re-encrypt every stored secret under the first (newest) key."""
    from sqlalchemy import MetaData, Table, select, update

    from ml_connector.crypto import get_crypto
    from ml_connector.store.db import get_engine, session_scope

    crypto = get_crypto()
    engine = get_engine()
    metadata = MetaData()
    total = 0
    with session_scope(engine, durable=True) as session:  # re-encrypted secrets must survive a power loss
        for name, columns in _ENCRYPTED.items():
            table = Table(name, metadata, autoload_with=session.connection())
            pk = list(table.primary_key.columns)
            for row in session.execute(select(*pk, *[table.c[c] for c in columns])).all():
                values = {c: crypto.rotate(row._mapping[c]) for c in columns if row._mapping[c] is not None}
                if values:
                    session.execute(update(table).where(*[col == row._mapping[col.name] for col in pk]).values(values))
                    total += 1
    typer.echo(f"re-encrypted {total} rows under the newest key")
