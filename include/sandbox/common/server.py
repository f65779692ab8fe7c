"""Run sandbox ASGI apps with uvicorn: in a background thread (tests) or in the foreground (``mlc sandbox``)."""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from sandbox.common.faults import ConnectionDropped

log = logging.getLogger(__name__)


class _DropFilter(logging.Filter):
    """Keeps uvicorn's log quiet about connections dropped on purpose by fault injection."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            if isinstance(exc, ConnectionDropped):
                return False
            exc = exc.__cause__ or exc.__context__
        return True


_filter_installed = False


def _install_filter() -> None:
    global _filter_installed
    if not _filter_installed:
        logging.getLogger("uvicorn.error").addFilter(_DropFilter())
        _filter_installed = True


class ServerThread:
    """Runs an ASGI app under uvicorn in a daemon thread.

    ``start()`` binds the socket first (``port=0`` picks a free port), returns the base URL
    (``http://127.0.0.1:<port>``) once the server accepts connections. ``stop()`` shuts it down.
    Usable as a context manager (``with ServerThread(app) as url: ...``).
    """

    def __init__(
        self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning", **kw: Any
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.log_level = log_level
        self.kw = kw
        self.url: str | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._error: BaseException | None = None

    def start(self, timeout: float = 10.0) -> str:
        _install_filter()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(128)
        sock.set_inheritable(True)
        self._sock = sock
        port = sock.getsockname()[1]
        kw = dict(self.kw)
        # The sandboxes stamp ``Date`` from their simulated clock (sandbox.common.date_header); uvicorn's own
        # header would carry the wall clock.
        kw.setdefault("date_header", False)
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=port,
            log_level=self.log_level,
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=2,
            **kw,
        )
        self._server = uvicorn.Server(config)

        def run() -> None:
            try:
                assert self._server is not None
                self._server.run(sockets=[sock])
            except BaseException as exc:  # pragma: no cover - surfaced by start()
                self._error = exc

        self._thread = threading.Thread(target=run, name=f"sandbox-{port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"sandbox server failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("sandbox server did not start in time")
            time.sleep(0.005)
        self.port = port
        self.url = f"http://{self.host}:{port}"
        return self.url

    def stop(self, timeout: float = 5.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def run_servers(apps: list[tuple[str, ASGIApp, int]], host: str = "127.0.0.1") -> None:
    """Start each ``(name, app, port)`` and block until Ctrl-C or SIGTERM, then stop them all."""

    def start(servers: list[ServerThread]) -> None:
        for name, app, port in apps:
            server = ServerThread(app, host=host, port=port, log_level="info")
            url = server.start()
            servers.append(server)
            print(f"{name} sandbox listening on {url}", flush=True)

    serve_until_stopped(start)


def serve_until_stopped(start: Callable[[list[ServerThread]], None]) -> None:
    """Call ``start`` (it starts servers and appends each to the list it is given), block until Ctrl-C or SIGTERM,
    then stop the servers (also those started when ``start`` failed) and restore the signal handlers."""
    stop = threading.Event()
    servers: list[ServerThread] = []

    def _handler(signum: int, frame: Any) -> None:
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, _handler)
    try:
        start(servers)
        while not stop.is_set():
            stop.wait(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for server in reversed(servers):
            server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print("sandboxes stopped", flush=True)
