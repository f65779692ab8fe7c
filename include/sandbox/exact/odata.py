"""A small OData v2 query-option toolkit for the Exact sandbox: ``$filter`` parsing (no eval), literal
handling, ``$select`` parsing and value formatting.

Filters compile to closures over a per-entity-set *schema* (field name -> type) and *getters*
(field name -> function of the stored entity), so they run on compact stored objects without building dicts.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo


class ODataError(Exception):
    """A malformed query option: the caller answers 400 with Exact's error body."""


# --------------------------------------------------------------------------------------------- field types
GUID = "guid"
STR = "str"
INT = "int"  # Int32 and Int64 (``123L``) both
FLOAT = "float"
BOOL = "bool"
DATETIME = "datetime"  # stored as epoch milliseconds (UTC)

_EDM = {
    GUID: "Edm.Guid",
    STR: "Edm.String",
    INT: "Edm.Int64",
    FLOAT: "Edm.Double",
    BOOL: "Edm.Boolean",
    DATETIME: "Edm.DateTime",
}

Schema = dict[str, str]


# --------------------------------------------------------------------------------------------- tokens
@dataclass(frozen=True)
class Tok:
    kind: str  # "lit", "ident", "op", "lparen", "rparen", "comma", "kw"
    value: Any
    type: str | None = None  # literal type
    pos: int = 0


_KEYWORDS = {"and", "or", "not", "eq", "ne", "gt", "ge", "lt", "le"}
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<typed>(?:guid|datetime|datetimeoffset|time|X|binary)'(?:[^']*)')
  | (?P<str>'(?:[^']|'')*')
  | (?P<num>[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?[LlMmDdFf]?)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*)
    """,
    re.VERBOSE,
)

_GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def parse_datetime_literal(text: str, tz: str = "UTC") -> int:
    """``2024-01-01T00:00:00[.fff][Z|±hh:mm]`` -> epoch ms. A naive value is in the server's zone ``tz``."""
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(t)
    except ValueError as exc:
        raise ODataError(f"Unrecognized 'Edm.DateTime' literal 'datetime'{text}'' in position") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC if tz == "UTC" else ZoneInfo(tz))
    return round(dt.timestamp() * 1000)


def tokenize(text: str, tz: str = "UTC") -> list[Tok]:
    pos = 0
    out: list[Tok] = []
    n = len(text)
    while pos < n:
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise ODataError(f"Syntax error at position {pos} in '{text}'.")
        kind = m.lastgroup
        raw = m.group(kind)  # type: ignore[arg-type]
        start = pos
        pos = m.end()
        if kind == "ws":
            continue
        if kind == "typed":
            prefix, _, rest = raw.partition("'")
            body = rest[:-1]
            if prefix == "guid":
                if not _GUID_RE.match(body):
                    raise ODataError(f"Unrecognized 'Edm.Guid' literal 'guid'{body}'' at '{start}' in '{text}'.")
                out.append(Tok("lit", body.lower(), GUID, start))
            elif prefix in ("datetime", "datetimeoffset"):
                out.append(Tok("lit", parse_datetime_literal(body, tz), DATETIME, start))
            else:
                raise ODataError(f"Unsupported literal type '{prefix}' at position {start}.")
        elif kind == "str":
            out.append(Tok("lit", raw[1:-1].replace("''", "'"), STR, start))
        elif kind == "num":
            suffix = raw[-1] if raw[-1] in "LlMmDdFf" else ""
            body = raw[:-1] if suffix else raw
            if suffix in ("L", "l") or (not suffix and re.fullmatch(r"[-+]?\d+", body)):
                out.append(Tok("lit", int(body), INT, start))
            else:
                out.append(Tok("lit", float(body), FLOAT, start))
        elif kind == "ident":
            low = raw.lower()
            if raw in _KEYWORDS:
                out.append(Tok("kw", raw, None, start))
            elif low in ("true", "false") and raw in ("true", "false"):
                out.append(Tok("lit", raw == "true", BOOL, start))
            elif raw == "null":
                out.append(Tok("lit", None, "null", start))
            else:
                out.append(Tok("ident", raw, None, start))
        else:
            out.append(Tok(kind, raw, None, start))  # type: ignore[arg-type]
    return out


# --------------------------------------------------------------------------------------------- AST
@dataclass(frozen=True)
class Field:
    name: str


@dataclass(frozen=True)
class Literal:
    value: Any
    type: str


@dataclass(frozen=True)
class Compare:
    op: str
    left: Any
    right: Any


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    items: tuple[Any, ...]


@dataclass(frozen=True)
class Not:
    item: Any


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Any, ...]


_FUNCS = {"substringof": 2, "startswith": 2, "endswith": 2, "tolower": 1, "toupper": 1, "trim": 1}


class _Parser:
    def __init__(self, tokens: list[Tok], text: str) -> None:
        self.toks = tokens
        self.i = 0
        self.text = text

    def peek(self) -> Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def next(self) -> Tok:
        tok = self.peek()
        if tok is None:
            raise ODataError(f"Expression expected at position {len(self.text)} in '{self.text}'.")
        self.i += 1
        return tok

    def parse(self) -> Any:
        node = self.or_()
        if self.peek() is not None:
            tok = self.peek()
            raise ODataError(f"Syntax error at position {tok.pos} in '{self.text}'.")  # type: ignore[union-attr]
        return node

    def or_(self) -> Any:
        items = [self.and_()]
        while (t := self.peek()) is not None and t.kind == "kw" and t.value == "or":
            self.i += 1
            items.append(self.and_())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def and_(self) -> Any:
        items = [self.unary()]
        while (t := self.peek()) is not None and t.kind == "kw" and t.value == "and":
            self.i += 1
            items.append(self.unary())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def unary(self) -> Any:
        t = self.peek()
        if t is not None and t.kind == "kw" and t.value == "not":
            self.i += 1
            return Not(self.unary())
        return self.comparison()

    def comparison(self) -> Any:
        left = self.operand()
        t = self.peek()
        if t is not None and t.kind == "kw" and t.value in ("eq", "ne", "gt", "ge", "lt", "le"):
            self.i += 1
            right = self.operand()
            return Compare(t.value, left, right)
        return left

    def operand(self) -> Any:
        t = self.next()
        if t.kind == "lparen":
            node = self.or_()
            close = self.next()
            if close.kind != "rparen":
                raise ODataError(f"')' or operator expected at position {close.pos} in '{self.text}'.")
            return node
        if t.kind == "lit":
            return Literal(t.value, t.type)  # type: ignore[arg-type]
        if t.kind == "ident":
            nxt = self.peek()
            if nxt is not None and nxt.kind == "lparen":
                name = t.value.lower()
                if name not in _FUNCS:
                    raise ODataError(f"Unknown function '{t.value}' at position {t.pos} in '{self.text}'.")
                self.i += 1
                args = [self.or_()]
                while (c := self.peek()) is not None and c.kind == "comma":
                    self.i += 1
                    args.append(self.or_())
                close = self.next()
                if close.kind != "rparen" or len(args) != _FUNCS[name]:
                    raise ODataError(f"Bad arguments for function '{t.value}' in '{self.text}'.")
                return Call(name, tuple(args))
            return Field(t.value)
        raise ODataError(f"Expression expected at position {t.pos} in '{self.text}'.")


def parse_filter(text: str, tz: str = "UTC") -> Any:
    """Parse a ``$filter`` expression into an AST (Field, Literal, Compare, BoolOp, Not, Call)."""
    if not text or not text.strip():
        raise ODataError("Expression expected at position 0 in ''.")
    return _Parser(tokenize(text, tz), text).parse()


def filter_fields(node: Any) -> set[str]:
    """Every field name the expression mentions."""
    if isinstance(node, Field):
        return {node.name}
    if isinstance(node, Compare):
        return filter_fields(node.left) | filter_fields(node.right)
    if isinstance(node, BoolOp):
        out: set[str] = set()
        for item in node.items:
            out |= filter_fields(item)
        return out
    if isinstance(node, Not):
        return filter_fields(node.item)
    if isinstance(node, Call):
        out = set()
        for a in node.args:
            out |= filter_fields(a)
        return out
    return set()


def conjuncts(node: Any) -> list[Any]:
    """The top-level AND terms of an expression (the expression itself when it is not an AND)."""
    if isinstance(node, BoolOp) and node.op == "and":
        out: list[Any] = []
        for item in node.items:
            out.extend(conjuncts(item))
        return out
    return [node]


def simple_comparison(node: Any) -> tuple[str, str, Any] | None:
    """``(field, op, value)`` for ``Field op Literal`` (or ``Literal op Field``, flipped); else None."""
    if not isinstance(node, Compare):
        return None
    flip = {"eq": "eq", "ne": "ne", "gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}
    if isinstance(node.left, Field) and isinstance(node.right, Literal):
        return node.left.name, node.op, node.right.value
    if isinstance(node.right, Field) and isinstance(node.left, Literal):
        return node.right.name, flip[node.op], node.left.value
    return None


# --------------------------------------------------------------------------------------------- compiling
Getter = Callable[[Any], Any]
Pred = Callable[[Any], bool]

_COMPATIBLE = {
    GUID: {GUID},
    STR: {STR},
    INT: {INT},
    FLOAT: {INT, FLOAT},
    BOOL: {BOOL},
    DATETIME: {DATETIME},
}


def _cmp(op: str, a: Any, b: Any) -> bool:
    if a is None or b is None:
        if op == "eq":
            return a is None and b is None
        if op == "ne":
            return not (a is None and b is None)
        return False
    if isinstance(a, str) and isinstance(b, str):
        a, b = a.lower(), b.lower()  # SQL Server's default collation is case-insensitive
    if op == "eq":
        return a == b
    if op == "ne":
        return a != b
    if op == "gt":
        return a > b
    if op == "ge":
        return a >= b
    if op == "lt":
        return a < b
    return a <= b


def compile_filter(
    node: Any, schema: Schema, getters: dict[str, Getter] | None = None, type_name: str = "Exact.Web.Api.Models"
) -> Pred:
    """Compile an AST to ``pred(entity) -> bool``. Unknown fields and type mismatches raise ODataError.
    Without ``getters`` entities are dicts (``entity.get(name)``)."""

    def getter(name: str) -> Getter:
        if name not in schema:
            raise ODataError(f"No property '{name}' exists in type '{type_name}'.")
        if getters is not None and name in getters:
            return getters[name]
        return lambda e, _n=name: e.get(_n)

    def value_of(n: Any) -> tuple[Callable[[Any], Any], str]:
        if isinstance(n, Field):
            return getter(n.name), schema[n.name]
        if isinstance(n, Literal):
            v = n.value
            return (lambda e, _v=v: _v), n.type
        if isinstance(n, Call):
            if n.name in ("tolower", "toupper", "trim"):
                f, t = value_of(n.args[0])
                if t != STR:
                    raise ODataError(f"Function '{n.name}' needs a string argument.")
                op = {"tolower": str.lower, "toupper": str.upper, "trim": str.strip}[n.name]
                return (lambda e, _f=f, _op=op: None if _f(e) is None else _op(_f(e))), STR
            return build(n), BOOL
        return build(n), BOOL

    def build(n: Any) -> Pred:
        if isinstance(n, BoolOp):
            parts = [build(i) for i in n.items]
            if n.op == "and":
                return lambda e: all(p(e) for p in parts)
            return lambda e: any(p(e) for p in parts)
        if isinstance(n, Not):
            inner = build(n.item)
            return lambda e: not inner(e)
        if isinstance(n, Call):
            (fa, ta), (fb, tb) = value_of(n.args[0]), value_of(n.args[1])
            if ta != STR or tb != STR:
                raise ODataError(f"Function '{n.name}' needs string arguments.")
            if n.name == "substringof":  # substringof(needle, haystack)
                return lambda e: (fa(e) or "").lower() in (fb(e) or "").lower()
            if n.name == "startswith":
                return lambda e: (fa(e) or "").lower().startswith((fb(e) or "").lower())
            return lambda e: (fa(e) or "").lower().endswith((fb(e) or "").lower())
        if isinstance(n, Compare):
            (fa, ta), (fb, tb) = value_of(n.left), value_of(n.right)
            if "null" not in (ta, tb):
                ok = tb in _COMPATIBLE.get(ta, {ta}) or ta in _COMPATIBLE.get(tb, {tb})
                if not ok:
                    raise ODataError(
                        f"Operator '{n.op}' incompatible with operand types '{_EDM.get(ta, ta)}' "
                        f"and '{_EDM.get(tb, tb)}'."
                    )
            op = n.op
            return lambda e: _cmp(op, fa(e), fb(e))
        if isinstance(n, Field):
            if schema.get(n.name) != BOOL:
                raise ODataError("Expression of type 'Edm.Boolean' expected.")
            g = getter(n.name)
            return lambda e: bool(g(e))
        if isinstance(n, Literal):
            if n.type != BOOL:
                raise ODataError("Expression of type 'Edm.Boolean' expected.")
            v = bool(n.value)
            return lambda e: v
        raise ODataError("Unsupported expression.")

    return build(node)


# --------------------------------------------------------------------------------------------- $select
def parse_select(text: str | None) -> list[str] | None:
    """``None`` when absent; ``["*"]`` for ``*``; else the comma-separated names (may contain ``Nav/Field``)."""
    if text is None:
        return None
    names = [p.strip() for p in text.split(",")]
    if any(not p for p in names):
        raise ODataError("Syntax error in $select.")
    return names


def parse_expand(text: str | None) -> list[str]:
    if not text:
        return []
    return [p.strip() for p in text.split(",") if p.strip()]


# --------------------------------------------------------------------------------------------- values
def format_date(ms: int | None, tz: str = "UTC") -> str | None:
    """Epoch ms -> ``/Date(ms)/``. With a zone other than UTC the wall-clock time of that zone is encoded
    as if it were UTC (what a server-local DateTime looks like on the wire)."""
    if ms is None:
        return None
    if tz != "UTC":
        dt = datetime.fromtimestamp(ms / 1000, tz=ZoneInfo(tz))
        offset = dt.utcoffset()
        ms = ms + int(offset.total_seconds() * 1000) if offset else ms
    return f"/Date({int(ms)})/"


def parse_iso_to_ms(value: Any, tz: str = "UTC") -> int:
    """A POSTed date (ISO-8601, or ``/Date(ms)/``) -> epoch ms. Raises ValueError."""
    if not isinstance(value, str):
        raise ValueError("not a date")
    m = re.fullmatch(r"/Date\((-?\d+)(?:[+-]\d{4})?\)/", value)
    if m:
        return int(m.group(1))
    try:
        return parse_datetime_literal(value, tz)
    except ODataError as exc:
        raise ValueError(str(exc)) from exc


def is_guid(value: Any) -> bool:
    return isinstance(value, str) and _GUID_RE.match(value) is not None


def new_guid() -> str:
    return str(uuid.uuid4())


def edm_type(t: str) -> str:
    return _EDM.get(t, "Edm.String")
