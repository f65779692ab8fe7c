"""The real-time part of `make demo`: a PO created in the Exact sandbox reaches JAGGAER through an Exact webhook.

    python scripts/demo_webhooks.py serve PORT             # the plugin's app (its webhook receiver) on loopback
    python scripts/demo_webhooks.py push EXACT JAGGAER LOG  # create an order and follow it to JAGGAER

``serve`` runs ``ml_connector.web.app.create_app()`` (the very app the api-server mounts at ``/ml-connector``) under
uvicorn: the demo has no api-server. ``push`` creates an order in the sandbox, waits for the signed notification
the sandbox sends to be verified and stored by that receiver, runs the asset watcher's trigger
(``ExactNotificationTrigger``, what Airflow's triggerer runs) until it makes the asset event, then runs the PO-push
DAG with ``airflow dags test`` — the demo has no scheduler: in a deployment the scheduler starts that run on the
asset event by itself — and prints the time of each hop from the order's creation.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

TENANT = "demo"
DIVISION = 111111
DAG = f"exact_po_push__{TENANT}"


def _http(method: str, url: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as response:
        return json.load(response)


def serve(port: int) -> int:
    # Read connections as the api-server does (metadata database included), like the mlc command.
    os.environ.setdefault("_AIRFLOW_PROCESS_CONTEXT", "server")
    import uvicorn
    from fastapi import FastAPI

    from ml_connector.config import load_tenants
    from ml_connector.exact.connection import get_connection
    from ml_connector.web.app import create_app

    get_connection(load_tenants()[TENANT].exact.conn_id)  # warm: the first notification should not pay the imports
    root = FastAPI()
    root.mount("/ml-connector", create_app())
    uvicorn.run(root, host="127.0.0.1", port=port, log_level="warning")
    return 0


def _wait(what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise SystemExit(f"demo: timed out after {timeout:.0f} s waiting for {what}")


def push(exact: str, jaggaer: str, log_dir: str) -> int:
    from sqlalchemy import select

    from ml_connector.store.db import get_engine, session_scope
    from ml_connector.store.models import LedgerEntry
    from ml_connector.webhooks import asset_uri
    from ml_connector.webhooks.store import WebhookNotification
    from ml_connector.webhooks.trigger import ExactNotificationTrigger

    engine = get_engine()
    order = _http(
        "POST",
        f"{exact}/_admin/purchase_orders",
        {
            "division": DIVISION,
            "SupplierCode": "1009",
            "Description": "created during make demo (webhook)",
            "PurchaseOrderLines": [{"ItemCode": "CP-M8X25-HT", "QuantityInPurchaseUnits": 12}],
        },
    )
    t0 = time.monotonic()
    key = str(order["PurchaseOrderID"])
    print(f"+ 0.0 s  order {order.get('OrderNumber')} created in Exact division {DIVISION} (sandbox)")

    def stored() -> bool:
        with session_scope(engine) as session:
            return (
                session.scalar(select(WebhookNotification.id).where(WebhookNotification.entity_key == key)) is not None
            )

    _wait("the webhook notification", stored, timeout=30)
    print(
        f"+{time.monotonic() - t0:4.1f} s  the sandbox POSTed a signed notification; the receiver verified its "
        "HashCode and stored it (then answered 200)"
    )

    async def first_event() -> Any:
        gen = ExactNotificationTrigger(tenant=TENANT, division=DIVISION, poll_interval=0.5).run()
        try:
            return await asyncio.wait_for(gen.__anext__(), timeout=30)
        finally:
            await gen.aclose()

    event = asyncio.run(first_event())
    print(
        f"+{time.monotonic() - t0:4.1f} s  the asset watcher's trigger (the one Airflow's triggerer runs) made an "
        f"event of {asset_uri(TENANT, DIVISION)}: {event.payload['notifications']} notification(s)"
    )

    log = Path(log_dir) / "po_push_webhook.log"
    print(
        f"         the PO-push run: started here with 'airflow dags test {DAG}' (no scheduler in the demo; deployed, "
        "the scheduler starts it on that asset event, for that division only, reading the same cursor)"
    )
    with open(log, "wb") as out:
        rc = subprocess.run(
            ["airflow", "dags", "test", DAG, "-c", "{}"], stdout=out, stderr=subprocess.STDOUT
        ).returncode
    if rc != 0:
        print(f"demo: the PO-push run failed (log: {log}); last lines:", file=sys.stderr)
        print("\n".join(log.read_text(errors="replace").splitlines()[-25:]), file=sys.stderr)
        return 1

    with session_scope(engine) as session:
        po_number = session.scalar(
            select(LedgerEntry.target_ref).where(
                LedgerEntry.tenant == TENANT, LedgerEntry.flow == "po_push", LedgerEntry.source_id == key
            )
        )
    pos = _http("GET", f"{jaggaer}/_admin/state")["tenants"][TENANT]["purchase_orders"]
    if not po_number or po_number not in pos:
        print(f"demo: order {key} did not reach JAGGAER (ledger says {po_number!r}; log: {log})", file=sys.stderr)
        return 1
    print(
        f"+{time.monotonic() - t0:4.1f} s  PO {po_number} is in JAGGAER (run log: {log}); no 15-minute schedule waited "
        "for (most of this is 'airflow dags test' starting Airflow)"
    )
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[1] == "serve":
        return serve(int(argv[2]))
    if len(argv) == 5 and argv[1] == "push":
        return push(argv[2], argv[3], argv[4])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    sys.exit(main(sys.argv))
