"""Fault injection: the misbehaviour a real DCImanager shows, on demand and reproducibly."""

from __future__ import annotations

import random
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

OperationKind = Literal["os_install", "clear_hdd", "diag"]
FaultableKind = Literal["os_install", "clear_hdd", "diag", "ip_allocate"]

Rate = Annotated[float, Field(ge=0, le=1)]


class FaultConfig(BaseModel):
    """Field names are the JSON accepted by ``POST /_sim/faults``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int | None = None
    error_503_rate: Rate = 0.0
    latency_ms: float = Field(default=0.0, ge=0)
    fail_rate: dict[FaultableKind, Rate] = Field(default_factory=dict)
    drop_write_response_rate: Rate = 0.0
    token_ttl_seconds: float | None = Field(default=None, gt=0)
    down: bool = False


class FaultInjector:
    """Holds the fault settings in force and draws every random decision from one
    seeded generator, so a run with the same seed and calls fails the same way."""

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        # Chaos decisions, not secrets: a reproducible PRNG is the point.
        self._rng = random.Random(config.seed)  # noqa: S311

    def update(self, changes: dict[str, Any]) -> FaultConfig:
        """Apply a partial update; a new ``seed`` restarts the random sequence."""
        self.config = FaultConfig.model_validate({**self.config.model_dump(), **changes})
        if "seed" in changes:
            self._rng = random.Random(self.config.seed)  # noqa: S311
        return self.config

    def answer_503(self) -> bool:
        return self.config.down or self._draw(self.config.error_503_rate)

    def drop_write_response(self) -> bool:
        return self._draw(self.config.drop_write_response_rate)

    def fails(self, kind: FaultableKind) -> bool:
        return self._draw(self.config.fail_rate.get(kind, 0.0))

    def _draw(self, rate: float) -> bool:
        # No draw at rate 0 keeps the sequence of other decisions unchanged
        # when a fault is switched off.
        return rate > 0 and self._rng.random() < rate
