"""eProcurement XML routes: ``POST /apps/Router/POXMLImport`` and ``POST /apps/Router/TSMSupplierXMLImport``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from sandbox.jaggaer.app import JaggaerSandbox, RateLimited, too_many_requests
from sandbox.jaggaer.xml_import import (
    XmlReject,
    authenticate,
    import_po,
    parse,
    po_response,
    supplier_response,
    sync_suppliers,
    text,
)

PO_IMPORT_PATH = "/apps/Router/POXMLImport"
SUPPLIER_IMPORT_PATH = "/apps/Router/TSMSupplierXMLImport"
XML = "application/xml"


def make_eproc_router(sandbox: JaggaerSandbox) -> APIRouter:
    router = APIRouter(tags=["eprocurement-xml"])

    @router.post(PO_IMPORT_PATH)
    async def po_import(request: Request) -> Response:
        raw = await request.body()
        now = sandbox.clock.now()
        related = None
        try:
            root = parse(raw)
            related = text(root, "Header/MessageId")
            if root.tag != "PurchaseOrderMessage":
                raise XmlReject(400, [f"Unexpected root element <{root.tag}>: expected <PurchaseOrderMessage>"])
            with sandbox.lock:
                tenant = authenticate(root, sandbox)
                try:
                    sandbox.check_rate(tenant)
                except RateLimited:
                    return too_many_requests(request.url.path, now, sandbox.retry_after_headers())
                body = import_po(sandbox, tenant, root, raw, now)
            return Response(body, status_code=200, media_type=XML)
        except XmlReject as rej:
            body = po_response(rej.status, now, errors=rej.errors, line_errors=rej.line_errors, related=related)
            return Response(body, status_code=rej.status, media_type=XML)

    @router.post(SUPPLIER_IMPORT_PATH)
    async def supplier_import(request: Request) -> Response:
        raw = await request.body()
        now = sandbox.clock.now()
        related = None
        try:
            root = parse(raw)
            related = text(root, "Header/MessageId")
            if root.tag != "SupplierSyncMessage":
                raise XmlReject(400, [f"Unexpected root element <{root.tag}>: expected <SupplierSyncMessage>"])
            with sandbox.lock:
                tenant = authenticate(root, sandbox)
                try:
                    sandbox.check_rate(tenant)
                except RateLimited:
                    return too_many_requests(request.url.path, now, sandbox.retry_after_headers())
                status, body = sync_suppliers(sandbox, tenant, root, now)
            return Response(body, status_code=status, media_type=XML)
        except XmlReject as rej:
            body = supplier_response(rej.status, now, errors=rej.errors, related=related)
            return Response(body, status_code=rej.status, media_type=XML)

    return router
