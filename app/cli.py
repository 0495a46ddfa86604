"""The `dcibridge` command line."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import uvicorn
import uvloop
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import service as api_keys
from app.auth.scopes import DEFAULT_SCOPES, Scope
from app.config import ConfigurationError, Settings, load_settings
from app.kit.db import create_engine, create_sessionmaker
from app.kit.errors import DCIBridgeError
from app.kit.heap import settle_heap
from app.kit.logging import configure_logging
from app.kit.migrations import schema_is_current, upgrade_to_head

T = TypeVar("T")

cli = typer.Typer(
    name="dcibridge",
    help="Billing-to-bare-metal bridge for ISPsystem DCImanager 6.",
    no_args_is_help=True,
    add_completion=False,
)
api_key_cli = typer.Typer(help="Issue, list and revoke API keys for billing platforms.")
cli.add_typer(api_key_cli, name="api-key")
admin_cli = typer.Typer(help="Accounts for the operator dashboard at /admin.")
cli.add_typer(admin_cli, name="admin")


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def _settings() -> Settings:
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        raise _fail(str(exc)) from None
    configure_logging(level=settings.log_level, log_format=settings.effective_log_format)
    return settings


def _prepare_database(settings: Settings) -> None:
    """Bring the embedded SQLite schema up to date; refuse a stale shared database."""
    if settings.is_sqlite:
        upgrade_to_head(settings.database_url)
        return

    async def check() -> bool:
        engine = create_engine(settings)
        try:
            return await schema_is_current(engine)
        finally:
            await engine.dispose()

    if not asyncio.run(check()):
        raise _fail(
            "the database schema is not at the latest migration. Run `dcibridge migrate` "
            "(once, from one process) before starting dcibridge."
        )


def _with_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def run() -> T:
        engine = create_engine(settings)
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except DCIBridgeError as exc:
        raise _fail(exc.detail or exc.title) from None


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind [default: settings]")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [default: settings]")] = None,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Serve the API only; run workers separately.")
    ] = False,
) -> None:
    """Run the HTTP API (and, unless --no-worker, the background worker)."""
    from app.main import create_app

    settings = _settings()
    settings = settings.model_copy(update={"run_worker": not no_worker})
    _prepare_database(settings)
    uvicorn.run(
        create_app(settings, owns_process=True),
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,
        access_log=False,
    )


@cli.command()
def worker() -> None:
    """Run a worker process on its own (several may share one PostgreSQL database)."""
    from app.runtime import build_runtime

    settings = _settings()
    if settings.simulator_mode:
        raise _fail(
            "in simulator mode the worker runs inside `dcibridge serve`, next to its "
            "in-process simulator. To run workers apart, start `dcibridge simulator` and "
            "point DCIBRIDGE_DCI_URL at it."
        )
    _prepare_database(settings)

    from app.health.worker_metrics import serving_worker_metrics

    async def run() -> None:
        async with (
            build_runtime(settings) as runtime,
            serving_worker_metrics(settings, runtime.sessionmaker),
        ):
            process_worker = runtime.worker()
            settle_heap()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, process_worker.stop)
            await process_worker.run()

    try:
        _run_on_uvloop(run())
    except ConfigurationError as exc:
        raise _fail(str(exc)) from None


def _run_on_uvloop(main: Coroutine[Any, Any, None]) -> None:
    # The event loop `serve` gets from uvicorn: a worker spends much of its CPU in
    # the loop's own machinery (sockets to DCImanager and the database, timers).
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


@cli.command()
def migrate() -> None:
    """Upgrade the database schema to the latest migration."""
    settings = _settings()
    upgrade_to_head(settings.database_url)
    typer.echo("database schema is up to date")


@api_key_cli.command("create")
def api_key_create(
    name: Annotated[str, typer.Option(help="A unique name for the caller, e.g. `billing`.")],
    scope: Annotated[
        list[Scope] | None,
        typer.Option(
            help="Scope to grant; repeat for several [default: orders:read, orders:write]"
        ),
    ] = None,
) -> None:
    """Create an API key. The key is printed once and cannot be shown again."""
    settings = _settings()
    _prepare_database(settings)
    issued = _with_session(
        settings,
        lambda session: api_keys.create_client(session, name=name, scopes=scope or DEFAULT_SCOPES),
    )
    typer.echo(issued.raw_key)
    typer.secho(
        f"API key for {name!r} with scopes {', '.join(issued.client.scopes)}. "
        "Store it now: only its hash is kept.",
        err=True,
        fg=typer.colors.GREEN,
    )


@api_key_cli.command("list")
def api_key_list() -> None:
    """List API clients (never their keys)."""
    settings = _settings()
    _prepare_database(settings)
    clients = _with_session(settings, api_keys.list_clients)
    typer.echo(f"{'NAME':<24} {'KEY PREFIX':<14} {'ENABLED':<8} SCOPES")
    for client in clients:
        enabled = "yes" if client.enabled else "no"
        typer.echo(
            f"{client.name:<24} {client.key_prefix:<14} {enabled:<8} {' '.join(client.scopes)}"
        )


@api_key_cli.command("set-callback")
def api_key_set_callback(
    name: Annotated[str, typer.Option(help="The API client whose callbacks to configure.")],
    url: Annotated[
        str | None, typer.Option(help="HTTPS endpoint of the billing platform for signed events.")
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Stop sending callbacks.")] = False,
    rotate_secret: Annotated[
        bool, typer.Option("--rotate-secret", help="Issue a new signing secret.")
    ] = False,
) -> None:
    """Send this client's order events to URL, signed per Standard Webhooks.

    The signing secret (whsec_...) is printed once, when first issued or rotated.
    """
    from app.kit.crypto import SecretBox

    if clear == (url is not None):
        raise _fail("give either --url URL or --clear")
    if url is not None and not url.startswith(("https://", "http://")):
        raise _fail("--url must be an http(s) URL")
    settings = _settings()
    _prepare_database(settings)
    config = _with_session(
        settings,
        lambda session: api_keys.configure_callbacks(
            session,
            name=name,
            url=url,
            secrets_box=SecretBox(settings.secret_keys),
            rotate_secret=rotate_secret,
        ),
    )
    if config.new_secret is not None:
        typer.echo(config.new_secret)
        typer.secho(
            "Callback signing secret: give it to the billing platform now; it is not shown again.",
            err=True,
            fg=typer.colors.GREEN,
        )
    typer.secho(f"callbacks for {name!r}: {url or 'off'}", err=True)


@api_key_cli.command("revoke")
def api_key_revoke(
    name: Annotated[str, typer.Option(help="The API client whose key to disable.")],
) -> None:
    """Disable an API client's key at once."""
    settings = _settings()
    _prepare_database(settings)
    _with_session(settings, lambda session: api_keys.revoke_client(session, name=name))
    typer.echo(f"API key for {name!r} revoked")


@admin_cli.command("create-user")
def admin_create_user(
    username: Annotated[str, typer.Option(help="The name to sign in with.")],
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin", help="Read the password from standard input instead of asking."
        ),
    ] = False,
) -> None:
    """Create a dashboard account. The password is asked twice (or read from stdin)."""
    import sys

    from app.admin import service as admin
    from app.admin.security import WeakPassword, check_password_policy

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        check_password_policy(password)
    except WeakPassword as weak:
        raise _fail(str(weak)) from None
    settings = _settings()
    _prepare_database(settings)
    try:
        user = _with_session(
            settings,
            lambda session: admin.create_user(session, username=username, password=password),
        )
    except admin.InvalidUsername as invalid:
        raise _fail(str(invalid)) from None
    typer.echo(f"admin user {user.username!r} created; sign in at /admin")


@cli.command()
def simulator(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8001,
    inventory: Annotated[
        Path | None,
        typer.Option(help="JSON or YAML inventory (configurations, servers, networks, admin)"),
    ] = None,
    servers: Annotated[
        int | None, typer.Option(help="Servers per configuration in the default inventory")
    ] = None,
    op_seconds: Annotated[
        float | None, typer.Option(help="Simulated duration of long operations, in seconds")
    ] = None,
) -> None:
    """Run the built-in DCImanager 6 simulator (for demos, tests and benchmarks)."""
    from app.simulator.cli import run_simulator

    run_simulator(
        host=host, port=port, inventory_path=inventory, servers=servers, op_seconds=op_seconds
    )


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
