"""Provisioning benchmark: how close dcibridge gets to the DCImanager critical path.

Run::

    .venv/bin/python -m bench.provision [--orders N] [--db sqlite|postgres|both]
        [--op-seconds S] [--ip-seconds S] [--task-poll-seconds S] [--workers 1 3 ...]

For each database (and worker count) it starts, as users would, the standalone
simulator (``dcibridge simulator --inventory FILE --servers M``) and the service
(``dcibridge serve``, or ``serve --no-worker`` plus K ``dcibridge worker``
processes) pointed at it, then measures:

- single-order latency: ``POST /api/v1/orders`` answered 202 -> the order's
  provision operation finished (its ``finished_at``, the moment the order turned
  ``active``), for a few orders one after the other on an idle service, divided
  by the critical path = the simulator's IP-allocation time + OS-install time
  (the two waits on the order's path; every other step is an instant call);
- N-order makespan: N orders submitted at once (over the three default
  configurations) -> the last one active, divided by the single-order latency of
  the same run.

It prints (and writes to ``bench/results/provision.md``) the raw numbers, the
ratios against the targets (<= 1.15 and <= 1.5), DCImanager calls per order by
endpoint, and where the CPU went during the burst.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from app.simulator.inventory import Inventory
from bench.common import (
    REPO,
    Child,
    Children,
    CpuMeter,
    code_description,
    machine_cpu,
    markdown_table,
    order_request,
    own_cpu_seconds,
    reachable_databases,
    recording_failure,
    run_cleanly,
    service_client,
    service_env,
    with_deadlines,
    write_report,
)
from bench.stack import Stack, sized_inventory

LATENCY_TARGET = 1.15
MAKESPAN_TARGET = 1.5
RESULTS = REPO / "bench" / "results" / "provision.md"

# Defaults: an OS install of 60 s and an IP allocation of 2 s, real ones scaled
# down about fifteenfold (installs take 10-30 min); the service polls with its
# production settings.
DEFAULT_OS_SECONDS = 60.0
DEFAULT_IP_SECONDS = 2.0
DEFAULT_TASK_POLL_SECONDS = 5.0
DEFAULT_ORDERS = (100, 200, 500, 1000)
# Kept free at the end of each run's share of the budget: fetching the orders,
# stopping the processes, dropping the database.
_TEARDOWN_SECONDS = 15.0


@dataclass(frozen=True)
class BenchConfig:
    # Burst sizes, run one after another on the same service.
    orders: tuple[int, ...]
    databases: tuple[str, ...]
    workers: tuple[int, ...]
    os_seconds: float
    ip_seconds: float
    task_poll_seconds: float
    singles: int
    idle_seconds: float
    submit_concurrency: int
    log_level: str
    extra_env: dict[str, str]
    keep_logs: bool
    output: Path
    budget_seconds: float
    profile: Path | None
    source: Path | None

    def child_env(self, overrides: Mapping[str, str]) -> dict[str, str]:
        """The environment of every child: DCIBRIDGE_* cleared, then ``overrides``; with
        ``--source``, that tree's ``app`` shadows the installed one."""
        if self.source is not None:
            overrides = {"PYTHONPATH": str(self.source), **overrides}
        return service_env(overrides)

    @property
    def critical_path(self) -> float:
        return self.ip_seconds + self.os_seconds

    def service_settings(self) -> dict[str, str]:
        """The DCIBRIDGE_* speed settings the service runs with (beyond its URLs/keys)."""
        return {
            "DCIBRIDGE_TASK_POLL_SECONDS": f"{self.task_poll_seconds:g}",
            "DCIBRIDGE_LOG_LEVEL": self.log_level,
            **self.extra_env,
        }


@dataclass
class OrderTiming:
    order_id: int
    status: str
    accepted_at: datetime
    operation: dict[str, Any]

    @property
    def finished_at(self) -> datetime | None:
        return _parse_time(self.operation.get("finished_at"))

    @property
    def latency(self) -> float | None:
        finished = self.finished_at
        return None if finished is None else (finished - self.accepted_at).total_seconds()

    def timeline(self) -> list[tuple[str, float | None, float | None]]:
        """(step, started, finished) in seconds after the order was accepted."""

        def offset(value: Any) -> float | None:
            moment = _parse_time(value)
            return None if moment is None else (moment - self.accepted_at).total_seconds()

        return [
            (step["name"], offset(step["started_at"]), offset(step["finished_at"]))
            for step in self.operation.get("steps", [])
        ]


@dataclass(frozen=True)
class Snapshot:
    """Counters read at one moment, to be subtracted from a later reading."""

    calls: Counter[str]
    cpu: dict[str, float]
    machine: tuple[float, float]
    commits: int | None


@dataclass(frozen=True)
class PhaseCost:
    """What one phase (the singles, or the burst) cost, per order."""

    orders: int
    calls: dict[str, float]
    cpu: dict[str, float]
    machine_busy: float | None
    commits: float | None
    # Share of the machine's CPU that processes outside this benchmark used meanwhile.
    foreign_busy: float | None

    @classmethod
    def between(
        cls, before: Snapshot, after: Snapshot, orders: int, *, per: float | None = None
    ) -> PhaseCost:
        """Costs divided by ``per`` (default: by ``orders``, at least 1)."""
        per = per or max(1, orders)
        busy, total = (a - b for a, b in zip(after.machine, before.machine, strict=True))
        commits = None
        if before.commits is not None and after.commits is not None:
            commits = (after.commits - before.commits) / per
        return cls(
            orders=orders,
            calls={
                endpoint: (after.calls[endpoint] - before.calls[endpoint]) / per
                for endpoint in sorted(after.calls)
                if after.calls[endpoint] > before.calls[endpoint]
            },
            cpu={name: (after.cpu[name] - before.cpu[name]) / per for name in after.cpu},
            machine_busy=busy / total if total > 0 else None,
            commits=commits,
            foreign_busy=(
                max(0.0, busy - sum(after.cpu[n] - before.cpu[n] for n in after.cpu)) / total
                if total > 0
                else None
            ),
        )


@dataclass
class RunResult:
    database: str
    workers: int
    critical_path: float
    orders: int
    singles: list[OrderTiming] = field(default_factory=list)
    bulk: list[OrderTiming] = field(default_factory=list)
    bulk_started_at: datetime | None = None
    submit_seconds: float = 0.0
    makespan: float | None = None
    # Per second of an idle service, before any order.
    idle_cost: PhaseCost | None = None
    single_cost: PhaseCost | None = None
    burst_cost: PhaseCost | None = None
    timed_out: bool = False
    # Burst submissions the API did not accept (status, body, the service's logged cause).
    refused: list[str] = field(default_factory=list)
    error: str | None = None
    log_dir: Path | None = None

    @property
    def single_latencies(self) -> list[float]:
        return [t.latency for t in self.singles if t.latency is not None and t.status == "active"]

    @property
    def single_latency(self) -> float | None:
        values = self.single_latencies
        return statistics.median(values) if values else None

    @property
    def latency_ratio(self) -> float | None:
        single = self.single_latency
        return None if single is None else single / self.critical_path

    @property
    def makespan_ratio(self) -> float | None:
        single = self.single_latency
        if single is None or self.makespan is None:
            return None
        return self.makespan / single

    @property
    def bulk_failed(self) -> int:
        """Burst orders that did not become active (refused, failed, or unfinished)."""
        return len(self.refused) + sum(1 for t in self.bulk if t.status != "active")

    @property
    def bulk_unfinished(self) -> int:
        return sum(1 for t in self.bulk if t.status == "provisioning")

    @property
    def outcome(self) -> str:
        if self.error is not None:
            return f"error: {self.error}"
        failed = self.bulk_failed - self.bulk_unfinished - len(self.refused)
        parts = [str(failed)]
        if self.refused:
            parts.append(f"{len(self.refused)} refused by the API")
        if self.timed_out:
            parts.append(f"{self.bulk_unfinished} unfinished at the deadline")
        return ", ".join(parts)

    @property
    def label(self) -> str:
        return f"{self.database} / {self.workers} worker{'s' if self.workers > 1 else ''}"


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _now() -> datetime:
    return datetime.now(UTC)


# -- the simulated data centre ----------------------------------------------------------


def _inventory(config: BenchConfig) -> tuple[Inventory, int]:
    """The simulated data centre: room for every order of every burst and the singles."""
    return sized_inventory(
        sum(config.orders) + config.singles,
        os_seconds=config.os_seconds,
        ip_seconds=config.ip_seconds,
    )


# -- one run: one database, one worker layout -------------------------------------------


class Refused(Exception):
    """The API did not accept an order."""


class _Group:
    def __init__(self, children: list[Child]) -> None:
        self.children = children

    def interrupt(self) -> None:
        for child in self.children:
            child.interrupt()


class Bench:
    def __init__(
        self,
        config: BenchConfig,
        database: str,
        workers: int,
        children: Children,
        *,
        deadline: float,
    ) -> None:
        self.config = config
        self.deadline = deadline
        self.database = database
        self.workers = workers
        self.children = children
        self.workdir = Path(tempfile.mkdtemp(prefix=f"bench-provision-{database}-"))
        self.result = self._new_result(config.orders[0])
        self.results: list[RunResult] = []
        self.stack = Stack(children, self.workdir, database, child_env=config.child_env)
        self.configurations: list[str] = []
        self.meter = CpuMeter()
        self.tag = f"{database[:2]}{workers}-{int(time.time()) % 100000}"

    def fail(self, error: str) -> None:
        self.result.error = error

    def _new_result(self, orders: int) -> RunResult:
        return RunResult(
            database=self.database,
            workers=self.workers,
            critical_path=self.config.critical_path,
            orders=orders,
            log_dir=self.workdir,
        )

    # -- set-up --------------------------------------------------------------

    async def start(self, client: httpx.AsyncClient) -> None:
        inventory, per_configuration = _inventory(self.config)
        self.configurations = [c.name for c in inventory.configurations]
        stack = self.stack
        await stack.start(
            client,
            scratch_label=f"w{self.workers}",
            inventory=inventory,
            servers=per_configuration,
            settings=self.config.service_settings(),
            workers=self.workers,
        )
        self.meter.watch("dcibridge", roots=stack.service_pids)
        self.meter.watch("simulator", roots=[stack.simulator_pid])
        if stack.scratch is not None:
            self.meter.watch("postgres", cmdline=[stack.scratch.name])

    # -- orders ------------------------------------------------------------------

    def _order_body(self, index: int) -> dict[str, Any]:
        configuration = self.configurations[index % len(self.configurations)]
        return order_request(f"{self.tag}-{index}", configuration)

    async def _submit(self, client: httpx.AsyncClient, index: int) -> tuple[int, datetime]:
        response = await client.post(
            f"{self.stack.url}/api/v1/orders",
            json=self._order_body(index),
            headers=self.stack.headers,
            timeout=60,
        )
        accepted = _now()
        if response.status_code != 202:
            cause = self._logged_error(response.headers.get("x-request-id", ""))
            title = response.text[:200]
            with contextlib.suppress(ValueError, KeyError, TypeError):
                title = str(response.json()["title"])
            raise Refused(f"{response.status_code} {title}{cause}")
        return int(response.json()["id"]), accepted

    def _logged_error(self, request_id: str) -> str:
        """The last line of the exception the service logged for ``request_id``, if any."""
        if not request_id:
            return ""
        for child in self.children:
            with contextlib.suppress(OSError):
                for line in child.log_path.read_text(errors="replace").splitlines():
                    if request_id in line and '"exception"' in line:
                        with contextlib.suppress(ValueError, KeyError):
                            exception = str(json.loads(line)["exception"])
                            # The last "module.SomeError: message" line, not SQLAlchemy's
                            # trailing "(Background on this error at ...)".
                            raised = [
                                text
                                for text in exception.splitlines()
                                if re.match(r"^[\w.]+(Error|Exception)\b", text)
                            ]
                            if raised:
                                return f" [logged: {raised[-1][:200]}]"
        return ""

    async def _order(self, client: httpx.AsyncClient, order_id: int) -> dict[str, Any]:
        response = await client.get(
            f"{self.stack.url}/api/v1/orders/{order_id}", headers=self.stack.headers, timeout=30
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    @staticmethod
    def _timing(order: dict[str, Any], accepted: datetime) -> OrderTiming:
        provision = next(op for op in order["operations"] if op["kind"] == "provision")
        return OrderTiming(
            order_id=int(order["id"]),
            status=str(order["status"]),
            accepted_at=accepted,
            operation=provision,
        )

    async def single(self, client: httpx.AsyncClient, index: int) -> OrderTiming:
        order_id, accepted = await self._submit(client, index)
        deadline = time.monotonic() + max(60.0, 6 * self.config.critical_path)
        while True:
            order = await self._order(client, order_id)
            if order["status"] != "provisioning":
                return self._timing(order, accepted)
            if time.monotonic() > deadline:
                raise TimeoutError(f"single order {order_id} still provisioning")
            self.children.check_alive()
            await asyncio.sleep(0.2)

    async def _provisioning_left(self, client: httpx.AsyncClient) -> bool:
        response = await client.get(
            f"{self.stack.url}/api/v1/orders",
            params={"status": "provisioning", "limit": 1},
            headers=self.stack.headers,
            timeout=30,
        )
        response.raise_for_status()
        return bool(response.json()["items"])

    async def _all_orders(self, client: httpx.AsyncClient) -> list[dict[str, Any]]:
        orders: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 100}
            if cursor:
                params["cursor"] = cursor
            response = await client.get(
                f"{self.stack.url}/api/v1/orders",
                params=params,
                headers=self.stack.headers,
                timeout=60,
            )
            response.raise_for_status()
            page = response.json()
            orders.extend(page["items"])
            cursor = page["next_cursor"]
            if not cursor:
                return orders

    async def bulk(self, client: httpx.AsyncClient, first_index: int) -> None:
        config = self.config
        result = self.result
        gate = asyncio.Semaphore(config.submit_concurrency)

        async def submit(index: int) -> tuple[int, datetime] | None:
            async with gate:
                try:
                    return await self._submit(client, index)
                except Refused as refused:
                    # Billing would retry; the benchmark counts it as a failed order.
                    result.refused.append(str(refused))
                    return None

        started = _now()
        result.bulk_started_at = started
        submitted = await asyncio.gather(*(submit(first_index + i) for i in range(result.orders)))
        accepted = [item for item in submitted if item is not None]
        result.submit_seconds = (_now() - started).total_seconds()
        deadline = min(
            self.deadline, time.monotonic() + 60 + 10 * config.critical_path + 0.2 * result.orders
        )
        while await self._provisioning_left(client):
            if time.monotonic() > deadline:
                result.timed_out = True
                break
            self.children.check_alive()
            await asyncio.sleep(0.5)
        waited = (_now() - started).total_seconds()
        accepted_at = dict(accepted)
        result.bulk = [
            self._timing(order, accepted_at[int(order["id"])])
            for order in await self._all_orders(client)
            if int(order["id"]) in accepted_at
        ]
        finished = [t.finished_at for t in result.bulk if t.finished_at is not None]
        if result.timed_out:
            result.makespan = waited  # a lower bound: some orders were still provisioning
        elif finished:
            result.makespan = (max(finished) - started).total_seconds()

    # -- accounting ----------------------------------------------------------------

    async def _sim_calls(self, client: httpx.AsyncClient) -> Counter[str]:
        response = await client.get(f"{self.stack.sim_url}/_sim/state", timeout=60)
        response.raise_for_status()
        return Counter(response.json()["calls"]["by_endpoint"])

    async def _snapshot(self, client: httpx.AsyncClient) -> Snapshot:
        cpu, machine = self._cpu(), machine_cpu()
        commits = None
        if self.stack.scratch is not None:
            await asyncio.sleep(1.1)  # PostgreSQL flushes backends' statistics each second
            commits = await self.stack.scratch.committed_transactions()
        return Snapshot(
            calls=await self._sim_calls(client), cpu=cpu, machine=machine, commits=commits
        )

    def _cpu(self) -> dict[str, float]:
        self.meter.sample()
        return {**self.meter.totals(), "bench client": own_cpu_seconds()}

    async def _sample_cpu(self) -> None:
        while True:
            await asyncio.to_thread(self.meter.sample)
            await asyncio.sleep(0.5)

    def _start_profiler(self) -> Child | _Group | None:
        """py-spy on every dcibridge process for the burst (``--profile DIR``)."""
        if self.config.profile is None:
            return None
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.config.profile.mkdir(parents=True, exist_ok=True)
        last_pid = self.stack.service_pids[-1]
        output = self.config.profile / f"{self.database}-w{self.workers}-{last_pid}"
        profilers = [
            self.children.start(
                f"py-spy-{pid}",
                [
                    py_spy,
                    "record",
                    "--pid",
                    str(pid),
                    "--rate",
                    "250",
                    "--format",
                    "raw",
                    "--nonblocking",
                    "--output",
                    f"{output}-{pid}.txt",
                ],
                env=service_env({}),
                cwd=self.workdir,
            )
            for pid in self.stack.service_pids
        ]
        return profilers[0] if len(profilers) == 1 else _Group(profilers)

    async def run(self, client: httpx.AsyncClient) -> list[RunResult]:
        await self.start(client)
        sampler = asyncio.create_task(self._sample_cpu())
        try:
            return await self._measure(client)
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler

    async def _measure(self, client: httpx.AsyncClient) -> list[RunResult]:
        config = self.config
        first = self.result
        idle_start = await self._snapshot(client)
        started = time.monotonic()
        await asyncio.sleep(config.idle_seconds)
        before = await self._snapshot(client)
        first.idle_cost = PhaseCost.between(idle_start, before, 0, per=time.monotonic() - started)
        for index in range(config.singles):
            first.singles.append(await self.single(client, index))
        after = await self._snapshot(client)
        first.single_cost = PhaseCost.between(before, after, len(first.single_latencies))

        # Each burst runs on the service the singles measured, after the bursts
        # before it: their orders stay active, as a live deployment's would.
        next_index = config.singles
        for position, orders in enumerate(config.orders):
            result = first if position == 0 else self._new_result(orders)
            if result is not first:
                result.singles, result.idle_cost = first.singles, first.idle_cost
                result.single_cost = first.single_cost
            self.result = result
            self.results.append(result)
            print(f"   burst of {orders} ...", flush=True)
            profiler = self._start_profiler()
            try:
                await self.bulk(client, first_index=next_index)
            finally:
                if profiler is not None:
                    await asyncio.to_thread(profiler.interrupt)
            next_index += orders
            # Per accepted order: when the burst ran out of time this includes the
            # work already spent on the orders still provisioning.
            before_burst, after = after, await self._snapshot(client)
            result.burst_cost = PhaseCost.between(before_burst, after, orders - len(result.refused))
            if result.timed_out:
                break
        return self.results


async def run_one(
    config: BenchConfig, database: str, workers: int, children: Children, *, deadline: float
) -> list[RunResult]:
    bench = Bench(config, database, workers, children, deadline=deadline)
    try:
        async with (
            recording_failure(bench.fail, children),
            service_client(max_connections=config.submit_concurrency + 4) as client,
        ):
            return await bench.run(client)
        # Only reached when recording_failure swallowed a failure.
        return bench.results or [bench.result]
    finally:
        await bench.stack.stop()
        failed = bench.result.error not in (None, "interrupted")
        if not failed and not config.keep_logs:
            shutil.rmtree(bench.workdir, ignore_errors=True)
            for result in bench.results:
                result.log_dir = None


# -- reporting ---------------------------------------------------------------------------


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _verdict(value: float | None, target: float) -> str:
    if value is None:
        return "n/a"
    return "PASS" if value <= target else "FAIL"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _percentile(values: Sequence[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


def _step_means(timings: Iterable[OrderTiming]) -> dict[str, tuple[float, float]]:
    """Per step: mean start after acceptance and mean duration, in seconds."""
    starts: dict[str, list[float]] = {}
    durations: dict[str, list[float]] = {}
    for timing in timings:
        for name, started, finished in timing.timeline():
            if started is not None and finished is not None:
                starts.setdefault(name, []).append(started)
                durations.setdefault(name, []).append(finished - started)
    return {
        name: (statistics.fmean(starts[name]), statistics.fmean(durations[name])) for name in starts
    }


def _first_of_service(result: RunResult, results: list[RunResult]) -> bool:
    """Whether ``result`` is the first burst of its service (the one its singles ran on)."""
    return next(r for r in results if r.label == result.label) is result


def report(config: BenchConfig, results: list[RunResult], notes: list[str]) -> str:
    lines: list[str] = []
    lines.append("# Provisioning benchmark")
    lines.append("")
    lines.append(
        f"`python -m bench.provision --orders {' '.join(map(str, config.orders))} "
        f"--db {','.join(config.databases)} --workers "
        f"{' '.join(map(str, config.workers))} --op-seconds {config.os_seconds:g} "
        f"--ip-seconds {config.ip_seconds:g} --task-poll-seconds {config.task_poll_seconds:g}`"
        f" — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    lines.append("")
    lines.append(f"Service code: {code_description(config.source)}.")
    lines.append("")
    lines.append(
        f"Simulator timings: OS install {config.os_seconds:g} s, IP allocation "
        f"{config.ip_seconds:g} s => critical path {config.critical_path:g} s per order. "
        "Service settings: "
        + ", ".join(f"`{k}={v}`" for k, v in sorted(config.service_settings().items()))
        + " (everything else at its default). Single-order latency = median of "
        f"{config.singles} orders run one after another on the idle service."
    )
    lines.append("")
    headers = [
        "run",
        "critical path s",
        "single latency s",
        "latency / critical",
        f"<= {LATENCY_TARGET}",
        "N",
        "submit s",
        "makespan s",
        "makespan / latency",
        f"<= {MAKESPAN_TARGET}",
        "failed",
    ]
    rows = []
    for r in results:
        rows.append(
            [
                r.label,
                _f(r.critical_path),
                _f(r.single_latency),
                _f(r.latency_ratio, 3),
                _verdict(r.latency_ratio, LATENCY_TARGET),
                r.orders,
                _f(r.submit_seconds),
                (">" if r.timed_out else "") + _f(r.makespan),
                (">" if r.timed_out else "") + _f(r.makespan_ratio, 3),
                _verdict(r.makespan_ratio, MAKESPAN_TARGET),
                r.outcome,
            ]
        )
    lines.append(markdown_table(headers, rows))
    lines.append("")

    lines.append("## Cost per order")
    lines.append("")
    lines.append(
        "Per order accepted by the API. CPU is milliseconds of CPU time per order, read "
        "from /proc (`postgres` = all "
        "backends of the run's database); machine busy = share of all the machine's "
        f"{os.cpu_count()} CPUs in use during the phase, and in brackets the share used by "
        "processes outside the benchmark (other work on the machine skews the results); "
        "PG commits from pg_stat_database, including the benchmark's own polling."
    )
    lines.append("")
    cost_headers = [
        "run",
        "phase",
        "latency p50 / p95 / max s",
        "CPU ms / order",
        "machine busy (others)",
        "PG commits / order",
        "DCI calls / order",
    ]
    cost_rows = []
    for r in results:
        phases = (
            (
                "singles",
                r.single_cost if _first_of_service(r, results) else None,
                r.single_latencies,
            ),
            ("burst", r.burst_cost, [t.latency for t in r.bulk if t.latency is not None]),
        )
        for phase, cost, latencies in phases:
            if cost is None:
                continue
            cost_rows.append(
                [
                    r.label,
                    f"{phase} ({cost.orders})" if phase == "singles" else f"burst N={r.orders}",
                    " / ".join(
                        _f(v)
                        for v in (
                            _percentile(latencies, 0.5),
                            _percentile(latencies, 0.95),
                            max(latencies, default=None),
                        )
                    ),
                    ", ".join(f"{name} {1000 * value:.0f}" for name, value in cost.cpu.items()),
                    _share(cost.machine_busy) + f" ({_share(cost.foreign_busy)})",
                    _f(cost.commits, 1),
                    _f(sum(cost.calls.values()), 1),
                ]
            )
    lines.append(markdown_table(cost_headers, cost_rows))
    lines.append("")
    idle_rows = [
        [
            r.label,
            ", ".join(f"{name} {value:.1%}" for name, value in r.idle_cost.cpu.items()),
            _f(r.idle_cost.commits, 1),
            _f(sum(r.idle_cost.calls.values()), 1),
        ]
        for r in results
        if r.idle_cost is not None and _first_of_service(r, results)
    ]
    if idle_rows:
        lines.append(
            f"The idle service, before any order ({config.idle_seconds:g} s; CPU as a share "
            "of one CPU, per second):"
        )
        lines.append("")
        lines.append(markdown_table(["run", "CPU", "PG commits / s", "DCI calls / s"], idle_rows))
        lines.append("")

    lines.append("## Where an order's time goes (mean start / duration per step, seconds)")
    lines.append("")
    step_names: list[str] = []
    step_tables = []
    for r in results:
        if _first_of_service(r, results):
            step_tables.append((f"{r.label} single", _step_means(r.singles)))
        step_tables.append((f"{r.label} N={r.orders}", _step_means(r.bulk)))
    for _, means in step_tables:
        step_names.extend(name for name in means if name not in step_names)
    step_headers = ["step", *(label for label, _ in step_tables)]
    step_rows = []
    for name in step_names:
        row = [name]
        for _, means in step_tables:
            start, duration = means.get(name, (None, None))
            row.append(f"{_f(start)} / {_f(duration)}" if start is not None else "-")
        step_rows.append(row)
    lines.append(markdown_table(step_headers, step_rows))
    lines.append("")

    lines.append("## DCImanager calls per order, by endpoint")
    lines.append("")
    columns = [
        (f"{r.label} {phase}", cost)
        for r in results
        for phase, cost in (
            ("singles", r.single_cost if _first_of_service(r, results) else None),
            (f"N={r.orders}", r.burst_cost),
        )
        if cost is not None
    ]
    endpoints = sorted({e for _, cost in columns for e in cost.calls})
    call_rows = [
        [endpoint, *(_f(cost.calls.get(endpoint), 2) for _, cost in columns)]
        for endpoint in endpoints
    ]
    call_rows.append(["total", *(_f(sum(cost.calls.values()), 2) for _, cost in columns)])
    lines.append(markdown_table(["endpoint", *(label for label, _ in columns)], call_rows))
    lines.append("")
    notes = list(notes)
    for r in results:
        if r.refused:
            distinct = Counter(r.refused)
            notes.append(
                f"{r.label}: {len(r.refused)} burst orders refused by the API, e.g. "
                + "; ".join(f"{count}x {text}" for text, count in distinct.most_common(3))
            )
    if notes:
        lines.append("## Notes")
        lines.append("")
        lines.extend(f"- {note}" for note in notes)
        lines.append("")
    return "\n".join(lines)


# -- command line -------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> BenchConfig:
    parser = argparse.ArgumentParser(
        prog="python -m bench.provision", description=__doc__.split("\n\n")[0] if __doc__ else ""
    )
    parser.add_argument(
        "--orders",
        type=int,
        nargs="+",
        default=list(DEFAULT_ORDERS),
        help="burst sizes N, run one after another on the same service "
        f"(default {' '.join(map(str, DEFAULT_ORDERS))})",
    )
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 3],
        help="worker processes per run; 1 = `dcibridge serve` with its embedded worker, "
        "K > 1 = `serve --no-worker` + K `dcibridge worker`, on PostgreSQL only (default 1 3)",
    )
    parser.add_argument(
        "--op-seconds",
        type=float,
        default=DEFAULT_OS_SECONDS,
        help=f"simulated OS install (and wipe, diag) seconds (default {DEFAULT_OS_SECONDS:g})",
    )
    parser.add_argument(
        "--ip-seconds",
        type=float,
        default=DEFAULT_IP_SECONDS,
        help=f"simulated IP allocation seconds (default {DEFAULT_IP_SECONDS:g})",
    )
    parser.add_argument(
        "--task-poll-seconds",
        type=float,
        default=DEFAULT_TASK_POLL_SECONDS,
        help="DCIBRIDGE_TASK_POLL_SECONDS for the service "
        f"(default {DEFAULT_TASK_POLL_SECONDS:g}; production default 5)",
    )
    parser.add_argument(
        "--singles", type=int, default=2, help="single orders measured one by one (default 2)"
    )
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=5,
        help="measure the idle service's own cost for this long first (default 5)",
    )
    parser.add_argument(
        "--submit-concurrency",
        type=int,
        default=32,
        help="concurrent POSTs while submitting the burst (default 32)",
    )
    parser.add_argument("--log-level", default="INFO", help="DCIBRIDGE_LOG_LEVEL (default INFO)")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra DCIBRIDGE_* setting for the service, e.g. DCIBRIDGE_WORKER_POLL_SECONDS=0.1",
    )
    parser.add_argument(
        "--budget-seconds",
        type=float,
        default=3600,
        help="wall-clock budget for all runs; a burst still running at its share stops "
        "and reports a lower bound (default 3600)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep each run's work directory")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="sample the dcibridge processes with py-spy during the burst and write "
        "collapsed stacks to DIR (needs `pip install py-spy`)",
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=None,
        metavar="DIR",
        help="run the service from this source tree (its `app` package, via PYTHONPATH) "
        "instead of the installed one, e.g. an unpacked `git archive` of another commit",
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS, help=f"Markdown report (default {RESULTS})"
    )
    args = parser.parse_args(argv)
    extra: dict[str, str] = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("DCIBRIDGE_"):
            parser.error(f"--env wants DCIBRIDGE_NAME=VALUE, got {item!r}")
        extra[name] = value
    if min(args.orders) < 1 or args.singles < 1:
        parser.error("--orders and --singles must be at least 1")
    if any(w < 1 for w in args.workers):
        parser.error("--workers must be at least 1")
    databases = ("sqlite", "postgres") if args.db == "both" else (args.db,)
    return BenchConfig(
        orders=tuple(args.orders),
        databases=databases,
        workers=tuple(dict.fromkeys(args.workers)),
        os_seconds=args.op_seconds,
        ip_seconds=args.ip_seconds,
        task_poll_seconds=args.task_poll_seconds,
        singles=args.singles,
        idle_seconds=args.idle_seconds,
        submit_concurrency=max(1, args.submit_concurrency),
        log_level=args.log_level,
        extra_env=extra,
        keep_logs=args.keep_logs,
        output=args.output,
        budget_seconds=args.budget_seconds,
        profile=args.profile,
        source=args.source.resolve() if args.source else None,
    )


async def bench_all(config: BenchConfig, children: Children) -> tuple[list[RunResult], list[str]]:
    notes: list[str] = []
    databases = await reachable_databases(config.databases, notes)
    results: list[RunResult] = []
    # Several worker processes share one database through PostgreSQL's row locks;
    # SQLite is the single-node default, so it runs with the embedded worker only.
    runs = [
        (database, workers)
        for database in databases
        for workers in config.workers
        if workers == 1 or database == "postgres"
    ]
    # Each run may use its share of what is left of the budget; the burst stops
    # waiting there and reports a lower bound.
    for (database, workers), started, deadline in with_deadlines(
        runs, config.budget_seconds, teardown=_TEARDOWN_SECONDS
    ):
        sizes = " ".join(map(str, config.orders))
        print(f"== {database}, {workers} worker process(es): N={sizes} ...", flush=True)
        run_results = await run_one(config, database, workers, children, deadline=deadline)
        results.extend(run_results)
        for result in run_results:
            print(
                f"   N={result.orders} done at {time.monotonic() - started:.0f}s: single "
                f"{_f(result.single_latency)}s (x{_f(result.latency_ratio, 3)} of "
                f"{config.critical_path:g}s), makespan "
                f"{'>' if result.timed_out else ''}{_f(result.makespan)}s "
                f"(x{_f(result.makespan_ratio, 3)})"
                + (f", ERROR {result.error}" if result.error else ""),
                flush=True,
            )
            if result.log_dir is not None:
                print(f"   logs kept in {result.log_dir}")
    return results, notes


def _measure_all(config: BenchConfig) -> tuple[list[RunResult], list[str]]:
    return run_cleanly(lambda children: bench_all(config, children))


def _passed(results: list[RunResult]) -> bool:
    return bool(results) and all(
        r.error is None
        and r.bulk_failed == 0
        and (r.latency_ratio or math.inf) <= LATENCY_TARGET
        and (r.makespan_ratio or math.inf) <= MAKESPAN_TARGET
        for r in results
    )


def section(results_dir: Path, argv: Sequence[str] = ()) -> tuple[str, bool]:
    """The provisioning part of ``bench/results/latest.md``, with its plots; and
    whether every target held."""
    # Imported here, as the other parts import matplotlib: only a run that plots
    # needs the bench extra, not the tests that import this module.
    from bench import plots

    config = parse_args(argv)
    results, notes = _measure_all(config)
    plots.makespan_vs_n(results, results_dir / "provision_makespan.png", target=MAKESPAN_TARGET)
    plots.latency_percentiles(results, results_dir / "provision_latency.png")
    # One heading level down: the report becomes a section of the combined file.
    text = re.sub(r"^(#+) ", r"#\1 ", report(config, results, notes), flags=re.MULTILINE)
    figures = (
        "![makespan / single latency against N](provision_makespan.png)\n\n"
        "![order latency percentiles per burst](provision_latency.png)\n"
    )
    return f"{text}\n{figures}", _passed(results)


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        results, notes = _measure_all(config)
    except KeyboardInterrupt:
        print("interrupted: stopping children and dropping scratch databases", file=sys.stderr)
        return 130
    write_report(report(config, results, notes), config.output)
    return 0 if _passed(results) else 1


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
