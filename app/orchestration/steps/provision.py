"""Steps only provisioning has: the DCImanager user, picking a server, taking it."""

from __future__ import annotations

import random
import secrets
from http import HTTPStatus

from pydantic import SecretStr

from app.dci.exceptions import DCIRequestError
from app.orchestration.context import StepContext
from app.orchestration.outcomes import Done, Fail, Rewind, StepOutcome, Wait
from app.orchestration.steps.guards import owned_by_customer

# How many free servers to consider beyond the ones our own orders are about to own.
_CANDIDATE_MARGIN = 10
_LOST_RACE_RETRY_SECONDS = 0.2


async def ensure_user(ctx: StepContext) -> StepOutcome:
    if ctx.customer.dci_user_id is not None:
        return Done("customer already linked to a DCImanager user")
    user = await ctx.dci.find_user_by_email(email=ctx.customer.email)
    if user is None:
        # The customer never logs in with this password (it is not stored): DCImanager
        # needs one, and the OS password is set separately at install time.
        try:
            created = await ctx.dci.create_user(
                email=ctx.customer.email,
                password=SecretStr(secrets.token_urlsafe(24)),
                full_name=ctx.customer.name or None,
            )
        except DCIRequestError as refused:
            # 409: created meanwhile (by another order of this customer, or by hand);
            # the lookup below finds it. Anything else is a real refusal.
            if refused.status != HTTPStatus.CONFLICT:
                raise
        else:
            # The answer names the new user (`{"id": N}`), so no second lookup.
            ctx.update_customer(dci_user_id=created.id)
            return Done(f"DCImanager user {created.id} created")
        user = await ctx.dci.find_user_by_email(email=ctx.customer.email)
        if user is None:
            return Wait(ctx.poll_after(), "user created but not listed yet")
    ctx.update_customer(dci_user_id=user.id)
    return Done(f"DCImanager user {user.id}")


async def claim_server(ctx: StepContext) -> StepOutcome:
    if ctx.order.dci_server_id is not None:
        return Done(f"server {ctx.order.dci_server_id} already claimed")
    awaiting_owner = await ctx.servers_awaiting_owner()
    wanted = len(awaiting_owner) + _CANDIDATE_MARGIN
    candidates = await ctx.dci.find_free_servers(
        configuration=ctx.order.configuration, limit=wanted
    )
    unclaimed = [server.id for server in candidates if server.id not in awaiting_owner]
    # Orders claiming at the same moment see the same candidates; each tries them
    # in its own order, so they rarely collide on one.
    random.shuffle(unclaimed)
    claimed = await ctx.claim_one_of(unclaimed) if unclaimed else None
    if claimed is not None:
        return Done(f"claimed server {claimed}")
    if unclaimed or len(candidates) >= wanted:
        # Other orders took the candidates between our read and our claim; free
        # servers remain, so this is a lost race, not an empty shelf.
        return Wait(_LOST_RACE_RETRY_SECONDS, "lost the race for free servers; trying again")
    if ctx.settings.wait_for_stock:
        return Wait(ctx.settings.stock_retry_seconds, "no free server; waiting for stock")
    return Fail("out_of_stock", f"no free server of configuration {ctx.order.configuration!r}")


async def set_owner(ctx: StepContext) -> StepOutcome:
    server = await ctx.dci.get_server(server_id=ctx.server_id)
    if owned_by_customer(server, ctx):
        return Done(f"server {server.id} owned by the customer")
    if server.owner_email is not None:
        ctx.update_order(dci_server_id=None)
        return Rewind("claim_server", f"server {server.id} was taken by {server.owner_email}")
    await ctx.dci.set_owner(server_id=server.id, user_id=ctx.dci_user_id)
    return Done(f"owner of server {server.id} set")
