"""Admin controls: settings, reset, volume seed, state, credentials."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jaggaer_support import INVOICES, JaggaerHandle


def test_settings_read_patch_validate_and_reset(jaggaer_sandbox: JaggaerHandle) -> None:
    defaults = jaggaer_sandbox.admin("GET", "/settings")
    assert defaults["invoice_filter_style"] == "fiql"
    assert defaults["page_size"] == 37  # odd on purpose: no client may assume 50
    assert defaults["token_expires_in"] == 3600
    assert defaults["return_code_type"] == "number"
    assert defaults["retry_after"] is None
    assert defaults["rate_limit_per_minute"] is None
    changed = jaggaer_sandbox.settings(page_size=10, retry_after=5)
    assert (changed["page_size"], changed["retry_after"]) == (10, 5)
    for bad in ({"page_size": 0}, {"no_such_knob": 1}, {"invoice_filter_style": "odata"}):
        r = jaggaer_sandbox.http.post(f"{jaggaer_sandbox.url}/_admin/settings", json=bad, timeout=10)
        assert r.status_code == 400, bad
    jaggaer_sandbox.reset()
    assert jaggaer_sandbox.admin("GET", "/settings") == defaults


def test_reset_can_set_the_clock_and_seed_relative_to_it(jaggaer_sandbox: JaggaerHandle) -> None:
    info = jaggaer_sandbox.reset(now="2027-03-01T09:00:00Z")
    assert info["now"].startswith("2027-03-01T09:00")
    token = jaggaer_sandbox.token()
    headers = jaggaer_sandbox.all_invoice_headers(token)
    stamps = [datetime.fromisoformat(h["lastUpdate"].replace("Z", "+00:00")) for h in headers]
    now = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
    assert all(now - timedelta(days=10) <= s <= now for s in stamps)


def test_reset_empty(jaggaer_sandbox: JaggaerHandle) -> None:
    jaggaer_sandbox.reset(empty=True)
    body = jaggaer_sandbox.get(INVOICES, jaggaer_sandbox.token()).json()
    assert (body["returnCode"], body["totRecords"]) == (0, 0)
    assert "jiinvoiceList" not in body


def test_volume_seed(jaggaer_sandbox: JaggaerHandle) -> None:
    result = jaggaer_sandbox.admin("POST", "/seed", json={"invoices": 20000, "vendors": 500})
    assert result["invoices_added"] == 20000
    assert result["vendors_added"] == 500
    assert result["total_invoices"] == 20068
    token = jaggaer_sandbox.token()
    body = jaggaer_sandbox.get(INVOICES, token).json()
    assert body["totRecords"] == 20068
    last = jaggaer_sandbox.get(INVOICES, token, start=20051).json()
    assert last["returnedRecords"] == 18
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    lo, hi = today - timedelta(days=1), today
    flt = f"lastUpdate=ge={lo:%Y-%m-%dT%H:%M:%S}.000Z;lastUpdate=lt={hi:%Y-%m-%dT%H:%M:%S}.000Z"
    day = jaggaer_sandbox.get(INVOICES, token, flt=flt).json()["totRecords"]
    assert 1500 <= day <= 2600  # ~1/10 of the volume per day
    # the newest documents come from the volume vendors
    newest = jaggaer_sandbox.get(f"{INVOICES}/{last['jiinvoiceList']['jiinvoice'][-1]['header']['invoiceId']}", token)
    assert newest.json()["header"]["supplier"]["name"].startswith("Volume Supplier")


def test_volume_seed_rejects_bad_params(jaggaer_sandbox: JaggaerHandle) -> None:
    for bad in ({"invoices": -1}, {"bogus": 1}, {"tenant": "nobody"}, {"invoices": "many"}):
        r = jaggaer_sandbox.http.post(f"{jaggaer_sandbox.url}/_admin/seed", json=bad, timeout=10)
        assert r.status_code == 400, bad


def test_state_and_credentials(jaggaer_sandbox: JaggaerHandle) -> None:
    state = jaggaer_sandbox.state()
    assert set(state["tenants"]) == {"demo", "acme"}
    assert state["tenants"]["demo"]["counts"] == {
        "suppliers": 66,
        "invoices": 68,
        "purchase_orders": 0,
        "purchase_orders_open": 0,
        "supplier_sync_records": 0,
    }
    assert state["settings"]["page_size"] == 37
    assert "now" in state["clock"]
    creds = jaggaer_sandbox.admin("GET", "/credentials")
    assert creds["demo"] == {
        "client_id": "mlc-demo",
        "client_secret": "mlc-demo-secret",
        "identity": "MLCDEMO",
        "shared_secret": "mlc-demo-xml-secret",
        "business_units": ["UK-MFG", "UK-SVC"],
    }
    assert creds["acme"]["client_id"] == "acme-client"
    summaries = jaggaer_sandbox.admin("GET", "/invoices")
    assert len(summaries) == 68
    assert len(jaggaer_sandbox.admin("GET", "/invoices", params={"tenant": "acme"})) == 6
    assert len(jaggaer_sandbox.admin("GET", "/suppliers")) == 66
