"""Checks every step makes before it touches a server."""

from __future__ import annotations

from app.dci.models import Server
from app.orchestration.context import StepContext


class ServerReassigned(Exception):
    """The order's server now belongs to someone else: touching it would hurt them."""


def owned_by_customer(server: Server, ctx: StepContext) -> bool:
    return (server.owner_email or "").casefold() == ctx.customer.email.casefold()


async def our_server(ctx: StepContext) -> Server:
    """Read the order's server and make sure it is still this customer's."""
    return ensure_ours(await ctx.dci.get_server(server_id=ctx.server_id), ctx)


def ensure_ours(server: Server, ctx: StepContext) -> Server:
    if not owned_by_customer(server, ctx):
        raise ServerReassigned(
            f"server {server.id} is owned by {server.owner_email or 'nobody'}, "
            "not by this order's customer"
        )
    return server
