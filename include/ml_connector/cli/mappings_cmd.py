"""mlc mappings list | export | import | set | delete — the vendor map and the code maps.

    mlc mappings list [--tenant T] [--what vendors|codes|all]
    mlc mappings export vendors|codes [--tenant T] [--output FILE] [--redact]
    mlc mappings import vendors|codes FILE [--tenant T] [--check-exact]   (all rows or none; errors name the row)
    mlc mappings set vendor --tenant T --division D --jaggaer-id ID --exact-code CODE
    mlc mappings set code --tenant T --kind gl_account|cost_center|vat_code|business_unit|currency --source S --target V
    mlc mappings delete vendor --tenant T --division D --jaggaer-id ID
    mlc mappings delete code --tenant T --kind K --source S

A held invoice names the exact ``mlc mappings set vendor`` command that releases it; the next invoice-poll run
picks it up by itself.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from ml_connector.errors import ConfigError

app = typer.Typer(no_args_is_help=True)
set_app = typer.Typer(no_args_is_help=True, help="Create or change one mapping.")
delete_app = typer.Typer(no_args_is_help=True, help="Delete one mapping.")
app.add_typer(set_app, name="set")
app.add_typer(delete_app, name="delete")

TenantOpt = typer.Option(None, "--tenant", "-t", help="tenant name (default: the only tenant in the tenant file)")


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(1)


def _tenant(name: str | None) -> Any:
    from ml_connector.config import load_tenants

    try:
        tenants = load_tenants()
    except ConfigError as exc:
        raise _fail("\n".join(exc.problems)) from None
    if name is None:
        if len(tenants) != 1:
            raise _fail(f"several tenants ({', '.join(sorted(tenants))}): choose one with --tenant")
        return next(iter(tenants.values()))
    if name not in tenants:
        raise _fail(f"no tenant {name!r} in the tenant file (known: {', '.join(sorted(tenants))})")
    return tenants[name]


def _engine() -> Any:
    from ml_connector.store.db import get_engine

    try:
        return get_engine()
    except ConfigError as exc:
        raise _fail("\n".join(exc.problems)) from None


def _check_division(tenant: Any, division: int) -> None:
    if division not in tenant.exact.divisions:
        raise _fail(f"division {division} is not one of tenant {tenant.name}'s divisions {tenant.exact.divisions}")


def _source(kind: str, source: str) -> str:
    """``--source`` in its stored form, after checking ``--kind``."""
    from ml_connector.mappings.codes import KINDS, normalize_source

    if kind not in KINDS:
        raise _fail(f"--kind must be one of {', '.join(KINDS)}")
    try:
        return normalize_source(kind, source)
    except ValueError as exc:
        raise _fail(str(exc)) from None


# -------------------------------------------------------------------------------------------------------- list
@app.command("list")
def list_(
    tenant: str | None = TenantOpt,
    what: str = typer.Option("all", help="vendors, codes or all"),
) -> None:
    """Show the tenant's vendor links and code maps (sensitive numbers are not shown)."""
    from sqlalchemy import select

    from ml_connector.store.db import session_scope
    from ml_connector.store.models import CodeMap, VendorMap

    cfg = _tenant(tenant)
    if what not in ("vendors", "codes", "all"):
        raise _fail("--what must be vendors, codes or all")
    with session_scope(_engine()) as s:
        if what in ("vendors", "all"):
            rows = s.scalars(
                select(VendorMap).where(VendorMap.tenant == cfg.name).order_by(VendorMap.division, VendorMap.id)
            ).all()
            typer.echo(f"vendor map of {cfg.name}: {len(rows)} link(s)")
            for r in rows:
                typer.echo(
                    f"  division {r.division}  JAGGAER {r.jaggaer_supplier_id or '-'}"
                    f" (number {r.jaggaer_supplier_number or '-'})  ->  Exact {r.exact_code or '-'}"
                    f" {r.exact_account_id or '(GUID looked up on the next run)'}  {r.name or ''}"
                    f"  [{r.source}{'' if r.active else ', inactive'}]"
                )
        if what in ("codes", "all"):
            codes = s.scalars(
                select(CodeMap).where(CodeMap.tenant == cfg.name).order_by(CodeMap.kind, CodeMap.source_value)
            ).all()
            typer.echo(f"code maps of {cfg.name}: {len(codes)} row(s) (override the tenant file)")
            for c in codes:
                note = f"  # {c.note}" if c.note else ""
                typer.echo(f"  {c.kind:<14} {c.source_value!r} -> {c.target_value!r}{note}")


# ------------------------------------------------------------------------------------------------------ export
@app.command("export")
def export(
    what: str = typer.Argument(..., help="vendors or codes"),
    tenant: str | None = TenantOpt,
    output: Path | None = typer.Option(None, "--output", "-o", help="file to write (default: standard output)"),
    redact: bool = typer.Option(False, help="leave VAT, chamber-of-commerce numbers and e-mail addresses out"),
) -> None:
    """Write the vendor map or the code maps as CSV."""
    from ml_connector.mappings.csvio import export_codes, export_vendors
    from ml_connector.store.db import session_scope

    cfg = _tenant(tenant)
    if what not in ("vendors", "codes"):
        raise _fail("export what? vendors or codes")
    handle = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
    try:
        with session_scope(_engine()) as s:
            if what == "vendors":
                n = export_vendors(s, cfg.name, handle, redact=redact)
            else:
                n = export_codes(s, cfg.name, handle)
    finally:
        if output:
            handle.close()
    if output:
        typer.echo(f"{n} {what} row(s) written to {output}", err=True)


# ------------------------------------------------------------------------------------------------------ import
@app.command("import")
def import_(
    what: str = typer.Argument(..., help="vendors or codes"),
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV file (as written by export)"),
    tenant: str | None = TenantOpt,
    check_exact: bool = typer.Option(
        False,
        "--check-exact",
        help="also check GL account, cost-centre and VAT targets against Exact's master data (calls Exact)",
    ),
) -> None:
    """Read a CSV of vendor links or code maps: every row is checked first; one bad row imports nothing."""
    from ml_connector.mappings.csvio import ImportProblems, import_codes, import_vendors
    from ml_connector.store.db import session_scope

    cfg = _tenant(tenant)
    if what not in ("vendors", "codes"):
        raise _fail("import what? vendors or codes")
    exact_codes = _exact_codes(cfg) if check_exact and what == "codes" else None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"{path}: cannot read ({exc})") from None
    try:
        with session_scope(_engine()) as s:
            if what == "vendors":
                result = import_vendors(s, cfg.name, text, divisions=cfg.exact.divisions)
            else:
                result = import_codes(s, cfg.name, text, divisions=cfg.exact.divisions, exact_codes=exact_codes)
    except ImportProblems as exc:
        for problem in exc.problems:
            typer.echo(f"{path}: {problem}", err=True)
        raise _fail(f"{path}: nothing imported ({len(exc.problems)} problem(s))") from None
    typer.echo(f"{path}: {result.created} created, {result.updated} updated")


def _exact_codes(cfg: Any) -> dict[str, set[str]]:
    """The GL accounts, cost centres and VAT codes Exact has in the tenant's divisions (one read of each)."""
    from ml_connector.errors import ConnectorError
    from ml_connector.exact.hook import ExactOnlineHook
    from ml_connector.flows.invoice_poll.master import MasterData
    from ml_connector.mappings.csvio import known_exact_codes

    hook = ExactOnlineHook(cfg.exact.conn_id, tenant=cfg.name, engine=_engine(), on_broken=lambda exc: None)
    try:
        return known_exact_codes(MasterData.load(hook, division) for division in cfg.exact.divisions)
    except ConnectorError as exc:
        raise _fail(f"cannot read Exact's master data for --check-exact: {exc}") from None


# --------------------------------------------------------------------------------------------------------- set
@set_app.command("vendor")
def set_vendor(
    division: int = typer.Option(..., help="Exact division"),
    jaggaer_id: str | None = typer.Option(None, help="JAGGAER vendor id (as in the held invoice's message)"),
    jaggaer_number: str | None = typer.Option(None, help="JAGGAER supplier number, when the id is not known"),
    exact_code: str | None = typer.Option(None, help="Exact supplier account code (unpadded, e.g. 1001)"),
    exact_account_id: str | None = typer.Option(None, help="Exact account ID (GUID), instead of the code"),
    name: str | None = typer.Option(None, help="a name for the link (shown by list)"),
    tenant: str | None = TenantOpt,
) -> None:
    """Link a JAGGAER vendor to an Exact supplier (replaces its previous link in that division)."""
    from ml_connector.mappings.vendors import set_link
    from ml_connector.store.db import session_scope

    cfg = _tenant(tenant)
    _check_division(cfg, division)
    try:
        with session_scope(_engine()) as s:
            row = set_link(
                s,
                tenant=cfg.name,
                division=division,
                jaggaer_id=jaggaer_id,
                jaggaer_number=jaggaer_number,
                exact_code=exact_code,
                exact_account_id=exact_account_id,
                name=name,
                source="admin",
            )
            shown = f"{row.exact_code or row.exact_account_id}"
    except ValueError as exc:
        raise _fail(str(exc)) from None
    typer.echo(
        f"division {division}: JAGGAER vendor {jaggaer_id or jaggaer_number} -> Exact supplier {shown}; held "
        "invoices of this vendor go through on the next invoice-poll run"
    )


@set_app.command("code")
def set_code_cmd(
    kind: str = typer.Option(..., help="gl_account, cost_center, vat_code, business_unit or currency"),
    source: str = typer.Option(..., help="the JAGGAER value (invoice type, cost centre, tax rate %, business unit)"),
    target: str = typer.Option(..., help="the Exact value (GL code, cost centre, VAT code, division, currency)"),
    note: str | None = typer.Option(None, help="why (shown by list)"),
    tenant: str | None = TenantOpt,
) -> None:
    """Map one JAGGAER value to an Exact code (overrides the tenant file)."""
    from ml_connector.mappings.codes import validate_target
    from ml_connector.mappings.csvio import set_code
    from ml_connector.store.db import session_scope

    cfg = _tenant(tenant)
    source_value = _source(kind, source)
    try:
        target_value = validate_target(kind, target)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if kind == "business_unit":
        _check_division(cfg, int(target_value))
    with session_scope(_engine()) as s:
        created = set_code(s, cfg.name, kind, source_value, target_value, note)
    typer.echo(f"{'created' if created else 'updated'}: {kind} {source_value!r} -> {target_value!r}")


# ------------------------------------------------------------------------------------------------------ delete
@delete_app.command("vendor")
def delete_vendor(
    division: int = typer.Option(..., help="Exact division"),
    jaggaer_id: str = typer.Option(..., help="JAGGAER vendor id (or supplier number of a link made by number)"),
    tenant: str | None = TenantOpt,
) -> None:
    """Remove a vendor link (its invoices are matched again, or held, on the next run)."""
    from ml_connector.mappings.vendors import delete_link
    from ml_connector.store.db import session_scope

    cfg = _tenant(tenant)
    with session_scope(_engine()) as s:
        found = delete_link(s, tenant=cfg.name, division=division, jaggaer_id=jaggaer_id)
    if not found:
        raise _fail(f"no link for JAGGAER vendor {jaggaer_id} in division {division}")
    typer.echo(f"deleted: division {division}, JAGGAER vendor {jaggaer_id}")


@delete_app.command("code")
def delete_code(
    kind: str = typer.Option(..., help="gl_account, cost_center, vat_code, business_unit or currency"),
    source: str = typer.Option(..., help="the JAGGAER value"),
    tenant: str | None = TenantOpt,
) -> None:
    """Remove a code map row (the tenant file's mapping applies again)."""
    from ml_connector.mappings.csvio import delete_code as delete_row
    from ml_connector.store.db import session_scope

    cfg = _tenant(tenant)
    source_value = _source(kind, source)
    with session_scope(_engine()) as s:
        found = delete_row(s, cfg.name, kind, source_value)
    if not found:
        raise _fail(f"no {kind} mapping for {source_value!r}")
    typer.echo(f"deleted: {kind} {source_value!r}")
