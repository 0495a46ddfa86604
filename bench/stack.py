"""The service as the benchmarks run it, the way users do: ``dcibridge simulator``,
a scratch database, ``dcibridge migrate``, ``dcibridge api-key create``, then
``dcibridge serve`` (and ``dcibridge worker`` processes) pointed at the simulator.

Whatever ``Stack.start`` got to before failing, ``Stack.stop`` undoes.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping, Sequence
from ipaddress import IPv4Network
from pathlib import Path

import httpx

from app.simulator.inventory import (
    DEFAULT_ADMIN_PASSWORD,
    AdminSpec,
    Inventory,
    NetworkSpec,
    Timings,
)
from bench.common import (
    Children,
    ScratchPostgres,
    dcibridge_command,
    free_port,
    new_secret_key,
    run_cli,
    service_env,
    wait_until_ok,
)


def sized_inventory(
    orders: int, *, os_seconds: float, ip_seconds: float | None = None
) -> tuple[Inventory, int]:
    """The default hardware with the bench's timings, a network big enough for ``orders``,
    and the servers-per-configuration count that leaves every order a server.

    Without ``ip_seconds`` IP allocation keeps the simulator's default."""
    base = Inventory()
    per_configuration = math.ceil(orders / len(base.configurations)) + 2
    # One address per order (plus slack); the default two /24s hold only ~500.
    prefix = 24
    while (2 ** (32 - prefix)) - 3 < orders + 16:
        prefix -= 1
    timings = {"os_install": os_seconds, "clear_hdd": os_seconds, "diag": os_seconds}
    if ip_seconds is not None:
        timings["ip_allocate"] = ip_seconds
    inventory = Inventory(
        admin=AdminSpec(),
        configurations=base.configurations,
        networks=[NetworkSpec(cidr=IPv4Network(f"100.64.0.0/{prefix}"), pool="bench")],
        os_templates=base.os_templates,
        timings=Timings(**timings),
    )
    return inventory, per_configuration


class Stack:
    """A simulator, the service and its scratch database, on ``database`` ("sqlite" or
    "postgres"); children are named ``simulator-DATABASE``, ``serve-DATABASE`` and
    ``workerN-DATABASE`` and log into ``workdir``."""

    def __init__(
        self,
        children: Children,
        workdir: Path,
        database: str,
        *,
        child_env: Callable[[Mapping[str, str]], dict[str, str]] = service_env,
    ) -> None:
        self.children = children
        self.workdir = workdir
        self.database = database
        self.child_env = child_env
        self.scratches: list[ScratchPostgres] = []
        # The service's own database, when on PostgreSQL.
        self.scratch: ScratchPostgres | None = None
        self.sim_url = ""
        self.simulator_pid = 0
        self.port = 0
        self.url = ""
        self.api_key = ""
        # serve first, then any worker processes.
        self.service_pids: list[int] = []

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    async def new_database(
        self, label: str, *, sqlite_name: str = "dcibridge"
    ) -> tuple[str, ScratchPostgres | None]:
        """A fresh database of this stack's kind: its URL, and the scratch PostgreSQL
        database behind it (None for SQLite: a file in ``workdir``)."""
        if self.database != "postgres":
            return f"sqlite+aiosqlite:///{self.workdir / f'{sqlite_name}.db'}", None
        scratch = ScratchPostgres(label)
        self.scratches.append(scratch)
        await scratch.create()
        return scratch.url, scratch

    async def start(
        self,
        client: httpx.AsyncClient,
        *,
        scratch_label: str,
        sqlite_name: str = "dcibridge",
        inventory: Inventory | None = None,
        servers: int | None = None,
        settings: Mapping[str, str] | None = None,
        scopes: Sequence[str] = (),
        workers: int = 1,
        ready_path: str | None = "/readyz",
    ) -> None:
        """Start everything and wait until ``ready_path`` answers (None: do not wait).

        ``workers``: 1 = ``serve`` with its embedded worker; 0 = ``serve --no-worker``
        alone; K > 1 = ``serve --no-worker`` plus K ``dcibridge worker`` processes.
        ``settings`` are DCIBRIDGE_* values beyond those connecting the service to its
        database and the simulator; ``scopes`` those of the API key (none: its default).
        """
        cli = dcibridge_command()
        sim_port = free_port()
        simulator_args = [*cli, "simulator", "--port", str(sim_port)]
        if inventory is not None:
            inventory_path = self.workdir / "inventory.json"
            inventory_path.write_text(inventory.model_dump_json(indent=2), encoding="utf-8")
            simulator_args += ["--inventory", str(inventory_path)]
        if servers is not None:
            simulator_args += ["--servers", str(servers)]
        simulator = self.children.start(
            f"simulator-{self.database}",
            simulator_args,
            env=self.child_env({}),
            cwd=self.workdir,
        )
        self.simulator_pid = simulator.pid
        self.sim_url = f"http://127.0.0.1:{sim_port}"
        # Not /_sim/state: with a large inventory it lists thousands of servers.
        await wait_until_ok(
            client, f"{self.sim_url}/_sim/faults", within=60, children=self.children
        )

        database_url, self.scratch = await self.new_database(scratch_label, sqlite_name=sqlite_name)
        env = self.child_env(
            {
                "DCIBRIDGE_DATABASE_URL": database_url,
                "DCIBRIDGE_DCI_URL": self.sim_url,
                "DCIBRIDGE_DCI_EMAIL": (inventory or Inventory()).admin.email,
                "DCIBRIDGE_DCI_PASSWORD": DEFAULT_ADMIN_PASSWORD,
                "DCIBRIDGE_SECRET_KEY": new_secret_key(),
                **(settings or {}),
            }
        )
        await asyncio.to_thread(run_cli, [*cli, "migrate"], env=env, cwd=self.workdir)
        key_args = [*cli, "api-key", "create", "--name", "bench"]
        for scope in scopes:
            key_args += ["--scope", scope]
        output = await asyncio.to_thread(run_cli, key_args, env=env, cwd=self.workdir)
        self.api_key = output.strip().splitlines()[-1]

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        serve = [*cli, "serve", "--port", str(self.port)]
        if workers != 1:
            serve.append("--no-worker")
        self.service_pids.append(
            self.children.start(f"serve-{self.database}", serve, env=env, cwd=self.workdir).pid
        )
        for index in range(workers if workers > 1 else 0):
            self.service_pids.append(
                self.children.start(
                    f"worker{index}-{self.database}", [*cli, "worker"], env=env, cwd=self.workdir
                ).pid
            )
        if ready_path is not None:
            await wait_until_ok(
                client, f"{self.url}{ready_path}", within=60, children=self.children
            )

    async def stop(self) -> None:
        """Stop every child, then drop the scratch databases."""
        self.children.stop_all()
        for scratch in self.scratches:
            await scratch.drop()
