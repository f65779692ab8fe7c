"""A simulated UTC clock shared by a sandbox's whole state (tokens, rate-limit windows, timestamps).

Simulated time runs at ``speed`` simulated seconds per real second from an anchor pair
``(sim_epoch, real_epoch)``: ``sim = sim_epoch + (real - real_epoch) * speed``. Tests move it with
``advance``/``set`` or compress it with ``speed``; a client process can rebuild the same clock from ``anchors()``.

A clock may be *shared* by several sandboxes (``mlc sandbox`` runs Exact and JAGGAER on one clock, so moving time
moves the whole demo company). Explicit clock operations (``POST /_admin/clock``, a reset that names a time) move
it for every sandbox on it; a plain ``POST /_admin/reset`` of one sandbox leaves a shared clock alone.
"""

from __future__ import annotations

import threading
import time as _time
from datetime import UTC, datetime


def _to_epoch(value: datetime | float | int | str) -> float:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


class Clock:
    """Thread-safe simulated UTC clock."""

    def __init__(self, start: datetime | float | None = None, speed: float = 1.0, *, shared: bool = False) -> None:
        self._lock = threading.Lock()
        #: True when several sandboxes use this clock: a reset of one of them must not move the others' time.
        self.shared = shared
        real = _time.time()
        self._real_epoch = real
        self._sim_epoch = real if start is None else _to_epoch(start)
        self._speed = float(speed)

    # -- reading -------------------------------------------------------------------------------------------
    def time(self) -> float:
        """Simulated epoch seconds."""
        with self._lock:
            return self._sim_epoch + (_time.time() - self._real_epoch) * self._speed

    def now(self) -> datetime:
        """Simulated time as a tz-aware UTC datetime."""
        return datetime.fromtimestamp(self.time(), tz=UTC)

    def anchors(self) -> dict[str, float]:
        with self._lock:
            return {"sim_epoch": self._sim_epoch, "real_epoch": self._real_epoch, "speed": self._speed}

    # -- moving --------------------------------------------------------------------------------------------
    def _rebase(self, sim: float) -> None:
        # caller holds the lock
        self._real_epoch = _time.time()
        self._sim_epoch = sim

    def advance(self, seconds: float) -> None:
        """Jump forward (or back, with a negative value) by ``seconds`` simulated seconds."""
        with self._lock:
            real = _time.time()
            sim = self._sim_epoch + (real - self._real_epoch) * self._speed
            self._real_epoch = real
            self._sim_epoch = sim + float(seconds)

    def set(self, dt: datetime | float | str) -> None:
        """Set the simulated time (datetime, epoch seconds or ISO-8601 string; naive means UTC)."""
        with self._lock:
            self._rebase(_to_epoch(dt))

    @property
    def speed(self) -> float:
        with self._lock:
            return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        if value < 0:
            raise ValueError("speed must be >= 0")
        with self._lock:
            real = _time.time()
            sim = self._sim_epoch + (real - self._real_epoch) * self._speed
            self._real_epoch = real
            self._sim_epoch = sim
            self._speed = float(value)

    def reset(self) -> None:
        """Back to real time at speed 1."""
        with self._lock:
            real = _time.time()
            self._real_epoch = real
            self._sim_epoch = real
            self._speed = 1.0
