"""The Exact sandbox's answers in Exact's shapes: OData JSON and XML errors, Atom feeds, HTML pages, and the
request context (:class:`Ctx`) and failure (:class:`HTTPFail`) the REST handlers pass around."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from sandbox.exact.entities import EntitySet
from sandbox.exact.oauth import Chain
from sandbox.exact.odata import ODataError

_SAFE = "$'(),/:*=@"
_ATOM_NS = (
    'xmlns="http://www.w3.org/2005/Atom" xmlns:d="http://schemas.microsoft.com/ado/2007/08/dataservices" '
    'xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"'
)
_KEY_RE = re.compile(r"^\s*guid'([0-9a-fA-F-]{36})'\s*$")


def no_property(name: str, type_name: str, select: list[str] | None = None) -> str:
    """Exact's answer to a query option naming a property the entity does not have."""
    pos = 0
    for item in select or []:
        if item == name or item.endswith("/" + name) or item.startswith(name + "/"):
            break
        pos += len(item) + 1
    return f"No property '{name}' exists in type '{type_name}' at position {pos}."


def error_body(message: str) -> dict[str, Any]:
    return {"error": {"code": "", "message": {"lang": "", "value": message}}}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(error_body(message), status_code=status, headers=headers)


def xml_error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """The error as Exact writes it for a client that did not ask for JSON (OData v2 XML error)."""
    body = (
        '<?xml version="1.0" encoding="utf-8" standalone="yes"?>'
        '<error xmlns="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"><code></code>'
        f'<message xml:lang="en-US">{html.escape(message, quote=False)}</message></error>'
    )
    return Response(body, status_code=status, headers=headers, media_type="application/xml;charset=utf-8")


def wants_json(request: Request) -> bool:
    """Did the client ask for JSON (``Accept: application/json`` or ``$format=json``)? Exact's default is XML."""
    return "application/json" in request.headers.get("accept", "") or request.query_params.get("$format") == "json"


class HTTPFail(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class Ctx:
    base: str
    division: int
    chain: Chain
    query: list[tuple[str, str]]
    json: bool


def query_option(ctx: Ctx, name: str) -> str | None:
    for k, v in ctx.query:
        if k == name:
            return v
    return None


def encode_query(params: Iterable[tuple[str, str]]) -> str:
    return "&".join(f"{k}={quote(v, safe=_SAFE)}" for k, v in params)


def unauthorized() -> Response:
    return Response(
        b"",
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token", error_description="The access token is invalid"'},
    )


def parse_key(text: str) -> str:
    m = _KEY_RE.match(text)
    if m is None:
        raise ODataError(f"Bad key or skiptoken '{text}': expected guid'...'.")
    return m.group(1).lower()


def parse_body(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"null")
    except ValueError as exc:
        raise HTTPFail(400, "Error processing request stream. The request body is not valid JSON.") from exc
    if not isinstance(data, dict):
        raise HTTPFail(400, "Error processing request stream. An object was expected.")
    return data


def html_page(title: str, body: str) -> str:
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:40em;margin:3em auto}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def _atom_entry_xml(r: dict[str, Any], ns: str = "") -> str:
    props = "".join(
        f"<d:{k}>{html.escape(str(v))}</d:{k}>" if v is not None else f'<d:{k} m:null="true"/>'
        for k, v in r.items()
        if not k.startswith("__") and not isinstance(v, dict)
    )
    return (
        f"<entry{ns}><id>{html.escape(r['__metadata']['uri'])}</id>"
        f'<content type="application/xml"><m:properties>{props}</m:properties></content></entry>'
    )


def atom_feed(base: str, title: str, rows: list[dict[str, Any]], status: int = 200) -> Response:
    """What Exact answers without ``Accept: application/json``: an Atom feed (abridged)."""
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<feed xml:base="{html.escape(base)}/api/v1/" {_ATOM_NS}>'
        f'<title type="text">{html.escape(title)}</title>' + "".join(_atom_entry_xml(r) for r in rows) + "</feed>"
    )
    return Response(xml, status_code=status, media_type="application/atom+xml;type=feed;charset=utf-8")


def atom_entry(base: str, row: dict[str, Any], status: int = 200) -> Response:
    """One entity (GET by key, POST 201) as an Atom entry document."""
    ns = f' xml:base="{html.escape(base)}/api/v1/" {_ATOM_NS}'
    xml = '<?xml version="1.0" encoding="utf-8"?>' + _atom_entry_xml(row, ns)
    return Response(xml, status_code=status, media_type="application/atom+xml;type=entry;charset=utf-8")


def atom(ctx: Ctx, spec: EntitySet, rows: list[dict[str, Any]]) -> Response:
    return atom_feed(ctx.base, spec.name.split("/")[-1], rows)
