"""The sandboxes as child processes (``bench.serve``) and what the benchmarks ask them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import requests

from bench.measure import REPO, peak_rss_mb, rss_mb


class SandboxProcess:
    """One sandbox in a child process. ``start()`` returns when it accepts connections."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.url = ""
        self.proc: subprocess.Popen[str] | None = None
        self.http = requests.Session()
        self.start_wall_s = 0.0  # spawn → accepting connections (interpreter, imports, default seed, bind)
        self.start_in_process_s = 0.0  # the child's own figure: imports, default seed, bind
        self._pid = 0

    @classmethod
    def attach(cls, kind: str, url: str, pid: int) -> SandboxProcess:
        """A handle on a sandbox another process started (no stopping it from here)."""
        handle = cls(kind)
        handle.url, handle._pid = url, pid
        return handle

    def start(self, timeout: float = 60.0) -> str:
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.serve", self.kind],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError(f"the {self.kind} sandbox did not start (exit code {self.proc.poll()})")
        info = json.loads(line)
        self.start_wall_s = time.perf_counter() - t0
        self.start_in_process_s = float(info["started_s"])
        self.url = info["url"]
        # Wait until a request is answered (the line is printed once uvicorn has started).
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.http.get(f"{self.url}/_bench/memory", timeout=5).raise_for_status()
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        return self.url

    def stop(self) -> None:
        if self.proc is None:
            self.http.close()
            return
        proc, self.proc = self.proc, None
        try:
            if proc.stdin is not None:
                proc.stdin.close()  # the child serves until its stdin closes
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.http.close()

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else self._pid

    def memory(self) -> dict[str, float]:
        if not self.pid:
            return {"rss_mb": 0.0, "peak_rss_mb": 0.0}
        return {"rss_mb": rss_mb(self.pid), "peak_rss_mb": peak_rss_mb(self.pid)}

    # -- admin and recorder ----------------------------------------------------------------------------------
    def admin(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        r = self.http.request(method, f"{self.url}/_admin/{path}", json=body, params=params or None, timeout=600)
        if r.status_code >= 300:
            raise RuntimeError(f"{self.kind} {method} /_admin/{path}: {r.status_code} {r.text[:300]}")
        return r.json() if r.content else None

    def requests(self) -> list[dict[str, Any]]:
        """Every API request since the last :meth:`clear` (see ``bench.serve.Recorder``)."""
        r = self.http.get(f"{self.url}/_bench/requests", timeout=60)
        r.raise_for_status()
        return r.json()

    def clear(self) -> None:
        """Forget the recorded requests and the sandbox's call counts (and peaks in flight)."""
        self.http.delete(f"{self.url}/_bench/requests", timeout=30).raise_for_status()
        self.admin("DELETE", "calls")

    def calls(self) -> dict[str, Any]:
        return self.admin("GET", "calls")

    def __enter__(self) -> SandboxProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def summarise_requests(rows: list[dict[str, Any]], *, token_path: str | None = None) -> dict[str, Any]:
    """Counts by endpoint (ids and divisions folded), statuses, 429s and token calls of recorded requests."""
    by_status: dict[str, int] = {}
    by_endpoint: dict[str, int] = {}
    for row in rows:
        by_status[str(row.get("status"))] = by_status.get(str(row.get("status")), 0) + 1
        key = f"{row['method']} {fold_path(row['path'])}"
        by_endpoint[key] = by_endpoint.get(key, 0) + 1
    out: dict[str, Any] = {
        "total": len(rows),
        "by_endpoint": dict(sorted(by_endpoint.items())),
        "by_status": dict(sorted(by_status.items())),
        "429": by_status.get("429", 0),
    }
    if token_path is not None:
        out["token_calls"] = sum(1 for r in rows if r["path"] == token_path)
    return out


def fold_path(path: str) -> str:
    """``/api/v1/111111/crm/Accounts`` → ``/api/v1/{division}/crm/Accounts``; ids → ``{id}``."""
    parts = path.split("/")
    out = []
    for i, part in enumerate(parts):
        if part.isdigit() and i > 0 and parts[i - 1] == "v1":
            out.append("{division}")
        elif part.isdigit():
            out.append("{id}")
        elif "(guid'" in part:
            out.append(part.split("(", 1)[0] + "(…)")
        else:
            out.append(part)
    return "/".join(out)


def rate_windows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per Exact division: calls counted in each minutely window, from the sandbox's own rate-limit headers.

    ``X-RateLimit-Minutely-Reset`` names the window a call was counted in and ``Limit - Remaining`` how many
    calls that window had used after it, so this is the sandbox's count, not a re-bucketing of timestamps.
    """
    per_div: dict[str, dict[int, int]] = {}
    limits: dict[str, int] = {}
    for row in rows:
        if "min_reset" not in row or row.get("status") == 429:
            continue
        parts = row["path"].split("/")
        division = parts[3] if len(parts) > 3 and parts[2] == "v1" else "?"
        used = int(row.get("min_limit", 0)) - int(row.get("min_remaining", 0))
        windows = per_div.setdefault(division, {})
        windows[int(row["min_reset"])] = max(windows.get(int(row["min_reset"]), 0), used)
        limits[division] = int(row.get("min_limit", 0))
    out: dict[str, Any] = {}
    for division, windows in sorted(per_div.items()):
        counts = list(windows.values())
        limit = limits.get(division) or 0
        out[division] = {
            "windows": len(counts),
            "limit_per_window": limit,
            "max_calls_in_a_window": max(counts) if counts else 0,
            "mean_calls_per_active_window": round(sum(counts) / len(counts), 1) if counts else 0.0,
            "windows_at_limit": sum(1 for c in counts if limit and c >= limit),
        }
    return out
