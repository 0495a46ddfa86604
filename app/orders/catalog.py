"""Which server configurations DCImanager offers, cached briefly."""

from __future__ import annotations

import asyncio
import time

import structlog

from app.dci.client import DCIClient
from app.dci.exceptions import DCIError

log = structlog.get_logger(__name__)


class ConfigurationCatalog:
    """Known configuration names for validating orders.

    When DCImanager cannot be asked, the last answer is used; with none at all,
    ``known`` returns None and orders are accepted unchecked, because refusing a
    paid order over a passing outage is worse than failing it later with a reason.
    """

    def __init__(self, dci: DCIClient, *, ttl_seconds: float = 30.0, timeout: float = 5.0) -> None:
        self._dci = dci
        self._ttl = ttl_seconds
        self._timeout = timeout
        self._names: frozenset[str] | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def known(self) -> frozenset[str] | None:
        if self._names is not None and time.monotonic() - self._fetched_at < self._ttl:
            return self._names
        async with self._lock:
            if self._names is not None and time.monotonic() - self._fetched_at < self._ttl:
                return self._names
            try:
                async with asyncio.timeout(self._timeout):
                    page = await self._dci.free_servers_by_configuration()
            except (DCIError, TimeoutError) as exc:
                log.warning("catalog.refresh_failed", error=type(exc).__name__)
                return self._names
            self._names = frozenset(item.configuration for item in page.items if item.configuration)
            self._fetched_at = time.monotonic()
            return self._names
