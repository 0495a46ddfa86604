"""Memory benchmark: the resident memory of ``dcibridge serve`` with thousands of orders in flight.

Run::

    .venv/bin/python -m bench.memory [--db sqlite|postgres|both] [--quick]
        [--steps 500 1000 2000 ...] [--clients K]

For each database it starts the standalone simulator (``dcibridge simulator
--inventory FILE --servers M``, a separate process, so its memory is not
counted) with an OS install that takes an hour, and ``dcibridge serve`` (API
plus embedded worker) pointed at it. It then submits orders in batches until
500, 1000, 2000, 3000, 4000 and 5000 are in flight (accepted, none finished),
lets the service settle after each batch (the worker has started every
operation it runs at once, i.e. ``min(in flight, max_concurrent_operations)``
OS installs, plus a few seconds), and reads ``VmRSS`` and ``VmHWM`` (the
kernel's high-water mark) of the serve process from ``/proc/PID/status``.

It writes ``bench/results/memory.md`` and a plot of RSS against orders in
flight (``memory_rss.png``), and exits 0 when every run stayed within the
target (peak RSS <= 300 MiB). ``section()`` returns the same Markdown section
for a combined report.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from app.config import Settings
from app.simulator.inventory import Inventory
from bench.common import (
    REPO,
    Children,
    _proc_stat,
    code_description,
    machine_cpu,
    markdown_table,
    order_request,
    reachable_databases,
    recording_failure,
    run_cleanly,
    service_client,
    with_deadlines,
    write_report,
)
from bench.stack import Stack, sized_inventory

TARGET_MIB = 300.0
RESULTS_DIR = REPO / "bench" / "results"
PLOT_NAME = "memory_rss.png"
FULL_STEPS = (500, 1000, 2000, 3000, 4000, 5000)
QUICK_STEPS = (500, 1000)
# Long enough that no install finishes during a run: every accepted order stays in flight.
DEFAULT_OS_SECONDS = 3600.0
DEFAULT_CLIENTS = 8
# After the worker has started all it will run at once: one task poll (5 s by
# default) so every running operation has been through its steady-state loop.
DEFAULT_QUIET_SECONDS = 6.0
DEFAULT_SETTLE_TIMEOUT = 150.0
DEFAULT_BUDGET_SECONDS = 1500.0
# Reserved at the end of a run's share of the budget for stopping and clean-up.
_TEARDOWN_SECONDS = 20.0
_KIB_PER_MIB = 1024.0
# One Prometheus sample line: name{label="value",...} number.
_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _samples(text: str) -> Iterator[tuple[str, dict[str, str], float]]:
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        with contextlib.suppress(ValueError):
            labels = dict(_LABEL.findall(match.group("labels") or ""))
            yield match.group("name"), labels, float(match.group("value"))


def default_max_concurrent_operations() -> int:
    """The service's own default, read from its settings model rather than copied here."""
    value = Settings.model_fields["max_concurrent_operations"].default
    return int(value)


@dataclass(frozen=True)
class MemoryConfig:
    steps: tuple[int, ...]
    databases: tuple[str, ...]
    os_seconds: float = DEFAULT_OS_SECONDS
    clients: int = DEFAULT_CLIENTS
    quiet_seconds: float = DEFAULT_QUIET_SECONDS
    settle_timeout: float = DEFAULT_SETTLE_TIMEOUT
    budget_seconds: float = DEFAULT_BUDGET_SECONDS
    keep_logs: bool = False
    quick: bool = False

    @property
    def max_orders(self) -> int:
        return max(self.steps)

    def command(self) -> str:
        database = "both" if len(self.databases) > 1 else self.databases[0]
        parts = ["python -m bench.memory", f"--db {database}"]
        parts.append("--quick" if self.quick else "--steps " + " ".join(map(str, self.steps)))
        parts.append(f"--clients {self.clients}")
        return " ".join(parts)


@dataclass(frozen=True)
class Reading:
    """One look at a process's memory, in MiB."""

    rss: float
    peak: float


def read_memory(pid: int) -> Reading | None:
    """VmRSS and VmHWM of ``pid`` from /proc; None once it has exited."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    values: dict[str, float] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / _KIB_PER_MIB
    if len(values) < 2:  # a zombie has no memory lines
        return None
    return Reading(rss=values["VmRSS"], peak=values["VmHWM"])


def reset_peak(pid: int) -> bool:
    """Restart ``pid``'s VmHWM from its current RSS (``clear_refs`` value 5, Linux >= 4.0),
    so the next reading's peak covers only what happened since; False if not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def cpu_seconds(pid: int) -> float | None:
    stat = _proc_stat(pid)
    return None if stat is None else stat[2]


@dataclass
class Step:
    """The service after one batch: ``in_flight`` accepted orders, none finished."""

    in_flight: int
    started: int
    reading: Reading
    submit_seconds: float
    settle_seconds: float
    settled: bool
    # CPU seconds serve used while this batch was submitted.
    submit_cpu: float | None = None


@dataclass
class DbRun:
    database: str
    max_concurrent: int
    idle: Reading | None = None
    steps: list[Step] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    failed_operations: int = 0
    # The process's peak over its whole life (start-up included): the verdict's number.
    peak: float | None = None
    # Whether each reading's peak covers only its own batch (VmHWM reset after each).
    peaks_per_batch: bool = False
    simulator: Reading | None = None
    skipped_steps: list[int] = field(default_factory=list)
    # Share of the machine's CPU in use during the run, and the part of it used by
    # processes outside this run (other work on the machine slows submission down).
    machine_busy: float | None = None
    foreign_busy: float | None = None
    # What serve logged at level error: event name -> (count, last exception line).
    logged_errors: dict[str, tuple[int, str]] = field(default_factory=dict)
    error: str | None = None
    log_dir: Path | None = None

    @property
    def verdict(self) -> str:
        if self.peak is None:
            return "n/a"
        return "PASS" if self.peak <= TARGET_MIB else "FAIL"

    @property
    def ok(self) -> bool:
        return self.error is None and self.verdict == "PASS" and not self.skipped_steps


# -- one run: one database ------------------------------------------------------------


def _inventory(config: MemoryConfig) -> tuple[Inventory, int]:
    """Default hardware, enough free servers and addresses for every order, installs that
    outlast the run."""
    return sized_inventory(config.max_orders, os_seconds=config.os_seconds)


class MemoryBench:
    def __init__(
        self, config: MemoryConfig, database: str, children: Children, *, deadline: float
    ) -> None:
        self.config = config
        self.database = database
        self.children = children
        self.deadline = deadline
        self.workdir = Path(tempfile.mkdtemp(prefix=f"bench-memory-{database}-"))
        self.result = DbRun(
            database=database,
            max_concurrent=default_max_concurrent_operations(),
            log_dir=self.workdir,
        )
        self.stack = Stack(children, self.workdir, database)
        self.configurations: list[str] = []
        self.serve_pid = 0
        self.accepted = 0
        self.tag = f"m{database[:2]}-{int(time.time()) % 100000}"

    def fail(self, error: str) -> None:
        self.result.error = error

    async def start(self, client: httpx.AsyncClient) -> None:
        inventory, per_configuration = _inventory(self.config)
        self.configurations = [c.name for c in inventory.configurations]
        # No settings: every tuning setting stays at its default, since the defaults
        # are what is measured.
        await self.stack.start(
            client, scratch_label="mem", inventory=inventory, servers=per_configuration
        )
        self.serve_pid = self.stack.service_pids[0]

    async def stop(self) -> None:
        reading = read_memory(self.serve_pid) if self.serve_pid else None
        if reading is not None:
            self._saw(reading)
        await self.stack.stop()

    # -- orders ------------------------------------------------------------------

    def _order_body(self, index: int) -> dict[str, Any]:
        configuration = self.configurations[index % len(self.configurations)]
        return order_request(f"{self.tag}-{index}", configuration)

    async def submit(self, clients: Sequence[httpx.AsyncClient], count: int) -> None:
        """``count`` more orders, each client posting one after another (as billing
        systems with a few connections do)."""
        indices: Iterator[int] = iter(range(self.accepted + len(self.result.refused), 10**9))
        remaining = count
        headers = self.stack.headers

        async def post_loop(client: httpx.AsyncClient) -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                index = next(indices)
                try:
                    response = await client.post(
                        f"{self.stack.url}/api/v1/orders",
                        json=self._order_body(index),
                        headers=headers,
                        timeout=120,
                    )
                except httpx.TransportError as exc:
                    self.result.refused.append(f"{type(exc).__name__}")
                    continue
                if response.status_code == 202:
                    self.accepted += 1
                else:
                    self.result.refused.append(f"{response.status_code} {response.text[:120]}")

        await asyncio.gather(*(post_loop(client) for client in clients))

    # -- settling -------------------------------------------------------------------

    async def _counters(self, client: httpx.AsyncClient) -> tuple[int, int]:
        """(OS installs started, operations failed) so far, from the service's /metrics."""
        response = await client.get(f"{self.stack.url}/metrics", timeout=60)
        response.raise_for_status()
        installs = failed = 0.0
        for name, labels, value in _samples(response.text):
            # The worker's "start the OS install" call: once per operation that got there.
            if (
                name == "dcibridge_dci_calls_total"
                and labels.get("method") == "POST"
                and labels.get("endpoint", "").endswith("/operation_os")
            ):
                installs += value
            elif name == "dcibridge_operations_total" and labels.get("outcome") == "failed":
                failed += value
        return int(installs), int(failed)

    async def settle(self, client: httpx.AsyncClient) -> tuple[int, float, bool]:
        """Wait until the worker runs all it will run at once: (installs started, seconds
        waited, whether it got there before the time-out)."""
        started = time.monotonic()
        limit = min(started + self.config.settle_timeout, self.deadline)
        settled = False
        installs = 0
        while True:
            self.children.check_alive()
            installs, failed = await self._counters(client)
            self.result.failed_operations = failed
            # A failed operation frees its slot for the next queued one.
            wanted = min(self.accepted - failed, self.result.max_concurrent)
            if installs >= wanted:
                settled = True
                break
            if time.monotonic() > limit:
                break
            await asyncio.sleep(1.0)
        await asyncio.sleep(self.config.quiet_seconds)
        return installs, time.monotonic() - started, settled

    def _saw(self, reading: Reading) -> None:
        peak = self.result.peak
        self.result.peak = reading.peak if peak is None else max(peak, reading.peak)

    def _read(self) -> Reading:
        """Read serve's memory, then restart its high-water mark for the next batch."""
        reading = read_memory(self.serve_pid)
        if reading is None:
            self.children.check_alive()
            raise RuntimeError("serve exited")
        self._saw(reading)
        self.result.peaks_per_batch = reset_peak(self.serve_pid)
        return reading

    def _own_cpu(self) -> float:
        pids = (self.serve_pid, self.stack.simulator_pid)
        own = sum(cpu_seconds(pid) or 0.0 for pid in pids)
        return own + time.process_time()

    async def run(self, probe: httpx.AsyncClient) -> DbRun:
        await self.start(probe)
        await asyncio.sleep(self.config.quiet_seconds)
        self.result.idle = self._read()
        busy_before, total_before = machine_cpu()
        own_before = self._own_cpu()
        try:
            await self._batches(probe)
        finally:
            busy, total = (
                after - before
                for after, before in zip(machine_cpu(), (busy_before, total_before), strict=True)
            )
            own = self._own_cpu() - own_before
            if total > 0:
                self.result.machine_busy = busy / total
                self.result.foreign_busy = max(0.0, busy - own) / total
        self.result.simulator = read_memory(self.stack.simulator_pid)
        return self.result

    async def _batches(self, probe: httpx.AsyncClient) -> None:
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(service_client())
                for _ in range(self.config.clients)
            ]
            for target in self.config.steps:
                if time.monotonic() > self.deadline:
                    self.result.skipped_steps.append(target)
                    continue
                began, cpu_began = time.monotonic(), cpu_seconds(self.serve_pid)
                await self.submit(clients, target - self.accepted)
                submitted = time.monotonic() - began
                cpu_now = cpu_seconds(self.serve_pid)
                submit_cpu = None if cpu_began is None or cpu_now is None else cpu_now - cpu_began
                installs, waited, settled = await self.settle(probe)
                reading = self._read()
                self.result.steps.append(
                    Step(
                        in_flight=self.accepted,
                        started=installs,
                        reading=reading,
                        submit_seconds=submitted,
                        settle_seconds=waited,
                        settled=settled,
                        submit_cpu=submit_cpu,
                    )
                )
                print(
                    f"   {self.accepted} in flight ({installs} running): RSS "
                    f"{reading.rss:.0f} MiB, peak {reading.peak:.0f} MiB "
                    f"(submit {submitted:.0f}s, settle {waited:.0f}s)",
                    flush=True,
                )

    def collect_logged_errors(self) -> None:
        """Count what serve logged at level error (JSON lines), e.g. SQLite lock time-outs."""
        errors: dict[str, tuple[int, str]] = {}
        counts: Counter[str] = Counter()
        log_path = self.workdir / f"serve-{self.database}.log"
        with contextlib.suppress(OSError), log_path.open(encoding="utf-8", errors="replace") as log:
            for line in log:
                if '"level": "error"' not in line and '"level":"error"' not in line:
                    continue
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    entry = json.loads(line)
                    event = str(entry.get("event"))
                    counts[event] += 1
                    exception = str(entry.get("exception") or "").strip().splitlines()
                    last = next(
                        (text for text in reversed(exception) if re.match(r"^[\w.]+:", text)),
                        "",
                    )
                    errors[event] = (counts[event], last[:160] or errors.get(event, (0, ""))[1])
        self.result.logged_errors = errors


async def run_one(
    config: MemoryConfig, database: str, children: Children, *, deadline: float
) -> DbRun:
    bench = MemoryBench(config, database, children, deadline=deadline)
    try:
        async with recording_failure(bench.fail, children), service_client() as probe:
            return await bench.run(probe)
        # Only reached when recording_failure swallowed a failure.
        return bench.result
    finally:
        await bench.stop()
        bench.collect_logged_errors()
        failed = bench.result.error not in (None, "interrupted")
        if not failed and not config.keep_logs:
            shutil.rmtree(bench.workdir, ignore_errors=True)
            bench.result.log_dir = None


async def run_all(config: MemoryConfig, children: Children) -> tuple[list[DbRun], list[str]]:
    notes: list[str] = []
    databases = await reachable_databases(config.databases, notes)
    runs: list[DbRun] = []
    # Each database gets its share of what is left; steps past it are skipped.
    for database, began, deadline in with_deadlines(
        databases, config.budget_seconds, teardown=_TEARDOWN_SECONDS
    ):
        print(f"== memory, {database}: up to {config.max_orders} orders in flight ...", flush=True)
        result = await run_one(config, database, children, deadline=deadline)
        runs.append(result)
        print(
            f"   done in {time.monotonic() - began:.0f}s: peak RSS {_f(result.peak)} MiB "
            f"({result.verdict})" + (f", ERROR {result.error}" if result.error else ""),
            flush=True,
        )
        if result.log_dir is not None:
            print(f"   logs kept in {result.log_dir}")
    return runs, notes


# -- reporting ---------------------------------------------------------------------------


def _f(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _growth_kib(previous: tuple[int, float] | None, in_flight: int, rss: float) -> str:
    """KiB of RSS per order added since the previous row."""
    if previous is None or in_flight == previous[0]:
        return "-"
    growth = (rss - previous[1]) * _KIB_PER_MIB / (in_flight - previous[0])
    return f"{round(growth, 1) or 0.0:.1f}"  # "0.0", not "-0.0", for a flat line


def _slope_kib(run: DbRun) -> float | None:
    """Least-squares KiB per order over all steps (less noisy than one difference)."""
    points = [(s.in_flight, s.reading.rss) for s in run.steps]
    if len(points) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread * _KIB_PER_MIB


def plot(runs: Sequence[DbRun], path: Path) -> bool:
    """RSS and peak RSS against orders in flight, one colour per database; False when
    there is nothing to plot."""
    drawn = [r for r in runs if r.steps]
    if not drawn:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    for index, run in enumerate(drawn):
        colour = f"C{index}"
        readings = [(s.in_flight, s.reading) for s in run.steps]
        if run.idle is not None:
            readings.insert(0, (0, run.idle))
        xs = [x for x, _ in readings]
        rss = [reading.rss for _, reading in readings]
        peak = [reading.peak for _, reading in readings]
        axes.plot(xs, rss, marker="o", color=colour, label=f"{run.database}: RSS after settling")
        label = "peak in batch" if run.peaks_per_batch else "peak so far"
        axes.plot(xs, peak, linestyle="--", color=colour, label=f"{run.database}: {label} (VmHWM)")
    axes.axhline(TARGET_MIB, color="red", linewidth=1, label=f"target {TARGET_MIB:g} MiB")
    limit = drawn[0].max_concurrent
    if limit <= max(s.in_flight for r in drawn for s in r.steps):
        axes.axvline(
            limit,
            color="grey",
            linestyle=":",
            linewidth=1,
            label=f"max_concurrent_operations = {limit}",
        )
    axes.set_xlabel("orders in flight (accepted, provisioning)")
    axes.set_ylabel("MiB")
    axes.set_title("dcibridge serve (API + embedded worker): resident memory")
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small", loc="lower right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return True


def report(config: MemoryConfig, runs: Sequence[DbRun], notes: Sequence[str], plotted: bool) -> str:
    max_concurrent = default_max_concurrent_operations()
    lines = ["## Memory", ""]
    lines.append(f"`{config.command()}` — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    lines.append("")
    lines.append(f"Service code: {code_description()}.")
    lines.append("")
    lines.append(
        "Resident memory of the `dcibridge serve` process (API plus embedded worker; the "
        "simulator runs as a separate process and is not counted) while orders pile up "
        f"in flight. Orders are submitted in batches up to {', '.join(map(str, config.steps))} "
        f"in flight by {config.clients} concurrent HTTP clients (one new customer each, spread "
        f"over the three default configurations). The simulator's OS install takes "
        f"{config.os_seconds:g} s, so no order finishes during the run. Every service setting "
        f"is at its default, notably `max_concurrent_operations` = {max_concurrent}: the "
        f"worker runs at most {max_concurrent} operations at once (each waiting for its OS "
        "install inline, polling DCImanager every `task_poll_seconds` = "
        f"{Settings.model_fields['task_poll_seconds'].default:g} s); the rest stay queued "
        "in the database."
    )
    lines.append("")
    lines.append(
        "After each batch the benchmark waits until the worker has started every operation "
        f"it will run at once (min(in flight, {max_concurrent}) OS installs requested, from "
        f"the service's `/metrics`), then {config.quiet_seconds:g} s more, and reads `VmRSS` "
        "(RSS) and `VmHWM` (the kernel's high-water mark of RSS, transients between readings "
        "included) from `/proc/PID/status`. "
        + (
            "After each reading the high-water mark is restarted (`/proc/PID/clear_refs`), "
            "so a row's peak is the highest RSS during that batch (submitting and settling); "
            "the `0 (started)` row's peak is start-up's. "
            if all(run.peaks_per_batch for run in runs)
            else "A row's peak is the highest RSS since serve started. "
        )
        + "MiB = 1,048,576 bytes. Running ops = OS installs the worker has started (none "
        "finishes, so each is an operation still held by the worker). Growth = KiB of RSS per "
        "order added since the previous row. "
        "Submit s / serve CPU s = wall-clock time to submit the batch and the CPU time serve "
        "used meanwhile (API and worker together). "
        f"Verdict: the highest peak over serve's whole life, start-up included, <= "
        f"{TARGET_MIB:g} MiB."
    )
    lines.append("")
    headers = [
        "db",
        "in flight",
        "running ops",
        "RSS MiB",
        "peak RSS MiB",
        "growth KiB / order",
        "submit s",
        "serve CPU s",
        "settle s",
    ]
    rows: list[list[str]] = []
    for run in runs:
        previous: tuple[int, float] | None = None
        if run.idle is not None:
            idle = [run.database, "0 (started)", "0", _f(run.idle.rss), _f(run.idle.peak)]
            rows.append([*idle, "-", "-", "-", "-"])
            previous = (0, run.idle.rss)
        for step in run.steps:
            rows.append(
                [
                    run.database,
                    str(step.in_flight),
                    str(step.started),
                    _f(step.reading.rss),
                    _f(step.reading.peak),
                    _growth_kib(previous, step.in_flight, step.reading.rss),
                    _f(step.submit_seconds),
                    _f(step.submit_cpu),
                    _f(step.settle_seconds) + ("" if step.settled else " (not settled)"),
                ]
            )
            previous = (step.in_flight, step.reading.rss)
    lines.append(markdown_table(headers, rows))
    lines.append("")
    verdict_rows = []
    for run in runs:
        slope = _slope_kib(run)
        first, last = (run.steps[0], run.steps[-1]) if run.steps else (None, None)
        span = (
            f"{_f(first.reading.rss)} -> {_f(last.reading.rss)} MiB "
            f"({first.in_flight} -> {last.in_flight})"
            if first is not None and last is not None
            else "-"
        )
        verdict_rows.append(
            [
                run.database,
                _f(run.peak),
                span,
                _f(slope, 1),
                run.verdict if run.error is None else f"error: {run.error}",
            ]
        )
    lines.append(
        markdown_table(
            [
                "db",
                "peak RSS MiB",
                "RSS first -> last step",
                "KiB / order (fit)",
                f"peak <= {TARGET_MIB:g} MiB",
            ],
            verdict_rows,
        )
    )
    lines.append("")
    if plotted:
        lines.append(f"![RSS of dcibridge serve against orders in flight]({PLOT_NAME})")
        lines.append("")
    all_notes = list(notes)
    for run in runs:
        if run.machine_busy is not None and run.foreign_busy is not None:
            all_notes.append(
                f"{run.database}: the machine's {os.cpu_count()} CPUs were {run.machine_busy:.0%} "
                f"busy during the batches, {run.foreign_busy:.0%} of them with work outside this "
                "benchmark; such load slows submission and settling (timings), not memory."
            )
        for event, (count, cause) in sorted(run.logged_errors.items()):
            detail = f" (last: `{cause}`)" if cause else ""
            all_notes.append(f"{run.database}: serve logged {count}x `{event}`{detail}")
        if run.idle is not None and run.peak is not None and run.idle.peak >= run.peak - 1:
            all_notes.append(
                f"{run.database}: start-up set the peak: VmHWM {run.idle.peak:.0f} MiB before "
                f"the first order (RSS then {run.idle.rss:.0f} MiB), and no batch went more than "
                f"1 MiB above it (run's peak {run.peak:.0f} MiB)."
            )
        if run.simulator is not None:
            all_notes.append(
                f"{run.database}: the simulator process (not counted) ended at "
                f"{run.simulator.rss:.0f} MiB RSS."
            )
        if run.refused:
            all_notes.append(
                f"{run.database}: {len(run.refused)} submissions not accepted, e.g. "
                + "; ".join(sorted(set(run.refused))[:3])
            )
        if run.failed_operations:
            all_notes.append(f"{run.database}: {run.failed_operations} operations failed.")
        if any(not s.settled for s in run.steps):
            all_notes.append(
                f"{run.database}: some steps did not settle within {config.settle_timeout:g} s "
                "(the worker was still starting operations when RSS was read)."
            )
        if run.skipped_steps:
            all_notes.append(
                f"{run.database}: out of time budget; steps not run: "
                + ", ".join(map(str, run.skipped_steps))
            )
    if all_notes:
        lines.append("Notes:")
        lines.append("")
        lines.extend(f"- {note}" for note in all_notes)
        lines.append("")
    return "\n".join(lines)


# -- entry points ------------------------------------------------------------------------


def _passed(runs: list[DbRun]) -> bool:
    return bool(runs) and all(run.ok for run in runs)


def measure(config: MemoryConfig, results_dir: Path) -> tuple[str, list[DbRun]]:
    """Run the benchmark; its Markdown section (plot saved into ``results_dir``)."""
    runs, notes = run_cleanly(lambda children: run_all(config, children))
    plotted = plot(runs, results_dir / PLOT_NAME)
    return report(config, runs, notes, plotted), runs


def section(results_dir: Path, *, quick: bool = False) -> tuple[str, bool]:
    """The ``## Memory`` section for a combined report: SQLite and (when reachable)
    PostgreSQL, up to 5,000 orders in flight (1,000 with ``quick``); and whether
    every run met the target."""
    config = MemoryConfig(
        steps=QUICK_STEPS if quick else FULL_STEPS, databases=("sqlite", "postgres"), quick=quick
    )
    text, runs = measure(config, results_dir)
    return text, _passed(runs)


def parse_args(argv: Sequence[str] | None) -> tuple[MemoryConfig, Path]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.memory", description=__doc__.split("\n\n")[0] if __doc__ else ""
    )
    parser.add_argument(
        "--db",
        choices=("sqlite", "postgres", "both"),
        default="both",
        help="database(s) to run against (default both; an unreachable PostgreSQL is skipped)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"only {' and '.join(map(str, QUICK_STEPS))} orders in flight",
    )
    parser.add_argument(
        "--steps",
        type=int,
        nargs="+",
        default=None,
        help=f"orders in flight at each reading (default {' '.join(map(str, FULL_STEPS))})",
    )
    parser.add_argument(
        "--clients",
        type=int,
        default=DEFAULT_CLIENTS,
        help=f"concurrent HTTP clients submitting orders (default {DEFAULT_CLIENTS})",
    )
    parser.add_argument(
        "--os-seconds",
        type=float,
        default=DEFAULT_OS_SECONDS,
        help=f"simulated OS install seconds (default {DEFAULT_OS_SECONDS:g}: none finishes)",
    )
    parser.add_argument(
        "--quiet-seconds",
        type=float,
        default=DEFAULT_QUIET_SECONDS,
        help="wait this long after the worker settled before reading memory "
        f"(default {DEFAULT_QUIET_SECONDS:g})",
    )
    parser.add_argument(
        "--settle-timeout",
        type=float,
        default=DEFAULT_SETTLE_TIMEOUT,
        help=f"longest wait for the worker to settle (default {DEFAULT_SETTLE_TIMEOUT:g})",
    )
    parser.add_argument(
        "--budget-seconds",
        type=float,
        default=DEFAULT_BUDGET_SECONDS,
        help="wall-clock budget for all runs; steps past a run's share are skipped "
        f"(default {DEFAULT_BUDGET_SECONDS:g})",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep each run's work directory")
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS_DIR / "memory.md",
        help="Markdown report; the plot goes next to it (default bench/results/memory.md)",
    )
    args = parser.parse_args(argv)
    steps = tuple(args.steps) if args.steps else (QUICK_STEPS if args.quick else FULL_STEPS)
    if any(s < 1 for s in steps) or list(steps) != sorted(set(steps)):
        parser.error("--steps must be increasing positive numbers")
    databases = ("sqlite", "postgres") if args.db == "both" else (args.db,)
    config = MemoryConfig(
        steps=steps,
        databases=databases,
        os_seconds=args.os_seconds,
        clients=max(1, args.clients),
        quiet_seconds=args.quiet_seconds,
        settle_timeout=args.settle_timeout,
        budget_seconds=args.budget_seconds,
        keep_logs=args.keep_logs,
        quick=args.quick and not args.steps,
    )
    return config, args.output


def main(argv: Sequence[str] | None = None) -> int:
    config, output = parse_args(argv)
    try:
        text, runs = measure(config, output.parent)
    except KeyboardInterrupt:
        print("interrupted: children stopped, scratch databases dropped", file=sys.stderr)
        return 130
    write_report(text, output)
    return 0 if _passed(runs) else 1


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
