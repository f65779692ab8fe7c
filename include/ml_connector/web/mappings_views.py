"""The mappings page of the Airflow UI plugin: admins look at and edit the vendor map and the code maps.

Routes (relative to the plugin's mount point ``/ml-connector``):

``GET  /ui/mappings?tenant=T``                   vendor links, code maps next to the tenant file's defaults, the
                                                 held/quarantined records waiting on a mapping (with "map" forms)
``GET  /ui/mappings/export?tenant=T&kind=K``     CSV download, ``K`` = ``vendors`` | ``codes`` (sensitive columns
                                                 left empty)
``POST /ui/mappings/vendor``                     create or change a vendor link
``POST /ui/mappings/vendor/delete``              delete a vendor link
``POST /ui/mappings/code``                       create or change a code map row
``POST /ui/mappings/code/delete``                delete a code map row
``POST /ui/mappings/import``                     CSV import (multipart: ``kind``, ``file``); one bad row imports nothing
``POST /ui/mappings/requeue``                    requeue held/quarantined records (``flow``, ``source_id``...)

GETs need a user who may see the Airflow UI; POSTs need the permission to edit connections (op/admin) and a valid
CSRF token (see :mod:`ml_connector.web.access`). Every change runs in one transaction with its audit row(s)
(flow ``mappings``; requeues are audited by the ledger as ``state:pending``). Validation is
:mod:`ml_connector.mappings`' own; errors name the form field. A successful POST redirects back to the page (303).

Nothing here touches a database or the network when the app is built.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ml_connector.web.access import (
    EDIT_ROLES_TEXT,
    Actor,
    CsrfRefused,
    build_guards,
    csrf_nonce,
    csrf_token,
    editor_with_csrf,
    set_csrf_cookie,
    sign_message,
)

AUDIT_FLOW = "mappings"
MAX_IMPORT_BYTES = 5 * 1024 * 1024
MAX_WAITING = 200
#: the fix commands held/quarantine reasons name (``flows.invoice_poll``: vendors, build, extract)
_SET_VENDOR = re.compile(
    r"mlc mappings set vendor --tenant (?P<tenant>\S+) --division (?P<division>\d+) --jaggaer-id (?P<jid>[^\s`]+)"
)
_SET_CODE = re.compile(
    r"mlc mappings set code --tenant (?P<tenant>\S+) --kind (?P<kind>\w+)(?: --source (?P<source>'[^']*'|[^\s`']+))?"
)
_VENDOR_LABEL = re.compile(r"JAGGAER vendor (?P<q>['\"])(?P<name>.*?)(?P=q) \(id (?P<id>[^)]+)\)")
_TARGET_HINTS = {
    "gl_account": "GL code",
    "cost_center": "cost centre",
    "vat_code": "VAT code",
    "business_unit": "division",
    "currency": "currency",
}
VENDOR_FIELDS = (
    "division",
    "jaggaer_supplier_id",
    "jaggaer_supplier_number",
    "exact_code",
    "exact_account_id",
    "name",
)
_SENSITIVE = ("vat_number", "coc_number", "email")


@dataclass
class Feedback:
    """What a failed POST shows: errors on top, per-field errors next to the form, the form refilled."""

    title: str = ""
    errors: list[str] = field(default_factory=list)
    fields: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    vendor_form: dict[str, Any] | None = None
    code_form: dict[str, Any] | None = None

    def add(self, form: str, column: str | None, message: str, label: str | None = None) -> None:
        if column:
            self.fields.setdefault(form, {}).setdefault(column, []).append(message)
            self.errors.append(f"{label or 'field'} '{column}': {message}")
        else:
            self.errors.append(message)


def install(app: FastAPI, guards: dict[str, Any] | None = None) -> None:
    """Add the mapping routes to the plugin app (``guards``: ``{"viewer", "editor"}`` from
    :func:`ml_connector.web.access.build_guards`, built from Airflow's auth by default)."""
    guards = guards or build_guards()
    app.state.mapping_guards = guards
    viewer, editor = guards["viewer"], editor_with_csrf(guards)

    @app.exception_handler(CsrfRefused)
    async def _csrf_refused(request: Request, exc: CsrfRefused) -> Response:
        body = (
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Change refused</title></head><body>"
            "<h2>Change refused</h2><p>Nothing was changed: "
            + _escape(exc.reason)
            + ". Reload the mappings page and try again.</p></body></html>"
        )
        return HTMLResponse(body, status_code=403)

    @app.get("/ui/mappings", name="mappings_page")
    def page(
        request: Request,
        actor: Actor = Depends(viewer),
        tenant: str | None = None,
        edit_vendor: int | None = None,
        edit_code: int | None = None,
        new_code: str | None = None,
        source: str | None = None,
        msg: str | None = None,
        sig: str | None = None,
    ) -> Response:
        flash = msg if msg and sig and _equal(sig, sign_message(msg)) else None
        prefill = _Prefill(edit_vendor=edit_vendor, edit_code=edit_code, new_code=new_code, source=source)
        return _render(request, actor, tenant, flash=flash, prefill=prefill)

    @app.get("/ui/mappings/export", name="mappings_export")
    def export(request: Request, kind: str, tenant: str | None = None, actor: Actor = Depends(viewer)) -> Response:
        from ml_connector.mappings.csvio import export_codes, export_vendors
        from ml_connector.store.db import get_engine, session_scope

        cfg, problem = _tenant(tenant)
        if cfg is None:
            return _unknown_tenant(request, actor, tenant, problem)
        if kind not in ("vendors", "codes"):
            fb = Feedback("Cannot export.")
            fb.add("export", "kind", f"{kind!r} is not vendors or codes")
            return _render(request, actor, cfg.name, status_code=400, feedback=fb)
        out = io.StringIO()
        with session_scope(get_engine()) as s:
            if kind == "vendors":
                export_vendors(s, cfg.name, out, redact=True)
            else:
                export_codes(s, cfg.name, out)
        return Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="mappings-{cfg.name}-{kind}.csv"',
                "Cache-Control": "no-store",
            },
        )

    @app.post("/ui/mappings/vendor", name="mappings_vendor")
    def save_vendor(
        request: Request,
        actor: Actor = Depends(editor),
        tenant: str = Form(""),
        division: str = Form(""),
        jaggaer_supplier_id: str = Form(""),
        jaggaer_supplier_number: str = Form(""),
        exact_code: str = Form(""),
        exact_account_id: str = Form(""),
        name: str = Form(""),
        vat_number: str = Form(""),
        coc_number: str = Form(""),
        email: str = Form(""),
        clear_vat_number: str = Form(""),
        clear_coc_number: str = Form(""),
        clear_email: str = Form(""),
        active: str = Form(""),
    ) -> Response:
        from sqlalchemy.exc import IntegrityError

        from ml_connector.mappings.csvio import check_vendor_row
        from ml_connector.mappings.vendors import set_link
        from ml_connector.store.db import get_engine, session_scope
        from ml_connector.store.models import VendorMap

        cfg, problem = _tenant(tenant)
        if cfg is None:
            return _unknown_tenant(request, actor, tenant, problem)
        form = {
            "division": division.strip(),
            "jaggaer_supplier_id": jaggaer_supplier_id.strip(),
            "jaggaer_supplier_number": jaggaer_supplier_number.strip(),
            "exact_code": exact_code.strip(),
            "exact_account_id": exact_account_id.strip(),
            "name": name.strip(),
            "vat_number": vat_number.strip(),
            "coc_number": coc_number.strip(),
            "email": email.strip(),
            "source": "admin",
            "active": "true" if active else "false",
        }
        shown = {k: form[k] for k in VENDOR_FIELDS} | {"active": bool(active)}
        fb = Feedback("The vendor link was not saved.", vendor_form=shown)
        item, problems = check_vendor_row(form, cfg.exact.divisions)
        for column, message in problems:
            fb.add("vendor", column, message)
        clears = {"vat_number": clear_vat_number, "coc_number": clear_coc_number, "email": clear_email}
        for column, flag in clears.items():
            if flag and form[column]:
                fb.add("vendor", column, "give a new value or tick 'remove', not both")
        if fb.errors or item is None:
            return _render(request, actor, cfg.name, status_code=400, feedback=fb)
        # empty: keep what is stored; "remove" ticked: clear it (set_link clears on "")
        for column, flag in clears.items():
            if flag:
                item[column] = ""
        is_active = item.pop("active")
        engine = get_engine()
        try:
            # asked before the write transaction: the token chain commits on its own connection
            with session_scope(engine) as s:
                stored = _vendor_row(s, VendorMap, cfg.name, item)
                known = (stored.exact_code, stored.exact_account_id) if stored is not None else None
            refused = _check_in_exact(engine, cfg, item, known)
            if refused:
                fb.add("vendor", "exact_account_id" if not item["exact_code"] else "exact_code", refused)
                return _render(request, actor, cfg.name, status_code=400, feedback=fb)
            with session_scope(engine) as s:
                before = _vendor_row(s, VendorMap, cfg.name, item)
                old = _vendor_summary(before) if before is not None else None
                row = set_link(s, tenant=cfg.name, **item)
                row.active = is_active
                s.flush()
                changes = [
                    f"{c.replace('_', ' ')} {'removed' if item[c] == '' else 'set'}"
                    for c in _SENSITIVE
                    if item[c] is not None
                ]
                _audit(
                    s,
                    actor,
                    tenant=cfg.name,
                    action="vendor_map.set",
                    outcome="created" if before is None else "updated",
                    division=row.division,
                    source_id=row.jaggaer_supplier_id or f"#{row.jaggaer_supplier_number}",
                    source_ref=row.name,
                    target_id=row.exact_account_id,
                    target_ref=row.exact_code,
                    url=str(request.url.path),
                    message=(
                        f"{_vendor_summary(row)}"
                        + (f" (was {old})" if old else "")
                        + (f"; {', '.join(changes)}" if changes else "")
                    ),
                )
                label = _vendor_summary(row)
        except ValueError as exc:  # set_link: e.g. the Exact account is linked to another vendor
            column = "exact_code" if "(supplier code)" in str(exc) else "exact_account_id"
            fb.add("vendor", column if "Exact account" in str(exc) else None, str(exc))
            return _render(request, actor, cfg.name, status_code=400, feedback=fb)
        except IntegrityError:
            fb.add("vendor", None, "someone else changed this link at the same moment: reload the page and try again")
            return _render(request, actor, cfg.name, status_code=409, feedback=fb)
        return _done(request, cfg.name, f"Saved vendor link {label}.")

    @app.post("/ui/mappings/vendor/delete", name="mappings_vendor_delete")
    def delete_vendor(
        request: Request,
        actor: Actor = Depends(editor),
        tenant: str = Form(""),
        division: str = Form(""),
        jaggaer_key: str = Form(""),
    ) -> Response:
        from ml_connector.mappings.vendors import delete_link
        from ml_connector.store.db import get_engine, session_scope
        from ml_connector.store.models import VendorMap

        cfg, problem = _tenant(tenant)
        if cfg is None:
            return _unknown_tenant(request, actor, tenant, problem)
        fb = Feedback("The vendor link was not deleted.")
        try:
            div = int(division)
        except ValueError:
            fb.add("vendor", "division", f"{division!r} is not a division number")
            return _render(request, actor, cfg.name, status_code=400, feedback=fb)
        key = jaggaer_key.strip()
        if not key:
            fb.add("vendor", "jaggaer_key", "empty: name the JAGGAER vendor id (or supplier number)")
            return _render(request, actor, cfg.name, status_code=400, feedback=fb)
        with session_scope(get_engine()) as s:
            item = {"division": div, "jaggaer_id": key, "jaggaer_number": None}
            row = _vendor_row(s, VendorMap, cfg.name, item) or _vendor_row(
                s, VendorMap, cfg.name, {"division": div, "jaggaer_id": None, "jaggaer_number": key}
            )
            summary = _vendor_summary(row) if row is not None else None
            snapshot = (row.name, row.exact_account_id, row.exact_code) if row is not None else None
            found = delete_link(s, tenant=cfg.name, division=div, jaggaer_id=key)
            if found and snapshot is not None:
                _audit(
                    s,
                    actor,
                    tenant=cfg.name,
                    action="vendor_map.delete",
                    outcome="deleted",
                    division=div,
                    source_id=key,
                    source_ref=snapshot[0],
                    target_id=snapshot[1],
                    target_ref=snapshot[2],
                    url=str(request.url.path),
                    message=f"deleted {summary}",
                )
        if not found:
            fb.add(None, None, f"no link for JAGGAER vendor {key} in division {div} (deleted meanwhile?)")
            return _render(request, actor, cfg.name, status_code=404, feedback=fb)
        return _done(request, cfg.name, f"Deleted vendor link {summary}.")

    @app.post("/ui/mappings/code", name="mappings_code")
    def save_code(
        request: Request,
        actor: Actor = Depends(editor),
        tenant: str = Form(""),
        kind: str = Form(""),
        source_value: str = Form(""),
        target_value: str = Form(""),
        note: str = Form(""),
    ) -> Response:
        from ml_connector.mappings.csvio import set_code
        from ml_connector.store.db import get_engine, session_scope
        from ml_connector.store.models import CodeMap

        cfg, problem = _tenant(tenant)
        if cfg is None:
            return _unknown_tenant(request, actor, tenant, problem)
        fb = Feedback(
            "The code map was not saved.",
            code_form={"kind": kind, "source_value": source_value, "target_value": target_value, "note": note},
        )
        checked = _check_code(cfg, kind, source_value, target_value, fb)
        if checked is None:
            return _render(request, actor, cfg.name, status_code=400, feedback=fb)
        source, target = checked
        with session_scope(get_engine()) as s:
            was = _code_target(s, CodeMap, cfg.name, kind, source)
            created = set_code(s, cfg.name, kind, source, target, note.strip() or None)
            _audit(
                s,
                actor,
                tenant=cfg.name,
                action="code_map.set",
                outcome="created" if created else "updated",
                source_id=kind,
                source_ref=source,
                target_ref=target,
                url=str(request.url.path),
                message=f"{kind} {source!r} -> {target!r}" + (f" (was {was!r})" if was is not None else ""),
            )
        return _done(request, cfg.name, f"Saved code map {kind} {source!r} -> {target!r}.")

    @app.post("/ui/mappings/code/delete", name="mappings_code_delete")
    def delete_code_route(
        request: Request,
        actor: Actor = Depends(editor),
        tenant: str = Form(""),
        kind: str = Form(""),
        source_value: str = Form(""),
    ) -> Response:
        from ml_connector.mappings.codes import KINDS, normalize_source
        from ml_connector.mappings.csvio import delete_code
        from ml_connector.store.db import get_engine, session_scope
        from ml_connector.store.models import CodeMap

        cfg, problem = _tenant(tenant)
        if cfg is None:
            return _unknown_tenant(request, actor, tenant, problem)
        fb = Feedback("The code map was not deleted.")
        if kind not in KINDS:
            fb.add("code", "kind", f"{kind!r} is not one of {', '.join(KINDS)}")
            return _render(request, actor, cfg.name, status_code=400, feedback=fb)
        try:
            source = normalize_source(kind, source_value)
        except ValueError as exc:
            fb.add("code", "source_value", str(exc))
            return _render(request, actor, cfg.name, status_code=400, feedback=fb)
        with session_scope(get_engine()) as s:
            was = _code_target(s, CodeMap, cfg.name, kind, source)
            found = delete_code(s, cfg.name, kind, source)
            if found:
                _audit(
                    s,
                    actor,
                    tenant=cfg.name,
                    action="code_map.delete",
                    outcome="deleted",
                    source_id=kind,
                    source_ref=source,
                    target_ref=was,
                    url=str(request.url.path),
                    message=f"deleted {kind} {source!r} -> {was!r}; the tenant file applies again",
                )
        if not found:
            fb.add(None, None, f"no {kind} override for {source!r} (deleted meanwhile?)")
            return _render(request, actor, cfg.name, status_code=404, feedback=fb)
        return _done(request, cfg.name, f"Deleted code map {kind} {source!r}; the tenant file applies again.")

    @app.post("/ui/mappings/import", name="mappings_import")
    async def import_csv(
        request: Request,
        actor: Actor = Depends(editor),
        tenant: str = Form(""),
        kind: str = Form(""),
        file: UploadFile | None = File(None),
    ) -> Response:
        from ml_connector.mappings.csvio import ImportProblems, import_codes, import_vendors
        from ml_connector.store.db import get_engine, session_scope

        cfg, problem = _tenant(tenant)
        if cfg is None:
            return _unknown_tenant(request, actor, tenant, problem)
        fb = Feedback("Nothing was imported.")
        if kind not in ("vendors", "codes"):
            fb.add("import", "kind", f"{kind!r} is not vendors or codes")
            return _render(request, actor, cfg.name, status_code=400, feedback=fb)
        raw = await file.read(MAX_IMPORT_BYTES + 1) if file is not None else b""
        filename = (file.filename if file is not None else None) or "upload.csv"
        if not raw:
            fb.add("import", "file", "no file, or an empty one: choose the CSV to import")
        elif len(raw) > MAX_IMPORT_BYTES:
            fb.add("import", "file", f"larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB: split it")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            fb.add("import", "file", "not UTF-8 text: save the CSV as UTF-8 and try again")
        if fb.errors:
            return _render(request, actor, cfg.name, status_code=400, feedback=fb)
        digest = hashlib.sha256(raw).hexdigest()
        try:
            with session_scope(get_engine()) as s:
                if kind == "vendors":
                    result = import_vendors(s, cfg.name, text, divisions=cfg.exact.divisions)
                else:
                    result = import_codes(s, cfg.name, text, divisions=cfg.exact.divisions)
                for line in result.changed:
                    _audit(
                        s,
                        actor,
                        tenant=cfg.name,
                        action=f"{'vendor_map' if kind == 'vendors' else 'code_map'}.import",
                        outcome="imported",
                        source_ref=filename,
                        url=str(request.url.path),
                        message=f"{line} (file {filename}, sha256 {digest[:16]})",
                    )
        except ImportProblems as exc:
            fb.title = f"{filename}: nothing was imported ({len(exc.problems)} problem(s))."
            for p in exc.problems:
                fb.add("import", None, p)
            return _render(request, actor, cfg.name, status_code=400, feedback=fb)
        return _done(
            request, cfg.name, f"Imported {filename}: {result.created} created, {result.updated} updated ({kind})."
        )

    @app.post("/ui/mappings/requeue", name="mappings_requeue")
    def requeue(
        request: Request,
        actor: Actor = Depends(editor),
        tenant: str = Form(""),
        flow: str = Form(""),
        source_id: list[str] | None = Form(None),
    ) -> Response:
        from ml_connector.store import ledger
        from ml_connector.store.db import get_engine

        cfg, problem = _tenant(tenant)
        if cfg is None:
            return _unknown_tenant(request, actor, tenant, problem)
        fb = Feedback("Nothing was requeued.")
        ids = [i.strip() for i in source_id or [] if i.strip()]
        if not flow.strip():
            fb.add("requeue", "flow", "empty: name the flow of the records")
        if not ids:
            fb.add("requeue", "source_id", "no record chosen")
        if fb.errors:
            return _render(request, actor, cfg.name, status_code=400, feedback=fb)
        count = ledger.requeue(get_engine(), cfg.name, flow.strip(), ids, by=f"{actor.who()} on the mappings page")
        if not count:
            fb.add(None, None, f"none of {', '.join(ids[:5])} is held, quarantined, failed or skipped any more")
            return _render(request, actor, cfg.name, status_code=409, feedback=fb)
        return _done(request, cfg.name, f"Requeued {count} {flow} record(s): the next run picks them up.")


# -------------------------------------------------------------------------------------------------------- helpers
@dataclass(frozen=True)
class _Prefill:
    edit_vendor: int | None = None
    edit_code: int | None = None
    new_code: str | None = None
    source: str | None = None


def _check_in_exact(
    engine: Any, cfg: Any, item: dict[str, Any], known: tuple[str | None, str | None] | None
) -> str | None:
    """Ask Exact whether the link's supplier exists before saving (``mappings.vendors.check_exact_supplier``); fills
    in the account ID of a code-only link, so a second link to the same supplier is refused by ``set_link``. A link
    whose Exact side is unchanged and already resolved (``known``: its stored code and account ID) is not looked up
    again. Returns the refusal, or ``None``."""
    from ml_connector.mappings.vendors import check_exact_supplier

    code, account = item["exact_code"], item["exact_account_id"]
    if known is not None and known[1] and code in (None, known[0]) and account in (None, known[1]):
        return None
    found, problem = check_exact_supplier(
        engine, _supplier_lookup(cfg), tenant=cfg.name, division=item["division"], code=code, account_id=account
    )
    if found is not None:
        item["exact_account_id"] = found.id
        item["exact_code"] = item["exact_code"] or found.code
    return problem


def exact_supplier_lookup(hook: Any) -> Any:
    """A :data:`SupplierLookup` over an ``ExactOnlineHook``: one ``crm/Accounts`` read, filtered on ``Code`` (padded
    to Exact's 18 characters) or ``ID``."""
    from ml_connector.exact import odata
    from ml_connector.mappings.vendors import ACCOUNT_SELECT, ExactSupplier

    def lookup(division: int, code: str | None, account_id: str | None) -> ExactSupplier | None:
        by = f"Code eq {odata.string(odata.pad_code(code))}" if code else f"ID eq {odata.guid(str(account_id))}"
        rows = list(hook.iter_collection(division, "crm/Accounts", select=ACCOUNT_SELECT + ",IsSupplier", filter=by))
        suppliers = [r for r in rows if r.get("IsSupplier", True)]
        return ExactSupplier.from_row(suppliers[0]) if suppliers else None

    return lookup


def _supplier_lookup(cfg: Any) -> Any:
    """The tenant's Exact, asked through its ``ExactOnlineHook`` (the token chain in the connector database)."""
    from ml_connector.exact.hook import ExactOnlineHook
    from ml_connector.flows.runtime import http_policy
    from ml_connector.store.db import get_engine

    return exact_supplier_lookup(
        ExactOnlineHook(cfg.exact.conn_id, cfg.name, engine=get_engine(), policy=http_policy())
    )


def _escape(text: str) -> str:
    import html

    return html.escape(text)


def _equal(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode(), b.encode())


def _tenant(name: str | None) -> tuple[Any, str]:
    """``(TenantConfig, "")`` or ``(None, problem)``; no name: the only tenant."""
    from ml_connector.config import load_tenants
    from ml_connector.errors import ConfigError

    try:
        tenants = load_tenants()
    except ConfigError as exc:
        return None, "the tenant file has problems: " + "; ".join(exc.problems)
    if not name:
        if len(tenants) == 1:
            return next(iter(tenants.values())), ""
        return None, f"choose a tenant: {', '.join(sorted(tenants))}"
    if name not in tenants:
        return None, f"no tenant {name!r} in the tenant file (known: {', '.join(sorted(tenants))})"
    return tenants[name], ""


def _check_code(cfg: Any, kind: str, source_value: str, target_value: str, fb: Feedback) -> tuple[str, str] | None:
    """Validate one code map row with the mappings module's rules (plus: a business unit routes to a division of
    this tenant, as ``mlc mappings set code`` checks)."""
    from ml_connector.mappings.codes import KINDS, normalize_source, validate_target

    if kind not in KINDS:
        fb.add("code", "kind", f"{kind!r} is not one of {', '.join(KINDS)}: choose one from the list")
        return None
    source = target = None
    if not source_value.strip():
        fb.add("code", "source_value", "empty: give the JAGGAER value to map")
    else:
        try:
            source = normalize_source(kind, source_value)
        except ValueError as exc:
            fb.add("code", "source_value", str(exc))
    try:
        target = validate_target(kind, target_value)
    except ValueError as exc:
        fb.add("code", "target_value", f"{exc}: give the Exact {_TARGET_HINTS[kind]}")
    if target is not None and kind == "business_unit" and int(target) not in cfg.exact.divisions:
        fb.add("code", "target_value", f"division {target} is not one of this tenant's divisions {cfg.exact.divisions}")
        target = None
    if source is None or target is None:
        return None
    return source, target


def _code_target(session: Any, model: Any, tenant: str, kind: str, source: str) -> str | None:
    """The target of the stored code map row (``None``: no row)."""
    from sqlalchemy import select

    row = session.scalar(select(model).where(model.tenant == tenant, model.kind == kind, model.source_value == source))
    return row.target_value if row is not None else None


def _vendor_row(session: Any, model: Any, tenant: str, item: dict[str, Any]) -> Any:
    """The link ``set_link`` would change (same look-up: by JAGGAER id, else by supplier number)."""
    from sqlalchemy import select

    query = select(model).where(model.tenant == tenant, model.division == item["division"])
    if item.get("jaggaer_id"):
        return session.scalar(query.where(model.jaggaer_supplier_id == item["jaggaer_id"]))
    return session.scalar(
        query.where(model.jaggaer_supplier_id.is_(None), model.jaggaer_supplier_number == item["jaggaer_number"])
    )


def _vendor_summary(row: Any) -> str:
    from ml_connector.mappings.csvio import vendor_label

    label = vendor_label(
        {
            "division": row.division,
            "jaggaer_id": row.jaggaer_supplier_id,
            "jaggaer_number": row.jaggaer_supplier_number,
            "exact_code": row.exact_code,
            "exact_account_id": row.exact_account_id,
        }
    )
    return label + ("" if row.active else " (inactive)")


def _audit(
    session: Any,
    actor: Actor,
    *,
    tenant: str,
    action: str,
    outcome: str,
    message: str,
    url: str,
    division: int | None = None,
    source_id: str | None = None,
    source_ref: str | None = None,
    target_id: str | None = None,
    target_ref: str | None = None,
) -> None:
    """One append-only audit row in the caller's transaction: who, what, never a sensitive value."""
    from ml_connector.store.models import AuditLog

    session.add(
        AuditLog(
            tenant=tenant,
            flow=AUDIT_FLOW,
            action=action,
            division=division,
            source_id=(source_id or None) and source_id[:64],
            source_ref=(source_ref or None) and source_ref[:128],
            target_id=(target_id or None) and target_id[:64],
            target_ref=(target_ref or None) and target_ref[:128],
            method="POST",
            url=url,
            outcome=outcome,
            message=f"by {actor.who()} on the mappings page: {message}",
            attempt=1,
        )
    )


def _unknown_tenant(request: Request, actor: Actor, tenant: str | None, problem: str) -> Response:
    """The page, 404, when a request names no known tenant."""
    return _render(request, actor, tenant, status_code=404, feedback=Feedback("Unknown tenant.", [problem]))


def _done(request: Request, tenant: str, message: str) -> Response:
    """Post/redirect/get: back to the page, with a signed confirmation."""
    query = urlencode({"tenant": tenant, "msg": message, "sig": sign_message(message)})
    return RedirectResponse(f"{_base(request)}?{query}", status_code=303)


def _base(request: Request) -> str:
    return request.url_for("mappings_page").path


def _render(
    request: Request,
    actor: Actor,
    tenant: str | None,
    *,
    status_code: int = 200,
    flash: str | None = None,
    feedback: Feedback | None = None,
    prefill: _Prefill | None = None,
) -> Response:
    from ml_connector.config import load_tenants
    from ml_connector.errors import ConfigError
    from ml_connector.web.mappings_html import render

    nonce, new_nonce = csrf_nonce(request)
    feedback = feedback or Feedback()
    context: dict[str, Any] = {
        "actor": actor,
        "edit_roles": EDIT_ROLES_TEXT,
        "base": _base(request),
        "csrf_token": csrf_token(actor, nonce) if actor.can_edit else "",
        "flash": flash,
        "errors": feedback.errors,
        "error_title": feedback.title,
        "field_errors": feedback.fields,
    }
    try:
        context["tenants"] = sorted(load_tenants())
    except ConfigError as exc:
        context["errors"] = list(exc.problems)
        context["error_title"] = "The tenant file has problems."
        status_code = 500
    else:
        cfg, problem = _tenant(tenant)
        if cfg is None:
            if problem not in context["errors"]:
                context["errors"] = [*context["errors"], problem]
            context["error_title"] = context["error_title"] or ("Unknown tenant." if tenant else "Choose a tenant.")
            if status_code == 200 and tenant:
                status_code = 404
        else:
            context.update(_tenant_context(cfg, feedback, prefill or _Prefill()))
    response = HTMLResponse(render(context), status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    if new_nonce and actor.can_edit:
        set_csrf_cookie(response, request, nonce)
    return response


def _tenant_context(cfg: Any, feedback: Feedback, prefill: _Prefill) -> dict[str, Any]:
    from sqlalchemy import select

    from ml_connector.mappings.codes import DEFAULT_SOURCES, KINDS, CodeRules, normalize_source, tenant_defaults
    from ml_connector.store.db import get_engine, session_scope
    from ml_connector.store.models import CodeMap, LedgerEntry, VendorMap
    from ml_connector.web.mappings_html import mask

    tenant = cfg.name
    vf: dict[str, Any] = {k: "" for k in VENDOR_FIELDS} | {"active": True}
    cf: dict[str, Any] = {"kind": "", "source_value": "", "target_value": "", "note": ""}
    with session_scope(get_engine()) as s:
        vendors = []
        for v in s.scalars(
            select(VendorMap).where(VendorMap.tenant == tenant).order_by(VendorMap.division, VendorMap.id)
        ):
            vendors.append(
                {
                    "id": v.id,
                    "division": v.division,
                    "jaggaer_id": v.jaggaer_supplier_id,
                    "jaggaer_number": v.jaggaer_supplier_number,
                    "key": v.jaggaer_supplier_id or v.jaggaer_supplier_number,
                    "exact_code": v.exact_code,
                    "exact_account_id": v.exact_account_id,
                    "name": v.name,
                    "vat": mask(v.vat_number),
                    "coc": mask(v.coc_number),
                    "email": mask(v.email),
                    "source": v.source,
                    "active": v.active,
                }
            )
            if prefill.edit_vendor == v.id:
                vf = {
                    "division": v.division,
                    "jaggaer_supplier_id": v.jaggaer_supplier_id or "",
                    "jaggaer_supplier_number": v.jaggaer_supplier_number or "",
                    "exact_code": v.exact_code or "",
                    "exact_account_id": v.exact_account_id or "",
                    "name": v.name or "",
                    "active": v.active,
                }
        overrides = list(s.scalars(select(CodeMap).where(CodeMap.tenant == tenant)))
        rules = CodeRules.load(s, cfg)
        waiting_rows = list(
            s.scalars(
                select(LedgerEntry)
                .where(LedgerEntry.tenant == tenant, LedgerEntry.state.in_(("held", "quarantined")))
                .order_by(LedgerEntry.flow, LedgerEntry.id)
            )
        )
        for c in overrides:
            if prefill.edit_code == c.id:
                cf = {
                    "kind": c.kind,
                    "source_value": c.source_value,
                    "target_value": c.target_value,
                    "note": c.note or "",
                }
    if prefill.new_code in KINDS:
        cf = {**cf, "kind": prefill.new_code, "source_value": prefill.source or ""}
    if feedback.vendor_form is not None:
        vf = {**vf, **feedback.vendor_form}
    if feedback.code_form is not None:
        cf = {**cf, **feedback.code_form}

    defaults = tenant_defaults(cfg)
    codes = []
    for kind in KINDS:
        by_source = {c.source_value: c for c in overrides if c.kind == kind}
        keys = sorted(set(defaults[kind]) | set(by_source), key=str.casefold)
        rows = []
        for key in keys:
            o = by_source.get(key)
            try:
                applies = rules.resolve(kind, normalize_source(kind, key))
            except ValueError:
                applies = None
            rows.append(
                {
                    "id": o.id if o is not None else None,
                    "source": key,
                    "file": defaults[kind].get(key),
                    "override": o.target_value if o is not None else None,
                    "note": o.note if o is not None else None,
                    "applies": applies,
                }
            )
        codes.append({"kind": kind, "setting": DEFAULT_SOURCES[kind], "rows": rows})

    waiting, other = [], 0
    for e in waiting_rows:
        fixes = _fixes(e.reason or "", tenant)
        if not fixes:
            other += 1
            continue
        if len(waiting) < MAX_WAITING:
            waiting.append(
                {
                    "flow": e.flow,
                    "source_id": e.source_id,
                    "ref": e.source_ref or e.source_id,
                    "division": e.division,
                    "state": e.state,
                    "reason": e.reason,
                    "fixes": fixes,
                }
            )
    by_flow: dict[str, list[str]] = {}
    for w in waiting:
        by_flow.setdefault(w["flow"], []).append(w["source_id"])
    return {
        "tenant": tenant,
        "display_name": cfg.display_name,
        "vendors": vendors,
        "codes": codes,
        "waiting": waiting,
        "waiting_by_flow": by_flow,
        "other_waiting": other,
        "vf": vf,
        "cf": cf,
        "divisions": list(cfg.exact.divisions),
        "kinds": list(KINDS),
        "match_keys": list(cfg.vendor_match.keys),
        "unmatched_policy": cfg.invoice_poll.unmatched_vendor,
    }


def _fixes(reason: str, tenant: str) -> list[dict[str, Any]]:
    """The mappings a held/quarantine reason asks for (the ``mlc mappings set ...`` commands it names)."""
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, ...]] = set()
    names = {m.group("id"): m.group("name") for m in _VENDOR_LABEL.finditer(reason)}
    for m in _SET_VENDOR.finditer(reason):
        if m.group("tenant") != tenant:
            continue
        key = ("vendor", m.group("division"), m.group("jid"))
        if key not in seen:
            seen.add(key)
            out.append(
                {
                    "type": "vendor",
                    "division": m.group("division"),
                    "jaggaer_id": m.group("jid"),
                    "name": names.get(m.group("jid"), ""),
                }
            )
    for m in _SET_CODE.finditer(reason):
        if m.group("tenant") != tenant:
            continue
        source = (m.group("source") or "").strip("'")
        key = ("code", m.group("kind"), source)
        if key not in seen and m.group("kind") in _TARGET_HINTS:
            seen.add(key)
            out.append(
                {"type": "code", "kind": m.group("kind"), "source": source, "hint": _TARGET_HINTS[m.group("kind")]}
            )
    return out
