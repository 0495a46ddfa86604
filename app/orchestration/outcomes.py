"""What a step handler reports back to the runner."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Done:
    """The step's effect is in place."""

    note: str = ""


@dataclass(frozen=True, slots=True)
class Wait:
    """DCImanager is working on it; look again after ``seconds``."""

    seconds: float
    note: str = ""


@dataclass(frozen=True, slots=True)
class Fail:
    """The step cannot succeed; the operation fails with this stable code and reason."""

    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class Rewind:
    """Start again from an earlier step (e.g. the claimed server was taken meanwhile)."""

    to_step: str
    reason: str


StepOutcome = Done | Wait | Fail | Rewind
