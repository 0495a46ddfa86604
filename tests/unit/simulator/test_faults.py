from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.simulator.clock import ManualClock
from app.simulator.faults import FaultConfig, FaultInjector
from app.simulator.sessions import SessionStore


def draws(injector: FaultInjector, n: int = 200) -> list[bool]:
    return [injector.answer_503() for _ in range(n)]


def test_defaults_inject_nothing() -> None:
    injector = FaultInjector(FaultConfig())
    assert not any(draws(injector))
    assert not injector.drop_write_response()
    assert not injector.fails("os_install")


def test_same_seed_same_decisions() -> None:
    config = FaultConfig(seed=42, error_503_rate=0.3)
    first, second = draws(FaultInjector(config)), draws(FaultInjector(config))
    assert first == second
    assert 20 < sum(first) < 100


def test_rate_one_always_and_down_overrides_rate() -> None:
    assert all(draws(FaultInjector(FaultConfig(error_503_rate=1.0))))
    assert all(draws(FaultInjector(FaultConfig(down=True))))


def test_fail_rate_is_per_operation_kind() -> None:
    injector = FaultInjector(FaultConfig(seed=1, fail_rate={"os_install": 1.0, "diag": 0.0}))
    assert injector.fails("os_install")
    assert not injector.fails("diag")
    assert not injector.fails("ip_allocate")


def test_partial_update_keeps_other_fields_and_reseeds_only_when_asked() -> None:
    injector = FaultInjector(FaultConfig(seed=5, latency_ms=20))
    injector.update({"error_503_rate": 0.5})
    assert injector.config == FaultConfig(seed=5, latency_ms=20, error_503_rate=0.5)
    sequence = draws(injector, 50)
    injector.update({"seed": 5})
    assert draws(injector, 50) == sequence


@pytest.mark.parametrize(
    "changes",
    [
        {"error_503_rate": 1.5},
        {"fail_rate": {"os_install": -0.1}},
        {"fail_rate": {"reboot": 0.5}},
        {"token_ttl_seconds": 0},
        {"latency_ms": -1},
        {"no_such_fault": True},
    ],
)
def test_invalid_updates_are_refused_and_change_nothing(changes: dict[str, object]) -> None:
    injector = FaultInjector(FaultConfig(error_503_rate=0.1))
    with pytest.raises(ValidationError):
        injector.update(changes)
    assert injector.config == FaultConfig(error_503_rate=0.1)


def test_tokens_expire_by_the_ttl_in_force_when_used() -> None:
    clock = ManualClock()
    sessions = SessionStore(clock)
    session = sessions.issue(user_id=1)
    assert len(session.token) == 24
    assert session.token == session.token.upper()
    clock.advance(60)
    assert sessions.find(session.token, ttl_seconds=None) == session
    assert sessions.find(session.token, ttl_seconds=61) == session
    assert sessions.find(session.token, ttl_seconds=60) is None
    sessions.revoke(session.token)
    assert sessions.find(session.token, ttl_seconds=None) is None
    assert sessions.find("nonsense", ttl_seconds=None) is None
