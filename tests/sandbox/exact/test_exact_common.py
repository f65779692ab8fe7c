"""The shared sandbox pieces (sandbox.common) the Exact sandbox is built on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import requests

from sandbox.common import demo_company as demo
from sandbox.common.clock import Clock
from sandbox.common.faults import FaultInjector, FaultRule


def test_clock_advance_set_speed_anchors() -> None:
    c = Clock(start=datetime(2026, 1, 1, tzinfo=UTC))
    assert abs(c.time() - datetime(2026, 1, 1, tzinfo=UTC).timestamp()) < 1
    c.advance(3600)
    assert c.now().hour == 1 and c.now().tzinfo is not None
    c.set("2030-06-01T12:00:00Z")
    assert c.now().year == 2030
    c.speed = 1000.0
    t0 = c.time()
    time.sleep(0.05)
    assert c.time() - t0 >= 40  # 50 ms real ≈ 50 s simulated
    a = c.anchors()
    rebuilt = a["sim_epoch"] + (time.time() - a["real_epoch"]) * a["speed"]
    assert abs(rebuilt - c.time()) < 5
    c.speed = 0
    frozen = c.time()
    time.sleep(0.01)
    assert c.time() == frozen


def test_fault_injector_counts_are_exact_under_threads() -> None:
    inj = FaultInjector()
    inj.add(FaultRule(path="x", count=50))
    hits = []

    def worker() -> None:
        for _ in range(20):
            if inj.take("GET", "/x") is not None:
                hits.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(hits) == 50 and inj.list() == []
    inj.add({"method": "POST", "path": "^/a$", "count": None})
    assert inj.take("GET", "/a") is None and inj.take("POST", "/a") is not None
    assert inj.take("POST", "/a") is not None


def test_demo_company_is_deterministic_and_shaped() -> None:
    assert len(demo.SUPPLIERS) == 60 and len(demo.JAGGAER_ONLY_VENDORS) == 6
    assert [s.code for s in demo.SUPPLIERS] == [str(n) for n in range(1001, 1061)]
    assert all(s.vat_number.startswith("GB") or s.vat_number == "" for s in demo.SUPPLIERS)
    assert all(len(s.chamber_of_commerce) == 8 and len(s.duns) == 9 for s in demo.ALL_VENDORS)
    assert not any(v.exact for v in demo.JAGGAER_ONLY_VENDORS)
    assert demo.BUSINESS_UNITS == {"UK-MFG": 111111, "UK-SVC": 222222}
    assert demo.SUPPLIERS[0].account_id(111111) == demo.guid("account", 111111, "1001")
    out = subprocess.run(
        [sys.executable, "-c", "from sandbox.common import demo_company as d; print(d.SUPPLIERS[5])"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == str(demo.SUPPLIERS[5])  # same in another process


def test_run_servers_stops_cleanly_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.exact", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        seen = []
        deadline = time.monotonic() + 15
        line = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            seen.append(line)
            if "listening on http://127.0.0.1:" in line or not line:
                break
        assert "listening on http://127.0.0.1:" in line, seen
        url = line.strip().rsplit(" ", 1)[-1]
        assert requests.get(f"{url}/_admin/clock", timeout=5).status_code == 200
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0 and "stopped" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
