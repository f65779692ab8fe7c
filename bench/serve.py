"""One sandbox in a process of its own, for the benchmarks: ``python -m bench.serve exact|jaggaer [--port 0]``.

The connector under test runs in the bench's main process; the sandboxes run here, so the connector's memory and
CPU figures are its own (on two cores, a sandbox sharing the connector's interpreter would also share its GIL).

The app is wrapped in a :class:`Recorder`: for every API request (everything but ``/_admin`` and ``/_bench``) it
keeps start and end time, method, path, status and the Exact rate-limit headers of the answer. ``GET
/_bench/requests`` returns them (``DELETE`` clears them); ``GET /_bench/memory`` the process's RSS and peak RSS.
The benchmarks read 429s, calls per rate-limit window and server-side latency from there: the sandbox's own call
log keeps only the last 500 calls and does not split by status.

On start the process prints one JSON line, ``{"url": ..., "started_s": ...}``, and then serves until stdin closes
or it gets SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

T0 = time.perf_counter()

_RATE_HEADERS = {
    b"x-ratelimit-minutely-remaining": "min_remaining",
    b"x-ratelimit-minutely-reset": "min_reset",
    b"x-ratelimit-minutely-limit": "min_limit",
    b"x-ratelimit-remaining": "day_remaining",
}


class Recorder:
    """Pure ASGI middleware: one row per API request (see the module docstring)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.rows: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/_bench"):
            await self._bench(scope, receive, send)
            return
        if path.startswith("/_admin"):
            await self.app(scope, receive, send)
            return
        row: dict[str, Any] = {"t0": time.time(), "method": scope["method"], "path": path, "status": None}

        async def wrapped(message: Any) -> None:
            if message["type"] == "http.response.start":
                row["status"] = message["status"]
                for name, value in message.get("headers") or []:
                    key = _RATE_HEADERS.get(name.lower())
                    if key is not None:
                        row[key] = int(float(value.decode("latin-1") or 0))
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                row["t1"] = time.time()
            await send(message)

        try:
            await self.app(scope, receive, wrapped)
        finally:
            row.setdefault("t1", time.time())
            with self.lock:
                self.rows.append(row)

    async def _bench(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/_bench/memory":
            body = json.dumps(memory()).encode()
        elif scope["method"] == "DELETE":
            with self.lock:
                self.rows = []
            body = b'{"ok": true}'
        else:
            with self.lock:
                body = json.dumps(self.rows).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


def memory() -> dict[str, float]:
    """``{"rss_mb", "peak_rss_mb"}`` of this process (from /proc; zeros elsewhere)."""
    out = {"rss_mb": 0.0, "peak_rss_mb": 0.0}
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    out["rss_mb"] = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    out["peak_rss_mb"] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out


def build(kind: str) -> Any:
    if kind == "exact":
        from sandbox.exact.app import ExactSandbox

        return ExactSandbox().app
    if kind == "jaggaer":
        from sandbox.jaggaer import create_app

        return create_app()
    raise SystemExit(f"unknown sandbox {kind!r} (exact | jaggaer)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["exact", "jaggaer"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    from sandbox.common.server import ServerThread

    server = ServerThread(Recorder(build(args.kind)), host=args.host, port=args.port)
    url = server.start()
    print(json.dumps({"url": url, "started_s": round(time.perf_counter() - T0, 4)}), flush=True)
    try:
        sys.stdin.read()  # the parent closes our stdin (or dies) to stop us
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
