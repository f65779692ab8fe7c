"""The contract check: does a request ask Exact for anything its published entity reference does not list?

:func:`offences` takes one request (method, path, query, body) and names every endpoint, HTTP method and property
in it that the reference (:mod:`sandbox.exact.reference`) does not have: in ``$select`` (``Nav/Field`` too),
``$filter``, ``$orderby``, ``$expand``, and the JSON body of a POST or PUT (nested collections too).

The Exact sandbox runs it on every request the connector sends (recognised by its ``User-Agent``) and appends each
offence to the JSON-lines file named by ``MLC_CONTRACT_LOG``, with the test that was running. The pytest plugin
:mod:`sandbox.exact.contract_plugin` reads that file at the end of the session and fails the run when it is not
empty. A sandbox started as another process (``mlc sandbox`` in the end-to-end tests) inherits the variable and
writes to the same file.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

from sandbox.exact import reference
from sandbox.exact.odata import ODataError, filter_fields, parse_filter

LOG_ENV = "MLC_CONTRACT_LOG"
#: Requests whose User-Agent starts with this are the connector's, and are checked.
CONNECTOR_AGENT = "ml-connector/"

_API = re.compile(r"^/api/v1/(?:(?P<division>\d+)/)?(?P<rest>.+)$")
_KEY = re.compile(r"\([^)]*\)")


def split_path(path: str) -> tuple[str, str | None] | None:
    """``/api/v1/111/crm/Accounts(guid'..')/BankAccounts`` -> (``crm/Accounts``, ``BankAccounts``); ``None`` for
    paths outside the REST API (OAuth, admin)."""
    m = _API.match(unquote(path))
    if m is None:
        return None
    rest = m.group("rest").rstrip("/")
    if "(" in rest:
        head, _, tail = rest.partition("(")
        after = _KEY.sub("", "(" + tail, count=1)
        nav = after.strip("/") or None
        return head, nav
    return rest, None


def _names(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def _check_fields(ep: reference.Endpoint, names: Iterable[str], where: str, out: list[str]) -> None:
    for name in names:
        if name == "*":
            continue
        if "/" in name:
            nav, _, sub = name.partition("/")
            prop = ep.properties.get(nav)
            if prop is None or not prop.is_collection:
                out.append(f"{where} names '{name}': {ep.name} has no collection '{nav}'")
                continue
            target = reference.find(prop.collection_of) if prop.collection_of else None
            if target is not None and sub != "*" and sub not in target.properties:
                out.append(f"{where} names '{name}': {target.name} has no property '{sub}'")
            continue
        if name not in ep.properties:
            out.append(f"{where} names '{name}', which {ep.name} does not have")


def _check_body(ep: reference.Endpoint, data: Any, out: list[str], where: str = "body") -> None:
    if not isinstance(data, dict):
        return
    for k, v in data.items():
        if k == "__metadata":
            continue
        prop = ep.properties.get(k)
        if prop is None:
            out.append(f"{where} sets '{k}', which {ep.name} does not have")
            continue
        if prop.is_collection and prop.collection_of and isinstance(v, list):
            target = reference.find(prop.collection_of)
            if target is not None:
                for child in v:
                    _check_body(target, child, out, f"{where} {k}[]")


def offences(method: str, path: str, query: Iterable[tuple[str, str]], body: bytes | None = None) -> list[str]:
    """Everything in one request that Exact's reference does not list (empty: the request is within it)."""
    split = split_path(path)
    if split is None:
        return []
    name, nav = split
    ep = reference.find(name)
    if ep is None:
        return [f"endpoint '{name}' is not in Exact's entity reference"]
    out: list[str] = []
    method = method.upper()
    if method not in ep.methods:
        out.append(f"{method} is not a method of {ep.name} (the reference lists {', '.join(sorted(ep.methods))})")
    target = ep
    if nav is not None:
        prop = ep.properties.get(nav)
        if prop is None or not prop.is_collection:
            out.append(f"'{nav}' is not a collection of {ep.name}")
            return out
        linked = reference.find(prop.collection_of) if prop.collection_of else None
        if linked is None:
            return out
        target = linked
    q = dict(query)
    _check_fields(target, _names(q.get("$select")), "$select", out)
    _check_fields(target, [n.split()[0] for n in _names(q.get("$orderby"))], "$orderby", out)
    for e in _names(q.get("$expand")):
        prop = target.properties.get(e)
        if prop is None or not prop.is_collection:
            out.append(f"$expand names '{e}', which is not a collection of {target.name}")
    flt = q.get("$filter")
    if flt:
        try:
            fields = filter_fields(parse_filter(flt))
        except ODataError:
            fields = set()  # a malformed filter is the sandbox's 400, not a contract question
        _check_fields(target, sorted(fields), "$filter", out)
    if body and method in ("POST", "PUT", "PATCH"):
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        _check_body(target, data, out)
    return out


# ------------------------------------------------------------------------------------------------ recording
_lock = threading.Lock()
_seen: set[str] = set()


def shape(method: str, path: str, query: Iterable[tuple[str, str]]) -> str:
    """A request without its values: method, endpoint and the names of its query options."""
    split = split_path(path)
    name = "/".join(p for p in split if p) if split else path
    return f"{method.upper()} {name} " + ",".join(sorted({k for k, _ in query if k.startswith("$")}))


def record(method: str, path: str, query: list[tuple[str, str]], body: bytes | None, user_agent: str | None) -> None:
    """Check a connector request and append what is wrong with it (and each new request shape, so the session
    report can say how much was checked) to ``$MLC_CONTRACT_LOG``. Does nothing without that variable or for
    requests that are not the connector's."""
    log_path = os.environ.get(LOG_ENV)
    if not log_path or not (user_agent or "").startswith(CONNECTOR_AGENT):
        return
    found = offences(method, path, query, body)
    key = shape(method, path, query)
    lines = []
    with _lock:
        if key not in _seen:
            _seen.add(key)
            lines.append({"shape": key})
    test = os.environ.get("PYTEST_CURRENT_TEST", "").removesuffix(" (call)").removesuffix(" (setup)")
    query_text = "&".join(f"{k}={v}" for k, v in query)
    for o in found:
        lines.append({"offence": o, "request": f"{method.upper()} {path}?{query_text}"[:600], "test": test})
    if lines:
        text = "".join(json.dumps(line) + "\n" for line in lines)
        with _lock, open(log_path, "a", encoding="utf-8") as fh:
            fh.write(text)


def read_log(log_path: str) -> tuple[list[dict[str, str]], int]:
    """(offences, number of distinct request shapes checked) from a contract log."""
    found: list[dict[str, str]] = []
    shapes: set[str] = set()
    try:
        with open(log_path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    item = json.loads(line)
                except ValueError:
                    continue
                if "offence" in item:
                    found.append(item)
                elif "shape" in item:
                    shapes.add(item["shape"])
    except FileNotFoundError:
        pass
    return found, len(shapes)
