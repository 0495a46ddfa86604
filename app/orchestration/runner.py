"""Carries one leased operation forward, step by step, each step in short transactions.

A step runs as: read the rows and mark the step running (transaction A), call
DCImanager with no database session held, then record the outcome (transaction
B). A crash between the DCImanager call and transaction B is safe because every
step reconciles with DCImanager before acting. Both transactions first renew the
lease; a worker that lost its lease drops what it learned and lets the new
holder reconcile.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.callbacks.events import record_operation_outcome
from app.config import Settings
from app.customers.models import Customer
from app.dci.client import DCIClient
from app.dci.completion import CompletionStrategy
from app.dci.exceptions import DCIError, DCIRequestError
from app.dci.session import WRITE_GUARD
from app.kit.backoff import full_jitter_delay
from app.kit.crypto import SecretBox, SecretDecryptionError
from app.kit.gate import PriorityGate
from app.kit.metrics import OPERATIONS, STEP_DURATION
from app.kit.models import utcnow
from app.orchestration.context import StepContext
from app.orchestration.flows import compensation_for
from app.orchestration.outcomes import Done, Fail, Rewind, StepOutcome, Wait
from app.orchestration.repository import LoadedOperation, QueueRepository
from app.orchestration.steps import HANDLERS
from app.orchestration.steps.guards import ServerReassigned
from app.orders import lifecycle
from app.orders.models import (
    Operation,
    OperationKind,
    OperationStatus,
    OperationStep,
    Order,
    OrderStatus,
    StepStatus,
)

log = structlog.get_logger(__name__)

# A failed step is settled too: after it, only compensation steps (if any) still run.
_SETTLED_STEPS = frozenset(
    {StepStatus.SUCCEEDED, StepStatus.SKIPPED, StepStatus.COMPENSATED, StepStatus.FAILED}
)
_FINAL_OPERATIONS = frozenset(
    {OperationStatus.SUCCEEDED, OperationStatus.FAILED, OperationStatus.CANCELLED}
)


@dataclass(frozen=True, slots=True)
class _Stop:
    """This run of the operation ends; ``settled`` when the operation reached its end."""

    settled: OperationKind | None = None


_LEAVE = _Stop()


@dataclass(frozen=True, slots=True)
class _Retry:
    """A transient failure: try the step again after a backoff."""

    error: str


@dataclass(frozen=True)
class EngineDeps:
    sessionmaker: async_sessionmaker[AsyncSession]
    dci: DCIClient
    completion: CompletionStrategy
    settings: Settings
    secrets: SecretBox


class OperationRunner:
    def __init__(self, deps: EngineDeps, *, worker_id: str) -> None:
        self._deps = deps
        self._settings = deps.settings
        self._worker_id = worker_id
        self._lease = timedelta(seconds=deps.settings.lease_seconds)
        # A DCImanager write starts only while at least half the lease is left, so
        # it is sent (and, unless DCImanager is very slow, answered) before any
        # other worker may take the operation over.
        self._write_window = deps.settings.lease_seconds / 2
        self._renewed_at: dict[int, float] = {}
        # Step transactions queue oldest operation first, so in a burst the first
        # orders go all the way to their OS install and finish early instead of
        # every order moving one step per round and all finishing together. The
        # DCImanager calls between them run outside the gate: a slow upstream
        # never holds a slot.
        self._gate = PriorityGate(deps.settings.worker_step_slots)

    def lease_renewed(self, operation_ids: list[int], *, at: float) -> None:
        """The leases on ``operation_ids`` were renewed by a transaction begun at ``at``
        (``time.monotonic()``)."""
        for operation_id in operation_ids:
            self._renewed_at[operation_id] = at

    def leases_lost(self, operation_ids: list[int]) -> None:
        """A renewal found these leases taken: no more DCImanager writes for them."""
        for operation_id in operation_ids:
            self._renewed_at.pop(operation_id, None)

    def _assert_lease(self, operation_id: int) -> None:
        renewed = self._renewed_at.get(operation_id)
        if renewed is None or time.monotonic() - renewed > self._write_window:
            raise LeaseLost(operation_id)

    async def _renew(
        self, queue: QueueRepository, operation_id: int, now: datetime | None = None
    ) -> bool:
        """Renew the lease from ``now`` (the transaction's own timestamp, if it has one)."""
        started = time.monotonic()
        renewed = await queue.renew(
            operation_id=operation_id,
            worker_id=self._worker_id,
            now=now or utcnow(),
            lease=self._lease,
        )
        if renewed:
            self.lease_renewed([operation_id], at=started)
        return renewed

    async def _take(
        self, queue: QueueRepository, operation_id: int, now: datetime
    ) -> LoadedOperation | None:
        """The operation, its order, customer and steps, with the lease renewed from
        ``now``.

        None when the operation is gone or another worker holds it now. Reading
        the operation locked and renewing its lease on the loaded row saves the
        statement a separate renewal costs: the lease is written with the step's
        own changes to the operation.
        """
        started = time.monotonic()
        loaded = await queue.operation_with_steps(operation_id)
        if loaded is None or loaded.operation.lease_owner != self._worker_id:
            return None
        loaded.operation.lease_expires_at = now + self._lease
        self.lease_renewed([operation_id], at=started)
        return loaded

    async def run(self, operation_id: int) -> None:
        structlog.contextvars.bind_contextvars(operation_id=operation_id)
        # Each operation runs in a task of its own, so this guards its writes only.
        guard = WRITE_GUARD.set(lambda: self._assert_lease(operation_id))
        try:
            async with self._gate.slot(operation_id):
                ctx = await self._begin_step(operation_id)
            while not isinstance(ctx, _Stop):
                outcome = await self._execute(ctx)
                outcome = await self._wait_inline(ctx, outcome)
                self._crash_point("before_record", ctx.step.name)
                step_name = ctx.step.name
                async with self._gate.slot(operation_id):
                    ctx = await self._record(ctx, outcome)
                self._crash_point("after_record", step_name)
            self._stopped(ctx)
        finally:
            WRITE_GUARD.reset(guard)
            self._renewed_at.pop(operation_id, None)
            structlog.contextvars.unbind_contextvars("operation_id", "order_id", "step")

    async def _wait_inline(
        self, ctx: StepContext, outcome: StepOutcome | _Retry
    ) -> StepOutcome | _Retry:
        """Wait for DCImanager here, while the wait is short, instead of parking.

        Parking costs two transactions and a claim for every look at DCImanager;
        waiting here costs one DCImanager read per look and holds no database
        connection. What the step learned (its task id) is checkpointed before the
        first sleep, and the heartbeat keeps the lease, so a crash mid-wait loses
        nothing: the next holder resumes from the checkpoint.
        """
        persisted = _learned(ctx) if ctx.step.result == ctx.result else None
        while isinstance(outcome, Wait) and outcome.seconds <= self._settings.inline_wait_seconds:
            if _learned(ctx) != persisted:
                try:
                    await self._checkpoint(ctx)
                except LeaseLost as lost:
                    return _Retry(str(lost))
                persisted = _learned(ctx)
            await asyncio.sleep(outcome.seconds)
            ctx.now = utcnow()
            outcome = await self._execute(ctx)
        return outcome

    # -- transaction A ---------------------------------------------------------

    def _stopped(self, stop: _Stop) -> None:
        if stop.settled is not None:
            self._crash_point("after_settle", stop.settled.value)

    async def _begin_step(self, operation_id: int) -> StepContext | _Stop:
        async with self._deps.sessionmaker() as session, session.begin():
            queue = QueueRepository(session)
            now = utcnow()
            loaded = await self._take(queue, operation_id, now)
            if loaded is None:
                return _LEAVE
            operation, order, customer, steps = loaded
            if operation.status in _FINAL_OPERATIONS:
                _let_go(operation)
                return _LEAVE
            structlog.contextvars.bind_contextvars(order_id=order.id)
            return await self._next_step(session, operation, order, customer, steps, now)

    async def _next_step(
        self,
        session: AsyncSession,
        operation: Operation,
        order: Order,
        customer: Customer,
        steps: list[OperationStep],
        now: datetime,
    ) -> StepContext | _Stop:
        """Mark the operation's next step running, or settle the operation.

        Runs inside the transaction that read (or just wrote) these rows, so moving
        on from one step to the next costs no transaction of its own.
        """
        if operation.status is OperationStatus.QUEUED:
            try:
                lifecycle.apply(lifecycle.state_of(order), operation.kind, operation.params)
            except lifecycle.TransitionRefused as refused:
                await self._settle_failed(
                    session, operation, order, steps, now, "invalid_order_state", refused.reason
                )
                _let_go(operation)
                return _Stop(settled=operation.kind)
            operation.status = OperationStatus.RUNNING
            operation.started_at = now
            log.info(f"{operation.kind.value}.started")

        step = next((s for s in steps if s.status not in _SETTLED_STEPS), None)
        if step is None:
            await self._settle(session, operation, order, steps, now)
            _let_go(operation)
            return _Stop(settled=operation.kind)
        if step.next_attempt_at is not None and step.next_attempt_at > now:
            operation.next_run_at = step.next_attempt_at
            _let_go(operation)
            return _LEAVE
        if step.status is not StepStatus.WAITING:
            step.attempts += 1
            operation.attempts += 1
        step.status = StepStatus.RUNNING
        step.started_at = step.started_at or now
        step.next_attempt_at = None
        operation.next_run_at = None
        # Flushed now so the context's snapshot carries the database's values
        # (server defaults, new steps' ids) before the session closes.
        await session.flush()
        deps = self._deps
        return StepContext(
            settings=self._settings,
            dci=deps.dci,
            completion=deps.completion,
            secrets=deps.secrets,
            order=order,
            customer=customer,
            operation=operation,
            step=step,
            now=now,
            checkpoint_fn=self._checkpoint,
            claim_server_fn=lambda ids: self._claim_server(operation.id, order.id, ids),
            awaiting_owner_fn=lambda: self._servers_awaiting_owner(order.configuration),
        )

    # -- no transaction: DCImanager --------------------------------------------

    async def _execute(self, ctx: StepContext) -> StepOutcome | _Retry:
        structlog.contextvars.bind_contextvars(step=ctx.step.name)
        with STEP_DURATION.labels(ctx.step.name).time():
            return await self._handle(ctx)

    async def _handle(self, ctx: StepContext) -> StepOutcome | _Retry:
        try:
            return await HANDLERS[ctx.step.name](ctx)
        except LeaseLost as lost:
            return _Retry(str(lost))
        except ServerReassigned as reassigned:
            return Fail("server_reassigned", str(reassigned))
        except DCIRequestError as refused:
            return Fail("dci_rejected", _describe(refused))
        except DCIError as transient:
            return _Retry(_describe(transient))
        except SecretDecryptionError as unreadable:
            return Fail("secret_unreadable", str(unreadable))
        except Exception as unexpected:  # a bug must not wedge the order: retry, then fail
            log.exception(f"{ctx.operation.kind.value}.step.crashed")
            return _Retry(f"unexpected {type(unexpected).__name__}")

    # -- transaction B -----------------------------------------------------------

    async def _record(self, ctx: StepContext, outcome: StepOutcome | _Retry) -> StepContext | _Stop:
        """Write the step's outcome and, in the same transaction, begin the next step."""
        deps = self._deps
        kind = ctx.operation.kind.value
        async with deps.sessionmaker() as session, session.begin():
            queue = QueueRepository(session)
            now = utcnow()
            loaded = await self._take(queue, ctx.operation.id, now)
            if loaded is None:
                log.warning(f"{kind}.step.lease_lost")
                return _LEAVE
            operation, order, customer, steps = loaded
            step = next(s for s in steps if s.id == ctx.step.id)
            _apply_updates(ctx, order, customer, step)

            if isinstance(outcome, _Retry):
                if step.attempts >= self._settings.step_max_attempts:
                    outcome = Fail(
                        "retries_exhausted",
                        f"gave up after {step.attempts} tries: {outcome.error}",
                    )
                else:
                    delay = full_jitter_delay(
                        step.attempts,
                        base=self._settings.step_retry_base_seconds,
                        cap=self._settings.step_retry_max_seconds,
                    )
                    step.status = StepStatus.PENDING
                    step.last_error = outcome.error
                    self._park(operation, step, now + timedelta(seconds=delay))
                    _let_go(operation)
                    log.warning(f"{kind}.step.retrying", error=outcome.error, delay=delay)
                    return _LEAVE

            match outcome:
                case Done(note=note):
                    step.status = StepStatus.SUCCEEDED
                    step.finished_at = now
                    step.last_error = None
                    log.info(f"{kind}.step.completed", note=note)
                case Wait(seconds=seconds, note=note):
                    step.status = StepStatus.WAITING
                    self._park(operation, step, now + timedelta(seconds=seconds))
                    _let_go(operation)
                    log.debug(f"{kind}.step.waiting", note=note)
                    return _LEAVE
                case Rewind(to_step=to_step, reason=reason):
                    _rewind(steps, to_step, reason)
                    log.warning(f"{kind}.step.rewound", to_step=to_step, reason=reason)
                case Fail(code=code, reason=reason):
                    step.status = StepStatus.FAILED
                    step.finished_at = now
                    step.last_error = reason
                    log.error(f"{kind}.step.failed", code=code, reason=reason)
                    if not self._start_compensation(session, operation, order, steps, code, reason):
                        await self._settle_failed(
                            session, operation, order, steps, now, code, reason
                        )
                        _let_go(operation)
                        return _Stop(settled=operation.kind)
                    # Compensation steps were added: read them back in position order.
                    await session.flush()
                    steps = await queue.steps(operation.id)
            return await self._next_step(session, operation, order, customer, steps, now)

    async def _checkpoint(self, ctx: StepContext) -> None:
        async with self._deps.sessionmaker() as session, session.begin():
            queue = QueueRepository(session)
            loaded = await self._take(queue, ctx.operation.id, utcnow())
            if loaded is None:
                raise LeaseLost(ctx.operation.id)
            _, order, customer, steps = loaded
            step = next(s for s in steps if s.id == ctx.step.id)
            _apply_updates(ctx, order, customer, step)

    async def _claim_server(
        self, operation_id: int, order_id: int, server_ids: list[int]
    ) -> int | None:
        async with self._deps.sessionmaker() as session, session.begin():
            queue = QueueRepository(session)
            # Like every other write, only under a lease we still hold, renewed in the
            # same transaction. Without this, a worker that lost its lease mid-step
            # could still point the order at a server after the new holder had settled
            # it (e.g. failed it out_of_stock): the unique index covers live orders
            # only, so a failed order ended up naming another live order's server.
            if not await self._renew(queue, operation_id):
                raise LeaseLost(operation_id)
            return await queue.claim_one_of(order_id=order_id, server_ids=server_ids)

    async def _servers_awaiting_owner(self, configuration: str) -> set[int]:
        async with self._deps.sessionmaker() as session:
            return await QueueRepository(session).servers_awaiting_owner(configuration)

    # -- settling ----------------------------------------------------------------

    @staticmethod
    def _park(operation: Operation, step: OperationStep, until: datetime) -> None:
        step.next_attempt_at = until
        operation.next_run_at = until

    def _start_compensation(
        self,
        session: AsyncSession,
        operation: Operation,
        order: Order,
        steps: list[OperationStep],
        code: str,
        reason: str,
    ) -> bool:
        """Queue the undo steps of a provision that failed holding a server."""
        if (
            operation.kind is not OperationKind.PROVISION
            or order.dci_server_id is None
            or operation.params.get("compensating")
            or self._settings.keep_failed_servers
            or code == "server_reassigned"
        ):
            return False
        operation.error_code = code
        operation.error = reason
        operation.params = {**operation.params, "compensating": True}
        # DCImanager's own "install failed" leaves the server in its error state, out
        # of stock until an operator looks; any other failure after the install may
        # have started (answer lost, waited too long) could leave a working system.
        install_attempted = code != "os_install_failed" and any(
            s.name == "install_os" and s.attempts > 0 for s in steps
        )
        _skip_pending(steps)
        position = max(s.position for s in steps) + 1
        session.add_all(
            OperationStep(operation_id=operation.id, name=name, position=position + offset)
            for offset, name in enumerate(compensation_for(install_attempted, self._settings))
        )
        log.warning("provision.compensating", code=code, reason=reason)
        return True

    async def _settle(
        self,
        session: AsyncSession,
        operation: Operation,
        order: Order,
        steps: list[OperationStep],
        now: datetime,
    ) -> None:
        """Every step is done: the operation succeeded, or its compensation finished."""
        if operation.error_code is not None:
            await self._settle_failed(
                session, operation, order, steps, now, operation.error_code, operation.error or ""
            )
            return
        state = lifecycle.apply(lifecycle.state_of(order), operation.kind, operation.params)
        order.status = state.status
        order.suspension_reason = state.suspension_reason
        match operation.kind:
            case OperationKind.SUSPEND:
                powered_off = any(s.name == "power_off" for s in steps)
                order.suspension_powered_off = order.suspension_powered_off or powered_off
            case OperationKind.UNSUSPEND:
                order.suspension_powered_off = False
            case OperationKind.TERMINATE:
                order.ip_addresses = []
            case OperationKind.REINSTALL:
                order.os_template_id = int(operation.params["os_template_id"])
                order.ssh_keys = list(operation.params.get("ssh_keys", []))
            case _:
                pass
        operation.status = OperationStatus.SUCCEEDED
        operation.finished_at = now
        operation.secret_ciphertext = None
        log.info(f"{operation.kind.value}.succeeded", order_status=order.status.value)
        OPERATIONS.labels(operation.kind.value, "succeeded").inc()
        await record_operation_outcome(
            session, settings=self._settings, order=order, operation=operation
        )

    async def _settle_failed(
        self,
        session: AsyncSession,
        operation: Operation,
        order: Order,
        steps: list[OperationStep],
        now: datetime,
        code: str,
        reason: str,
    ) -> None:
        _skip_pending(steps)
        if operation.error_code is not None and operation.error_code != code:
            reason = f"{operation.error}; then {code}: {reason}"
            code = operation.error_code
        operation.status = OperationStatus.FAILED
        operation.finished_at = now
        operation.error_code = code
        operation.error = reason
        operation.secret_ciphertext = None
        if operation.kind is OperationKind.PROVISION and order.status is OrderStatus.PROVISIONING:
            order.status = OrderStatus.FAILED
            order.failure_reason = f"{code}: {reason}"
        log.error(f"{operation.kind.value}.failed", code=code, reason=reason)
        OPERATIONS.labels(operation.kind.value, "failed").inc()
        await record_operation_outcome(
            session, settings=self._settings, order=order, operation=operation
        )

    def _crash_point(self, moment: str, step_name: str) -> None:
        if self._settings.debug_crash_at == f"{moment}:{step_name}":
            log.warning("worker.debug_crash", moment=moment, step=step_name)
            os.kill(os.getpid(), signal.SIGKILL)


class LeaseLost(Exception):
    """Another worker holds the operation now; this one must stop touching it."""

    def __init__(self, operation_id: int) -> None:
        super().__init__(f"lease on operation {operation_id} lost")


def _learned(ctx: StepContext) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    return dict(ctx.result), dict(ctx.order_updates), dict(ctx.customer_updates)


def _apply_updates(ctx: StepContext, order: Order, customer: Customer, step: OperationStep) -> None:
    step.result = dict(ctx.result)
    step.dci_task_id = ctx.result.get("task_id", step.dci_task_id)
    for name, value in ctx.order_updates.items():
        setattr(order, name, value)
    for name, value in ctx.customer_updates.items():
        setattr(customer, name, value)


def _let_go(operation: Operation) -> None:
    """Give up the lease, written with the transaction's other changes to the
    operation: its row is locked and its owner checked since ``_take``."""
    operation.lease_owner = None
    operation.lease_expires_at = None


def _skip_pending(steps: list[OperationStep]) -> None:
    for step in steps:
        if step.status in (StepStatus.PENDING, StepStatus.WAITING):
            step.status = StepStatus.SKIPPED


def _rewind(steps: list[OperationStep], to_step: str, reason: str) -> None:
    rewinding = False
    for step in steps:
        rewinding = rewinding or step.name == to_step
        if rewinding and step.status not in (StepStatus.SKIPPED,):
            step.status = StepStatus.PENDING
            step.result = {}
            step.last_error = reason


def _describe(error: DCIError) -> str:
    parts: list[str] = [str(error)]
    if error.code is not None:
        parts.append(f"(DCImanager code {error.code})")
    return " ".join(parts)
