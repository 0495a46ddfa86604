"""Plumbing shared by the benchmarks: child processes, scratch PostgreSQL databases,
orders, CPU accounting from ``/proc``, running a benchmark, Markdown tables and reports.

Everything here cleans up after itself: children run in their own process group
and are stopped (SIGTERM, then SIGKILL) by whoever started them, and die with
the benchmark if it is killed outright (``PR_SET_PDEATHSIG`` on Linux).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import (
    AsyncIterator,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any, TypeVar

import httpx

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_URL_TEMPLATE = "postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
_PR_SET_PDEATHSIG = 1
OS_TEMPLATE_ID = 1
_T = TypeVar("_T")


def service_client(*, max_connections: int = 100) -> httpx.AsyncClient:
    """An HTTP client for the service under test. Idle connections are dropped
    well before uvicorn's 5 s keep-alive ends: at the same 5 s, a connection left
    idle between phases could be reused just as the server closed it (a
    ReadError on the next phase's first request)."""
    limits = httpx.Limits(max_connections=max_connections, keepalive_expiry=2)
    return httpx.AsyncClient(limits=limits)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def dcibridge_command() -> list[str]:
    """The ``dcibridge`` console script of this interpreter's environment, as users run it."""
    script = Path(sys.executable).with_name("dcibridge")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "app.cli"]


def service_env(overrides: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any DCIBRIDGE_* setting, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCIBRIDGE_")}
    env.update(overrides)
    return env


def new_secret_key() -> str:
    return secrets.token_urlsafe(48)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    """A long-running child process whose output goes to a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] = field(repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def interrupt(self, timeout: float = 30.0) -> None:
        """SIGINT (what Ctrl-C sends), then wait for a clean exit; ``stop`` if none comes."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        self.stop()

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the child's process group, SIGKILL it if it does not exit in time."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)
        self._log.close()

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return ""


class Children:
    """Starts children and stops all of them, newest first, exactly once."""

    def __init__(self) -> None:
        self._children: list[Child] = []

    def start(self, name: str, args: Sequence[str], *, env: Mapping[str, str], cwd: Path) -> Child:
        """Start ``args`` in ``cwd``; its output goes to ``cwd/NAME.log``."""
        log_path = cwd / f"{name}.log"
        log = log_path.open("wb")
        popen = subprocess.Popen(
            list(args),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        child = Child(name=name, popen=popen, log_path=log_path, _log=log)
        self._children.append(child)
        return child

    def __iter__(self) -> Iterator[Child]:
        return iter(self._children)

    def check_alive(self) -> None:
        for child in self._children:
            if not child.alive():
                raise RuntimeError(
                    f"{child.name} exited with status {child.popen.returncode}:\n{child.tail()}"
                )

    def stop_all(self) -> None:
        while self._children:
            self._children.pop().stop()


def run_cli(args: Sequence[str], *, env: Mapping[str, str], cwd: Path, timeout: float = 120) -> str:
    """Run a short command; its standard output, or an error carrying its standard error."""
    result = subprocess.run(
        list(args), cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} exited with {result.returncode}:\n{result.stderr.strip()}"
        )
    return result.stdout


async def wait_until_ok(
    client: httpx.AsyncClient, url: str, *, within: float, children: Children
) -> httpx.Response:
    """GET ``url`` until it answers 2xx; fail early if one of ``children`` died."""
    deadline = time.monotonic() + within
    last = "no answer"
    while True:
        children.check_alive()
        with contextlib.suppress(httpx.TransportError):
            response = await client.get(url, timeout=2)
            if response.is_success:
                return response
            last = f"{response.status_code} {response.text[:300]}"
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready after {within:.0f}s: {last}")
        await asyncio.sleep(0.1)


def print_log_tails(children: Children, lines: int = 15) -> None:
    """The last lines of every child's log, to show why a run failed."""
    for child in children:
        tail = child.tail(lines)
        if tail:
            print(f"--- last lines of {child.name} ({child.log_path}) ---\n{tail}")


# -- orders ---------------------------------------------------------------------------


def order_request(name: str, configuration: str) -> dict[str, Any]:
    """``POST /api/v1/orders`` as billing sends it: order ``svc-NAME`` for a new customer."""
    return {
        "external_id": f"svc-{name}",
        "customer": {
            "external_id": f"cust-{name}",
            "email": f"c-{name}@bench.example.com",
            "name": f"Bench customer {name}",
        },
        "configuration": configuration,
        "os_template_id": OS_TEMPLATE_ID,
        "ipv4_count": 1,
        "hostname": f"h-{name}.bench.example.com",
        "password": "bench-root-password",
    }


# -- PostgreSQL -----------------------------------------------------------------------


async def postgres_reachable(connect_seconds: float = 3.0) -> str | None:
    """None when the local PostgreSQL answers; otherwise why not."""
    import asyncpg

    try:
        connection = await asyncpg.connect(PG_ADMIN_DSN, timeout=connect_seconds)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    await connection.close()
    return None


async def reachable_databases(databases: Iterable[str], notes: list[str]) -> list[str]:
    """``databases`` without PostgreSQL when it does not answer, which is noted in ``notes``."""
    reachable = list(databases)
    if "postgres" in reachable:
        problem = await postgres_reachable()
        if problem is not None:
            note = f"PostgreSQL at 127.0.0.1:5432 is unreachable ({problem}); skipped."
            print(f"WARNING: {note}")
            notes.append(note)
            reachable.remove("postgres")
    return reachable


class ScratchPostgres:
    """A database created for one benchmark run and dropped afterwards, whatever happens.

    Every instance is remembered in ``ScratchPostgres.live`` until dropped, so an
    interrupted benchmark can still drop what it created (``drop_leftovers``).
    """

    live: list[ScratchPostgres] = []

    def __init__(self, label: str) -> None:
        self.name = f"dcibridge_bench_{label}_{os.getpid()}_{secrets.token_hex(3)}"
        self.url = PG_URL_TEMPLATE.format(name=self.name)
        self.created = False
        ScratchPostgres.live.append(self)

    @classmethod
    def drop_leftovers(cls) -> None:
        """Synchronously drop whatever an interrupted run left (outside any event loop)."""
        for scratch in list(cls.live):
            if scratch.created:
                with contextlib.suppress(Exception):
                    asyncio.run(scratch.drop())
        cls.live.clear()

    async def create(self) -> None:
        import asyncpg

        connection = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            await connection.execute(f'CREATE DATABASE "{self.name}"')
            self.created = True
        finally:
            await connection.close()

    async def drop(self) -> None:
        if not self.created:
            return
        import asyncpg

        connection = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.created = False
        finally:
            await connection.close()

    async def committed_transactions(self) -> int:
        """Transactions committed in this database so far (pg_stat_database, not exact
        to the last millisecond: the statistics collector lags slightly)."""
        import asyncpg

        connection = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            value = await connection.fetchval(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = $1", self.name
            )
        finally:
            await connection.close()
        return int(value or 0)


# -- CPU accounting (Linux /proc) -----------------------------------------------------

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stat(pid: int) -> tuple[str, int, float] | None:
    """(command name, parent pid, CPU seconds used) of one process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may itself hold spaces or parentheses.
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    parent = int(fields[1])
    utime, stime = int(fields[11]), int(fields[12])
    return name, parent, (utime + stime) / _CLOCK_TICKS


def _all_processes() -> dict[int, tuple[str, int, float]]:
    table: dict[int, tuple[str, int, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None:
                table[int(entry.name)] = stat
    return table


class CpuMeter:
    """CPU seconds used by groups of processes, counting processes that have exited.

    ``/proc`` forgets a process when it exits, and PostgreSQL backends come and go
    with pool connections; so the meter samples (``sample``, e.g. twice a second)
    and keeps each process's last reading. A group is the given root processes and
    all their descendants, plus every process whose command line holds one of the
    given fragments (a database name: PostgreSQL shows it in each backend's title).
    CPU a process used after its last sample and before exiting is missed.
    """

    def __init__(self) -> None:
        self._roots: dict[str, list[int]] = {}
        self._fragments: dict[str, list[bytes]] = {}
        self._last: dict[str, dict[int, float]] = {}

    def watch(self, group: str, *, roots: Iterable[int] = (), cmdline: Iterable[str] = ()) -> None:
        self._roots.setdefault(group, []).extend(roots)
        self._fragments.setdefault(group, []).extend(f.encode() for f in cmdline)
        self._last.setdefault(group, {})

    def sample(self) -> None:
        table = _all_processes()
        children: dict[int, list[int]] = {}
        for pid, (_, parent, _) in table.items():
            children.setdefault(parent, []).append(pid)
        cmdlines: dict[int, bytes] = {}
        if any(self._fragments.values()):
            for pid in table:
                with contextlib.suppress(OSError):
                    cmdlines[pid] = Path(f"/proc/{pid}/cmdline").read_bytes()
        for group, roots in self._roots.items():
            members: set[int] = set()
            stack = list(roots)
            while stack:
                pid = stack.pop()
                if pid in members or pid not in table:
                    continue
                members.add(pid)
                stack.extend(children.get(pid, []))
            fragments = self._fragments[group]
            members.update(
                pid for pid, line in cmdlines.items() if any(f in line for f in fragments)
            )
            last = self._last[group]
            for pid in members:
                if pid in table:
                    last[pid] = table[pid][2]

    def totals(self) -> dict[str, float]:
        """CPU seconds per group up to the last sample."""
        return {group: sum(last.values()) for group, last in self._last.items()}


def own_cpu_seconds() -> float:
    """CPU seconds used so far by this process (all its threads)."""
    return time.process_time()


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores summed."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()
    values = [int(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return (total - idle) / _CLOCK_TICKS, total / _CLOCK_TICKS


# -- running a benchmark --------------------------------------------------------------


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    # Handled like Ctrl-C: asyncio.run cancels the benchmark, whose clean-up runs.
    signal.raise_signal(signal.SIGINT)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM cancels the run like Ctrl-C (so children stop and scratch databases are
    dropped), unless the caller already handles SIGTERM itself."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous not in (signal.SIG_DFL, None):
        yield
        return
    # A shell starts background jobs with SIGINT ignored, which would swallow the
    # SIGINT that _terminate raises.
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if previous_int is signal.SIG_IGN:
            signal.signal(signal.SIGINT, previous_int)


def run_cleanly(benchmark: Callable[[Children], Coroutine[Any, Any, _T]]) -> _T:
    """Run ``benchmark`` with the children it starts; whatever happens (SIGTERM included),
    stop them all and drop every scratch database afterwards."""
    children = Children()
    try:
        with sigterm_as_interrupt():
            return asyncio.run(benchmark(children))
    finally:
        children.stop_all()
        ScratchPostgres.drop_leftovers()


def with_deadlines(
    runs: Sequence[_T], budget_seconds: float, *, teardown: float
) -> Iterator[tuple[_T, float, float]]:
    """Each of ``runs`` with its start and its deadline: its share of what is left of
    ``budget_seconds`` when it starts, less ``teardown`` seconds kept for clean-up."""
    budget_end = time.monotonic() + budget_seconds
    for position, run in enumerate(runs):
        started = time.monotonic()
        yield run, started, started + (budget_end - started) / (len(runs) - position) - teardown


@contextlib.asynccontextmanager
async def recording_failure(
    record: Callable[[str], None], children: Children
) -> AsyncIterator[None]:
    """A failure inside becomes ``record(its description)`` plus the children's last log
    lines, so that one failed run does not stop the others; a cancelled run is recorded
    as "interrupted" and stays cancelled."""
    try:
        yield
    except asyncio.CancelledError:
        record("interrupted")
        raise
    except Exception as exc:
        record(f"{type(exc).__name__}: {exc}")
        print_log_tails(children)


# -- output ---------------------------------------------------------------------------


def code_description(source: Path | None = None) -> str:
    """Which service code ran: ``source`` (``--source``), or the installed ``app``'s commit."""
    if source is not None:
        return f"`app` from `{source}` (--source)"
    try:
        head = run_cli(["git", "rev-parse", "--short", "HEAD"], env=os.environ, cwd=REPO)
        dirty = run_cli(["git", "status", "--porcelain", "--", "app"], env=os.environ, cwd=REPO)
    except (OSError, RuntimeError):
        return "the installed `app`"
    return f"the installed `app` at commit {head.strip()}" + (
        " with uncommitted changes under app/" if dirty.strip() else ""
    )


def write_report(text: str, output: Path, *, plot: Path | None = None) -> None:
    """Print the report and write it to ``output`` (``plot``: a figure written next to it)."""
    print()
    print(text)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    print(f"written to {output}" + (f" and {plot}" if plot is not None else ""))


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    text_rows = [[str(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text_rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join(
        [line(list(headers)), line(["-" * w for w in widths]), *(line(r) for r in text_rows)]
    )
