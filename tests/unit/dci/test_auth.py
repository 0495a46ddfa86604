from __future__ import annotations

import asyncio

import httpx
import pytest

from app.dci.exceptions import DCIAuthError
from tests.unit.dci.fakes import LOGIN_PATH, FakeDCI, error, make_client

SERVER_PATH = "/api/dci/v3/server/7"
CALLERS = 25


def serve_server(fake: FakeDCI) -> None:
    fake.routes[f"GET {SERVER_PATH}"] = httpx.Response(200, json={"id": 7})


async def test_concurrent_first_calls_share_one_login() -> None:
    fake = FakeDCI()
    serve_server(fake)
    async with make_client(fake) as client:
        servers = await asyncio.gather(*(client.get_server(server_id=7) for _ in range(CALLERS)))
    assert [s.id for s in servers] == [7] * CALLERS
    assert fake.logins == 1


async def test_expired_token_causes_one_relogin_shared_by_concurrent_callers() -> None:
    fake = FakeDCI()
    serve_server(fake)
    # Single reads, so that every caller makes a call of its own.
    async with make_client(fake, batch_server_reads=False) as client:
        await client.get_server(server_id=7)
        fake.expire_token()

        arrived = 0
        all_arrived = asyncio.Event()

        async def hold_until_every_caller_used_the_old_token(request: httpx.Request) -> None:
            nonlocal arrived
            if request.headers["x-xsrf-token"] == "tok-1":
                arrived += 1
                if arrived == CALLERS:
                    all_arrived.set()
                await all_arrived.wait()

        fake.hold = hold_until_every_caller_used_the_old_token
        servers = await asyncio.wait_for(
            asyncio.gather(*(client.get_server(server_id=7) for _ in range(CALLERS))), 10
        )

    assert [s.id for s in servers] == [7] * CALLERS
    # One login at start, one when the token expired: not one per refused caller.
    assert len(fake.calls("POST", LOGIN_PATH)) == 2
    tokens_used = [r.headers["x-xsrf-token"] for r in fake.calls("GET", SERVER_PATH)]
    assert tokens_used.count("tok-1") == 1 + CALLERS
    assert tokens_used.count("tok-2") == CALLERS


async def test_a_refused_write_is_repeated_after_logging_in_again() -> None:
    fake = FakeDCI()
    serve_server(fake)
    fake.routes["POST /api/dci/v3/server/7/power_on"] = httpx.Response(
        200, json={"id": 7, "task": 5}
    )
    async with make_client(fake) as client:
        await client.get_server(server_id=7)
        fake.expire_token()
        ref = await client.power_on(server_id=7)
    assert ref.task == 5
    assert fake.logins == 2
    attempts = fake.calls("POST", "/api/dci/v3/server/7/power_on")
    assert [r.headers["x-xsrf-token"] for r in attempts] == ["tok-1", "tok-2"]


async def test_still_refused_after_one_relogin_raises_auth_error() -> None:
    fake = FakeDCI()
    fake.routes[f"GET {SERVER_PATH}"] = error(403, 3001, "Unauthorized")
    async with make_client(fake) as client:
        with pytest.raises(DCIAuthError) as caught:
            await client.get_server(server_id=7)
    assert caught.value.status == 403
    assert caught.value.code == 3001
    assert len(fake.calls("POST", LOGIN_PATH)) == 2
    assert len(fake.calls("GET", SERVER_PATH)) == 2


async def test_rejected_credentials_raise_auth_error_without_repeating() -> None:
    fake = FakeDCI()
    fake.login_reply = error(401, 3002, "Invalid email or password")
    async with make_client(fake) as client:
        with pytest.raises(DCIAuthError) as caught:
            await client.get_server(server_id=7)
    assert caught.value.code == 3002
    assert caught.value.msg == "Invalid email or password"
    assert len(fake.requests) == 1


async def test_login_answer_without_token_is_an_auth_error() -> None:
    fake = FakeDCI()
    fake.login_reply = httpx.Response(200, json={"id": 1})
    async with make_client(fake) as client:
        with pytest.raises(DCIAuthError, match="without a token"):
            await client.list_pools()


async def test_logout_deletes_the_token_and_the_next_call_logs_in_again() -> None:
    fake = FakeDCI()
    serve_server(fake)
    fake.routes["DELETE /api/auth/v4/token/tok-1"] = httpx.Response(200, json={})
    async with make_client(fake) as client:
        await client.get_server(server_id=7)
        await client.logout()
        await client.get_server(server_id=7)
    logout = fake.calls("DELETE", "/api/auth/v4/token/tok-1")
    assert len(logout) == 1
    assert logout[0].headers["cookie"] == "ses6=tok-1"
    assert logout[0].headers["x-xsrf-token"] == "tok-1"
    assert fake.logins == 2


async def test_logout_without_a_session_sends_nothing() -> None:
    fake = FakeDCI()
    async with make_client(fake) as client:
        await client.logout()
    assert fake.requests == []


async def test_logout_of_an_expired_session_is_quiet_and_does_not_log_in() -> None:
    fake = FakeDCI()
    serve_server(fake)
    async with make_client(fake) as client:
        await client.get_server(server_id=7)
        fake.expire_token()
        await client.logout()
    assert fake.logins == 1
    assert fake.requests[-1].method == "DELETE"
