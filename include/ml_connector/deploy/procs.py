"""Processes of a local deployment (``make cluster``), found and stopped reliably on Linux (``/proc``).

A process is identified by its id *and* its kernel start time, so an id the kernel reused for someone else is never
signalled. Components run in sessions of their own; Celery and Airflow rename their processes (setproctitle), which
also hides their environment, so :func:`process_tree` finds a component's processes by session and parentage.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path


def start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (to tell our process from a later one that reused its id)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def process_alive(pid: int, start_time: str | None) -> bool:
    """``pid`` is still the process that started at ``start_time`` and has not exited (a zombie has: it only waits
    to be reaped by its parent, here often PID 1, which may take a while)."""
    st = stat(pid)
    return st is not None and st[19] == start_time and st[0] != "Z"


def stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (state, ppid, pgrp, session, ...)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def all_pids() -> list[int]:
    return [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()]


def process_tree(pid: int, start_time: str | None = None) -> list[int]:
    """``pid``, every process of its session (each component leads a session of its own) and every descendant.

    Celery and Airflow rename their processes (setproctitle), which also hides their environment, so a process is
    found by where it comes from rather than by ``MLC_CLUSTER_ID`` alone. With ``start_time``, ``pid`` itself (and
    what descends from it) counts only while it is still that process, not a later one that reused the id; the
    session id is safe either way (the kernel does not reuse an id while a session still carries it)."""
    stats = {p: st for p in all_pids() if (st := stat(p)) is not None and st[0] != "Z"}
    same = pid in stats and (start_time is None or stats[pid][19] == start_time)
    found = {pid} if same else set()
    found |= {p for p, st in stats.items() if int(st[3]) == pid}  # same session (pid leads it)
    grew = True
    while grew:  # descendants that left the session
        more = {p for p, st in stats.items() if int(st[1]) in found and p not in found}
        found |= more
        grew = bool(more)
    return sorted(found)


def processes_with(marker: dict[str, str]) -> list[int]:
    """Ids of the processes whose environment holds every ``marker`` variable (``MLC_CLUSTER_ID`` ...)."""
    wanted = {f"{k}={v}".encode() for k, v in marker.items()}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = set((entry / "environ").read_bytes().split(b"\0"))
        except OSError:
            continue
        if wanted <= environ:
            found.append(int(entry.name))
    return found


def tail(path: str | Path, lines: int = 30) -> str:
    try:
        return "\n".join(Path(path).read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
