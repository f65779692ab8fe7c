"""The JAGGAER sandbox's answers to injected faults and rate limits: a 429 in the caller's format (XML on the import
paths, Keycloak-style JSON elsewhere) and the ``malformed_xml`` transform."""

from __future__ import annotations

from datetime import datetime

from fastapi.responses import JSONResponse
from starlette.responses import Response

from sandbox.common.faults import FaultRule
from sandbox.jaggaer.state import XML_PREFIX, JaggaerSandbox
from sandbox.jaggaer.supplier_import import supplier_response
from sandbox.jaggaer.xml_import import corrupt_xml, malformed_xml_body, po_response


def too_many_requests(path: str, now: datetime, headers: dict[str, str]) -> Response:
    if path.startswith(XML_PREFIX):
        if "TSMSupplierXMLImport" in path:
            body = supplier_response(429, now)
        else:
            body = po_response(429, now, errors=["Rate limit exceeded"])
        return Response(body, status_code=429, media_type="application/xml", headers=headers)
    return JSONResponse(
        {"error": "too_many_requests", "error_description": "Rate limit exceeded"}, status_code=429, headers=headers
    )


def rate_limit_response(sandbox: JaggaerSandbox, rule: FaultRule, method: str, path: str) -> Response:
    """Fault hook ``rate_limit``: a 429 with the sandbox's ``Retry-After`` and the rule's headers."""
    headers = {**sandbox.retry_after_headers(), **rule.headers}
    return too_many_requests(path, sandbox.clock.now(), headers)


def malformed_xml_response(
    rule: FaultRule, method: str, path: str, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> Response:
    """Fault transform: the request has run (committed); its answer goes out with an unescaped ``&``.

    On the XML import paths it is the real response (real status, the ``&`` inside ``StatusText``), so a
    tolerant parser reads the true outcome; elsewhere (e.g. the invoice list) an exported-invoice fragment with
    ``Smith & Sons Ltd``, HTTP 200."""
    if path.startswith(XML_PREFIX):
        kind = "supplier" if "TSMSupplierXMLImport" in path else "po"
        kept = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers if k.lower() != b"content-length"}
        kept.setdefault("content-type", "application/xml")
        return Response(corrupt_xml(body, kind), status_code=status, headers={**kept, **rule.headers})
    return Response(
        malformed_xml_body("invoice"), status_code=200, media_type="application/xml", headers=dict(rule.headers)
    )
