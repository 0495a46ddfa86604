"""Readiness checks: each answers on its own, so an operator sees which part is down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.dci.client import DCIClient
from app.kit.migrations import applied_revisions, head_revisions
from app.kit.models import utcnow
from app.orchestration.repository import QueueRepository


@dataclass(slots=True)
class CheckResult:
    ok: bool
    detail: dict[str, Any] = field(default_factory=dict)


ReadinessCheck = Callable[[], Awaitable[CheckResult]]


def database_check(engine: AsyncEngine) -> ReadinessCheck:
    async def check() -> CheckResult:
        started = time.perf_counter()
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return CheckResult(ok=True, detail={"latency_ms": _ms_since(started)})

    return check


async def run_checks(
    checks: dict[str, ReadinessCheck], *, per_check_seconds: float
) -> dict[str, CheckResult]:
    async def guarded(check: ReadinessCheck) -> CheckResult:
        try:
            async with asyncio.timeout(per_check_seconds):
                return await check()
        except TimeoutError:
            return CheckResult(
                ok=False, detail={"error": f"timed out after {per_check_seconds:g}s"}
            )
        except Exception as exc:
            return CheckResult(ok=False, detail={"error": type(exc).__name__})

    names = list(checks)
    results = await asyncio.gather(*(guarded(checks[name]) for name in names))
    return dict(zip(names, results, strict=True))


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def dci_check(dci: DCIClient) -> ReadinessCheck:
    async def check() -> CheckResult:
        started = time.perf_counter()
        # Any authenticated read proves the login works; this one is cheap.
        await dci.free_servers_by_configuration()
        return CheckResult(ok=True, detail={"latency_ms": _ms_since(started)})

    return check


def worker_check(
    sessionmaker: async_sessionmaker[AsyncSession], *, stale_after_seconds: float
) -> ReadinessCheck:
    async def check() -> CheckResult:
        async with sessionmaker() as session:
            latest = await QueueRepository(session).latest_heartbeat()
        if latest is None:
            return CheckResult(ok=False, detail={"error": "no worker has reported"})
        age = (utcnow() - latest).total_seconds()
        return CheckResult(ok=age <= stale_after_seconds, detail={"heartbeat_age_s": round(age, 1)})

    return check


def migrations_check(engine: AsyncEngine) -> ReadinessCheck:
    async def check() -> CheckResult:
        applied = await applied_revisions(engine)
        heads = head_revisions()
        return CheckResult(
            ok=applied == heads, detail={"applied": sorted(applied), "expected": sorted(heads)}
        )

    return check
