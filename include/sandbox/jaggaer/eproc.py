"""eProcurement XML routes: ``POST /apps/Router/POXMLImport`` and ``POST /apps/Router/TSMSupplierXMLImport``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import APIRouter, Request
from lxml import etree
from starlette.responses import Response

from sandbox.jaggaer.fault_responses import too_many_requests
from sandbox.jaggaer.model import Tenant
from sandbox.jaggaer.state import JaggaerSandbox, RateLimited
from sandbox.jaggaer.supplier_import import supplier_response, sync_suppliers
from sandbox.jaggaer.xml_import import (
    XmlReject,
    authenticate,
    import_po,
    parse,
    po_response,
    text,
)

PO_IMPORT_PATH = "/apps/Router/POXMLImport"
SUPPLIER_IMPORT_PATH = "/apps/Router/TSMSupplierXMLImport"
XML = "application/xml"


def make_eproc_router(sandbox: JaggaerSandbox) -> APIRouter:
    router = APIRouter(tags=["eprocurement-xml"])

    @router.post(PO_IMPORT_PATH)
    async def po_import(request: Request) -> Response:
        return await _xml_import(
            sandbox,
            request,
            "PurchaseOrderMessage",
            lambda tenant, root, raw, now: (200, import_po(sandbox, tenant, root, raw, now)),
            lambda rej, now, related: po_response(
                rej.status, now, errors=rej.errors, line_errors=rej.line_errors, related=related
            ),
        )

    @router.post(SUPPLIER_IMPORT_PATH)
    async def supplier_import(request: Request) -> Response:
        return await _xml_import(
            sandbox,
            request,
            "SupplierSyncMessage",
            lambda tenant, root, raw, now: sync_suppliers(sandbox, tenant, root, now),
            lambda rej, now, related: supplier_response(rej.status, now, errors=rej.errors, related=related),
        )

    return router


async def _xml_import(
    sandbox: JaggaerSandbox,
    request: Request,
    root_tag: str,
    handle: Callable[[Tenant, etree._Element, bytes, datetime], tuple[int, bytes]],
    rejected: Callable[[XmlReject, datetime, str | None], bytes],
) -> Response:
    """One XML import: parse, check the root element, authenticate and rate-limit the tenant, then
    ``handle(tenant, root, raw, now) -> (status, body)``; a rejection is answered with ``rejected(rej, now, related)``
    (``related``: the request's MessageId, once read)."""
    raw = await request.body()
    now = sandbox.clock.now()
    related = None
    try:
        root = parse(raw)
        related = text(root, "Header/MessageId")
        if root.tag != root_tag:
            raise XmlReject(400, [f"Unexpected root element <{root.tag}>: expected <{root_tag}>"])
        with sandbox.lock:
            tenant = authenticate(root, sandbox)
            try:
                sandbox.check_rate(tenant)
            except RateLimited:
                return too_many_requests(request.url.path, now, sandbox.retry_after_headers())
            status, body = handle(tenant, root, raw, now)
        return Response(body, status_code=status, media_type=XML)
    except XmlReject as rej:
        return Response(rejected(rej, now, related), status_code=rej.status, media_type=XML)
