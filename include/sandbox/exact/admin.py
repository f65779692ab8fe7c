"""The Exact sandbox's own admin routes under ``/_admin`` (beside the common ones): purchase orders, webhooks,
purchase entries, accounts, OAuth codes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from sandbox.common import demo_company as demo
from sandbox.exact.entities import po_header_row, po_line_row
from sandbox.exact.ledger_lines import edit_entry
from sandbox.exact.responses import HTTPFail
from sandbox.exact.settings import DEMO_CLIENT_ID, DEMO_REDIRECT_URIS
from sandbox.exact.state import ExactState
from sandbox.exact.store import PO, Division


def make_exact_admin_router(sb: ExactState) -> APIRouter:
    router = APIRouter(prefix="/_admin", tags=["admin"])
    store = sb.store

    def find(po_id: str, division: int | None) -> tuple[Division, PO]:
        for code, div in store.divisions.items():
            if division is not None and code != division:
                continue
            po = div.purchase_orders.get(po_id)
            if po is not None:
                return div, po
        raise HTTPFail(404, f"purchase order {po_id} not found")

    def view(div: Division, po: PO) -> dict[str, Any]:
        head = po_header_row(div, po)
        head["Timestamp"] = po.ts
        head["PurchaseOrderLines"] = [po_line_row(div, po, ln) for ln in po.lines]
        return head

    def wrap(fn: Callable[[], Any]) -> Any:
        try:
            with store.lock:
                return fn()
        except HTTPFail as exc:
            return JSONResponse({"detail": exc.message}, status_code=exc.status)
        except (ValueError, KeyError) as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)

    @router.post("/purchase_orders")
    async def create_po(request: Request) -> Any:
        body = await request.json()
        division = int(body.pop("division", next(iter(demo.DIVISIONS))))

        def run() -> Any:
            div = store.divisions[division]
            return JSONResponse(view(div, store.create_purchase_order(div, body)), status_code=201)

        return wrap(run)

    @router.get("/purchase_orders/{po_id}")
    async def get_po(po_id: str, division: int | None = None) -> Any:
        return wrap(lambda: view(*find(po_id, division)))

    @router.patch("/purchase_orders/{po_id}")
    async def patch_po(po_id: str, request: Request, division: int | None = None) -> Any:
        body = await request.json()

        def run() -> Any:
            div, po = find(po_id, division)
            return view(div, store.modify_purchase_order(div, po.id, body))

        return wrap(run)

    @router.post("/purchase_orders/{po_id}/cancel")
    async def cancel_po(po_id: str, division: int | None = None) -> Any:
        def run() -> Any:
            div, po = find(po_id, division)
            return view(div, store.modify_purchase_order(div, po.id, {"OrderStatus": 40}))

        return wrap(run)

    @router.delete("/purchase_orders/{po_id}")
    async def delete_po(po_id: str, division: int | None = None) -> Any:
        def run() -> Any:
            div, po = find(po_id, division)
            store.delete_purchase_order(div, po.id)
            return {"ok": True, "deleted": po.id}

        return wrap(run)

    @router.get("/webhooks")
    async def webhooks_view() -> Any:
        return sb.webhooks.view()

    @router.post("/webhooks")
    async def webhooks_faults(request: Request) -> Any:
        body = await request.json()
        with sb.webhooks.lock:
            sb.webhooks.drop_next = int(body.get("drop_next", sb.webhooks.drop_next))
            sb.webhooks.bad_signature_next = int(body.get("bad_signature_next", sb.webhooks.bad_signature_next))
        return sb.webhooks.view()

    @router.get("/purchase_entries")
    async def list_entries(division: int | None = None) -> Any:
        def run() -> Any:
            return [
                sb.entry_view(e)
                for code, div in store.divisions.items()
                if division is None or code == division
                for e in div.purchase_entries
            ]

        return wrap(run)

    @router.patch("/purchase_entries/{entry_id}")
    async def patch_entry(entry_id: str, request: Request, division: int | None = None) -> Any:
        """A person edits an entry in Exact's UI: ``{"line": n, "AmountFC": x}`` changes one line's amount (its
        VAT at the line's percentage, the entry's totals follow); other keys replace header fields."""
        body = await request.json()

        def run() -> Any:
            for code, div in store.divisions.items():
                if division is not None and code != division:
                    continue
                if div.purchase_entries.get(entry_id) is not None:
                    return sb.entry_view(div.purchase_entries.update(entry_id, edit_entry(body, store.now_ms())))
            raise HTTPFail(404, f"purchase entry {entry_id} not found")

        return wrap(run)

    @router.patch("/accounts/{account_id}")
    async def patch_account(account_id: str, request: Request, division: int | None = None) -> Any:
        body = await request.json()

        def run() -> Any:
            for code, div in store.divisions.items():
                if division is not None and code != division:
                    continue
                if div.accounts.get(account_id) is not None:
                    now = store.now_ms()

                    def mutate(a: dict[str, Any], now: int = now) -> None:
                        a.update(body)
                        a["Modified"] = now

                    acct = div.accounts.update(account_id, mutate)
                    return {k: v for k, v in acct.items() if not k.startswith("_")}
            raise HTTPFail(404, f"account {account_id} not found")

        return wrap(run)

    @router.post("/oauth/code")
    async def mint_code(request: Request) -> Any:
        """An authorization code without the browser step: {client_id, redirect_uri, divisions}."""
        body = await request.json() if await request.body() else {}
        client_id = body.get("client_id", DEMO_CLIENT_ID)
        redirect_uri = body.get("redirect_uri", DEMO_REDIRECT_URIS[0])
        problem = sb.oauth.check_client_redirect(client_id, redirect_uri)
        if problem:
            return JSONResponse({"detail": problem}, status_code=400)
        divisions = body.get("divisions", sb.settings().consent_divisions)
        return {"code": sb.oauth.issue_code(client_id, redirect_uri, divisions), "redirect_uri": redirect_uri}

    @router.get("/oauth")
    async def oauth_state() -> Any:
        return sb.oauth.state()

    return router
