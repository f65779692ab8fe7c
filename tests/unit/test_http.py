"""The shared HTTP rules: reads retried with jitter, writes never re-sent, 429 waits, one audit row per write."""

from __future__ import annotations

import json
import random

import pytest
import requests

from ml_connector.errors import AmbiguousWriteError, RateBudgetExhausted, TransientError
from ml_connector.http import AuditContext, AuditEvent, RetryPolicy, backoff_delay, send


class FakeSession(requests.Session):
    """Answers from a script: each item is a status code, (status, body) or an exception instance."""

    def __init__(self, script):
        super().__init__()
        self.script = list(script)
        self.calls = 0

    def request(self, method, url, **kwargs):
        self.calls += 1
        assert "timeout" in kwargs  # every call has one
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        status, body = item if isinstance(item, tuple) else (item, "")
        response = requests.Response()
        response.status_code = status
        response._content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        response.headers["Content-Type"] = "text/plain" if isinstance(body, str) else "application/json"
        response.url = url
        return response


class Sink:
    def __init__(self):
        self.events: list[AuditEvent] = []

    def record(self, event: AuditEvent) -> None:
        self.events.append(event)


POLICY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)
CTX = AuditContext(tenant="demo", flow="invoice_poll", action="post_entry", source_id="42", attempt=3)


def test_full_jitter_stays_within_the_exponential_cap() -> None:
    rng = random.Random(1)
    policy = RetryPolicy(base_delay=1, max_delay=10)
    for attempt in range(8):
        delays = [backoff_delay(attempt, policy, rng) for _ in range(200)]
        cap = min(10, 2**attempt)
        assert all(0 <= d <= cap for d in delays)
        assert max(delays) > cap * 0.8  # spread over the whole range, not a fixed step


def test_reads_are_retried_on_network_errors_and_5xx() -> None:
    session = FakeSession([requests.ConnectionError("reset"), 503, (200, {"ok": True})])
    sleeps: list[float] = []
    response = send(session, "GET", "http://x/a", write=False, policy=POLICY, sleep=sleeps.append)
    assert response.status_code == 200 and session.calls == 3 and len(sleeps) == 2


def test_reads_give_up_with_a_transient_error() -> None:
    session = FakeSession([requests.Timeout()] * 4)
    with pytest.raises(TransientError, match="after 4 attempts"):
        send(session, "GET", "http://x/a?token=SECRET", write=False, policy=POLICY, sleep=lambda s: None)


def test_a_500_with_an_error_body_is_an_answer_to_a_write_and_an_outage_to_a_read() -> None:
    """Exact answers validation errors of a POST as HTTP 500 with an error body: the write is not resent. A read
    has no validation to fail: its 500 is an outage, retried like any 5xx (issue: retries stay for 5xx)."""
    body = {"error": {"code": "", "message": {"lang": "", "value": "Mandatory: Diary"}}}
    session = FakeSession([(500, body)])
    response = send(session, "POST", "http://x/a", write=True, policy=POLICY, sleep=lambda s: None)
    assert response.status_code == 500 and session.calls == 1
    session = FakeSession([(500, body), (200, {"d": {"results": []}})])
    response = send(session, "GET", "http://x/a", write=False, policy=POLICY, sleep=lambda s: None)
    assert response.status_code == 200 and session.calls == 2


def test_a_write_is_never_resent_and_its_ambiguity_is_audited() -> None:
    sink = Sink()
    session = FakeSession([requests.exceptions.ChunkedEncodingError("dropped")])
    with pytest.raises(AmbiguousWriteError, match="may have been applied"):
        send(session, "POST", "http://x/e?x=1", write=True, policy=POLICY, audit=sink, audit_ctx=CTX)
    assert session.calls == 1
    (event,) = sink.events
    assert (event.outcome, event.status, event.url, event.attempt) == ("ambiguous", None, "http://x/e", 3)


def test_a_rejected_write_is_returned_once_with_its_target_in_the_audit() -> None:
    sink = Sink()
    session = FakeSession([(201, {"d": {"EntryID": "abc"}})])
    send(
        session,
        "POST",
        "http://x/e",
        write=True,
        policy=POLICY,
        audit=sink,
        audit_ctx=CTX,
        describe=lambda r: ("ok", "created", r.json()["d"]["EntryID"]),
    )
    assert sink.events[0].target_id == "abc"
    session = FakeSession([(400, "bad")])
    assert send(session, "POST", "http://x/e", write=True, policy=POLICY).status_code == 400
    assert session.calls == 1


def test_429_waits_as_told_then_goes_on_bounded() -> None:
    sleeps: list[float] = []
    session = FakeSession([429, 429, (200, {})])
    response = send(
        session,
        "POST",
        "http://x/e",
        write=True,
        policy=RetryPolicy(max_429_wait=5),
        on_429=lambda r, n: 1000.0 if n == 1 else 0.5,
        sleep=sleeps.append,
    )
    assert response.status_code == 200
    assert sleeps == [5, 0.5]  # a reset far in the future is never slept in full


def test_a_429_whose_wait_gives_up_is_audited_before_the_error_leaves() -> None:
    """Review finding: a write answered 429 when ``on_429`` raises (the daily budget is spent) left no audit row."""
    sink = Sink()

    def budget_spent(response: requests.Response, n: int) -> float:
        raise RateBudgetExhausted("daily budget of division 1 spent")

    session = FakeSession([429])
    with pytest.raises(RateBudgetExhausted):
        send(session, "POST", "http://x/e", write=True, policy=POLICY, on_429=budget_spent, audit=sink, audit_ctx=CTX)
    (event,) = sink.events
    assert (event.status, event.outcome, event.source_id) == (429, "rate_limited", "42")
    assert "daily budget" in event.message and session.calls == 1


def test_a_write_about_several_records_is_audited_once_per_record() -> None:
    sink = Sink()
    ctx = AuditContext(
        tenant="demo",
        flow="po_push",
        action="supplier_upsert",
        subjects=(("guid-1", "1005", "1005"), ("guid-2", "1006", "1006")),
    )
    session = FakeSession([429, (200, "<ok/>")])
    send(session, "POST", "http://x/s", write=True, policy=POLICY, on_429=lambda r, n: 0, audit=sink, audit_ctx=ctx)
    got = [(e.source_id, e.source_ref, e.target_ref, e.status, e.outcome, e.attempt) for e in sink.events]
    assert got == [
        ("guid-1", "1005", "1005", 429, "rate_limited", 1),
        ("guid-2", "1006", "1006", 429, "rate_limited", 1),
        ("guid-1", "1005", "1005", 200, "ok", 2),
        ("guid-2", "1006", "1006", 200, "ok", 2),
    ]
