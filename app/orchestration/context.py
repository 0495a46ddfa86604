"""Everything a step handler may use, and the only ways it may change state."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.config import Settings
from app.customers.models import Customer
from app.dci.client import DCIClient
from app.dci.completion import CompletionStrategy
from app.kit.crypto import SecretBox
from app.orders.models import Operation, OperationStep, Order

Checkpoint = Callable[["StepContext"], Awaitable[None]]
ClaimServer = Callable[[list[int]], Awaitable[int | None]]
ServersAwaitingOwner = Callable[[], Awaitable[set[int]]]

# Small beside any DCImanager task, so a lone order barely waits longer.
_POLL_GRID_SECONDS = 0.5


@dataclass
class StepContext:
    """A snapshot of the rows a step works on, read in a short transaction.

    Handlers run without a database session (DCImanager calls can be slow), so
    they never touch the ORM objects; they record what changed through
    ``remember`` / ``update_order`` / ``update_customer``, which the runner
    writes when the step ends, or at once through ``checkpoint`` when the
    record must exist before the next DCImanager write.
    """

    settings: Settings
    dci: DCIClient
    completion: CompletionStrategy
    secrets: SecretBox
    order: Order
    customer: Customer
    operation: Operation
    step: OperationStep
    now: datetime
    checkpoint_fn: Checkpoint
    claim_server_fn: ClaimServer
    awaiting_owner_fn: ServersAwaitingOwner
    result: dict[str, Any] = field(default_factory=dict)
    order_updates: dict[str, Any] = field(default_factory=dict)
    customer_updates: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.result = dict(self.step.result or {})

    @property
    def params(self) -> dict[str, Any]:
        return self.operation.params

    @property
    def server_id(self) -> int:
        server_id = self.order_updates.get("dci_server_id", self.order.dci_server_id)
        if server_id is None:
            raise RuntimeError("step needs a server but the order has none")
        return int(server_id)

    @property
    def dci_user_id(self) -> int:
        user_id = self.customer_updates.get("dci_user_id", self.customer.dci_user_id)
        if user_id is None:
            raise RuntimeError("step needs the customer's DCImanager user, which is unknown")
        return int(user_id)

    def remember(self, **values: Any) -> None:
        self.result.update(values)

    def update_order(self, **values: Any) -> None:
        self.order_updates.update(values)

    def update_customer(self, **values: Any) -> None:
        self.customer_updates.update(values)

    async def checkpoint(self) -> None:
        await self.checkpoint_fn(self)

    async def claim_one_of(self, server_ids: list[int]) -> int | None:
        """Take the first of ``server_ids`` no other live order holds; None if all are held."""
        claimed = await self.claim_server_fn(server_ids)
        if claimed is not None:
            self.order_updates["dci_server_id"] = claimed
        return claimed

    async def servers_awaiting_owner(self) -> set[int]:
        """Servers our orders claimed whose owner DCImanager may not show yet."""
        return await self.awaiting_owner_fn()

    def customer_password(self) -> str | None:
        ciphertext = self.operation.secret_ciphertext
        return self.secrets.decrypt(ciphertext) if ciphertext else None

    def poll_after(self) -> float:
        """Seconds until the next look at DCImanager work this step waits for."""
        settings = self.settings
        started = self.step.started_at
        waited = (self.now - started).total_seconds() if started is not None else 0.0
        spread = max(settings.task_poll_min_seconds, waited * settings.task_poll_growth)
        delay = min(settings.task_poll_seconds, spread)
        # Looks land on a shared grid, so the orders of a burst that watch their
        # servers look at the same moments and their reads share list calls
        # (``ServerReads``) instead of each costing a round trip of its own.
        now = self.now.timestamp()
        return math.ceil((now + delay) / _POLL_GRID_SECONDS) * _POLL_GRID_SECONDS - now

    def waited_too_long(self) -> bool:
        started = self.step.started_at
        return started is not None and (
            (self.now - started).total_seconds() > self.settings.task_timeout_seconds
        )
