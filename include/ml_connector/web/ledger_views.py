"""The ledger console of the Airflow UI plugin.

Routes (relative to the plugin's mount point ``/ml-connector``):

``GET  /ui/ledger?tenant=T&flow=&division=&state=&date_from=&date_to=&q=&page=&size=``
                                     Records: both flows, filtered and paged on the server; ``q`` takes a JAGGAER
                                     invoice number or id, an Exact order number, a PONumber or an Exact entry number
``GET  /ui/ledger/find?tenant=T&q=`` one match: straight to its record page; else the records page for ``q``
``GET  /ui/ledger/record/{id}``      Record: the ledger row, its whole audit history (with the Airflow task try that
                                     wrote each row and a link to that try's log) and the actions that apply
``GET  /ui/ledger/attention``        Needs a person: held, quarantined, failed records grouped by cause, with the fix
``GET  /ui/ledger/audit``            Audit export form; ``GET /ui/ledger/audit.csv?date_from=&date_to=`` the CSV
``POST /ui/ledger/requeue``          requeue (``flow``, ``source_id``…); the next run takes them
``POST /ui/ledger/resolve``          mark resolved by hand (``entry_id``, ``note``), audited with the note

Same rules as the mappings page (``ml_connector.web.access``): GETs need a user who may see the Airflow UI; POSTs
need the permission to edit connections (op/admin) and the signed CSRF token. Queries live in
``ml_connector.console.queries``.
"""

from __future__ import annotations

import hmac
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from ml_connector.web.access import (
    EDIT_ROLES_TEXT,
    Actor,
    build_guards,
    csrf_nonce,
    csrf_token,
    editor_with_csrf,
    set_csrf_cookie,
    sign_message,
)


def _session_dependency() -> Any:
    """Airflow's own API session dependency (for the task-try lookup); a no-op where Airflow's API is absent."""
    try:
        from airflow.api_fastapi.common.db.common import _get_session

        return _get_session
    except Exception:  # pragma: no cover - only outside an Airflow install

        def none() -> None:
            return None

        return none


def install(app: FastAPI, guards: dict[str, Any] | None = None) -> None:
    guards = guards or getattr(app.state, "mapping_guards", None) or build_guards()
    viewer, editor = guards["viewer"], editor_with_csrf(guards)
    airflow_session = guards.get("airflow_session") or _session_dependency()

    @app.get("/ui/ledger", name="ledger_page")
    def records_page(
        request: Request,
        actor: Actor = Depends(viewer),
        tenant: str | None = None,
        flow: str | None = None,
        division: str | None = None,
        state: str | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
        q: str | None = None,
        page: int = 1,
        size: int = 50,
        msg: str | None = None,
        sig: str | None = None,
    ) -> Response:
        from ml_connector.console import queries

        ctx, cfg = _context(request, actor, tenant, "records", "Ledger records", msg, sig)
        if cfg is None:
            return _render("records.html", ctx, request, actor, 404)
        errors: list[str] = []
        f = queries.RecordFilter(
            tenant=cfg.name,
            flow=flow if flow in queries.FLOWS else None,
            division=_int(division, "division", errors),
            states=(state,) if state in queries.STATES else (),
            date_from=_date(date_from, "from", errors),
            date_to=_date(date_to, "to", errors),
            q=(q or "").strip() or None,
        )
        engine = _engine()
        result = queries.records(engine, f, page=page, size=size)

        def page_url(n: int) -> str:
            params = {k: v for k, v in request.query_params.items() if k not in ("page", "msg", "sig")}
            return f"{request.url.path}?{urlencode({**params, 'page': n})}"

        ctx.update(
            f=f,
            result=result,
            flows=queries.FLOWS,
            states=queries.STATES,
            sizes=queries.PAGE_SIZES,
            divisions=sorted(set(queries.divisions(engine, cfg.name)) | set(cfg.exact.divisions)),
            page_url=page_url,
            errors=ctx["errors"] + errors,
        )
        return _render("records.html", ctx, request, actor)

    @app.get("/ui/ledger/find", name="ledger_find")
    def find(request: Request, actor: Actor = Depends(viewer), tenant: str | None = None, q: str = "") -> Response:
        from ml_connector.console import queries

        cfg, _problem = _tenant(tenant)
        base = _base(request)
        if cfg is not None and q.strip():
            found = queries.find(_engine(), cfg.name, None, q)
            if len(found) == 1:
                return RedirectResponse(f"{base}/record/{found[0].id}?{urlencode({'tenant': cfg.name})}", 303)
        return RedirectResponse(f"{base}?{urlencode({'tenant': tenant or '', 'q': q})}", 303)

    @app.get("/ui/ledger/record/{entry_id}", name="ledger_record")
    def record_page(
        request: Request,
        entry_id: int,
        actor: Actor = Depends(viewer),
        session: Any = Depends(airflow_session),
        tenant: str | None = None,
        msg: str | None = None,
        sig: str | None = None,
    ) -> Response:
        from ml_connector.console import queries, task_tries
        from ml_connector.web.mappings_views import _fixes

        engine = _engine()
        entry = queries.get(engine, entry_id)
        ctx, cfg = _context(request, actor, entry.tenant if entry else tenant, "record", "Ledger record", msg, sig)
        if entry is None or cfg is None:
            ctx["errors"] = [*ctx["errors"], f"no ledger record {entry_id}"]
            return _render("base.html", ctx, request, actor, 404)
        rows = queries.history(engine, entry)
        dag_id = task_tries.dag_id_of(entry.flow, entry.tenant)
        ctx.update(
            title=f"{entry.flow} record {entry.source_ref or entry.source_id}",
            r=entry,
            rows=rows,
            tries=task_tries.tries_for(session, dag_id, rows),
            run_url=lambda run_id: task_tries.run_url(dag_id, run_id),
            fixes=_fixes(entry.reason or "", entry.tenant) if entry.state in queries.ATTENTION_STATES else [],
            back=f"{request.url.path}?{urlencode({'tenant': entry.tenant})}",
        )
        return _render("record.html", ctx, request, actor)

    @app.get("/ui/ledger/attention", name="ledger_attention")
    def attention_page(
        request: Request,
        actor: Actor = Depends(viewer),
        tenant: str | None = None,
        flow: str | None = None,
        msg: str | None = None,
        sig: str | None = None,
    ) -> Response:
        from ml_connector.console import queries
        from ml_connector.web.mappings_views import _fixes

        ctx, cfg = _context(request, actor, tenant, "attention", "Needs a person", msg, sig)
        if cfg is None:
            return _render("attention.html", {**ctx, "groups": []}, request, actor, 404)
        groups = queries.needs_a_person(_engine(), cfg.name, flow if flow in queries.FLOWS else None)
        ctx.update(
            groups=groups,
            fixes_of=lambda r: _fixes(r.reason or "", cfg.name),
            back=f"{request.url.path}?{urlencode({'tenant': cfg.name})}",
        )
        return _render("attention.html", ctx, request, actor)

    @app.get("/ui/ledger/audit", name="ledger_audit")
    def audit_page(request: Request, actor: Actor = Depends(viewer), tenant: str | None = None) -> Response:
        ctx, cfg = _context(request, actor, tenant, "audit", "Audit export", None, None)
        today = datetime.now(UTC).date()
        ctx.update(date_from=(today - timedelta(days=30)).isoformat(), date_to=today.isoformat())
        return _render("audit.html", ctx, request, actor, 200 if cfg else 404)

    @app.get("/ui/ledger/audit.csv", name="ledger_audit_csv")
    def audit_csv(
        request: Request,
        actor: Actor = Depends(viewer),
        tenant: str | None = None,
        date_from: str = "",
        date_to: str = "",
    ) -> Response:
        from ml_connector.console import queries
        from ml_connector.csvsafe import csv_lines

        cfg, problem = _tenant(tenant)
        errors: list[str] = []
        start, end = _date(date_from, "from", errors), _date(date_to, "to", errors)
        detail = ""
        if cfg is None:
            detail = problem
        elif errors:
            detail = "; ".join(errors)
        elif start is None or end is None:
            detail = "give both dates of the period (YYYY-MM-DD)"
        elif start > end:
            detail = f"the period starts ({start}) after it ends ({end})"
        if detail or cfg is None or start is None or end is None:
            return Response(f"Cannot export the audit trail: {detail}\n", 400, media_type="text/plain")
        lines = csv_lines(queries.AUDIT_COLUMNS, queries.audit_rows(_engine(), cfg.name, start, end))
        name = f"mlc-audit-{cfg.name}-{start.isoformat()}-{end.isoformat()}.csv"
        return StreamingResponse(
            lines,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
        )

    @app.post("/ui/ledger/requeue", name="ledger_requeue")
    def requeue(
        request: Request,
        actor: Actor = Depends(editor),
        tenant: str = Form(""),
        flow: str = Form(""),
        source_id: list[str] | None = Form(None),
        back: str = Form(""),
    ) -> Response:
        from ml_connector.console import queries

        cfg, problem = _tenant(tenant)
        ids = [i.strip() for i in source_id or [] if i.strip()]
        if cfg is None or flow not in queries.FLOWS or not ids:
            why = problem or ("no record chosen" if not ids else f"unknown flow {flow!r}")
            return _back(request, back, tenant, f"Nothing was requeued: {why}.")
        count = queries.requeue(_engine(), cfg.name, flow, ids, who=f"{actor.who()} in the ledger console")
        if not count:
            text = f"Nothing was requeued: {', '.join(ids[:5])} is no longer held, quarantined, failed or skipped."
        else:
            text = f"Requeued {count} {flow} record(s) ({', '.join(ids[:5])}): the next run sends them."
        return _back(request, back, cfg.name, text)

    @app.post("/ui/ledger/resolve", name="ledger_resolve")
    def resolve(
        request: Request,
        actor: Actor = Depends(editor),
        tenant: str = Form(""),
        entry_id: int = Form(...),
        note: str = Form(""),
        back: str = Form(""),
    ) -> Response:
        from ml_connector.console import queries

        try:
            entry = queries.resolve_by_hand(_engine(), entry_id, note, who=f"{actor.who()} in the ledger console")
        except queries.NotResolvable as exc:
            return _back(request, back, tenant, f"Not resolved: {exc}.")
        return _back(
            request, back, entry.tenant, f"{entry.source_ref or entry.source_id} marked resolved by hand (skipped)."
        )


# ------------------------------------------------------------------------------------------------ helpers
def _engine() -> Any:
    from ml_connector.store.db import get_engine

    return get_engine()


def _tenant(name: str | None) -> tuple[Any, str]:
    from ml_connector.web.mappings_views import _tenant as tenant_of

    return tenant_of(name)


def _base(request: Request) -> str:
    return request.url_for("ledger_page").path


def _int(value: str | None, label: str, errors: list[str]) -> int | None:
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        errors.append(f"{label}: {value!r} is not a number")
        return None


def _date(value: str | None, label: str, errors: list[str]) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors.append(f"date {label}: {value!r} is not a date (YYYY-MM-DD)")
        return None


def _context(
    request: Request, actor: Actor, tenant: str | None, page: str, title: str, msg: str | None, sig: str | None
) -> tuple[dict[str, Any], Any]:
    from ml_connector.config import load_tenants
    from ml_connector.console import queries
    from ml_connector.errors import ConfigError

    cfg, problem = _tenant(tenant)
    try:
        tenants = sorted(load_tenants())
    except ConfigError:
        tenants = []
    flash = msg if msg and sig and hmac.compare_digest(sig.encode(), sign_message(msg).encode()) else None
    ctx: dict[str, Any] = {
        "title": title,
        "page": page,
        "actor": actor,
        "edit_roles": EDIT_ROLES_TEXT,
        "base": _base(request),
        "mappings": request.url_for("mappings_page").path,
        "tenant": cfg.name if cfg is not None else (tenant or ""),
        "tenants": tenants,
        "flash": flash,
        "errors": [] if cfg is not None else [problem],
        "when": _when,
        "back": f"{request.url.path}?{request.url.query}" if request.url.query else request.url.path,
        "requeue_states": queries.REQUEUE_STATES,
        "resolvable_states": queries.RESOLVABLE_STATES,
        "attention_states": queries.ATTENTION_STATES,
    }
    if cfg is not None:
        ctx["attention_total"] = sum(queries.attention_counts(_engine(), cfg.name).values())
        ctx["budget_lines"] = queries.left_for_tomorrow(_engine(), cfg.name)
    return ctx, cfg


def _when(value: Any, seconds: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    return str(value)


def _render(template: str, ctx: dict[str, Any], request: Request, actor: Actor, status_code: int = 200) -> Response:
    from ml_connector.web.ledger_html import render

    nonce, new_nonce = csrf_nonce(request)
    if actor.can_edit:
        ctx["csrf_token"] = csrf_token(actor, nonce)
    response = HTMLResponse(render(template, ctx), status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    if new_nonce and actor.can_edit:
        set_csrf_cookie(response, request, nonce)
    return response


def _back(request: Request, back: str, tenant: str | None, message: str) -> Response:
    """Post/redirect/get to the console page the form came from (only a page of this app), with a signed message."""
    base = _base(request)
    safe = back.startswith(base) and "//" not in back and "\\" not in back
    target = back if safe else f"{base}?tenant={tenant or ''}"
    path, _, query = target.partition("?")
    params = [(k, v) for k, v in _parse(query) if k not in ("msg", "sig")]
    params += [("msg", message), ("sig", sign_message(message))]
    return RedirectResponse(f"{path}?{urlencode(params)}", status_code=303)


def _parse(query: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(query, keep_blank_values=True)
