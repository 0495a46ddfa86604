"""DCImanager's free servers per configuration, fetched at most every few seconds.

One cached read serves both order validation (which configurations exist) and
the stock billing shows, so a busy storefront cannot hammer DCImanager.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

from app.dci.client import DCIClient
from app.dci.exceptions import DCIError
from app.kit.models import utcnow

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class StockSnapshot:
    free: dict[str, int]
    fetched_at: datetime


class StockCache:
    """When DCImanager cannot be asked, the last snapshot is used; with none, None.

    A failed refresh is remembered for the cache period like a successful one:
    during an outage every caller would otherwise wait out its own refresh, one
    after another, and an order would take longer the more were sent with it.
    """

    def __init__(
        self,
        dci: DCIClient,
        *,
        ttl_seconds: float,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._dci = dci
        self._ttl = ttl_seconds
        self._timeout = timeout
        self._clock = clock
        self._snapshot: StockSnapshot | None = None
        self._answered: float | None = None
        self._refresh: asyncio.Task[None] | None = None

    def _settled(self) -> bool:
        return self._answered is not None and self._clock() - self._answered < self._ttl

    async def snapshot(self) -> StockSnapshot | None:
        if self._settled():
            return self._snapshot
        if self._refresh is None:
            # A context of its own: the refresh serves every caller, so it must not
            # carry the first caller's (its request id in the logs, for one).
            self._refresh = asyncio.create_task(
                self._fetch(), name="stock-refresh", context=contextvars.Context()
            )
        # Every caller waits for the one refresh in flight. Shielded, because a
        # caller that gives up (its client went away) must not cancel it for the rest.
        await asyncio.shield(self._refresh)
        return self._snapshot

    async def _fetch(self) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                page = await self._dci.free_servers_by_configuration()
        except (DCIError, TimeoutError) as exc:
            log.warning("stock.refresh_failed", error=type(exc).__name__)
        else:
            self._snapshot = StockSnapshot(
                free={
                    item.configuration: item.free_server_count
                    for item in page.items
                    if item.configuration
                },
                fetched_at=utcnow(),
            )
        finally:
            self._refresh = None
        # Not reached on an unexpected error: that one reaches the callers, and the
        # next caller tries again.
        self._answered = self._clock()

    async def known_configurations(self) -> frozenset[str] | None:
        """For validating orders: None when DCImanager was never reachable, and an
        order is then accepted unchecked, because refusing a paid order over a
        passing outage is worse than failing it later with a reason."""
        snapshot = await self.snapshot()
        return frozenset(snapshot.free) if snapshot is not None else None
