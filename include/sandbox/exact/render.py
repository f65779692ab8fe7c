"""Reading helpers of the Exact sandbox's REST API: query options, ``$select``/``$expand`` rules, and an entity
rendered as Exact writes it (metadata, deferred and expanded collections, paging links)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse, Response

from sandbox.exact import reference
from sandbox.exact.entities import EntitySet, po_line_row
from sandbox.exact.odata import DATETIME, FLOAT, GUID, ODataError, format_date, parse_expand, parse_filter, parse_select
from sandbox.exact.responses import Ctx, atom, encode_query, no_property, query_option
from sandbox.exact.state import ExactState
from sandbox.exact.store import Division


def plain_fields(sb: ExactState, schema: dict[str, str], select: list[str] | None, type_name: str) -> list[str]:
    if select is None or select == ["*"]:
        return list(schema)
    for f in select:
        if f not in schema:
            raise ODataError(no_property(f, type_name, select))
    return select


def nav_spec(sb: ExactState, spec: EntitySet, nav: str) -> EntitySet | None:
    """The served endpoint a collection links to (None: the sandbox has no data behind it)."""
    target = spec.navs[nav].target
    return sb.sets.get(target) if target else None


def nav_ref(sb: ExactState, spec: EntitySet, nav: str) -> tuple[dict[str, str], str]:
    """(schema, type name) of the entity a collection holds, from the reference."""
    target = spec.navs[nav].target
    ep = reference.find(target) if target else None
    if ep is None:
        return {}, f"{spec.type_name}.{nav}"
    return ep.plain, ep.type_name


def select_fields(
    sb: ExactState, spec: EntitySet, select: list[str] | None, expand: list[str], *, representation: bool = False
) -> tuple[list[str], dict[str, list[str]], list[str]]:
    """(fields, expanded navs with their fields, deferred navs). ``representation``: the sandbox's own
    rendering of a created entity (no $select rules)."""
    for e in expand:
        if e not in spec.navs:
            raise ODataError(f"Could not find a property named '{e}' on type '{spec.type_name}'.")
    s = sb.settings()
    select_required = spec.kind in ("sync", "bulk") or s.select_required_everywhere
    if select is None and select_required and not representation:
        raise ODataError("$select is mandatory for this endpoint. Please specify the fields you need.")
    if spec.kind in ("sync", "bulk") and select is not None and "*" in select:
        raise ODataError("$select=* is not allowed for this endpoint. Please specify the fields you need.")
    # Lines come back only when $select names them as Nav/Field (docs/sandbox-exact.md, "REST"); an expanded nav that
    # is not named that way stays deferred.
    nav_select_only = s.expand_needs_nav_select and not representation
    if select is None or select == ["*"]:
        if nav_select_only:
            return list(spec.schema), {}, list(spec.navs)
        navs = {n: list(nav_ref(sb, spec, n)[0]) for n in expand}
        deferred = [n for n in spec.navs if n not in expand]
        return list(spec.schema), navs, deferred
    fields: list[str] = []
    navs: dict[str, list[str]] = {}
    deferred: list[str] = []
    for name in select:
        if name == "*":
            fields.extend(f for f in spec.schema if f not in fields)
            deferred.extend(n for n in spec.navs if n not in deferred and n not in expand)
        elif "/" in name:
            nav, _, f = name.partition("/")
            if nav not in spec.navs:
                raise ODataError(no_property(nav, spec.type_name, select))
            if nav not in expand:
                raise ODataError(f"Property '{name}' can only be selected when '{nav}' is expanded ($expand).")
            target, target_type = nav_ref(sb, spec, nav)
            if f == "*":
                navs[nav] = list(target)
                continue
            if f not in target:
                raise ODataError(no_property(f, target_type, select))
            navs.setdefault(nav, []).append(f)
        elif name in spec.navs:
            if name in expand and not nav_select_only:
                navs[name] = list(nav_ref(sb, spec, name)[0])
            elif name not in deferred:
                deferred.append(name)
        elif name in spec.schema:
            if name not in fields:
                fields.append(name)
        else:
            raise ODataError(no_property(name, spec.type_name, select))
    return fields, navs, [n for n in deferred if n not in navs]


def query_options(sb: ExactState, ctx: Ctx, spec: EntitySet) -> tuple[Any, list[str] | None, list[str], int | None]:
    for k, _ in ctx.query:
        if k.startswith("$") and k not in (
            "$select",
            "$filter",
            "$expand",
            "$top",
            "$skiptoken",
            "$orderby",
            "$format",
            "$inlinecount",
        ):
            raise ODataError(f"The query parameter '{k}' is not supported.")
    ftext = query_option(ctx, "$filter")
    ast = parse_filter(ftext, sb.settings().date_timezone) if ftext is not None else None
    select = parse_select(query_option(ctx, "$select"))
    expand = parse_expand(query_option(ctx, "$expand"))
    top_s = query_option(ctx, "$top")
    top = None
    if top_s is not None:
        if not top_s.isdigit():
            raise ODataError(f"Invalid $top value '{top_s}'.")
        top = int(top_s)
    return ast, select, expand, top


def convert(sb: ExactState, t: str, v: Any) -> Any:
    if v is None:
        return None
    if t == DATETIME:
        return format_date(v, sb.settings().date_timezone)
    if t == FLOAT:
        return float(v)
    return v


def key_literal(sb: ExactState, spec: EntitySet, key: Any) -> str:
    t = spec.schema.get(spec.key)
    if t == GUID:
        return f"guid'{key}'"
    if spec.key == "Timestamp":
        return f"{key}L"
    return str(key)


def render(
    sb: ExactState,
    ctx: Ctx,
    spec: EntitySet,
    div: Division,
    row: dict[str, Any],
    fields: list[str],
    navs: dict[str, list[str]] | None = None,
    deferred: list[str] | None = None,
    obj: Any = None,
) -> dict[str, Any]:
    uri = f"{ctx.base}/api/v1/{div.code}/{spec.name}({key_literal(sb, spec, row.get(spec.key))})"
    out: dict[str, Any] = {"__metadata": {"uri": uri, "type": spec.type_name}}
    schema = spec.schema
    for f in fields:
        out[f] = convert(sb, schema[f], row.get(f))
    for nav, nf in (navs or {}).items():
        target = nav_spec(sb, spec, nav)
        children = nav_children(sb, div, spec, nav, obj if obj is not None else row) if target else []
        size = sb.settings().expand_page_size
        page = children[:size]
        block: dict[str, Any] = {"results": [render(sb, ctx, target, div, c, nf) for c in page if target]}
        if len(children) > size:
            block["__next"] = f"{uri}/{nav}?" + encode_query(
                [("$select", ",".join(nf)), ("$skiptoken", f"guid'{page[-1]['ID']}'")]
            )
        out[nav] = block
    for nav in deferred or []:
        out[nav] = {"__deferred": {"uri": f"{uri}/{nav}"}}
    return out


def nav_children(sb: ExactState, div: Division, spec: EntitySet, nav: str, obj: Any) -> list[dict[str, Any]]:
    if nav == "PurchaseOrderLines":
        return [po_line_row(div, obj, ln) for ln in obj.lines]
    if nav == "PurchaseEntryLines":
        return list(obj["_lines"])
    return []


def full_row(sb: ExactState, spec: EntitySet, div: Division, obj: Any) -> dict[str, Any]:
    return spec.full(div, obj) if spec.full is not None else obj


def envelope(
    sb: ExactState, ctx: Ctx, spec: EntitySet, results: list[dict[str, Any]], next_url: str | None
) -> Response:
    if not ctx.json:
        return atom(ctx, spec, results)
    if next_url is None and sb.settings().bare_list:
        return JSONResponse({"d": results})
    d: dict[str, Any] = {"results": results}
    if next_url is not None:
        d["__next"] = next_url
    return JSONResponse({"d": d})


def next_link(sb: ExactState, ctx: Ctx, spec: EntitySet, skiptoken: str, top_left: int | None, suffix: str = "") -> str:
    params = [(k, v) for k, v in ctx.query if k not in ("$skiptoken", "$top")]
    if top_left is not None:
        params.append(("$top", str(top_left)))
    params.append(("$skiptoken", skiptoken))
    return f"{ctx.base}/api/v1/{ctx.division}/{spec.name}{suffix}?" + encode_query(params)
