"""What every scenario gets: the options, the environment, the two sandbox processes, and a progress printer."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

from bench.env import BenchEnv
from bench.servers import SandboxProcess


@dataclass
class Options:
    quick: bool = False
    scale: float = 1.0
    minute_s: float = 1.0  # the invoice poll's compressed Exact minute
    trace: bool = True  # a second, tracemalloc-instrumented pass for the flow scenarios
    token_procs: int = 20
    token_hours: float = 2.0
    token_speed: float = 120.0
    store: str = "sqlite"  # the connector store's backend: sqlite | postgresql

    def n(self, full: int, quick: int, minimum: int = 1) -> int:
        """A record count: ``full`` x scale (or ``quick`` x scale with --quick), at least ``minimum``."""
        return max(minimum, math.ceil((quick if self.quick else full) * self.scale))


@dataclass
class Lab:
    options: Options
    env: BenchEnv
    exact: SandboxProcess
    jaggaer: SandboxProcess
    started: float = field(default_factory=time.time)  # epoch seconds: child processes share it

    def say(self, message: str) -> None:
        print(f"[{time.time() - self.started:6.1f}s] {message}", file=sys.stderr, flush=True)
