"""J1P REST: the Keycloak token endpoint, invoices (``ji``) and company profiles (``ja``)."""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from sandbox.jaggaer.model import Invoice, Supplier, Tenant, parse_ts
from sandbox.jaggaer.render import invoice_detail, invoice_header
from sandbox.jaggaer.state import REALM_PATH, JaggaerSandbox

INVOICES_PATH = "/j1p/api/public/ji/v1/invoices"
COMPANY_PROFILES_PATH = "/j1p/api/public/ja/v1/companyprofiles"

# Query parameter names of the ``params`` filter style [guess]: from inclusive, to exclusive.
PARAM_FROM = "lastUpdateFrom"
PARAM_TO = "lastUpdateTo"

WARNINGS_MESSAGE = "Request processed with warnings"


class FilterError(ValueError):
    pass


# ---------------------------------------------------------------------------------------------------------------
# FIQL

# The value is everything after the operator, spaces included: JAGGAER compares what it is sent (``extCode==1001``
# does not find ``"  1001"`` and vice versa). Setting ``trim_values`` strips it (lenient).
_CLAUSE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(==|!=|=ge=|=gt=|=le=|=lt=)(.*)$", re.DOTALL)


@dataclass(frozen=True)
class Field:
    kind: str  # ts | int | str
    get: Callable[[Any], Any]


def _ts_value(raw: str) -> datetime:
    # An unencoded '+' of an offset arrives as a space.
    fixed = re.sub(r" (\d\d:?\d\d)$", r"+\1", raw)
    try:
        return parse_ts(fixed)
    except ValueError as exc:
        raise FilterError(f"Invalid date value '{raw}' (expected ISO-8601, e.g. 2026-11-22T00:00:00.000Z)") from exc


def _coerce(field: Field, name: str, raw: str) -> Any:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        raw = raw[1:-1]
    if field.kind == "ts":
        return _ts_value(raw)
    if field.kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise FilterError(f"Invalid numeric value '{raw}' for {name}") from None
    return raw


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "=ge=": lambda a, b: a >= b,
    "=gt=": lambda a, b: a > b,
    "=le=": lambda a, b: a <= b,
    "=lt=": lambda a, b: a < b,
}


def compile_fiql(flt: str, fields: dict[str, Field], trim: bool = False) -> list[Callable[[Any], bool]]:
    """``a=ge=x;b==y`` (``;`` = AND) → predicates. OR (``,``) is not supported by this sandbox. String values are
    compared exactly as sent unless ``trim``."""
    preds: list[Callable[[Any], bool]] = []
    for clause in flt.split(";"):
        if not clause.strip():
            continue
        m = _CLAUSE.match(clause)
        if m is None:
            raise FilterError(f"Invalid filter expression '{clause}'")
        name, op, raw = m.groups()
        if trim or field_kind(fields, name) != "str":
            raw = raw.strip()
        field = fields.get(name)
        if field is None:
            raise FilterError(f"Unsupported filter field '{name}' (supported: {', '.join(sorted(fields))})")
        if field.kind == "str" and op not in {"==", "!="}:
            raise FilterError(f"Operator {op} is not supported for {name}")
        if "," in raw and field.kind != "str":
            raise FilterError("OR (',') in filters is not supported")
        value = _coerce(field, name, raw)
        fn = _OPS[op]
        getter = field.get
        if trim and field.kind == "str":
            value = value.strip()
            getter = _stripped(field.get)

        def pred(obj: Any, getter: Callable[[Any], Any] = getter, fn: Callable = fn, value: Any = value) -> bool:
            got = getter(obj)
            return got is not None and fn(got, value)

        preds.append(pred)
    return preds


def _stripped(get: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def stripped(obj: Any) -> Any:
        v = get(obj)
        return v.strip() if isinstance(v, str) else v

    return stripped


def field_kind(fields: dict[str, Field], name: str) -> str | None:
    f = fields.get(name)
    return f.kind if f is not None else None


def _midnight(d: Any) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


INVOICE_FIELDS: dict[str, Field] = {
    "lastUpdate": Field("ts", lambda i: i.last_update),
    "invoiceDate": Field("ts", lambda i: _midnight(i.invoice_date)),
    "invoiceId": Field("int", lambda i: i.invoice_id),
    "invoiceNumber": Field("str", lambda i: i.invoice_number),
    "supplierInvoiceNumber": Field("str", lambda i: i.supplier_invoice_number),
    "workflowStatus": Field("str", lambda i: i.workflow_status),
    "paymentStatus": Field("str", lambda i: i.payment_status),
    "businessUnit": Field("str", lambda i: i.business_unit),
    "invoiceType": Field("str", lambda i: i.invoice_type),
    "supplierNumber": Field("str", lambda i: i.supplier.supplier_number),
}

COMPANY_FIELDS: dict[str, Field] = {
    "extCode": Field("str", lambda s: s.supplier_number),
    "fiscalCode": Field("str", lambda s: s.tax_id),
    "euVat": Field("str", lambda s: s.vat_number),
    "bravoId": Field("str", lambda s: str(s.id)),
    "companyName": Field("str", lambda s: s.name),
}


# ---------------------------------------------------------------------------------------------------------------
# routes


def _form(raw: bytes) -> dict[str, str]:
    parsed = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[-1] for k, v in parsed.items()}


def _keycloak_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def _start(sandbox: JaggaerSandbox, raw: str | None) -> int | JSONResponse:
    if raw is None or raw == "":
        return 1
    try:
        start = int(raw)
    except ValueError:
        return sandbox.app_error(f"Invalid value '{raw}' for parameter start (1-based record number)")
    if start < 1:
        return sandbox.app_error(f"Invalid value '{raw}' for parameter start (1-based record number)")
    return start


def _envelope(sandbox: JaggaerSandbox, total: int, returned: int, start: int) -> dict[str, Any]:
    warn = sandbox.settings.success_return_code == 1
    return {
        "returnCode": sandbox.rc(1 if warn else 0),
        "returnMessage": WARNINGS_MESSAGE if warn else "",
        "totRecords": total,
        "returnedRecords": returned,
        "startAt": start,
    }


def make_j1p_router(sandbox: JaggaerSandbox) -> APIRouter:
    router = APIRouter(tags=["j1p"])

    # -- OAuth ---------------------------------------------------------------------------------------------
    @router.post(REALM_PATH)
    async def token(request: Request) -> JSONResponse:
        form = _form(await request.body())
        client_id = form.get("client_id")
        client_secret = form.get("client_secret")
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(auth[6:].strip()).decode()
                basic_id, _, basic_secret = decoded.partition(":")
                client_id, client_secret = unquote(basic_id), unquote(basic_secret)
            except (ValueError, UnicodeDecodeError):
                return _keycloak_error(401, "invalid_client", "Invalid client or Invalid client credentials")
        grant = form.get("grant_type")
        if not grant:
            return _keycloak_error(400, "invalid_request", "Missing form parameter: grant_type")
        if grant != "client_credentials":
            return _keycloak_error(400, "unsupported_grant_type", "Unsupported grant_type")
        with sandbox.lock:
            tenant = sandbox.tenant_by_client(client_id) if client_id else None
        if tenant is None or not secrets.compare_digest(tenant.client_secret, client_secret or ""):
            return _keycloak_error(401, "invalid_client", "Invalid client or Invalid client credentials")
        access_token, info = sandbox.issue_token(tenant)
        return JSONResponse(
            {
                "access_token": access_token,
                "expires_in": int(info.expires_at - info.issued_at),
                "refresh_expires_in": sandbox.settings.refresh_expires_in,
                "token_type": "Bearer",
                "not-before-policy": 0,
                "scope": "profile email",
            },
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    def authed(request: Request) -> Tenant:
        tenant = sandbox.tenant_for_token(request.headers.get("authorization"))
        sandbox.check_rate(tenant)
        return tenant

    # -- invoices ------------------------------------------------------------------------------------------
    @router.get(INVOICES_PATH)
    def list_invoices(request: Request) -> JSONResponse:
        tenant = authed(request)
        q = request.query_params
        start = _start(sandbox, q.get("start"))
        if isinstance(start, JSONResponse):
            return start
        settings = sandbox.settings
        try:
            if settings.invoice_filter_style == "fiql":
                for wrong in (PARAM_FROM, PARAM_TO):
                    if wrong in q:
                        raise FilterError(f"Unknown parameter '{wrong}': filter with flt (FIQL)")
                preds = compile_fiql(q.get("flt", ""), INVOICE_FIELDS, settings.trim_values)
            else:
                if "flt" in q:
                    raise FilterError(f"Unknown parameter 'flt': filter with {PARAM_FROM}/{PARAM_TO}")
                preds = []
                if q.get(PARAM_FROM):
                    lo = _ts_value(q[PARAM_FROM])
                    preds.append(lambda i, lo=lo: i.last_update >= lo)
                if q.get(PARAM_TO):
                    hi = _ts_value(q[PARAM_TO])
                    preds.append(lambda i, hi=hi: i.last_update < hi)
        except FilterError as exc:
            return sandbox.app_error(str(exc))
        with sandbox.lock:
            matches: list[Invoice] = [inv for inv in tenant.invoices.values() if all(p(inv) for p in preds)]
            matches.sort(key=lambda inv: inv.invoice_id)
            page = matches[start - 1 : start - 1 + settings.page_size]
            body = _envelope(sandbox, len(matches), len(page), start)
            if page or settings.empty_list_key == "empty":
                body["jiinvoiceList"] = {"jiinvoice": [{"header": invoice_header(inv, settings)} for inv in page]}
        return JSONResponse(body)

    @router.get(INVOICES_PATH + "/{invoice_id}")
    def get_invoice(invoice_id: str, request: Request) -> JSONResponse:
        tenant = authed(request)
        try:
            key = int(invoice_id)
        except ValueError:
            return sandbox.app_error(f"Invalid invoiceId '{invoice_id}'")
        with sandbox.lock:
            inv = tenant.invoices.get(key)
            if inv is None:
                return sandbox.app_error(f"Invoice {invoice_id} not found")
            body = invoice_detail(inv, sandbox.settings)
        if sandbox.settings.success_return_code == 1:
            body = {"returnCode": sandbox.rc(1), "returnMessage": WARNINGS_MESSAGE, **body}
        return JSONResponse(body)

    # -- company profiles ----------------------------------------------------------------------------------
    @router.get(COMPANY_PROFILES_PATH)
    def company_profiles(request: Request) -> JSONResponse:
        tenant = authed(request)
        q = request.query_params
        start = _start(sandbox, q.get("start"))
        if isinstance(start, JSONResponse):
            return start
        try:
            preds = compile_fiql(q.get("flt", ""), COMPANY_FIELDS, sandbox.settings.trim_values)
        except FilterError as exc:
            return sandbox.app_error(str(exc))
        with sandbox.lock:
            found: list[Supplier] = [s for s in tenant.suppliers.values() if all(p(s) for p in preds)]
            found.sort(key=lambda s: s.id)
            page = found[start - 1 : start - 1 + sandbox.settings.page_size]
            body = _envelope(sandbox, len(found), len(page), start)
            body["returnCompanyData"] = [s.company_info() for s in page]
        return JSONResponse(body)

    return router
