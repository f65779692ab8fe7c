"""Measuring: machine facts, wall time, peak RSS, tracemalloc, percentiles. Standard library only."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import subprocess
import threading
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------------- machine
def _meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    with contextlib.suppress(OSError), open("/proc/meminfo", encoding="ascii") as fh:
        for line in fh:
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                out[name] = int(parts[0])  # kB
    return out


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_snapshot() -> dict[str, Any]:
    """What can change during a run: time, load average, available memory."""
    mem = _meminfo()
    return {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average": load_average(),
        "mem_available_mb": round(mem.get("MemAvailable", 0) / 1024),
    }


def machine_facts() -> dict[str, Any]:
    mem = _meminfo()
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    return {
        "nproc": usable,
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "mem_total_mb": round(mem.get("MemTotal", 0) / 1024),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "hostname_shared": True,  # the bench machine is shared with other engineers (see docs/benchmarks.md)
    }


def git_info() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    status = [line for line in git("status", "--porcelain").splitlines() if line.strip()]
    return {
        "commit": git("rev-parse", "HEAD"),
        "short": git("rev-parse", "--short", "HEAD"),
        "subject": git("log", "-1", "--format=%s")[:120],
        "dirty_files": len(status),
        "dirty_paths": [line[3:] for line in status[:30]],
    }


# --------------------------------------------------------------------------------------------------- memory
def _status_kb(field_name: str, pid: int | str = "self") -> int | None:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return None


def rss_mb(pid: int | str = "self") -> float:
    kb = _status_kb("VmRSS", pid)
    return round(kb / 1024, 1) if kb is not None else 0.0


def peak_rss_mb(pid: int | str = "self") -> float:
    kb = _status_kb("VmHWM", pid)
    if kb is None and pid == "self":
        import resource

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round((kb or 0) / 1024, 1)


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (Linux ``clear_refs`` 5). False when the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class RssSampler:
    """Fallback peak RSS where ``clear_refs`` is unavailable: samples VmRSS every 20 ms in a thread."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb())
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


@dataclass
class Measured:
    """What :func:`measure` found; filled in when the block ends."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    rss_start_mb: float = 0.0
    rss_peak_mb: float = 0.0
    rss_method: str = ""
    tracemalloc_peak_mb: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = {
            "wall_s": round(self.wall_s, 3),
            "cpu_s": round(self.cpu_s, 3),
            "rss_start_mb": self.rss_start_mb,
            "rss_peak_mb": self.rss_peak_mb,
            "rss_growth_mb": round(self.rss_peak_mb - self.rss_start_mb, 1),
            "rss_method": self.rss_method,
        }
        if self.tracemalloc_peak_mb is not None:
            out["tracemalloc_peak_mb"] = self.tracemalloc_peak_mb
        return out


@contextlib.contextmanager
def measure(*, trace: bool = False) -> Iterator[Measured]:
    """Wall and CPU time (this process), peak RSS during the block and, with ``trace``, tracemalloc's peak.

    tracemalloc slows allocation-heavy Python code down noticeably: wall times measured with ``trace`` are not
    comparable with the others and the reports say so.
    """
    m = Measured(rss_start_mb=rss_mb())
    exact_peak = reset_peak_rss()
    m.rss_method = "VmHWM (reset at start)" if exact_peak else "VmRSS sampled every 20 ms"
    sampler = contextlib.nullcontext() if exact_peak else RssSampler()
    if trace:
        tracemalloc.start()
        tracemalloc.reset_peak()
    cpu0, t0 = time.process_time(), time.perf_counter()
    try:
        with sampler as s:
            yield m
    finally:
        m.wall_s = time.perf_counter() - t0
        m.cpu_s = time.process_time() - cpu0
        if trace:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            m.tracemalloc_peak_mb = round(peak / 1024 / 1024, 1)
        m.rss_peak_mb = peak_rss_mb() if exact_peak else round(getattr(s, "peak", 0.0), 1)


# --------------------------------------------------------------------------------------------------- stats
def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in 0..100) of ``values``; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(rank), math.ceil(rank)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def latency_summary(seconds: Sequence[float]) -> dict[str, Any]:
    """p50/p95/max in milliseconds and the sample count."""
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 1),
        "p95_ms": round(percentile(ms, 95), 1),
        "max_ms": round(max(ms), 1) if ms else 0.0,
    }
