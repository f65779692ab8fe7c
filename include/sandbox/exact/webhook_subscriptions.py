"""``webhooks/WebhookSubscriptions`` on the Exact sandbox: the calling app's subscriptions in one division."""

from __future__ import annotations

from fastapi.responses import JSONResponse, Response

from sandbox.exact import reference
from sandbox.exact.entities import EntitySet
from sandbox.exact.reads import collection
from sandbox.exact.render import render, select_fields
from sandbox.exact.responses import Ctx, HTTPFail, parse_body, parse_key
from sandbox.exact.state import ExactState
from sandbox.exact.store import Division
from sandbox.exact.webhooks import Subscription
from sandbox.exact.writes import check_props, created, validation


def webhook_subscriptions(
    sb: ExactState, method: str, ctx: Ctx, spec: EntitySet, div: Division, key: str | None, body: bytes
) -> Response:
    """``webhooks/WebhookSubscriptions`` of the calling app in this division (GET, POST, DELETE by key)."""
    mine = {s.id: s for s in sb.webhooks.of(ctx.chain.client_id, div.code)}
    if method == "GET" and key is None:
        return collection(sb, ctx, spec, div)
    if method == "GET":
        sub = mine.get(parse_key(key or ""))
        if sub is None:
            raise HTTPFail(404, "Not found")
        fields, _navs, _deferred = select_fields(sb, spec, None, [])
        return JSONResponse({"d": render(sb, ctx, spec, div, sub.row(""), fields)})
    if method == "POST" and key is None:
        data = check_props(sb, spec, parse_body(body), spec.writable)
        url = str(data.get("CallbackURL") or "").strip()
        topic = str(data.get("Topic") or "").strip()
        problems = []
        if not url:
            problems.append("Mandatory: CallbackURL")
        elif not (url.startswith("https://") or (sb.settings().webhook_allow_http and url.startswith("http://"))):
            problems.append("CallbackURL: only https callback URLs are allowed")
        if not topic:
            problems.append("Mandatory: Topic")
        elif not any(e.webhook and e.name.split("/")[-1] == topic for e in reference.endpoints().values()):
            problems.append(f"Topic: '{topic}' has no webhook")
        if any(s.topic == topic and s.callback_url == url for s in mine.values()):
            problems.append("A subscription for this topic and callback URL already exists")
        if problems:
            raise validation(sb, problems)
        sub = Subscription(
            id=sb.webhooks.new_id(),
            division=div.code,
            client_id=ctx.chain.client_id,
            user_id=str(data.get("UserID") or ctx.chain.user_id),
            callback_url=url,
            topic=topic,
            base=ctx.base,
            created=sb.store.now_ms(),
        )
        sb.webhooks.add(sub)
        prefer = True
        return created(sb, ctx, spec, div, sub.row(""), prefer)
    if method == "DELETE" and key is not None:
        sub_id = parse_key(key)
        if sub_id not in mine:
            raise HTTPFail(404, "Not found")
        sb.webhooks.remove(sub_id)
        return Response(status_code=204)
    raise HTTPFail(405, f"The requested resource does not support http method '{method}'.")
