"""A PostgreSQL cluster of the test's own, which it may restart or stop at will.

A shared server (the CI's, a developer's) cannot be restarted under other
people's feet, so a test that wants the database to go away mid-run starts its
own: ``initdb`` into a scratch directory, a free loopback port, trust
authentication, a socket directory of its own. PostgreSQL refuses to run as
root, so when the test runs as root the server tools run as the ``postgres``
OS user (``runuser``), in a directory that user owns.

Durability is switched off (``fsync``, ``full_page_writes``): the cluster only
ever lives as long as one test, and a clean ``pg_ctl restart`` loses nothing
without them.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.live_server import free_port

POSTGRES_LIB = Path("/usr/lib/postgresql")
SERVER_TOOLS = ("initdb", "pg_ctl", "postgres", "createdb")
DATABASE = "dcibridge"
SUPERUSER = "postgres"
OS_USER = "postgres"
# initdb and a start or restart take a few seconds on an idle machine; a busy one
# (others run benchmarks on it) may need many times that.
TOOL_TIMEOUT = 120.0

_SETTINGS = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{socket_dir}'
max_connections = 300
shared_buffers = 64MB
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
log_connections = off
log_disconnections = off
"""


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here, or the cluster would not start."""


def find_bin_dir(lib: Path | None = None) -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` that has every server tool."""
    lib = lib or POSTGRES_LIB
    candidates: list[tuple[tuple[int, ...], Path]] = []
    for bin_dir in lib.glob("*/bin"):
        if all((bin_dir / tool).is_file() for tool in SERVER_TOOLS):
            version = tuple(int(part) for part in re.findall(r"\d+", bin_dir.parent.name))
            candidates.append((version, bin_dir))
    if not candidates:
        raise PostgresUnavailable(
            f"no PostgreSQL server binaries ({', '.join(SERVER_TOOLS)}) under "
            f"{lib}/<version>/bin. The chaos suite runs its own PostgreSQL cluster and "
            "needs them: `apt-get install postgresql`."
        )
    return max(candidates)[1]


@dataclass
class PrivatePostgres:
    bin_dir: Path
    root: Path
    port: int
    restarts: int = 0

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return f"(no server log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def start(self) -> None:
        self._pg_ctl("start")

    def restart(self, *, down_seconds: float = 0.0) -> None:
        """``pg_ctl restart -m fast``: every session is cut, in-flight transactions roll
        back. With ``down_seconds``, a fast stop, that long with no server, then a start."""
        if down_seconds > 0:
            self._pg_ctl("stop", "-m", "fast")
            time.sleep(down_seconds)
            self._pg_ctl("start")
        else:
            self._pg_ctl("restart", "-m", "fast")
        self.restarts += 1

    def stop(self) -> None:
        """Stop at once (the data is thrown away next); kill the postmaster if that fails."""
        if not (self.data_dir / "postmaster.pid").exists():
            return
        with contextlib.suppress(subprocess.SubprocessError, OSError, PostgresUnavailable):
            self._pg_ctl("stop", "-m", "immediate", timeout=30)
        pid = self._postmaster_pid()
        if pid is not None:
            # Only the postmaster this cluster started (its own pid file says which).
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _postmaster_pid(self) -> int | None:
        try:
            first_line = (self.data_dir / "postmaster.pid").read_text().splitlines()[0]
        except (OSError, IndexError):
            return None
        return int(first_line) if first_line.strip().isdigit() else None

    def _pg_ctl(self, action: str, *options: str, timeout: float = TOOL_TIMEOUT) -> None:
        # -l again on every action: pg_ctl does not remember where the log went.
        seconds = str(int(timeout))
        self._server_tool(
            "pg_ctl",
            action,
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_path),
            "-w",
            "-t",
            seconds,
            *options,
            timeout=timeout + 10,
        )

    def _server_tool(self, tool: str, *args: str, timeout: float = TOOL_TIMEOUT) -> None:
        command = [str(self.bin_dir / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", OS_USER, "--", *command]
        result = subprocess.run(
            command,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise PostgresUnavailable(
                f"{tool} {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}\nserver log:\n{self.log_tail()}"
            )


def _owned_scratch_dir() -> Path:
    root = Path(tempfile.mkdtemp(prefix="dcibridge-pg-"))
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam(OS_USER)
        except KeyError:
            shutil.rmtree(root, ignore_errors=True)
            raise PostgresUnavailable(
                f"running as root, and PostgreSQL refuses root, but there is no {OS_USER!r} "
                "OS user to run it as (the postgresql package creates one)"
            ) from None
        os.chown(root, account.pw_uid, account.pw_gid)
    return root


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A running cluster with an empty database ``dcibridge``; stopped and deleted after.

    Raises ``PostgresUnavailable`` (with what to install) when it cannot be had.
    """
    bin_dir = find_bin_dir()
    root = _owned_scratch_dir()
    cluster = PrivatePostgres(bin_dir=bin_dir, root=root, port=free_port())
    try:
        cluster._server_tool(
            "initdb",
            "-D",
            str(cluster.data_dir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        with (cluster.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(_SETTINGS.format(port=cluster.port, socket_dir=root))
        cluster.start()
        cluster._server_tool(
            "createdb", "-h", "127.0.0.1", "-p", str(cluster.port), "-U", SUPERUSER, DATABASE
        )
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
