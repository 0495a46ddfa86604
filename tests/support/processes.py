"""The real pieces as child processes: `dcibridge simulator` and `dcibridge worker`.

End-to-end tests that kill workers (SIGKILL mid-step) or race several of them
need real processes: an in-process worker shares the test's event loop and
database pool, so neither a crash nor a cross-process race would be real.

Every child is started with a clean environment (no inherited ``DCIBRIDGE_*``,
so a developer's shell or ``.env`` cannot steer it), a scratch working
directory, and its output in a file that failures quote. ``ProcessGroup``
kills whatever it started when the test ends, however the test ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
from pydantic import SecretStr

from app.config import LogFormat, Settings
from app.main import create_app
from tests.support.bridge import Bridge
from tests.support.live_server import free_port, live_server

REPO_ROOT = Path(__file__).resolve().parents[2]
# The simulator's built-in admin (see app/simulator/inventory.py); it prints them too.
SIM_ADMIN_EMAIL = "admin@dcimanager.local"
SIM_ADMIN_PASSWORD = "dcisim-admin"
# One key per test run, shared by the in-process API (which encrypts order passwords)
# and the workers (which decrypt them): they must agree, nothing else must know it.
TEST_SECRET_KEY = secrets.token_urlsafe(48)

# Worker timings scaled down so a whole provision takes a couple of seconds. The
# lease is the smallest the settings allow: it bounds how long a dead worker's
# operation waits before another worker may take it over.
FAST_WORKER_ENV: dict[str, str] = {
    "DCIBRIDGE_TASK_POLL_SECONDS": "0.1",
    "DCIBRIDGE_WORKER_POLL_SECONDS": "0.05",
    "DCIBRIDGE_LEASE_SECONDS": "3",
    "DCIBRIDGE_WORKER_HEARTBEAT_SECONDS": "0.5",
    "DCIBRIDGE_STEP_RETRY_BASE_SECONDS": "0.05",
    "DCIBRIDGE_STEP_RETRY_MAX_SECONDS": "0.5",
    "DCIBRIDGE_SHUTDOWN_GRACE_SECONDS": "5",
}


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The test's environment without any DCIBRIDGE_* variable, plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DCIBRIDGE_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["PYTHONUNBUFFERED"] = "1"  # so the log file is current when a failure quotes it
    env.update(extra)
    return env


class ChildProcess(Protocol):
    """What ``ManagedProcess`` needs of a child: ``subprocess.Popen`` or ``ForkedChild``."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...


@dataclass
class ManagedProcess:
    """A child process writing stdout and stderr to ``log_path``."""

    name: str
    popen: ChildProcess
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def log_events(self) -> list[dict[str, Any]]:
        """The JSON log lines (workers log JSON); anything else is skipped."""
        events: list[dict[str, Any]] = []
        for line in self.output().splitlines():
            if not line.startswith("{"):
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict):
                events.append(event)
        return events

    async def wait_for_event(self, event: str, *, timeout: float = 30.0) -> None:
        """Wait until the process has logged ``event`` (e.g. ``worker.started``)."""
        deadline = time.monotonic() + timeout
        while not any(logged.get("event") == event for logged in self.log_events()):
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{self.name} never logged {event}:\n{self.tail()}")
            await asyncio.sleep(0.05)

    async def wait_exit(self, *, timeout: float) -> int:
        """Wait (without blocking the event loop) for the process to end; its exit code."""
        deadline = time.monotonic() + timeout
        while (code := self.popen.poll()) is None:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name} (pid {self.pid}) still running after {timeout}s:\n{self.tail()}"
                )
            await asyncio.sleep(0.05)
        return code

    async def stop(self, *, timeout: float = 15.0) -> int:
        """SIGTERM, i.e. a graceful shutdown, and its exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        return await self.wait_exit(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL this process (only this pid) and reap it."""
        if self.popen.poll() is None:
            self.popen.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):  # a zombie we cannot help
            self.popen.wait(timeout=10)


class ProcessGroup:
    """Starts child processes and kills every one of them when the block ends."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes: list[ManagedProcess] = []
        self._started = 0

    def start(self, name: str, args: list[str], env: Mapping[str, str]) -> ManagedProcess:
        """``python -m app.cli ARGS`` in its own scratch directory."""
        unique, cwd, log_path = self._place(name)
        with log_path.open("wb") as log_file:  # the child keeps its own descriptor
            popen = subprocess.Popen(
                [sys.executable, "-m", "app.cli", *args],
                cwd=cwd,
                env=child_env(env),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        return self._add(ManagedProcess(unique, popen, log_path))

    def fork(
        self, server: ForkServer, name: str, args: list[str], env: Mapping[str, str]
    ) -> ManagedProcess:
        """The same as ``start``, forked from ``server`` (no start-up imports)."""
        unique, cwd, log_path = self._place(name)
        child = server.spawn(args=args, env=child_env(env), cwd=cwd, log_path=log_path)
        return self._add(ManagedProcess(unique, child, log_path))

    def _place(self, name: str) -> tuple[str, Path, Path]:
        self._started += 1
        unique = f"{name}-{self._started}"
        cwd = self.workdir / unique
        cwd.mkdir(parents=True, exist_ok=True)
        return unique, cwd, cwd / "output.log"

    def _add(self, process: ManagedProcess) -> ManagedProcess:
        self.processes.append(process)
        return process

    def kill_all(self) -> None:
        for process in self.processes:
            process.kill()

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *_: object) -> None:
        self.kill_all()


# -- the DCImanager simulator -----------------------------------------------------


@dataclass
class Simulator:
    """A `dcibridge simulator` process and its inspection routes (``/_sim/*``)."""

    url: str
    process: ManagedProcess

    async def state(self) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
            response = await client.get("/_sim/state")
        response.raise_for_status()
        state: dict[str, Any] = response.json()
        return state

    async def reset(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
            (await client.post("/_sim/reset")).raise_for_status()

    async def faults(self, **changes: Any) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
            response = await client.post("/_sim/faults", json=changes)
        response.raise_for_status()
        faults: dict[str, Any] = response.json()
        return faults


@contextmanager
def running_simulator(
    workdir: Path, *, servers: int, op_seconds: float, start_timeout: float = 30.0
) -> Iterator[Simulator]:
    """Serve a standalone simulator on a free port until the block ends.

    ``--op-seconds`` shortens installs, wipes and diagnostics; an inventory file
    gives IP allocation the same duration (the flag leaves it at its 1 s default).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    inventory = workdir / "inventory.json"
    inventory.write_text(json.dumps({"timings": {"ip_allocate": op_seconds}}), encoding="utf-8")
    port = free_port()
    args = [
        "simulator",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--servers",
        str(servers),
        "--op-seconds",
        str(op_seconds),
        "--inventory",
        str(inventory),
    ]
    with ProcessGroup(workdir) as group:
        process = group.start("simulator", args, {})
        simulator = Simulator(url=f"http://127.0.0.1:{port}", process=process)
        _wait_until_answering(simulator, timeout=start_timeout)
        yield simulator


def _wait_until_answering(simulator: Simulator, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{simulator.url}/_sim/state", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if simulator.process.returncode is not None:
            raise RuntimeError(f"simulator exited early:\n{simulator.process.tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"simulator did not answer in {timeout}s:\n{simulator.process.tail()}"
            )
        time.sleep(0.05)
    # The admin login is printed for humans; checking it here catches a changed default.
    assert SIM_ADMIN_EMAIL in simulator.process.output(), simulator.process.tail()


# -- dcibridge against the standalone simulator --------------------------------------


def bridge_settings(settings: Settings, simulator: Simulator) -> Settings:
    """The test database's settings, pointed at ``simulator`` rather than the embedded one.

    Built through the constructor (not ``model_copy``) so the URL and the secret
    key are validated the way the service validates them.
    """
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=settings.database_url,
        dci_url=simulator.url,  # type: ignore[arg-type]
        dci_email=SIM_ADMIN_EMAIL,
        dci_password=SecretStr(SIM_ADMIN_PASSWORD),
        secret_key=SecretStr(TEST_SECRET_KEY),
        log_format=LogFormat.CONSOLE,
        log_level="INFO",
        run_worker=False,
    )


@asynccontextmanager
async def serving_bridge(
    settings: Settings, simulator: Simulator, *, api_key: str
) -> AsyncIterator[Bridge]:
    """The API in-process (no worker of its own) over real HTTP, as billing with
    ``api_key``, with ``simulator`` behind it."""
    with live_server(create_app(bridge_settings(settings, simulator))) as base_url:
        async with httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30
        ) as client:
            yield Bridge(api=client, simulator_url=simulator.url)


def worker_env(
    *, database_url: str, simulator: Simulator, crash_at: str | None = None, **extra: str
) -> dict[str, str]:
    env = {
        "DCIBRIDGE_DATABASE_URL": database_url,
        "DCIBRIDGE_DCI_URL": simulator.url,
        "DCIBRIDGE_DCI_EMAIL": SIM_ADMIN_EMAIL,
        "DCIBRIDGE_DCI_PASSWORD": SIM_ADMIN_PASSWORD,
        "DCIBRIDGE_SECRET_KEY": TEST_SECRET_KEY,
        "DCIBRIDGE_LOG_FORMAT": "json",
        "DCIBRIDGE_LOG_LEVEL": "INFO",
        **FAST_WORKER_ENV,
    }
    if crash_at is not None:
        env["DCIBRIDGE_DEBUG_CRASH_AT"] = crash_at
    env.update(extra)
    return env


# A Python that imports what `python -m app.cli worker` needs (most of a worker's
# start-up: about two seconds of CPU), then forks one child per request. A child
# points its output at its log file, takes the environment it was sent and runs
# the CLI's own entry point, as a fresh `python -m app.cli ...` would: dcibridge
# reads its settings when a command runs, never at import, so importing early
# changes nothing. Replies go over the server's stdout, which no child keeps.
_FORK_SERVER = """\
import json, os, sys, traceback
import aiosqlite, asyncpg, alembic.command
import app.cli, app.kit.migrations, app.orchestration.worker, app.runtime


def child(request):
    code = 1
    try:
        os.chdir(request["cwd"])
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["dcibridge", *request["args"]]
        app.cli.main()
        code = 0
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def reply(answer):
    sys.stdout.write(json.dumps(answer) + "\\n")
    sys.stdout.flush()


exit_codes = {}
reply({"ready": True})
for line in sys.stdin:
    request = json.loads(line)
    if request["op"] == "spawn":
        pid = os.fork()
        if pid == 0:
            child(request)
        reply({"pid": pid})
    else:
        pid = request["pid"]
        if pid not in exit_codes:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                exit_codes[pid] = os.waitstatus_to_exitcode(status)
        reply({"code": exit_codes.get(pid)})
"""


class ForkServer:
    """Starts children of a Python that has already imported dcibridge.

    The crash-safety cases need two fresh workers each (the one that dies and the
    one that recovers); on a small machine, importing dcibridge twice per case
    costs more than the case itself. Only one process per module pays for it.
    """

    def __init__(self, workdir: Path, *, start_timeout: float = 60.0) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self._log_path = workdir / "fork-server.log"
        with self._log_path.open("wb") as log_file:
            self._process = subprocess.Popen(
                [sys.executable, "-c", _FORK_SERVER],
                cwd=workdir,
                env=child_env({}),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log_file,
            )
        self._start_timeout = start_timeout

    def spawn(
        self, *, args: list[str], env: Mapping[str, str], cwd: Path, log_path: Path
    ) -> ForkedChild:
        answer = self._ask(
            {"op": "spawn", "args": args, "env": dict(env), "cwd": str(cwd), "log": str(log_path)}
        )
        return ForkedChild(self, int(answer["pid"]))

    def exit_code(self, pid: int) -> int | None:
        code = self._ask({"op": "status", "pid": pid})["code"]
        return None if code is None else int(code)

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        stdin = self._process.stdin
        assert stdin is not None
        stdin.write(json.dumps(request).encode() + b"\n")
        stdin.flush()
        return self._answer()

    def _answer(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            log = self._log_path.read_text(encoding="utf-8", errors="replace")
            raise RuntimeError(f"the fork server died:\n{log[-4000:]}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def __enter__(self) -> ForkServer:
        # Its imports happen here, in the fixture's set-up, not in the first test.
        if not self._answer().get("ready"):
            raise RuntimeError("the fork server did not start")
        return self

    def __exit__(self, *_: object) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()  # end of requests: it exits
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        if self._process.stdout is not None:
            self._process.stdout.close()


class ForkedChild:
    """A ``ForkServer`` child, with the parts of ``subprocess.Popen`` tests use."""

    def __init__(self, server: ForkServer, pid: int) -> None:
        self._server = server
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._server.exit_code(self.pid)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0)
            time.sleep(0.02)
        return code


class Workers:
    """Starts `dcibridge worker` processes against one database and simulator."""

    def __init__(
        self,
        group: ProcessGroup,
        *,
        database_url: str,
        simulator: Simulator,
        fork_server: ForkServer | None = None,
    ) -> None:
        self._group = group
        self._database_url = database_url
        self._simulator = simulator
        self._fork_server = fork_server

    def start(self, *, crash_at: str | None = None, **extra_env: str) -> ManagedProcess:
        """A worker; with ``crash_at`` ("before_record:STEP" or "after_record:STEP") it
        SIGKILLs itself there (see ``OperationRunner._crash_point``).

        `python -m app.cli worker`, or the same forked from ``fork_server`` when given.
        """
        env = worker_env(
            database_url=self._database_url,
            simulator=self._simulator,
            crash_at=crash_at,
            **extra_env,
        )
        if self._fork_server is None:
            return self._group.start("worker", ["worker"], env)
        return self._group.fork(self._fork_server, "worker", ["worker"], env)
