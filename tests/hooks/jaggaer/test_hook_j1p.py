"""JaggaerHook against the JAGGAER sandbox over real HTTP: J1P invoices, company profiles, tokens, 429s."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from ml_connector.errors import ConfigError, RejectedError, TokenChainBroken, TransientError
from ml_connector.jaggaer import hook as hook_module

TOKEN_ENDPOINT = "POST /auth/realms/J1p-integrations/protocol/openid-connect/token"
INVOICES_ENDPOINT = "GET /j1p/api/public/ji/v1/invoices"

WIDE = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def _admin_ids(jag, tenant="demo", lo=None, hi=None) -> list[int]:
    rows = jag.admin("GET", f"invoices?tenant={tenant}")
    out = []
    for row in rows:
        ts = datetime.fromisoformat(row["lastUpdate"].replace("Z", "+00:00"))
        if (lo is None or ts >= lo) and (hi is None or ts < hi):
            out.append(row["invoiceId"])
    return sorted(out)


@pytest.mark.parametrize("style,via", [("fiql", "default"), ("params", "extra"), ("params", "argument")])
def test_paging_odd_page_size_both_filter_styles(jag, style, via):
    jag.settings(page_size=7, invoice_filter_style=style)
    now = datetime.now(UTC)
    lo, hi = now - timedelta(days=6), now
    expected = _admin_ids(jag, lo=lo, hi=hi)
    assert len(expected) > 14  # several pages
    if via == "extra":
        hook = jag.hook(conn={"filter_style": style})
    elif via == "argument":
        hook = jag.hook(filter_style=style)
    else:
        hook = jag.hook()
    jag.clear_calls()
    headers = list(hook.iter_invoices(lo, hi))
    assert [h["invoiceId"] for h in headers] == expected
    assert jag.count(INVOICES_ENDPOINT) == math.ceil(len(expected) / 7)
    assert hook.call_count == jag.calls()["total"]  # every request counted (token + pages)
    assert all("lastUpdate" in h and "total" in h for h in headers)


def test_all_invoices_exact_multiple_of_page_size(jag):
    total = len(_admin_ids(jag))
    jag.settings(page_size=total // 2 if total % 2 == 0 else total)
    hook = jag.hook()
    assert [h["invoiceId"] for h in hook.iter_invoices(*WIDE)] == _admin_ids(jag)


@pytest.mark.parametrize("empty_list_key", ["omit", "empty"])
def test_empty_window(jag, empty_list_key):
    jag.settings(empty_list_key=empty_list_key)
    hook = jag.hook()
    jag.clear_calls()
    assert list(hook.iter_invoices(datetime(2001, 1, 1, tzinfo=UTC), datetime(2001, 1, 2, tzinfo=UTC))) == []
    assert jag.count(INVOICES_ENDPOINT) == 1


def test_wrong_filter_style_is_a_rejection(jag):
    """HTTP 200 with returnCode != 0 (the sandbox refuses the other style's parameters) ⇒ RejectedError."""
    jag.settings(invoice_filter_style="params")
    with pytest.raises(RejectedError, match="flt") as info:
        list(jag.hook().iter_invoices(*WIDE))
    assert info.value.status == 200


@pytest.mark.parametrize("rc_type", ["number", "string"])
@pytest.mark.parametrize("success_code", [0, 1])
def test_return_code_variants(jag, rc_type, success_code):
    jag.settings(return_code_type=rc_type, success_return_code=success_code, page_size=20)
    hook = jag.hook()
    headers = list(hook.iter_invoices(*WIDE))
    assert len(headers) == len(_admin_ids(jag))
    detail = hook.get_invoice(headers[0]["invoiceId"])
    assert detail["header"]["invoiceId"] == headers[0]["invoiceId"]
    assert detail["lineList"]["invoiceLine"]
    assert "returnCode" not in detail
    with pytest.raises(RejectedError, match="not found"):
        hook.get_invoice(1)


def test_warning_codes_are_configurable(jag):
    jag.settings(success_return_code=1, return_code_type="string")
    hook = jag.hook(conn={"warning_return_codes": []})
    with pytest.raises(RejectedError, match="returnCode 1"):
        list(hook.iter_invoices(*WIDE))


def test_invoice_money_is_decimal(jag):
    from decimal import Decimal

    from ml_connector.jaggaer import j1p

    hook = jag.hook()
    first = next(hook.iter_invoices(*WIDE))
    detail = j1p.normalize_invoice(hook.get_invoice(str(first["invoiceId"])))
    assert isinstance(detail["header"]["total"]["value"], Decimal)
    assert isinstance(detail["header"]["nonPOInvoice"], bool)
    lines = detail["lines"]
    net = sum(line["extendedPrice"] for line in lines)
    h = detail["header"]
    assert (
        net + h["taxCharge1"] + h["taxCharge2"] + h["shippingCharge"] + h["handlingCharge"] - h["discountAmount"]
        == h["total"]["value"]
    )


# ---------------------------------------------------------------------------------------------------------------
# tokens


def test_token_cached_per_connection_across_hooks(jag):
    jag.hook().get_invoice(_admin_ids(jag)[0])
    jag.hook().get_invoice(_admin_ids(jag)[0])
    assert jag.count(TOKEN_ENDPOINT) == 1


def test_token_renewed_before_expiry(jag):
    jag.settings(token_expires_in=120)
    hook = jag.hook()
    invoice = _admin_ids(jag)[0]
    hook.get_invoice(invoice)
    jag.advance_clock(95)
    jag.clock.advance(95)  # inside the 30 s margin: renewed before the call, no 401
    hook.get_invoice(invoice)
    assert jag.count(TOKEN_ENDPOINT) == 2
    assert jag.count("GET /j1p/api/public/ji/v1/invoices/{invoice_id}", status=401) == 0


@pytest.mark.parametrize("broken", [False, True])
def test_token_renewed_once_after_401(jag, broken):
    jag.settings(broken_401=broken)
    hook = jag.hook()
    invoice = _admin_ids(jag)[0]
    hook.get_invoice(invoice)
    jag.admin("DELETE", "tokens")  # JAGGAER forgot the token (or it expired on its clock only)
    assert hook.get_invoice(invoice)["header"]["invoiceId"] == invoice
    detail_endpoint = "GET /j1p/api/public/ji/v1/invoices/{invoice_id}"
    assert jag.count(detail_endpoint, status=401) == 1
    assert jag.count(TOKEN_ENDPOINT) == 2


def test_token_expired_on_server_clock_only(jag):
    jag.settings(token_expires_in=60)
    hook = jag.hook()
    hook.get_invoice(_admin_ids(jag)[0])
    jag.advance_clock(3600)  # the hook's clock did not move: it learns from the 401
    hook.get_invoice(_admin_ids(jag)[0])
    assert jag.count(TOKEN_ENDPOINT) == 2


@pytest.mark.parametrize("broken", [False, True])
def test_persistent_401_breaks_the_chain(jag, broken):
    headers = {"content-type": "; charset=UTF-8"} if broken else {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    jag.fault(path="/ji/v1/invoices", status=401, count=2, body="not allowed", headers=headers)
    with pytest.raises(TokenChainBroken, match="freshly issued"):
        list(jag.hook().iter_invoices(*WIDE))
    assert jag.count(TOKEN_ENDPOINT) == 2


def test_bad_credentials(jag):
    hook = jag.hook(conn={"password": "wrong-secret-value"})
    with pytest.raises(TokenChainBroken) as info:
        list(hook.iter_invoices(*WIDE))
    assert "client id/secret refused by JAGGAER" in info.value.reason
    assert "invalid_client" in info.value.reason
    assert "jaggaer_test_demo" in info.value.how_to_fix
    assert "wrong-secret-value" not in str(info.value)
    assert jag.count(TOKEN_ENDPOINT) == 1  # refused credentials are not retried


def test_refused_credentials_fail_fast_with_a_jaggaer_alert(jag, monkeypatch):
    """Review finding: a JAGGAER credential failure was alerted (and failed the task) as "Exact Online must be
    reconnected". The error carries its system; fail_fast and the alert name JAGGAER and the connection."""
    from ml_connector import alerts
    from ml_connector.config import load_tenants
    from ml_connector.flows import runtime

    sent: list[tuple[str, str]] = []
    monkeypatch.setattr(alerts, "send_alert", lambda tenant, subject, body: sent.append((subject, body)))
    tenant = load_tenants()["demo"]
    hook = jag.hook(conn={"password": "wrong-secret-value"})
    with pytest.raises(TokenChainBroken) as info, runtime.fail_fast(tenant):
        list(hook.iter_invoices(*WIDE))
    failure = info.value
    assert type(failure).__name__ == "TokenChainFailure"  # AirflowFailException and TokenChainBroken
    assert (failure.system, failure.conn_id, failure.alerted) == ("jaggaer", "jaggaer_test_demo", True)
    assert str(failure).startswith("JAGGAER refused the credentials of connection 'jaggaer_test_demo'")
    assert "Exact" not in str(failure) and "wrong-secret-value" not in str(failure)
    [(subject, body)] = sent
    assert "JAGGAER" in subject and "jaggaer_test_demo" in subject and "Exact Online" not in subject
    assert "invalid_client" in body and "wrong-secret-value" not in body

    sent.clear()
    alerts.failure_callback("demo")({"exception": failure, "ti": None, "run_id": "r"})
    assert sent == []  # alerted once, when it happened

    # Exact keeps its wording
    with pytest.raises(TokenChainBroken) as exact, runtime.fail_fast(tenant):
        raise TokenChainBroken("demo", "Exact refused the refresh token (invalid_grant); the chain is dead")
    assert exact.value.system == "exact" and str(exact.value).startswith("Exact token chain broken")
    assert "Exact Online must be reconnected" in sent[0][0] and "mlc exact connect --tenant demo" in sent[0][1]


def test_token_and_secrets_are_masked(jag):
    from airflow.sdk.log import _secrets_masker

    hook = jag.hook()
    hook.get_invoice(_admin_ids(jag)[0])
    token = next(iter(hook_module._TOKENS.values())).value
    masked = _secrets_masker().redact(f"a {token} b mlc-demo-xml-secret c mlc-demo-secret")
    assert token not in masked and "mlc-demo-xml-secret" not in masked and "mlc-demo-secret" not in masked
    assert "mlc-demo-secret" not in repr(hook.config)


def test_missing_settings_are_config_errors(jag):
    hook = jag.hook(conn={"host": "", "login": ""})
    with pytest.raises(ConfigError) as info:
        hook.get_invoice(1)
    assert any("host" in p for p in info.value.problems) and any("client id" in p for p in info.value.problems)


# ---------------------------------------------------------------------------------------------------------------
# rate limits and outages


def test_429_with_retry_after(jag):
    jag.settings(retry_after=3)
    jag.fault(path="/ji/v1/invoices$", action="rate_limit", count=2)
    hook = jag.hook()
    assert list(hook.iter_invoices(*WIDE))
    assert jag.sleeps == [3.0, 3.0]
    assert jag.count(INVOICES_ENDPOINT, status=429) == 2


def test_429_without_retry_after_backs_off_with_jitter(jag):
    jag.fault(path="/ji/v1/invoices$", action="rate_limit", count=3)
    hook = jag.hook()
    assert list(hook.iter_invoices(*WIDE))
    assert len(jag.sleeps) == 3
    caps = [hook.policy.base_delay * 2**i for i in range(3)]
    assert all(0 <= s <= cap for s, cap in zip(jag.sleeps, caps, strict=True))
    assert jag.count(INVOICES_ENDPOINT, status=429) == 3


def test_429_that_never_ends_is_transient(jag):
    jag.fault(path="/ji/v1/invoices$", action="rate_limit", count=None)
    with pytest.raises(TransientError, match="rate limited"):
        list(jag.hook().iter_invoices(*WIDE))
    assert len(jag.sleeps) == 5


def test_real_rate_limit_per_minute(jag):
    """The sandbox's own per-minute limit; the hook waits Retry-After (the recorder moves the sandbox clock)."""
    from ml_connector.http import RetryPolicy

    jag.settings(rate_limit_per_minute=2, retry_after=30)

    def sleep(seconds: float) -> None:
        jag.sleeps.append(seconds)
        jag.advance_clock(seconds)

    hook = jag.hook(sleep=sleep, policy=RetryPolicy(max_429_wait=65))
    ids = _admin_ids(jag)[:3]
    for invoice_id in ids:
        assert hook.get_invoice(invoice_id)["header"]["invoiceId"] == invoice_id
    assert jag.sleeps in ([30.0], [30.0, 30.0])
    assert jag.count("GET /j1p/api/public/ji/v1/invoices/{invoice_id}", status=429) == len(jag.sleeps)


def test_5xx_reads_are_retried(jag):
    jag.fault(path="/ji/v1/invoices$", status=503, count=2)
    assert list(jag.hook().iter_invoices(*WIDE))
    assert len(jag.sleeps) == 2


def test_maintenance_page_is_transient(jag):
    jag.fault(path="/ji/v1/invoices$", action="html_maintenance", count=1)
    with pytest.raises(TransientError, match="not JSON"):
        list(jag.hook().iter_invoices(*WIDE))


# ---------------------------------------------------------------------------------------------------------------
# company profiles and tenants


def test_find_company(jag):
    hook = jag.hook()
    company = hook.find_company("1001")
    assert company is not None and company["extCode"] == "1001" and company["companyName"]
    assert hook.find_company("does-not-exist") is None
    with pytest.raises(ValueError, match="FIQL"):
        hook.find_company("odd;value")  # would be a different filter
    assert hook.find_company("A100") is None  # acme's supplier is invisible to demo


def test_tenant_isolation(jag):
    demo, acme = jag.hook("demo"), jag.hook("acme")
    demo_ids = [h["invoiceId"] for h in demo.iter_invoices(*WIDE)]
    acme_ids = [h["invoiceId"] for h in acme.iter_invoices(*WIDE)]
    assert demo_ids == _admin_ids(jag, "demo") and acme_ids == _admin_ids(jag, "acme")
    assert not set(demo_ids) & set(acme_ids)
    assert acme.find_company("A100") is not None
    with pytest.raises(RejectedError, match="not found"):
        acme.get_invoice(demo_ids[0])
    assert jag.count(TOKEN_ENDPOINT) == 2  # one token per connection
    assert len(hook_module._TOKENS) == 2
