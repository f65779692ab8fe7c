"""The reconciliation page of the ledger console (``ml_connector.reconcile``).

Routes (relative to the plugin's mount point ``/ml-connector``):

``GET  /ui/reconcile?tenant=T&division=&id=``  the saved reconciliations (newest first) and one of them (``id``, else
                                               the newest shown) with its counts and rows
``GET  /ui/reconcile/{id}.csv`` / ``.xlsx``    one reconciliation as a download (formula cells escaped)
``POST /ui/reconcile/run``                     reconcile a division and period now (``division``, ``date_from``,
                                               ``date_to``): reads JAGGAER and Exact, saves, shows the result

Same rules as the rest of the console (``ml_connector.web.access``): GETs need a user who may see the Airflow UI; the
POST needs the permission to edit connections (op/admin) and the signed CSRF token.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ml_connector.web.access import (
    Actor,
    build_guards,
    csrf_nonce,
    csrf_token,
    editor_with_csrf,
    set_csrf_cookie,
    sign_message,
)

#: The longest period the console reconciles in one go (the Exact reads stay bounded: docs/console.md).
MAX_DAYS = 366


def install(app: FastAPI, guards: dict[str, Any] | None = None) -> None:
    guards = guards or getattr(app.state, "mapping_guards", None) or build_guards()
    viewer, editor = guards["viewer"], editor_with_csrf(guards)

    @app.get("/ui/reconcile", name="reconcile_page")
    def page(
        request: Request,
        actor: Actor = Depends(viewer),
        tenant: str | None = None,
        division: str | None = None,
        id: int | None = None,
        msg: str | None = None,
        sig: str | None = None,
    ) -> Response:
        from ml_connector.reconcile import CATEGORIES
        from ml_connector.reconcile.run import DAILY_DAYS
        from ml_connector.reconcile.store import get, listing
        from ml_connector.web.ledger_views import _context, _engine, _int

        ctx, cfg = _context(request, actor, tenant, "reconcile", "Reconciliation, JAGGAER ⇄ Exact", msg, sig)
        errors: list[str] = []
        div = _int(division, "division", errors)
        today = datetime.now(UTC).date()
        ctx.update(
            rbase=request.url_for("reconcile_page").path,
            categories=CATEGORIES,
            daily_days=DAILY_DAYS,
            division=div,
            divisions=[int(d) for d in cfg.exact.divisions] if cfg is not None else [],
            date_from=(today - timedelta(days=DAILY_DAYS - 1)).isoformat(),
            date_to=today.isoformat(),
            saved=[],
            rec=None,
            errors=ctx["errors"] + errors,
        )
        if cfg is None:
            return _render(ctx, request, actor, 404)
        engine = _engine()
        saved = listing(engine, cfg.name, div)
        rec = get(engine, id) if id is not None else (get(engine, saved[0].id) if saved else None)
        if rec is not None and rec.tenant != cfg.name:
            rec = None
        if id is not None and rec is None:
            ctx["errors"] = [*ctx["errors"], f"no reconciliation {id} of tenant {cfg.name}"]
        ctx.update(saved=saved, rec=rec)
        if rec is not None:
            ctx.update(date_from=rec.date_from, date_to=rec.date_to, division=div or rec.division)
        return _render(ctx, request, actor, 404 if id is not None and rec is None else 200)

    @app.get("/ui/reconcile/{rec_id}.{ext}", name="reconcile_download")
    def download(rec_id: int, ext: str, actor: Actor = Depends(viewer)) -> Response:
        from ml_connector.reconcile import export
        from ml_connector.reconcile.store import get
        from ml_connector.web.ledger_views import _engine

        if ext not in ("csv", "xlsx"):
            return Response(f"Unknown format {ext!r}: download .csv or .xlsx\n", 404, media_type="text/plain")
        rec = get(_engine(), rec_id)
        if rec is None:
            return Response(f"No reconciliation {rec_id}: pick one on the page\n", 404, media_type="text/plain")
        if ext == "csv":
            body, media = export.csv_bytes(rec), "text/csv; charset=utf-8"
        else:
            body, media = export.xlsx_bytes(rec), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        headers = {
            "Content-Disposition": f'attachment; filename="{export.file_name(rec, ext)}"',
            "Cache-Control": "no-store",
        }
        return Response(body, media_type=media, headers=headers)

    @app.post("/ui/reconcile/run", name="reconcile_run")
    def run_now(
        request: Request,
        actor: Actor = Depends(editor),
        tenant: str = Form(""),
        division: str = Form(""),
        date_from: str = Form(""),
        date_to: str = Form(""),
    ) -> Response:
        from ml_connector.web.ledger_views import _engine, _tenant

        cfg, problem = _tenant(tenant)
        if cfg is None:
            return _redirect(request, tenant, None, f"Not reconciled: {problem}.")
        try:
            div = int(division)
            start, end = date.fromisoformat(date_from), date.fromisoformat(date_to)
        except ValueError:
            return _redirect(request, cfg.name, None, "Not reconciled: give a division and both dates (YYYY-MM-DD).")
        if end < start or (end - start).days >= MAX_DAYS:
            text = (
                f"Not reconciled: the period {start} .. {end} must not end before it starts or exceed {MAX_DAYS} days."
            )
            return _redirect(request, cfg.name, None, text)
        try:
            outcome = _reconcile(cfg, div, start, end, _engine(), f"{actor.who()} in the console")
        except Exception as exc:  # every failure is shown to the person who asked, with what to do
            return _redirect(request, cfg.name, None, f"Not reconciled: {_why(exc)}")
        text = f"Reconciled: {outcome.summary()}."
        return _redirect(request, cfg.name, outcome.id, text)


def _reconcile(cfg: Any, division: int, start: date, end: date, engine: Any, who: str) -> Any:
    from ml_connector.flows.runtime import FLOW_INVOICE_POLL, FlowContext
    from ml_connector.reconcile.run import reconcile
    from ml_connector.reconcile.sources import Period

    ctx = FlowContext.for_test(cfg, FLOW_INVOICE_POLL, engine, run_id=f"console {who}")
    return reconcile(
        cfg,
        division,
        Period(start, end),
        engine=engine,
        exact_hook=ctx.exact_hook(),
        jaggaer_hook=ctx.jaggaer_hook(),
        trigger=who,
        alert=False,  # a person is looking at it
    )


def _why(exc: Exception) -> str:
    from ml_connector.errors import ConfigError, TokenChainBroken

    if isinstance(exc, ConfigError):
        return "; ".join(exc.problems)
    if isinstance(exc, TokenChainBroken):
        return f"{exc} — reconnect Exact (status page) and try again"
    return f"{type(exc).__name__}: {exc}"


def _render(ctx: dict[str, Any], request: Request, actor: Actor, status_code: int = 200) -> Response:
    from ml_connector.web.reconcile_html import render

    nonce, new_nonce = csrf_nonce(request)
    if actor.can_edit:
        ctx["csrf_token"] = csrf_token(actor, nonce)
    response = HTMLResponse(render(ctx), status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    if new_nonce and actor.can_edit:
        set_csrf_cookie(response, request, nonce)
    return response


def _redirect(request: Request, tenant: str | None, rec_id: int | None, message: str) -> Response:
    params: list[tuple[str, str]] = [("tenant", tenant or "")]
    if rec_id is not None:
        params.append(("id", str(rec_id)))
    params += [("msg", message), ("sig", sign_message(message))]
    return RedirectResponse(f"{request.url_for('reconcile_page').path}?{urlencode(params)}", status_code=303)
