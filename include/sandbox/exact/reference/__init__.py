"""Exact Online's published entity reference, as the sandbox and the contract check read it.

``exact-online-entities.json`` beside this file is generated from a public scrape of Exact's REST reference pages
(README.md here says from where and how to regenerate it; never edit the JSON by hand). This module turns it into
:class:`Endpoint` objects: path, allowed methods, page size, and every property with its EDM type. The Exact
sandbox builds its schemas from these, and :mod:`sandbox.exact.contract` checks the connector's requests against
them, so neither can invent a property Exact does not have.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).with_name("exact-online-entities.json")
MODELS = "Exact.Web.Api.Models."

# Reference (EDM) type -> the sandbox's value kind (sandbox.exact.odata constants; kept as plain strings here so
# this module imports nothing of the sandbox).
_KIND = {
    "Guid": "guid",
    "UTF8String": "str",
    "UTF8CodeString": "str",
    "ExactWeb": "str",
    "Binary": "str",
    "Time": "str",
    "Boolean": "bool",
    "Byte": "int",
    "SByte": "int",
    "Int16": "int",
    "Int32": "int",
    "Int64": "int",
    "Double": "float",
    "Decimal": "float",
    "Single": "float",
    "DateTime": "datetime",
    "DateTimeOffset": "datetime",
}


@dataclass(frozen=True)
class Property:
    name: str
    type: str  # the reference's type name, e.g. "Guid", "UTF8String", "Collection"
    key: bool = False
    required: bool = False
    collection_of: str | None = None  # for a Collection: the endpoint key of the linked entity (may be unknown)
    # methods under which the reference's page shows the property as input: a hint (README.md), used for which
    # properties a POST or PUT stores
    methods: frozenset[str] = frozenset({"GET"})

    @property
    def is_collection(self) -> bool:
        return self.type == "Collection"

    @property
    def kind(self) -> str:
        """The sandbox value kind: guid, str, int, float, bool or datetime."""
        return _KIND.get(self.type, "str")

    @property
    def edm(self) -> str:
        return {"UTF8String": "Edm.String", "UTF8CodeString": "Edm.String", "ExactWeb": "Edm.String"}.get(
            self.type, f"Edm.{self.type}"
        )


@dataclass(frozen=True)
class Endpoint:
    name: str  # the path after {division}/, e.g. "crm/Accounts"; "current/Me" has no division
    path: str
    methods: frozenset[str]
    page_size: int  # 1000 on sync/ and bulk/, 60 elsewhere (the generator's intended rule, see README.md)
    webhook: bool
    type_name: str  # as Exact names it in error messages, e.g. Exact.Web.Api.Models.Sync.PurchaseOrder.PurchaseOrder
    properties: dict[str, Property] = field(default_factory=dict)

    @property
    def plain(self) -> dict[str, str]:
        """Every non-collection property -> sandbox value kind, in the reference's order."""
        return {n: p.kind for n, p in self.properties.items() if not p.is_collection}

    @property
    def collections(self) -> dict[str, Property]:
        return {n: p for n, p in self.properties.items() if p.is_collection}

    @property
    def keys(self) -> list[str]:
        return [n for n, p in self.properties.items() if p.key]


def _singular(word: str) -> str:
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _type_name(source_class: str) -> str:
    """The OData type Exact names in ``__metadata`` and error texts. Only the sync form is confirmed (Exact's error
    for the sync purchase orders names ``Exact.Web.Api.Models.Sync.PurchaseOrder.PurchaseOrder``); sync and bulk
    types are namespaced by their path, others are taken to be flat (``Exact.Web.Api.Models.GLAccount``), as
    client libraries' recorded responses show them [guess for the rest]."""
    parts = source_class.replace("\\", "/").removesuffix(".php").split("/")
    if parts[0] in ("Sync", "Bulk"):
        return MODELS + ".".join([*parts[:-1], _singular(parts[-1])])
    if parts == ["System", "Me"]:
        return "Exact.Web.Api.System.Me"
    return MODELS + _singular(parts[-1])


def _endpoint(name: str, raw: dict[str, Any]) -> Endpoint:
    props = {
        pname: Property(
            pname,
            p.get("type") or "UTF8String",
            key=bool(p.get("key")),
            required=bool(p.get("required")),
            collection_of=p.get("collection_of"),
            methods=frozenset(m.upper() for m in p.get("methods", ["GET"])),
        )
        for pname, p in sorted(raw.get("properties", {}).items())
    }
    return Endpoint(
        name=name,
        path=raw["path"],
        methods=frozenset(m.upper() for m in raw.get("methods", ["GET"])),
        page_size=int(raw.get("page_size_generator_rule") or raw.get("page_size") or 60),
        webhook=bool(raw.get("webhook")),
        type_name=_type_name(raw.get("source_class") or name),
        properties=props,
    )


@cache
def _raw() -> dict[str, Any]:
    return json.loads(DATA.read_text(encoding="utf-8"))["endpoints"]


@cache
def find(name: str) -> Endpoint | None:
    """The endpoint called ``name`` — exact spelling only, as Exact's routing is (``hrm/CostCenters`` is a 404).
    Built on first use: a sandbox needs a dozen of the 351."""
    raw = _raw().get(name)
    return _endpoint(name, raw) if raw is not None else None


def endpoints() -> dict[str, Endpoint]:
    """Every endpoint of the reference, by name (``crm/Accounts``)."""
    return {name: ep for name in _raw() if (ep := find(name)) is not None}


def endpoint(name: str) -> Endpoint:
    """One endpoint (``KeyError`` naming it when the reference does not have it)."""
    ep = find(name)
    if ep is None:
        raise KeyError(f"Exact's entity reference has no endpoint {name!r}")
    return ep
