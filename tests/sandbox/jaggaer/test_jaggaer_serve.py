"""``serve()`` / ``python -m sandbox``: URLs and credentials printed, clean stop on SIGTERM/SIGINT; startup time."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import requests

from sandbox.common.server import ServerThread
from sandbox.jaggaer import create_app

TOKEN_PATH = "/auth/realms/J1p-integrations/protocol/openid-connect/token"


class Proc:
    """A child process whose combined output is read line by line in the background."""

    def __init__(self, args: list[str]) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.p = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def read_until(self, marker: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.output.append(line)
            if marker in line:
                return "".join(self.output)
        raise AssertionError(f"{marker!r} not seen; output so far:\n{''.join(self.output)}")

    def stop(self, sig: int, timeout: float = 10.0) -> int:
        self.p.send_signal(sig)
        try:
            return self.p.wait(timeout)
        finally:
            if self.p.poll() is None:
                self.p.kill()
                self.p.wait(5)

    def rest(self) -> str:
        while True:
            try:
                line = self.lines.get(timeout=2)
            except queue.Empty:
                break
            if line is None:
                break
            self.output.append(line)
        return "".join(self.output)


def _url(label: str, text: str) -> str:
    m = re.search(rf"{label}\s+(http://\S+)", text)
    assert m, text
    return m.group(1)


def test_serve_starts_both_prints_credentials_and_stops_on_sigterm() -> None:
    t0 = time.monotonic()
    proc = Proc([sys.executable, "-c", "from sandbox.cli import serve; serve(0, 0)"])
    try:
        out = proc.read_until("Press Ctrl-C", timeout=30)
        elapsed = time.monotonic() - t0
        exact_url = _url("Exact Online sandbox", out)
        jaggaer_url = _url("JAGGAER sandbox", out)
        for needle in ("mlc-demo", "mlc-demo-secret", "MLCDEMO", "mlc-demo-xml-secret", TOKEN_PATH, "acme-client"):
            assert needle in out
        assert "mlc-demo-client" in out  # the Exact sandbox's demo OAuth app
        r = requests.post(
            jaggaer_url + TOKEN_PATH,
            data={"grant_type": "client_credentials", "client_id": "mlc-demo", "client_secret": "mlc-demo-secret"},
            timeout=10,
        )
        assert r.status_code == 200
        assert requests.get(exact_url + "/_admin/clock", timeout=10).status_code == 200
        print(f"serve() banner after {elapsed:.2f}s (interpreter start, imports, both seeds)")
        assert elapsed < 5.0  # ~1 s on an idle machine; generous because the CI box is shared
    finally:
        code = proc.stop(signal.SIGTERM)
    assert code == 0, proc.rest()
    assert "sandboxes stopped" in proc.rest()


def test_python_m_sandbox_jaggaer_only_stops_on_sigint() -> None:
    proc = Proc([sys.executable, "-m", "sandbox", "--jaggaer-only", "--jaggaer-port", "0"])
    try:
        out = proc.read_until("Press Ctrl-C", timeout=30)
        assert "Exact Online sandbox" not in out
        jaggaer_url = _url("JAGGAER sandbox", out)
        assert requests.get(jaggaer_url + "/_admin/credentials", timeout=10).json()["demo"]["identity"] == "MLCDEMO"
    finally:
        code = proc.stop(signal.SIGINT)
    assert code == 0
    assert "sandboxes stopped" in proc.rest()


def test_startup_under_two_seconds() -> None:
    t0 = time.monotonic()
    app = create_app()
    server = ServerThread(app)
    url = server.start()
    try:
        elapsed = time.monotonic() - t0
        assert requests.get(url + "/_admin/clock", timeout=5).status_code == 200
    finally:
        server.stop()
    assert elapsed < 2.0, f"create_app + start took {elapsed:.2f}s"
