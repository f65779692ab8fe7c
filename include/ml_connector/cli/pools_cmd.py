"""mlc pools sync | mlc pools show

One Airflow pool per tenant and Exact division (``mlc_exact__<tenant>__<division>``, one slot): every task that
calls that division runs in it, in both flows, so Exact never sees two calls to one division at once. The pools are
made from the tenant file; run ``mlc pools sync`` after adding a tenant or a division (``make home`` does it).

Pools live in Airflow's metadata database: this goes through Airflow's own pool client (what ``airflow pools set``
uses), so it runs where the scheduler's configuration is (``AIRFLOW_HOME``), never inside a task.
"""

from __future__ import annotations

import typer

from ml_connector.errors import ConfigError

app = typer.Typer(no_args_is_help=True)


def _wanted() -> list[tuple[str, int, str]]:
    from ml_connector.config import load_tenants
    from ml_connector.dagbuild.common import pools_for

    try:
        return pools_for(load_tenants())
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(problem, err=True)
        raise typer.Exit(1) from None


def _client():  # -> airflow.api.client.local_client.Client
    from airflow.api.client import get_current_api_client

    return get_current_api_client()


def sync_pools(*, prune: bool = False, dry_run: bool = False) -> dict[str, list[str]]:
    """Create or fix the pools the tenant file needs; with ``prune`` delete ``mlc_exact__*`` pools it no longer
    names. Returns ``{"created", "updated", "unchanged", "deleted"}`` pool names."""
    from ml_connector.dagbuild.common import POOL_PREFIX

    wanted = _wanted()
    client = _client()
    existing = {p[0]: p for p in client.get_pools()}
    result: dict[str, list[str]] = {"created": [], "updated": [], "unchanged": [], "deleted": []}
    for name, slots, description in wanted:
        have = existing.get(name)
        if have is not None and int(have[1]) == slots and (have[2] or "") == description:
            result["unchanged"].append(name)
            continue
        if not dry_run:
            client.create_pool(name=name, slots=slots, description=description, include_deferred=False)
        result["updated" if have is not None else "created"].append(name)
    if prune:
        names = {w[0] for w in wanted}
        for name in sorted(existing):
            if name.startswith(f"{POOL_PREFIX}__") and name not in names:
                if not dry_run:
                    client.delete_pool(name=name)
                result["deleted"].append(name)
    return result


@app.command("sync")
def sync(
    prune: bool = typer.Option(False, "--prune", help="also delete mlc_exact__* pools the tenant file no longer names"),
    dry_run: bool = typer.Option(False, "--dry-run", help="show what would change, change nothing"),
) -> None:
    """Create the per-division Exact pools (one slot each) from the tenant file."""
    result = sync_pools(prune=prune, dry_run=dry_run)
    prefix = "would be " if dry_run else ""
    for what in ("created", "updated", "deleted", "unchanged"):
        for name in result[what]:
            typer.echo(f"{name}: {prefix if what != 'unchanged' else ''}{what}")
    if not any(result.values()):
        typer.echo("no pools needed (no tenants?)")


@app.command("show")
def show() -> None:
    """The pools the tenant file needs, and whether Airflow has them."""
    existing = {p[0]: p for p in _client().get_pools()}
    missing = 0
    for name, slots, _ in _wanted():
        have = existing.get(name)
        if have is None:
            missing += 1
            typer.echo(f"{name}: MISSING (run: mlc pools sync)")
        else:
            typer.echo(f"{name}: {have[1]} slot(s){'' if int(have[1]) == slots else f' (expected {slots})'}")
    if missing:
        raise typer.Exit(1)
