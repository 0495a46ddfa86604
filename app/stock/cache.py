"""DCImanager's free servers per configuration, fetched at most every few seconds.

One cached read serves both order validation (which configurations exist) and
the stock billing shows, so a busy storefront cannot hammer DCImanager.
"""

from __future__ import annotations

import asyncio
import time
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
    """When DCImanager cannot be asked, the last snapshot is used; with none, None."""

    def __init__(self, dci: DCIClient, *, ttl_seconds: float, timeout: float = 5.0) -> None:
        self._dci = dci
        self._ttl = ttl_seconds
        self._timeout = timeout
        self._snapshot: StockSnapshot | None = None
        self._fetched = 0.0
        self._lock = asyncio.Lock()

    def _fresh(self) -> bool:
        return self._snapshot is not None and time.monotonic() - self._fetched < self._ttl

    async def snapshot(self) -> StockSnapshot | None:
        if self._fresh():
            return self._snapshot
        async with self._lock:  # one refresh at a time, whatever the request rate
            if self._fresh():
                return self._snapshot
            try:
                async with asyncio.timeout(self._timeout):
                    page = await self._dci.free_servers_by_configuration()
            except (DCIError, TimeoutError) as exc:
                log.warning("stock.refresh_failed", error=type(exc).__name__)
                return self._snapshot
            self._snapshot = StockSnapshot(
                free={
                    item.configuration: item.free_server_count
                    for item in page.items
                    if item.configuration
                },
                fetched_at=utcnow(),
            )
            self._fetched = time.monotonic()
            return self._snapshot

    async def known_configurations(self) -> frozenset[str] | None:
        """For validating orders: None when DCImanager was never reachable, and an
        order is then accepted unchecked, because refusing a paid order over a
        passing outage is worse than failing it later with a reason."""
        snapshot = await self.snapshot()
        return frozenset(snapshot.free) if snapshot is not None else None
