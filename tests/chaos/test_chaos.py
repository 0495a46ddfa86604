"""Chaos: about 300 billing requests while workers are SIGKILLed, PostgreSQL is
restarted and DCImanager goes down, answers 503 and loses write answers; then
nothing may be lost, doubled, leaked or left unfinished.

Everything is real and on PostgreSQL: a cluster the test owns (so it can restart
it), `dcibridge simulator` as DCImanager, 1 to 3 `dcibridge worker` processes,
the API over HTTP (in-process, no worker of its own) with billing's callback URL
pointing at a real receiver. The run, in phases (each waits on conditions, with
generous bounds, never on the clock alone):

1. warm-up: the first third of the orders; once some are active and more are in
   flight, ``pg_ctl restart -m fast``;
2. DCImanager down (every call 503) for ``DOWN_SECONDS``, with the second third
   of the orders just accepted and a few more accepted during the outage;
3. 30% of DCImanager calls answered 503, the last third of the orders, and a
   PostgreSQL outage (stop, longer than a worker lease, start) in the middle;
4. DCImanager drops the answer of ``DROP_RATE`` of the writes it carries out;
5. faults cleared, every follow-up request sent, and everything waited for
   until final.

Follow-up requests (suspend, unsuspend, reinstall, power, terminate) go out per
order as soon as it is active, so they run through every phase. From the start
until every follow-up is sent (or ``KILLING_AFTER_FAULTS`` into phase 5), 1 to
3 random workers are SIGKILLed every few seconds and replaced. The random
choices come from one seed, printed first (``DCIBRIDGE_CHAOS_SEED`` replays a
workload and the kill and fault draws; timing still varies).

Billing's requests are held back while PostgreSQL is away (see ``Gate``); the
workers are not: they are what the restarts are aimed at.

The invariants are in ``tests/chaos/invariants.py``; a summary line gives the
counts. Without PostgreSQL's server binaries the test fails and says what to
install: a chaos suite that quietly skips protects nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from app.auth import service as api_keys
from app.auth.scopes import DEFAULT_SCOPES
from app.config import LogFormat, Settings
from app.kit.crypto import SecretBox
from app.kit.db import create_sessionmaker
from tests.chaos.harness import (
    BillingClient,
    DatabaseView,
    Gate,
    VerifyingReceiver,
    WorkerFleet,
)
from tests.chaos.invariants import Accepted, check_all
from tests.chaos.workload import CONFIGURATIONS, OrderSpec, build_workload
from tests.support.private_postgres import PostgresUnavailable, PrivatePostgres, private_postgres
from tests.support.processes import (
    TEST_SECRET_KEY,
    ForkServer,
    ProcessGroup,
    Simulator,
    Workers,
    running_simulator,
    serving_bridge,
)

pytestmark = pytest.mark.chaos

SEED_ENV = "DCIBRIDGE_CHAOS_SEED"
TARGET_OPERATIONS = 300
WAVES = 3
# Orders accepted while DCImanager is down: each waits for the API's stock check
# to give up on DCImanager (5 s, one at a time), so a few show that acceptance
# survives an outage without stretching the phase.
ACCEPTED_WHILE_DOWN = 3
# The API's DCIBRIDGE_STOCK_CACHE_SECONDS (its default).
STOCK_CACHE_SECONDS = 5.0
# More servers per configuration than orders of it (about 40), so that running
# out of stock, a legitimate failure, cannot happen.
SERVERS_PER_CONFIGURATION = 48
OP_SECONDS = 0.3
# DCImanager down for as long as the scenario asks for; well inside the workers'
# 503 retry budget (DCIBRIDGE_DCI_RETRY_503_SECONDS, 60 s), so no step gives up.
DOWN_SECONDS = 30.0
ERROR_503_RATE = 0.3
ERROR_503_SECONDS = 16.0
DROP_RATE = 0.3
DROP_SECONDS = 12.0
MIN_DROPS = 15
DROP_PHASE_LIMIT = 45.0
# The second PostgreSQL restart stays down longer than a worker lease (3 s), so
# leases run out while their holders cannot reach the database.
OUTAGE_SECONDS = 5.0
KILL_PAUSE_SECONDS = (3.0, 8.0)
# Kills stop when every follow-up is sent, or this long after the faults clear,
# whichever is first: the tail of the run is the orders' recovery, and killing
# through all of it would only stretch the run.
KILLING_AFTER_FAULTS = 30.0
SUBMIT_CONCURRENCY = 6
# Bounds on waiting; a healthy run needs a fraction of each.
WARM_UP_LIMIT = 120.0
FOLLOW_UPS_LIMIT = 300.0
SETTLE_LIMIT = 300.0


@dataclass
class ChaosRun:
    seed: int
    specs: list[OrderSpec]
    client: BillingClient
    fleet: WorkerFleet
    db: DatabaseView
    simulator: Simulator
    postgres: PrivatePostgres
    kill_rng: random.Random
    accepted: dict[int, Accepted] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    timeline: list[str] = field(default_factory=list)
    all_submitted: bool = False
    unfinished_at_restarts: list[int] = field(default_factory=list)
    began: float = field(default_factory=time.monotonic)
    _chaos: asyncio.Lock = field(default_factory=asyncio.Lock)
    _stop_killing: asyncio.Event = field(default_factory=asyncio.Event)

    def note(self, message: str) -> None:
        self.timeline.append(f"{time.monotonic() - self.began:7.1f}s  {message}")

    # -- the scenario ---------------------------------------------------------------

    async def execute(self) -> None:
        await self.simulator.faults(seed=self.seed)
        self.fleet.start(2)
        self.note("2 workers started")
        killer = asyncio.create_task(self._kill_workers(), name="chaos-killer")
        follow_ups = asyncio.create_task(self._send_follow_ups(), name="chaos-follow-ups")
        try:
            try:
                await self._phases(follow_ups)
            finally:
                self._stop_killing.set()
                await killer
            await self.fleet.ensure(2)
            self.note(f"killing stopped; {len(self.fleet.running)} workers left to finish")
            await asyncio.wait_for(follow_ups, timeout=FOLLOW_UPS_LIMIT)
        except TimeoutError:
            self.problems.append("follow-up requests were still waiting for orders to be active")
        finally:
            if not follow_ups.done():
                follow_ups.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follow_ups
        await self._until(self._all_final, timeout=SETTLE_LIMIT, what="everything final")
        self.note("every operation and callback final")

    async def _phases(self, follow_ups: asyncio.Task[None]) -> None:
        waves = [[spec for spec in self.specs if spec.wave == n] for n in range(WAVES)]

        self.note(f"phase 1: {len(waves[0])} orders, worker kills")
        first = asyncio.create_task(self._submit(waves[0]))
        await self._until(self._busy, timeout=WARM_UP_LIMIT, what="work in flight")
        await self._restart_postgres(down_seconds=0.0)
        await first

        before, during = waves[1][:-ACCEPTED_WHILE_DOWN], waves[1][-ACCEPTED_WHILE_DOWN:]
        await self._submit(before)
        self.note(f"phase 2: DCImanager down for {DOWN_SECONDS:.0f}s, {len(before)} orders new")
        await self.simulator.faults(down=True)
        # Once the API's cached stock (5 s) is stale, so these orders really are
        # accepted without DCImanager.
        await asyncio.sleep(STOCK_CACHE_SECONDS + 1)
        down_submit_began = time.monotonic()
        second = asyncio.create_task(self._submit(during))
        await asyncio.sleep(DOWN_SECONDS - STOCK_CACHE_SECONDS - 1)
        await self.simulator.faults(down=False)
        self.note("DCImanager back")
        await second
        self.note(
            f"{len(during)} orders sent while it was down took "
            f"{time.monotonic() - down_submit_began:.1f}s to be accepted"
        )

        self.note(f"phase 3: {ERROR_503_RATE:.0%} of calls 503, {len(waves[2])} orders")
        await self.simulator.faults(error_503_rate=ERROR_503_RATE)
        third = asyncio.create_task(self._submit(waves[2]))
        await asyncio.sleep(ERROR_503_SECONDS / 2)
        await self._restart_postgres(down_seconds=OUTAGE_SECONDS)
        await asyncio.sleep(ERROR_503_SECONDS / 2)
        await third
        self.all_submitted = True

        self.note(f"phase 4: {DROP_RATE:.0%} of write answers dropped")
        await self.simulator.faults(error_503_rate=0.0, drop_write_response_rate=DROP_RATE)
        phase_began = time.monotonic()
        await asyncio.sleep(DROP_SECONDS)
        await self._until(
            self._enough_drops,
            timeout=DROP_PHASE_LIMIT - (time.monotonic() - phase_began),
            what=f"{MIN_DROPS} dropped answers",
            required=False,
        )
        await self.simulator.faults(drop_write_response_rate=0.0)
        self.note("phase 5: faults cleared; kills go on while follow-ups are being sent")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(follow_ups), timeout=KILLING_AFTER_FAULTS)

    # -- billing ----------------------------------------------------------------------

    async def _submit(self, specs: list[OrderSpec]) -> None:
        limit = asyncio.Semaphore(SUBMIT_CONCURRENCY)

        async def one(spec: OrderSpec) -> None:
            async with limit:
                response = await self.client.post("/api/v1/orders", spec.create_body())
            if response.status_code not in (200, 202):
                self.problems.append(f"{spec.external_id} refused: {response.text[:300]}")
                return
            order = response.json()
            self.accepted[spec.index] = Accepted(spec, order["id"], [order["operations"][0]["id"]])

        await asyncio.gather(*(one(spec) for spec in specs))

    async def _send_follow_ups(self) -> None:
        """Each order's plan, sent once the order is active."""
        handled: set[int] = set()
        sending: list[asyncio.Task[None]] = []
        limit = asyncio.Semaphore(SUBMIT_CONCURRENCY)
        while not (self.all_submitted and handled >= set(self.accepted)):
            statuses = await self.db.order_statuses() or {}
            for index, record in list(self.accepted.items()):
                status = statuses.get(record.order_id)
                if index in handled or status not in ("active", "failed"):
                    continue
                handled.add(index)
                if status == "active":
                    sending.append(asyncio.create_task(self._send_plan(record, limit)))
            await asyncio.sleep(0.3)
        await asyncio.gather(*sending)
        self.note("every follow-up request sent")

    async def _send_plan(self, record: Accepted, limit: asyncio.Semaphore) -> None:
        for request in record.spec.plan:
            async with limit:
                response = await self.client.post(
                    f"/api/v1/orders/{record.order_id}/{request.verb}", request.body
                )
            if response.status_code != 202:
                self.problems.append(
                    f"order {record.order_id} {request.label} refused: {response.text[:300]}"
                )
                return
            record.operation_ids.append(response.json()["id"])
        record.plan_submitted = True

    # -- chaos ------------------------------------------------------------------------

    async def _kill_workers(self) -> None:
        while not self._stop_killing.is_set():
            with contextlib.suppress(TimeoutError):
                pause = self.kill_rng.uniform(*KILL_PAUSE_SECONDS)
                await asyncio.wait_for(self._stop_killing.wait(), timeout=pause)
            if self._stop_killing.is_set():
                return
            async with self._chaos:
                killed_before = self.fleet.kills
                running = self.fleet.kill_round()
                self.note(f"killed {self.fleet.kills - killed_before}, {running} running")

    async def _restart_postgres(self, *, down_seconds: float) -> None:
        # Not while a worker is starting: its schema check needs the database, and a
        # worker that cannot start is its supervisor's business, not this test's.
        async with self._chaos:
            await self.fleet.all_started()
            async with self.client.gate.closed():
                counts = await self.db.unfinished()
                unfinished = counts[0] if counts else -1
                self.unfinished_at_restarts.append(unfinished)
                how = f"down {down_seconds:.0f}s" if down_seconds else "pg_ctl restart -m fast"
                self.note(f"PostgreSQL restart ({how}), {unfinished} operations unfinished")
                await asyncio.to_thread(self.postgres.restart, down_seconds=down_seconds)
                self.note("PostgreSQL back")

    # -- conditions -------------------------------------------------------------------

    async def _until(
        self,
        condition: Callable[[], Awaitable[bool]],
        *,
        timeout: float,
        what: str,
        required: bool = True,
    ) -> None:
        deadline = time.monotonic() + timeout
        while not await condition():
            if time.monotonic() > deadline:
                self.note(f"gave up waiting for {what}")
                if required:
                    self.problems.append(f"timed out after {timeout:.0f}s waiting for {what}")
                return
            await asyncio.sleep(0.25)

    async def _busy(self) -> bool:
        statuses = await self.db.order_statuses()
        counts = await self.db.unfinished()
        if statuses is None or counts is None:
            return False
        return sum(status == "active" for status in statuses.values()) >= 5 and counts[0] >= 5

    async def _enough_drops(self) -> bool:
        state = await self.simulator.state()
        return int(state["calls"]["dropped_responses"]) >= MIN_DROPS

    async def _all_final(self) -> bool:
        self.fleet.check()
        if not self.fleet.running:  # a crash took the last one: the others must finish
            await self.fleet.ensure(1)
        counts = await self.db.unfinished()
        return counts == (0, 0)


async def _migrate(group: ProcessGroup, fork_server: ForkServer, url: str) -> None:
    migrate = group.fork(fork_server, "migrate", ["migrate"], {"DCIBRIDGE_DATABASE_URL": url})
    assert await migrate.wait_exit(timeout=120) == 0, migrate.tail()


async def _billing_key(url: str, callback_url: str) -> tuple[str, str]:
    """Billing's API key, with its callbacks going to ``callback_url``; and their secret."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            issued = await api_keys.create_client(session, name="billing", scopes=DEFAULT_SCOPES)
        async with create_sessionmaker(engine)() as session, session.begin():
            config = await api_keys.configure_callbacks(
                session, name="billing", url=callback_url, secrets_box=SecretBox([TEST_SECRET_KEY])
            )
    finally:
        await engine.dispose()
    assert config.new_secret is not None
    return issued.raw_key, config.new_secret


def _say(capsys: pytest.CaptureFixture[str], message: str) -> None:
    # Shown even when the test passes and output is captured: the seed and the counts.
    with capsys.disabled():
        print(message, flush=True)  # noqa: T201


async def test_chaos(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    began = time.monotonic()
    seed = int(os.environ.get(SEED_ENV) or secrets.randbelow(2**31))
    _say(capsys, f"\nchaos seed {seed} (replay the workload with {SEED_ENV}={seed})")
    specs = build_workload(
        random.Random(seed),
        target_operations=TARGET_OPERATIONS,
        waves=WAVES,
        max_per_configuration=SERVERS_PER_CONFIGURATION,
    )
    with contextlib.ExitStack() as stack:
        try:
            postgres = stack.enter_context(private_postgres())
        except PostgresUnavailable as exc:
            message = f"the chaos suite needs its own PostgreSQL: {exc}"
            raise pytest.fail.Exception(message, pytrace=False) from None
        simulator = stack.enter_context(
            running_simulator(
                tmp_path / "simulator", servers=SERVERS_PER_CONFIGURATION, op_seconds=OP_SECONDS
            )
        )
        # In this order so that the workers die (through the fork server) first.
        fork_server = stack.enter_context(ForkServer(tmp_path / "fork-server"))
        group = stack.enter_context(ProcessGroup(tmp_path / "processes"))
        receiver = stack.enter_context(VerifyingReceiver().serving())

        await _migrate(group, fork_server, postgres.url)
        key, receiver.secret = await _billing_key(postgres.url, receiver.url)
        settings = Settings(
            _env_file=None,
            database_url=postgres.url,
            log_format=LogFormat.CONSOLE,
            run_worker=False,
        )
        db = DatabaseView(postgres.url)
        try:
            async with serving_bridge(settings, simulator, api_key=key) as bridge:
                workers = Workers(
                    group, database_url=postgres.url, simulator=simulator, fork_server=fork_server
                )
                run = ChaosRun(
                    seed=seed,
                    specs=specs,
                    client=BillingClient(bridge.api, Gate()),
                    fleet=WorkerFleet(workers, random.Random(seed + 1)),
                    db=db,
                    simulator=simulator,
                    postgres=postgres,
                    kill_rng=random.Random(seed + 2),
                )
                try:
                    await run.execute()
                finally:
                    _say(capsys, "chaos timeline:\n" + "\n".join(run.timeline))
                stop_problems = await run.fleet.stop_all()
                orders = await run.client.all_orders()
                state = await simulator.state()
                events = await db.callback_events()
        finally:
            await db.dispose()

        violations = [
            *run.problems,
            *run.fleet.unexpected_exits,
            *stop_problems,
            *(f"API error: {error}" for error in run.client.server_errors),
            *check_all(
                accepted=list(run.accepted.values()),
                orders=orders,
                state=state,
                events=events,
                deliveries=receiver.deliveries,
            ),
        ]
        _keep(tmp_path / "report", run, orders, state, events, violations)
        _report(capsys, run, orders, state, events, receiver, violations, began, tmp_path)
    assert not violations, f"{len(violations)} invariant violations:\n" + "\n".join(violations)


def _report(
    capsys: pytest.CaptureFixture[str],
    run: ChaosRun,
    orders: list[dict[str, Any]],
    state: dict[str, Any],
    events: list[dict[str, Any]],
    receiver: VerifyingReceiver,
    violations: list[str],
    began: float,
    where: Path,
) -> None:
    operations = sum(len(order["operations"]) for order in orders)
    calls = state["calls"]
    injected = int(calls["injected_503"]) + int(calls["dropped_responses"])
    log_counts = run.fleet.log_event_counts()
    noteworthy = {
        name: count
        for name, count in sorted(log_counts.items())
        if name.endswith(("crashed", "lease_lost", "retrying", "_failed", "rewound"))
    }
    by_configuration = {c: sum(o["configuration"] == c for o in orders) for c in CONFIGURATIONS}
    lines = [
        f"chaos workers: {run.fleet.started} started, {run.fleet.kill_rounds} kill rounds; "
        f"worker log events of note: {noteworthy}",
        f"chaos orders by configuration: {by_configuration}; "
        f"unfinished operations at each PostgreSQL restart: {run.unfinished_at_restarts}",
        f"chaos operations (kind: count, mean/max seconds accepted to final, "
        f"most attempts of one step): "
        f"{_durations(orders)}",
        f"chaos callbacks: {len(events)} events, {len(receiver.deliveries)} deliveries; "
        f"billing retried {run.client.retries} requests",
        f"chaos summary: seed={run.seed} operations={operations} orders={len(orders)} "
        f"kills={run.fleet.kills} pg_restarts={run.postgres.restarts} "
        f"faults_injected={injected} (503s={calls['injected_503']}, "
        f"dropped_write_answers={calls['dropped_responses']}, down={DOWN_SECONDS:.0f}s) "
        f"violations={len(violations)} wall={time.monotonic() - began:.0f}s",
        f"chaos logs and final state under {where}",
    ]
    _say(capsys, "\n".join(lines))


def _keep(
    where: Path,
    run: ChaosRun,
    orders: list[dict[str, Any]],
    state: dict[str, Any],
    events: list[dict[str, Any]],
    violations: list[str],
) -> None:
    """What the run ended with, next to the processes' logs, for reading a failure."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "timeline.txt").write_text("\n".join(run.timeline) + "\n", encoding="utf-8")
    (where / "violations.txt").write_text("\n".join(violations) + "\n", encoding="utf-8")
    for name, data in (("orders", orders), ("simulator", state), ("callbacks", events)):
        (where / f"{name}.json").write_text(json.dumps(data, indent=1, default=str), "utf-8")


def _durations(orders: list[dict[str, Any]]) -> str:
    seconds: dict[str, list[float]] = defaultdict(list)
    attempts: dict[str, int] = defaultdict(int)
    for order in orders:
        for op in order["operations"]:
            if op["finished_at"]:
                finished = datetime.fromisoformat(op["finished_at"])
                created = datetime.fromisoformat(op["created_at"])
                seconds[op["kind"]].append((finished - created).total_seconds())
            most = max((step["attempts"] for step in op["steps"]), default=0)
            attempts[op["kind"]] = max(attempts[op["kind"]], most)
    return "; ".join(
        f"{kind}: {len(values)}, {sum(values) / len(values):.1f}/{max(values):.1f}s, "
        f"{attempts[kind]}"
        for kind, values in sorted(seconds.items())
    )
