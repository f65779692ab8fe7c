"""Injectable time for the Exact client.

Everything time-related in ``ml_connector.exact`` (token age, refresh window, daily token-call count, rate-limit
resets) reads a ``clock: Callable[[], float]`` (epoch seconds) and waits through a matching ``sleep``. Production
uses ``time.time``/``time.sleep``. Tests run against a sandbox whose clock is sped up; :class:`SimClock` rebuilds
that clock in any process from the sandbox's ``/_admin/clock`` anchors (``sim = sim_epoch + (real - real_epoch) *
speed``), and its ``sleep`` waits the matching (shorter) real time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any


class SimClock:
    def __init__(self, sim_epoch: float, real_epoch: float, speed: float) -> None:
        self.sim_epoch = float(sim_epoch)
        self.real_epoch = float(real_epoch)
        self.speed = float(speed)

    def __call__(self) -> float:
        return self.sim_epoch + (time.time() - self.real_epoch) * self.speed

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        time.sleep(seconds / self.speed if self.speed > 0 else seconds)

    def anchors(self) -> dict[str, float]:
        return {"sim_epoch": self.sim_epoch, "real_epoch": self.real_epoch, "speed": self.speed}

    @classmethod
    def from_anchors(cls, anchors: Mapping[str, Any]) -> SimClock:
        return cls(float(anchors["sim_epoch"]), float(anchors["real_epoch"]), float(anchors["speed"]))

    @classmethod
    def from_sandbox(cls, base_url: str, timeout: float = 5.0) -> SimClock:
        """Read the anchors from a sandbox's ``GET /_admin/clock`` (test and demo use only)."""
        import requests

        response = requests.get(base_url.rstrip("/") + "/_admin/clock", timeout=timeout)
        response.raise_for_status()
        return cls.from_anchors(response.json())

    def __repr__(self) -> str:
        return f"SimClock(speed={self.speed})"


def sleeper_for(clock: Callable[[], float]) -> Callable[[float], None]:
    """The ``sleep`` that matches ``clock``: its own ``sleep`` method when it has one, else ``time.sleep``."""
    sleep = getattr(clock, "sleep", None)
    return sleep if callable(sleep) else time.sleep
