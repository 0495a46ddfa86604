"""One running simulator: the data centre, its sessions, faults, clock and call counters."""

from __future__ import annotations

from collections import Counter
from typing import Any

from app.simulator.faults import FaultableKind, FaultConfig, FaultInjector
from app.simulator.inventory import Inventory
from app.simulator.sessions import SessionStore
from app.simulator.state import Clock, DataCenter


class CallStats:
    def __init__(self) -> None:
        self.by_endpoint: Counter[str] = Counter()
        self.injected_503 = 0
        self.dropped_responses = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "total": sum(self.by_endpoint.values()),
            "by_endpoint": dict(sorted(self.by_endpoint.items())),
            "injected_503": self.injected_503,
            "dropped_responses": self.dropped_responses,
        }


class Simulator:
    def __init__(self, inventory: Inventory, *, faults: FaultConfig, clock: Clock) -> None:
        self.inventory = inventory
        self._base_clock = clock
        self._skipped = 0.0
        self._initial_seed = faults.seed
        self.faults = FaultInjector(faults)
        self.dc = DataCenter(inventory, clock=self.clock, fails=self._operation_fails)
        self.sessions = SessionStore(self.clock)
        self.stats = CallStats()

    def clock(self) -> float:
        return self._base_clock() + self._skipped

    def skip_time(self, seconds: float) -> float:
        """Move simulated time forward, e.g. to finish operations without waiting."""
        self._skipped += seconds
        return self.clock()

    def reset(self) -> None:
        """Back to the initial inventory with no faults; time never goes backwards."""
        self.faults = FaultInjector(FaultConfig(seed=self._initial_seed))
        self.dc = DataCenter(self.inventory, clock=self.clock, fails=self._operation_fails)
        self.sessions = SessionStore(self.clock)
        self.stats = CallStats()

    def _operation_fails(self, kind: FaultableKind) -> bool:
        return self.faults.fails(kind)
