"""Steps that act on an owned server. Each reads DCImanager first and acts only
when its effect is not there yet, so a retry or a restart never repeats work."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Awaitable, Callable

from pydantic import SecretStr

from app.dci.client import DCIClient
from app.dci.completion import CompletionStatus, WorkKind
from app.dci.exceptions import DCINotFound, DCIOutcomeUnknown
from app.dci.models import Server, TaskRef
from app.orchestration.context import StepContext
from app.orchestration.outcomes import Done, Fail, StepOutcome, Wait
from app.orchestration.steps.guards import ensure_ours, our_server

_NO_OPERATION = -1


def _ports_are(server: Server, wanted: str) -> bool:
    return bool(server.switch_connection) and all(
        port.admin_status == wanted for port in server.switch_connection
    )


async def _converge(
    ctx: StepContext,
    *,
    reached: Callable[[Server], bool],
    act: Callable[[int], Awaitable[object]],
    what: str,
) -> StepOutcome:
    """Bring the server to a state that is cheap to repeat towards (ports, power)."""
    server = await our_server(ctx)
    if reached(server):
        return Done(f"{what}: already so")
    if ctx.result.get("requested"):
        if ctx.waited_too_long():
            return Fail("dci_timeout", f"{what}: DCImanager did not get there in time")
        return Wait(ctx.poll_after(), f"{what}: waiting for DCImanager")
    await act(server.id)
    ctx.remember(requested=True)
    if reached(await ctx.dci.get_server(server_id=server.id)):
        return Done(what)
    return Wait(ctx.poll_after(), f"{what}: requested")


def _converging_step(
    *,
    reached: Callable[[Server], bool],
    act: Callable[[DCIClient, int], Awaitable[object]],
    what: str,
) -> Callable[[StepContext], Awaitable[StepOutcome]]:
    async def step(ctx: StepContext) -> StepOutcome:
        return await _converge(
            ctx, reached=reached, act=lambda server_id: act(ctx.dci, server_id), what=what
        )

    return step


ports_up = _converging_step(
    reached=lambda server: _ports_are(server, "up"),
    act=lambda dci, server_id: dci.resume_ports(server_id=server_id),
    what="switch ports up",
)
ports_down = _converging_step(
    reached=lambda server: _ports_are(server, "down"),
    act=lambda dci, server_id: dci.suspend_ports(server_id=server_id),
    what="switch ports down",
)
power_on = _converging_step(
    reached=lambda server: server.power_status == "on",
    act=lambda dci, server_id: dci.power_on(server_id=server_id),
    what="power on",
)
power_off = _converging_step(
    reached=lambda server: server.power_status == "off",
    act=lambda dci, server_id: dci.power_off(server_id=server_id),
    what="power off",
)


async def restore_power(ctx: StepContext) -> StepOutcome:
    # Only what the suspension itself powered off is powered back on.
    if not ctx.order.suspension_powered_off:
        return Done("the suspension left power alone")
    return await power_on(ctx)


async def power(ctx: StepContext) -> StepOutcome:
    action = ctx.params["action"]
    if action == "on":
        return await power_on(ctx)
    if action == "off":
        return await power_off(ctx)
    if ctx.result.get("requested"):
        return Done("reset already requested")
    server = await our_server(ctx)
    ctx.remember(requested=True)
    await ctx.checkpoint()
    try:
        await ctx.dci.power_reset(server_id=server.id)
    except DCIOutcomeUnknown:
        # A reset leaves no trace to reconcile against; a second one would reboot
        # the customer's server twice, so an unknown outcome is not repeated.
        return Done("reset sent; DCImanager's answer was lost, not repeated")
    return Done("reset")


async def _long_operation(
    ctx: StepContext,
    *,
    kind: WorkKind,
    start: Callable[[int], Awaitable[TaskRef]],
    what: str,
) -> StepOutcome:
    """Start a long DCImanager operation exactly once and wait for it.

    Before starting, the server's current operation id is recorded; after a
    lost answer or a crash, a newer operation of the right type on the server is
    ours, so it is adopted instead of being started again.
    """
    server = await our_server(ctx)
    task_id = ctx.result.get("task_id")
    if task_id is None:
        current = server.operation
        current_id = current.id if current is not None and current.id is not None else None
        if "baseline_operation_id" not in ctx.result:
            ctx.remember(baseline_operation_id=current_id or _NO_OPERATION)
            await ctx.checkpoint()
        elif (
            current is not None
            and current_id not in (None, ctx.result["baseline_operation_id"])
            and current.type == kind.value
        ):
            task_id = current_id
        if task_id is None:
            task_id = (await start(server.id)).task
            if task_id is None:
                return Fail("dci_protocol", f"{what}: DCImanager gave no task id")
        ctx.remember(task_id=task_id)
        return Wait(ctx.poll_after(), f"{what}: started (task {task_id})")
    completion = await ctx.completion.check(
        kind=kind, server_id=server.id, ref=TaskRef(id=server.id, task=int(task_id)), server=server
    )
    if completion.status is CompletionStatus.OK:
        return Done(f"{what}: finished")
    if completion.status is CompletionStatus.FAILED:
        return Fail(f"{kind.value}_failed", f"{what}: {completion.detail}")
    if ctx.waited_too_long():
        return Fail("dci_timeout", f"{what}: still not finished ({completion.detail})")
    return Wait(ctx.poll_after(), f"{what}: {completion.detail}")


async def install_os(ctx: StepContext) -> StepOutcome:
    params = ctx.params
    # Without a password from billing the customer logs in with SSH keys; DCImanager
    # still wants one, so a random one is set and never stored.
    password = ctx.customer_password() or secrets.token_urlsafe(24)

    def start(server_id: int) -> Awaitable[TaskRef]:
        return ctx.dci.install_os(
            server_id=server_id,
            os_template_id=int(params["os_template_id"]),
            password=SecretStr(password),
            hdd_raid=ctx.settings.os_install_hdd_raid,
            ssh_pub_keys=list(params.get("ssh_keys", [])),
        )

    return await _long_operation(ctx, kind=WorkKind.OS_INSTALL, start=start, what="OS install")


async def wipe_disks(ctx: StepContext) -> StepOutcome:
    def start(server_id: int) -> Awaitable[TaskRef]:
        return ctx.dci.clear_disks(server_id=server_id, mode=ctx.settings.clear_hdd_mode)

    return await _long_operation(ctx, kind=WorkKind.CLEAR_HDD, start=start, what="disk wipe")


async def allocate_ips(ctx: StepContext) -> StepOutcome:
    server = await our_server(ctx)
    addresses = (await ctx.dci.list_server_ips(server_id=server.id)).items
    ipv4 = [ip for ip in addresses if (ip.family or "ipv4") == "ipv4"]
    for failed in (ip for ip in ipv4 if ip.status == "failed"):
        await ctx.dci.remove_ip(server_id=server.id, ip_id=failed.id)
    usable = sorted((ip for ip in ipv4 if ip.status != "failed"), key=lambda ip: ip.id)
    if len(usable) > ctx.order.ipv4_count:
        # More than ordered (a worker that lost its lease allocated too): the
        # newest go back to the pool rather than to a customer who did not pay.
        for extra in usable[ctx.order.ipv4_count :]:
            with contextlib.suppress(DCINotFound):
                await ctx.dci.remove_ip(server_id=server.id, ip_id=extra.id)
        return Wait(ctx.poll_after(), f"removed {len(usable) - ctx.order.ipv4_count} extra IPs")
    missing = ctx.order.ipv4_count - len(usable)
    for _ in range(missing):
        await ctx.dci.allocate_ip(server_id=server.id, family="ipv4", domain=ctx.order.hostname)
    if missing > 0 or any(ip.status != "active" for ip in usable):
        if ctx.waited_too_long():
            return Fail("dci_timeout", "IP allocation did not finish in time")
        return Wait(ctx.poll_after(), f"{len(usable)} of {ctx.order.ipv4_count} IPs")
    ctx.update_order(ip_addresses=sorted(ip.name or "" for ip in usable))
    return Done(f"{len(usable)} IPv4 addresses active")


async def remove_ips(ctx: StepContext) -> StepOutcome:
    server = await our_server(ctx)
    addresses = (await ctx.dci.list_server_ips(server_id=server.id)).items
    if not addresses:
        ctx.update_order(ip_addresses=[])
        return Done("no addresses left on the server")
    requested: list[int] = ctx.result.get("removal_requested", [])
    for ip in addresses:
        if ip.id not in requested:
            # Gone already (an earlier request whose answer was lost): nothing to do.
            with contextlib.suppress(DCINotFound):
                await ctx.dci.remove_ip(server_id=server.id, ip_id=ip.id)
            requested.append(ip.id)
            ctx.remember(removal_requested=requested)
    if ctx.waited_too_long():
        return Fail("dci_timeout", "IP removal did not finish in time")
    return Wait(ctx.poll_after(), f"removing {len(addresses)} addresses")


async def release_owner(ctx: StepContext) -> StepOutcome:
    # One read decides: a second one could see the owner gone meanwhile (an earlier
    # request whose answer was lost) and take that for someone else's server.
    server = await ctx.dci.get_server(server_id=ctx.server_id)
    if server.owner_email is None:
        return Done("server has no owner")
    ensure_ours(server, ctx)
    await ctx.dci.release_owner(server_id=server.id)
    return Done(f"server {server.id} released")
