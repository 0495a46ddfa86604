"""API benchmark: dcibridge's order API against a minimal FastAPI app on the same stack.

Run::

    .venv/bin/python -m bench.api [--quick] [--db both|postgres|sqlite]

For each database it starts, side by side:

- ``dcibridge serve --no-worker`` (as users run it: scratch database,
  ``dcibridge migrate``, ``dcibridge api-key create``), pointed at a
  ``dcibridge simulator`` so that new orders are validated against a DCImanager's
  configurations; with no worker, accepted orders simply queue, so the request
  path is all that is measured;
- ``bench/minimal_app.py``: the same two routes doing one primary-key SELECT or
  one INSERT, with dcibridge's own engine (same driver and configuration) and
  the same uvicorn settings, on a scratch database of its own: the baseline of
  the targets ("minimal");
- the same minimal app on SQLAlchemy's default engine configuration (no ping of
  idle pooled connections, a first-in first-out pool, reads in a transaction,
  SQLite's deferred transactions, SQLAlchemy's own aiosqlite adapter with its
  several trips to the connection's thread per statement), to show what
  dcibridge's engine
  configuration itself costs
  ("minimal-plain").

Then, for each case, each app in turn gets the same requests from
``bench/loadgen.py`` (a separate process, fixed concurrency, keep-alive, warm-up
then a timed window): ``GET /api/v1/orders/{id}`` over seeded orders (read) and
``POST /api/v1/orders`` with a new external id each time (accept). The measured
time is split into rounds, the apps alternating within each and each going first
in turn, so that a machine whose speed drifts during the run (a virtual machine's
neighbours) weighs on all three alike. It reports req/s and p50/p99 latency of
each over all rounds, dcibridge's req/s divided by the minimal app's against the
targets, with the spread of the rounds' own ratios (and by minimal-plain's, for
information), and the CPU every party used while measuring: the server,
PostgreSQL's backends, the load generator (to show it was not the bottleneck)
and processes outside the benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

from app.simulator.inventory import Inventory
from bench import loadgen
from bench.common import (
    OS_TEMPLATE_ID,
    REPO,
    Children,
    CpuMeter,
    free_port,
    machine_cpu,
    markdown_table,
    own_cpu_seconds,
    reachable_databases,
    run_cleanly,
    service_client,
    service_env,
    wait_until_ok,
    write_report,
)
from bench.loadgen import SEQ_MARKER
from bench.minimal_app import DATABASE_URL_VARIABLE
from bench.stack import Stack

RESULTS_DIR = REPO / "bench" / "results"
PLOT_NAME = "api_latency.png"
DATABASES = ("postgres", "sqlite")
# The baseline of the targets comes second; the last one is for information.
APPS = ("dcibridge", "minimal", "minimal-plain")
BASELINE = "minimal"
PLAIN = "minimal-plain"
# App -> (its --engine flavour, a short label for its scratch database).
_MINIMAL_APPS = {"minimal": ("dcibridge", "min"), "minimal-plain": ("plain", "plain")}
# Orders created before measuring; the read case cycles through them.
SEED_ORDERS = 64
_SAMPLE_SECONDS = 0.5
# A loadgen using more of its CPU than this may be what limits the rate.
_LOADGEN_SUSPECT_SHARE = 0.6
# Work outside the benchmark above this (of one CPU) skews the numbers.
_OTHERS_SUSPECT_SHARE = 0.2
_RESULT_LINE_LIMIT = 64 * 2**20


@dataclass(frozen=True)
class Case:
    name: str
    route: str
    target: float


CASES = (
    Case("read", "GET /api/v1/orders/{id}", 0.7),
    Case("accept", "POST /api/v1/orders", 0.5),
)


@dataclass(frozen=True)
class ApiBenchConfig:
    databases: tuple[str, ...] = DATABASES
    connections: int = 32
    warmup: float = 2.0
    duration: float = 8.0
    rounds: int = 4
    seed_orders: int = SEED_ORDERS
    log_level: str = "INFO"
    keep_logs: bool = False
    quick: bool = False

    @classmethod
    def for_mode(cls, *, quick: bool, **overrides: Any) -> ApiBenchConfig:
        base = cls(warmup=1.0, duration=3.0, rounds=1, quick=True) if quick else cls()
        return dataclasses.replace(base, **overrides)

    def command(self) -> str:
        parts = ["python -m bench.api"]
        if self.quick:
            parts.append("--quick")
        if self.databases != DATABASES:
            parts.append(f"--db {self.databases[0]}")
        defaults = ApiBenchConfig.for_mode(quick=self.quick)
        if self.connections != defaults.connections:
            parts.append(f"--connections {self.connections}")
        if self.warmup != defaults.warmup:
            parts.append(f"--warmup {self.warmup:g}")
        if self.duration != defaults.duration:
            parts.append(f"--duration {self.duration:g}")
        if self.rounds != defaults.rounds:
            parts.append(f"--rounds {self.rounds}")
        return " ".join(parts)


@dataclass
class Measurement:
    case: str
    database: str
    app: str
    count: int = 0
    errors: int = 0
    rps: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    seconds: float = 0.0
    # CPU while measuring, as a share of one CPU.
    loadgen_cpu: float | None = None
    server_cpu: float | None = None
    postgres_cpu: float | None = None
    others_cpu: float | None = None
    error_samples: list[str] = field(default_factory=list)
    failure: str | None = None
    latencies_ms: list[float] = field(default_factory=list)
    # req/s of each round, in order.
    rounds_rps: list[float] = field(default_factory=list)

    @property
    def server_ms_per_request(self) -> float | None:
        """The server's CPU per answered request: unlike req/s, barely moved by other
        work on the machine competing for the CPUs."""
        if self.server_cpu is None or not self.count:
            return None
        return 1000 * self.server_cpu * self.seconds / self.count


@dataclass
class Target:
    """One app under test: where it listens and what it is made of."""

    app: str
    url: str
    port: int
    pid: int
    database_name: str | None
    order_ids: list[int] = field(default_factory=list)
    order_bytes: int = 0


@dataclass
class DatabaseRun:
    database: str
    measurements: list[Measurement] = field(default_factory=list)
    error: str | None = None
    log_dir: Path | None = None


@dataclass
class ApiBenchResult:
    config: ApiBenchConfig
    runs: list[DatabaseRun]
    notes: list[str]
    started_at: datetime
    response_bytes: dict[str, int] = field(default_factory=dict)

    def measurement(self, case: str, database: str, app: str) -> Measurement | None:
        for run in self.runs:
            for m in run.measurements:
                if (m.case, m.database, m.app) == (case, database, app):
                    return m
        return None

    def ratio_range(self, case: str, database: str) -> tuple[float, float] | None:
        """The lowest and highest of the rounds' own ratios to the baseline."""
        ours = self.measurement(case, database, "dcibridge")
        base = self.measurement(case, database, BASELINE)
        if ours is None or base is None or len(ours.rounds_rps) != len(base.rounds_rps):
            return None
        ratios = [a / b for a, b in zip(ours.rounds_rps, base.rounds_rps, strict=True) if b]
        return (min(ratios), max(ratios)) if ratios else None

    def ratio(self, case: str, database: str, baseline: str = BASELINE) -> float | None:
        """dcibridge's req/s divided by ``baseline``'s."""
        ours = self.measurement(case, database, "dcibridge")
        base = self.measurement(case, database, baseline)
        if ours is None or base is None or ours.failure or base.failure:
            return None
        if not ours.rps or not base.rps:
            return None
        return ours.rps / base.rps

    def passed(self) -> bool:
        verdicts = [
            (self.ratio(case.name, run.database) or 0.0) >= case.target
            for run in self.runs
            for case in CASES
        ]
        return bool(verdicts) and all(verdicts) and all(run.error is None for run in self.runs)


# -- requests -------------------------------------------------------------------------


def order_body(tag: str, seq: str, configuration: str) -> dict[str, Any]:
    """A provisioning request as billing sends it, with its own order and customer."""
    return {
        "external_id": f"svc-{tag}-{seq}",
        "customer": {
            "external_id": f"cust-{tag}-{seq}",
            "email": f"c-{tag}-{seq}@bench.example.com",
            "name": f"Bench customer {seq}",
        },
        "configuration": configuration,
        "os_template_id": OS_TEMPLATE_ID,
        "ssh_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchKeyForTheApiBenchmark bench@host"],
        "ipv4_count": 1,
    }


def loadgen_spec(
    config: ApiBenchConfig, case: Case, target: Target, *, api_key: str, configuration: str
) -> dict[str, Any]:
    """The same requests for every app: only the port (in ``Host``) and the run's tag
    in the accept case's external ids differ, and not in length."""
    headers = {"Authorization": f"Bearer {api_key}"}
    spec: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": target.port,
        "connections": config.connections,
        "warmup": config.warmup,
        "duration": config.duration / config.rounds,
    }
    if case.name == "read":
        spec |= {
            "method": "GET",
            "paths": [f"/api/v1/orders/{order_id}" for order_id in target.order_ids],
            "headers": headers,
            "body": None,
            "expect": 200,
        }
    else:
        tag = f"{os.getpid() % 10**6:06d}{int(time.time() * 1000) % 10**8:08d}"
        spec |= {
            "method": "POST",
            "paths": ["/api/v1/orders"],
            "headers": headers | {"Content-Type": "application/json"},
            "body": json.dumps(order_body(tag, SEQ_MARKER, configuration), separators=(",", ":")),
            "expect": 202,
        }
    return spec


# -- one database: every app, every case -------------------------------------------------


class DatabaseBench:
    def __init__(self, config: ApiBenchConfig, database: str, children: Children) -> None:
        self.config = config
        self.database = database
        self.children = children
        self.workdir = Path(tempfile.mkdtemp(prefix=f"bench-api-{database}-"))
        self.stack = Stack(children, self.workdir, database)
        self.configuration = Inventory().configurations[0].name
        self.targets: dict[str, Target] = {}

    async def _database_url(self, label: str) -> tuple[str, str | None]:
        url, scratch = await self.stack.new_database(f"api_{label}", sqlite_name=label)
        return url, None if scratch is None else scratch.name

    async def start(self, client: httpx.AsyncClient) -> None:
        stack = self.stack
        # With no worker, accepted orders just queue: only the request path runs.
        await stack.start(
            client,
            scratch_label="api_dcb",
            sqlite_name="dcb",
            settings={"DCIBRIDGE_LOG_LEVEL": self.config.log_level},
            scopes=("orders:read", "orders:write"),
            workers=0,
            ready_path=None,
        )
        database_name = None if stack.scratch is None else stack.scratch.name
        self.targets["dcibridge"] = Target(
            "dcibridge", stack.url, stack.port, stack.service_pids[0], database_name
        )

        for app, (flavour, label) in _MINIMAL_APPS.items():
            url, name = await self._database_url(label)
            port = free_port()
            minimal = self.children.start(
                f"{app}-{self.database}",
                [
                    sys.executable,
                    "-m",
                    "bench.minimal_app",
                    "--port",
                    str(port),
                    "--engine",
                    flavour,
                    "--log-level",
                    self.config.log_level,
                ],
                env=service_env({"PYTHONPATH": str(REPO), DATABASE_URL_VARIABLE: url}),
                cwd=self.workdir,
            )
            self.targets[app] = Target(app, f"http://127.0.0.1:{port}", port, minimal.pid, name)
        for target in self.targets.values():
            # Not /readyz for dcibridge: without a worker it rightly reports one missing.
            await wait_until_ok(client, f"{target.url}/healthz", within=60, children=self.children)
        await self._seed(client)

    async def _seed(self, client: httpx.AsyncClient) -> None:
        """Orders to read, made through each app's own POST (which also warms it up)."""
        headers = self.stack.headers
        gate = asyncio.Semaphore(8)
        for target in self.targets.values():

            async def create(index: int, target: Target = target) -> int:
                async with gate:
                    response = await client.post(
                        f"{target.url}/api/v1/orders",
                        json=order_body(f"seed-{target.app}", str(index), self.configuration),
                        headers=headers,
                        timeout=60,
                    )
                if response.status_code != 202:
                    raise RuntimeError(
                        f"{target.app}: seeding order {index} answered "
                        f"{response.status_code}: {response.text[:300]}"
                    )
                return int(response.json()["id"])

            target.order_ids = list(
                await asyncio.gather(*(create(i) for i in range(self.config.seed_orders)))
            )
            response = await client.get(
                f"{target.url}/api/v1/orders/{target.order_ids[0]}", headers=headers, timeout=30
            )
            response.raise_for_status()
            target.order_bytes = len(response.content)

    async def measure(self, case: Case, target: Target) -> Measurement:
        result = Measurement(case=case.name, database=self.database, app=target.app)
        spec = loadgen_spec(
            self.config, case, target, api_key=self.stack.api_key, configuration=self.configuration
        )
        spec_path = self.workdir / f"loadgen-{case.name}-{target.app}.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        meter = CpuMeter()
        meter.watch("server", roots=[target.pid])
        if target.database_name is not None:
            meter.watch("postgres", cmdline=[target.database_name])
        # Everything else this benchmark runs, so that "others" is only foreign work.
        meter.watch(
            "bench",
            roots=[
                self.stack.simulator_pid,
                *(t.pid for t in self.targets.values() if t is not target),
            ],
            cmdline=[
                t.database_name
                for t in self.targets.values()
                if t is not target and t.database_name is not None
            ],
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.loadgen",
            "--spec",
            str(spec_path),
            cwd=self.workdir,
            env=service_env({"PYTHONPATH": str(REPO)}),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # The result line lists every latency.
            limit=_RESULT_LINE_LIMIT,
        )
        assert process.stdout is not None
        before: tuple[dict[str, float], tuple[float, float], float] | None = None
        record: dict[str, Any] | None = None
        sampler: asyncio.Task[None] | None = None

        async def sample_periodically() -> None:
            # Pool connections come and go; a backend's CPU is read while it lives.
            while True:
                await asyncio.sleep(_SAMPLE_SECONDS)
                meter.sample()

        deadline = self.config.warmup + self.config.duration + 60
        try:
            async with asyncio.timeout(deadline):
                while record is None:
                    line = await process.stdout.readline()
                    if not line:
                        break
                    event = json.loads(line)
                    if event.get("event") == "measuring":
                        meter.sample()
                        before = (meter.totals(), machine_cpu(), own_cpu_seconds())
                        sampler = asyncio.create_task(sample_periodically())
                    elif event.get("event") == "result":
                        meter.sample()
                        record = event
                after = (meter.totals(), machine_cpu(), own_cpu_seconds())
                _, stderr = await process.communicate()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            result.failure = f"the load generator did not finish within {deadline:g}s"
            return result
        finally:
            if sampler is not None:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
        self.children.check_alive()
        if record is None or before is None:
            result.failure = f"the load generator failed: {stderr.decode(errors='replace')[-500:]}"
            return result

        result.count = int(record["count"])
        result.errors = int(record["errors"])
        result.error_samples = list(record["error_samples"])
        result.rps = float(record["rps"])
        result.rounds_rps = [result.rps]
        result.latencies_ms = list(record["latencies_ms"])
        result.seconds = float(record["seconds"])
        for name in ("p50_ms", "p90_ms", "p99_ms", "max_ms"):
            setattr(result, name, record[name])
        result.loadgen_cpu = float(record["cpu_share"])
        seconds = result.seconds or 1.0
        cpu_before, machine_before, own_before = before
        cpu_after, machine_after, own_after = after
        used = {group: cpu_after[group] - cpu_before.get(group, 0.0) for group in cpu_after}
        result.server_cpu = used["server"] / seconds
        if "postgres" in used:
            result.postgres_cpu = used["postgres"] / seconds
        busy = machine_after[0] - machine_before[0]
        ours = sum(used.values()) + float(record["cpu_seconds"]) + (own_after - own_before)
        result.others_cpu = max(0.0, busy - ours) / seconds
        if result.count == 0:
            result.failure = "no successful request" + (
                f" (e.g. {result.error_samples[0]})" if result.error_samples else ""
            )
        return result


def merge_rounds(rounds: Sequence[Measurement]) -> Measurement:
    """One app's measurement of one case over all its rounds: requests and seconds
    added up, percentiles over every latency, CPU shares weighted by each round's
    length."""
    first = rounds[0]
    merged = Measurement(case=first.case, database=first.database, app=first.app)
    merged.failure = next((m.failure for m in rounds if m.failure), None)
    merged.count = sum(m.count for m in rounds)
    merged.errors = sum(m.errors for m in rounds)
    merged.error_samples = [sample for m in rounds for sample in m.error_samples][
        : loadgen.MAX_ERROR_SAMPLES
    ]
    merged.seconds = sum(m.seconds for m in rounds)
    merged.rounds_rps = [m.rps or 0.0 for m in rounds]
    merged.latencies_ms = sorted(value for m in rounds for value in m.latencies_ms)
    if merged.seconds > 0:
        merged.rps = merged.count / merged.seconds
    latencies = merged.latencies_ms
    merged.p50_ms = loadgen.percentile(latencies, 0.50)
    merged.p90_ms = loadgen.percentile(latencies, 0.90)
    merged.p99_ms = loadgen.percentile(latencies, 0.99)
    merged.max_ms = latencies[-1] if latencies else None
    for name in ("loadgen_cpu", "server_cpu", "postgres_cpu", "others_cpu"):
        shares = [(getattr(m, name), m.seconds) for m in rounds if getattr(m, name) is not None]
        weight = sum(seconds for _, seconds in shares)
        if shares and weight > 0:
            setattr(merged, name, sum(share * seconds for share, seconds in shares) / weight)
    return merged


async def run_database(
    config: ApiBenchConfig, database: str, children: Children, response_bytes: dict[str, int]
) -> DatabaseRun:
    run = DatabaseRun(database=database)
    bench = DatabaseBench(config, database, children)
    run.log_dir = bench.workdir
    try:
        async with service_client() as client:
            await bench.start(client)
        for app, target in bench.targets.items():
            response_bytes.setdefault(app, target.order_bytes)
        for case in CASES:
            rounds: dict[str, list[Measurement]] = {app: [] for app in APPS}
            for index in range(config.rounds):
                # Each app goes first in turn, so that none always follows the same one.
                shift = index % len(APPS)
                for app in APPS[shift:] + APPS[:shift]:
                    print(f"   {case.name:<6} round {index + 1} {app:<13} ...", end="", flush=True)
                    measurement = await bench.measure(case, bench.targets[app])
                    rounds[app].append(measurement)
                    print(
                        f" {_f(measurement.rps, 0)} req/s"
                        + (f" FAILED: {measurement.failure}" if measurement.failure else ""),
                        flush=True,
                    )
            for app in APPS:
                merged = merge_rounds(rounds[app])
                run.measurements.append(merged)
                print(
                    f"   {case.name:<6} {app:<13} {_f(merged.rps, 0)} req/s, "
                    f"p50 {_f(merged.p50_ms, 1)} ms, p99 {_f(merged.p99_ms, 1)} ms, "
                    f"errors {merged.errors}, loadgen CPU {_pct(merged.loadgen_cpu)}",
                    flush=True,
                )
    except Exception as exc:
        run.error = f"{type(exc).__name__}: {exc}"
        print(f"   ERROR {run.error}", flush=True)
    finally:
        await bench.stack.stop()
    failed = run.error is not None or any(m.failure for m in run.measurements)
    if config.keep_logs or failed:
        print(f"   logs kept in {bench.workdir}")
    else:
        shutil.rmtree(bench.workdir, ignore_errors=True)
        run.log_dir = None
    return run


async def bench_all(config: ApiBenchConfig, children: Children) -> ApiBenchResult:
    result = ApiBenchResult(config=config, runs=[], notes=[], started_at=datetime.now(UTC))
    for database in await reachable_databases(config.databases, result.notes):
        print(f"== API benchmark on {database} ...", flush=True)
        result.runs.append(await run_database(config, database, children, result.response_bytes))
    return result


def run_benchmark(config: ApiBenchConfig) -> ApiBenchResult:
    return run_cleanly(lambda children: bench_all(config, children))


# -- the report ---------------------------------------------------------------------------


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _server_stack() -> str:
    """What uvicorn's "auto" loop and HTTP settings resolve to here, for every app."""
    loop = "uvloop" if _version("uvloop") != "not installed" else "asyncio"
    http = "httptools" if _version("httptools") != "not installed" else "h11"
    return (
        f"uvicorn {_version('uvicorn')} (loop auto = {loop} {_version(loop)}, http auto = "
        f"{http} {_version(http)}), FastAPI {_version('fastapi')}, SQLAlchemy "
        f"{_version('sqlalchemy')}, asyncpg {_version('asyncpg')}, aiosqlite "
        f"{_version('aiosqlite')}, Python {platform.python_version()}"
    )


def plot_latency(result: ApiBenchResult, path: Path) -> bool:
    """p50 and p99 of every app per case and database (log scale); False if no data."""
    groups = [
        (case, run.database)
        for run in result.runs
        for case in CASES
        if any(m.case == case.name and m.p50_ms is not None for m in run.measurements)
    ]
    if not groups:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"dcibridge": "#1f77b4", "minimal": "#ff7f0e", "minimal-plain": "#2ca02c"}
    series = [(app, percentile) for app in APPS for percentile in ("p50", "p99")]
    width = 0.8 / len(series)
    figure, axes = plt.subplots(figsize=(10, 5))
    for index, (app, percentile) in enumerate(series):
        xs: list[float] = []
        values: list[float] = []
        for position, (case, database) in enumerate(groups):
            measurement = result.measurement(case.name, database, app)
            value = None if measurement is None else getattr(measurement, f"{percentile}_ms")
            if value:
                xs.append(position + (index - (len(series) - 1) / 2) * width)
                values.append(float(value))
        bars = axes.bar(
            xs,
            values,
            width,
            label=f"{app} {percentile}",
            color=colours[app],
            alpha=1.0 if percentile == "p50" else 0.45,
        )
        axes.bar_label(
            bars, labels=[f"{v:.0f}" if v >= 10 else f"{v:.1f}" for v in values], fontsize=6
        )
    axes.set_yscale("log")
    axes.set_ylabel("latency, ms (log scale)")
    axes.set_xticks(
        range(len(groups)),
        labels=[f"{case.name}: {case.route}\n{database}" for case, database in groups],
        fontsize=8,
    )
    axes.set_title(
        f"API latency, {result.config.connections} connections, closed loop: "
        "dcibridge vs a minimal FastAPI app",
        fontsize=10,
    )
    axes.legend(fontsize=7, ncols=3)
    axes.grid(axis="y", which="both", alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def _verdict(ratio: float | None, target: float) -> str:
    return "FAIL" if ratio is None or ratio < target else "PASS"


def report(result: ApiBenchResult, *, plotted: bool) -> str:
    config = result.config
    lines = ["## API", ""]
    lines.append(
        f"`{config.command()}` — {result.started_at:%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} CPUs shared by everything below."
    )
    lines.append("")
    lines.append(
        "Three apps, one after the other on the same machine, each with a scratch database "
        "of its own: **dcibridge** (`dcibridge serve --no-worker`, pointed at a "
        "`dcibridge simulator`; accepted orders just queue, so only the request path "
        "runs); **minimal** (`bench/minimal_app.py`: one primary-key SELECT for the read, "
        "one INSERT ... RETURNING for the accept, pydantic models, no auth, no "
        "middleware) on dcibridge's own engine (`app.kit.db.create_engine`: SQLAlchemy async "
        "over asyncpg or aiosqlite, a pool of 20 connections, PostgreSQL with a last-in "
        "first-out pool that pings a connection idle for more than 0.1 s, SQLite in WAL "
        "with `synchronous=NORMAL`, `BEGIN IMMEDIATE` and writers queued for the write "
        "lock in the event loop, reads and statements inside a transaction run on the "
        "event loop's thread and only `BEGIN IMMEDIATE` and `COMMIT` go to aiosqlite's "
        "thread; reads "
        "outside any transaction, on dcibridge's read-only engine), the "
        "baseline of the targets; **minimal-plain**, the same app on SQLAlchemy's default "
        "engine configuration (same driver, pool bounds and SQLite durability; no ping, "
        "reads in a transaction, deferred SQLite transactions, SQLAlchemy's own aiosqlite "
        "adapter), for information. "
        "All three run "
        "`uvicorn.run(app, log_config=None, access_log=False)` in one process with the root "
        f"logger at {config.log_level}. Stack: {_server_stack()}."
    )
    lines.append("")
    lines.append(
        f"Load: `python -m bench.loadgen` in its own process on loopback, "
        f"{config.connections} keep-alive HTTP/1.1 connections in a closed loop, "
        f"{config.duration:g} s measured per case and app, in {config.rounds} "
        f"round(s) of {config.warmup:g} s warm-up then {config.duration / config.rounds:g} s "
        "measured, the apps taking turns within each round and each going first in turn: "
        "a machine that slows down or speeds up during the run (other tenants of a "
        "virtual machine) weighs on all three alike. "
        f"Read = `GET /api/v1/orders/{{id}}` cycling over {config.seed_orders} orders "
        "(Bearer key with `orders:read`); accept = `POST /api/v1/orders` (`orders:write`, "
        "expects 202) with a new order and customer external id in every request. Every "
        "app gets the same requests, byte for byte but for the port and the external ids."
    )
    if result.response_bytes:
        sizes = ", ".join(f"{app} {size} B" for app, size in result.response_bytes.items())
        lines.append(
            f"A read answer is {sizes}: dcibridge's order carries its customer, its queued "
            "provision operation and that operation's steps."
        )
    lines.append("")
    headers = [
        "case",
        "db",
        "app",
        "req/s",
        "p50 ms",
        "p99 ms",
        "ratio",
        "ratio by round",
        "target",
        "verdict",
        "ratio vs plain",
        "errors",
        "server CPU ms/req",
        "loadgen CPU",
        "server CPU",
        "PG CPU",
        "others CPU",
    ]
    rows: list[list[str]] = []
    for run in result.runs:
        if run.error is not None and not run.measurements:
            rows.append([f"error: {run.error}", run.database, *["-"] * (len(headers) - 2)])
            continue
        for case in CASES:
            ratio = result.ratio(case.name, run.database)
            spread = result.ratio_range(case.name, run.database)
            by_round = f"{spread[0]:.2f} to {spread[1]:.2f}" if spread else "-"
            for app in APPS:
                m = result.measurement(case.name, run.database, app)
                if m is None:
                    continue
                ours = app == "dcibridge"
                rows.append(
                    [
                        case.name,
                        run.database,
                        app,
                        _f(m.rps, 0),
                        _f(m.p50_ms, 1),
                        _f(m.p99_ms, 1),
                        _f(ratio) if ours else ("(baseline)" if app == BASELINE else ""),
                        by_round if ours else "",
                        f">= {case.target:g}" if ours else "",
                        _verdict(ratio, case.target) if ours else "",
                        _f(result.ratio(case.name, run.database, PLAIN)) if ours else "",
                        str(m.errors) + (f" ({m.failure})" if m.failure else ""),
                        _f(m.server_ms_per_request),
                        _pct(m.loadgen_cpu),
                        _pct(m.server_cpu),
                        _pct(m.postgres_cpu),
                        _pct(m.others_cpu),
                    ]
                )
    lines.append(markdown_table(headers, rows))
    lines.append("")
    lines.append(
        "ratio = dcibridge req/s / minimal req/s for the same case and database over all "
        "rounds (the verdict); ratio by round = the lowest and highest of the rounds' own "
        "ratios, which shows how much the machine moved; ratio vs plain = dcibridge req/s "
        "/ minimal-plain req/s. Server CPU "
        "ms/req = the server process's CPU time per answered request. The other CPU columns "
        "are shares of one CPU while measuring, read from /proc: the load generator (its own "
        "process time), the server process, the PostgreSQL backends of that app's "
        "database, and processes outside this benchmark (the machine's busy time minus "
        "everything above, the simulator, the idle apps and the benchmark itself). A "
        'load generator far below 100% means it was not the bottleneck; a large "others" '
        "share means other work on the machine skewed the run."
    )
    lines.append("")
    if plotted:
        lines.append(f"![API latency p50/p99: dcibridge, minimal, minimal-plain]({PLOT_NAME})")
        lines.append("")
    notes = list(result.notes)
    for run in result.runs:
        if run.error is not None:
            notes.append(f"{run.database}: the run failed: {run.error}")
        if run.log_dir is not None:
            notes.append(f"{run.database}: logs kept in `{run.log_dir}`")
        for m in run.measurements:
            where = f"{m.case} / {m.database} / {m.app}"
            if m.error_samples:
                notes.append(
                    f"{where}: {m.errors} errors, e.g. "
                    + "; ".join(f"`{s[:160]}`" for s in m.error_samples[:2])
                )
            if m.loadgen_cpu is not None and m.loadgen_cpu > _LOADGEN_SUSPECT_SHARE:
                notes.append(
                    f"{where}: the load generator used {_pct(m.loadgen_cpu)} of a CPU and "
                    "may have limited the rate."
                )
    others = [
        m.others_cpu for run in result.runs for m in run.measurements if m.others_cpu is not None
    ]
    busy = [share for share in others if share > _OTHERS_SUSPECT_SHARE]
    if busy:
        notes.append(
            f"Processes outside the benchmark used more than {_pct(_OTHERS_SUSPECT_SHARE)} of "
            f"a CPU during {len(busy)} of {len(others)} measurements (up to {_pct(max(busy))}): "
            "other work on the machine took CPU time from the apps, so req/s and latencies "
            "are lower than on an idle machine, and unevenly so; server CPU ms/req is the "
            "steadier comparison."
        )
    if notes:
        lines.append("Notes:")
        lines.append("")
        lines.extend(f"- {note}" for note in notes)
        lines.append("")
    return "\n".join(lines)


# -- entry points -------------------------------------------------------------------------


def section(results_dir: Path, *, quick: bool = False) -> tuple[str, bool]:
    """Run the benchmark on both databases; the Markdown section, with its plot saved
    as ``results_dir / "api_latency.png"``, and whether every target was met."""
    result = run_benchmark(ApiBenchConfig.for_mode(quick=quick))
    plotted = plot_latency(result, results_dir / PLOT_NAME)
    return report(result, plotted=plotted), result.passed()


def parse_args(argv: Sequence[str] | None) -> tuple[ApiBenchConfig, Path]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.api", description=__doc__.split("\n\n")[0] if __doc__ else ""
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 s warm-up + 3 s measured per case, one round (for trials)",
    )
    parser.add_argument("--db", choices=("both", *DATABASES), default="both")
    parser.add_argument("--connections", type=int, default=None, help="default 32")
    parser.add_argument("--warmup", type=float, default=None, help="seconds (default 2, quick 1)")
    parser.add_argument(
        "--duration", type=float, default=None, help="measured seconds (default 8, quick 3)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="measure each case and app in this many turns, the apps alternating "
        "(default 4, quick 1); the measured seconds are split between them",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep each run's directory")
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS_DIR / "api.md",
        help="Markdown report; the plot goes next to it (default bench/results/api.md)",
    )
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {"keep_logs": args.keep_logs}
    if args.db != "both":
        overrides["databases"] = (args.db,)
    for name in ("connections", "warmup", "duration", "rounds"):
        value = getattr(args, name)
        if value is not None:
            if value <= 0:
                parser.error(f"--{name} must be positive")
            overrides[name] = value
    return ApiBenchConfig.for_mode(quick=args.quick, **overrides), args.output


def main(argv: Sequence[str] | None = None) -> int:
    config, output = parse_args(argv)
    try:
        result = run_benchmark(config)
    except KeyboardInterrupt:
        print("interrupted: stopping children and dropping scratch databases", file=sys.stderr)
        return 130
    plotted = plot_latency(result, output.parent / PLOT_NAME)
    plot = output.parent / PLOT_NAME if plotted else None
    write_report(report(result, plotted=plotted), output, plot=plot)
    return 0 if result.passed() else 1


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
