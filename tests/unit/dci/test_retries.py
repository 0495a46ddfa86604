"""503s are ridden out, unknown outcomes of writes are never repeated, errors keep their code."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from app.dci.exceptions import (
    DCINotFound,
    DCIOutcomeUnknown,
    DCIProtocolError,
    DCIRequestError,
    DCIRetryableError,
)
from tests.unit.dci.fakes import FakeClock, FakeDCI, error, make_client

SERVER_PATH = "/api/dci/v3/server/7"
POWER_OFF = "/api/dci/v3/server/7/power_off"
OWNER = "/api/dci/v3/server/7/owner"
UNAVAILABLE = error(503, 5003, "Service temporarily unavailable")
WRITE_OK = httpx.Response(200, json={"id": 7, "task": 9})


async def test_a_burst_of_503_is_ridden_out_with_growing_delays() -> None:
    fake = FakeDCI()
    clock = FakeClock()
    fake.routes[f"GET {SERVER_PATH}"] = [UNAVAILABLE] * 5 + [httpx.Response(200, json={"id": 7})]
    async with make_client(fake, clock=clock) as client:
        server = await client.get_server(server_id=7)
    assert server.id == 7
    assert len(fake.calls("GET", SERVER_PATH)) == 6
    # jitter is pinned to its maximum in these tests, so the ceilings show.
    assert clock.sleeps == [0.25, 0.5, 1.0, 2.0, 4.0]


async def test_503_on_a_write_is_repeated_because_it_was_not_carried_out() -> None:
    fake = FakeDCI()
    fake.routes[f"POST {POWER_OFF}"] = [UNAVAILABLE, UNAVAILABLE, WRITE_OK]
    async with make_client(fake) as client:
        ref = await client.power_off(server_id=7)
    assert ref.task == 9
    assert len(fake.calls("POST", POWER_OFF)) == 3


async def test_503_past_the_budget_gives_up_with_the_error_details() -> None:
    fake = FakeDCI()
    clock = FakeClock()
    fake.routes[f"GET {SERVER_PATH}"] = UNAVAILABLE
    async with make_client(fake, budget=20.0, clock=clock) as client:
        with pytest.raises(DCIRetryableError) as caught:
            await client.get_server(server_id=7)
    assert caught.value.status == 503
    assert caught.value.code == 5003
    assert caught.value.msg == "Service temporarily unavailable"
    assert clock.now == pytest.approx(20.0)
    assert max(clock.sleeps) == 8.0
    assert len(fake.calls("GET", SERVER_PATH)) == len(clock.sleeps) + 1


async def test_zero_budget_means_one_attempt() -> None:
    fake = FakeDCI()
    fake.routes[f"POST {POWER_OFF}"] = UNAVAILABLE
    async with make_client(fake, budget=0) as client:
        with pytest.raises(DCIRetryableError):
            await client.power_off(server_id=7)
    assert len(fake.calls("POST", POWER_OFF)) == 1


async def test_connection_refused_is_retried_even_for_writes() -> None:
    fake = FakeDCI()
    refused = httpx.ConnectError("connection refused")
    fake.routes[f"POST {POWER_OFF}"] = [refused, httpx.ConnectTimeout("slow"), WRITE_OK]
    async with make_client(fake) as client:
        ref = await client.power_off(server_id=7)
    assert ref.id == 7
    assert len(fake.calls("POST", POWER_OFF)) == 3


async def test_unreachable_past_the_budget_is_retryable() -> None:
    fake = FakeDCI()
    fake.routes[f"GET {SERVER_PATH}"] = httpx.ConnectError("connection refused")
    async with make_client(fake, budget=5.0) as client:
        with pytest.raises(DCIRetryableError, match="not reachable"):
            await client.get_server(server_id=7)


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("server disconnected without sending a response"),
        httpx.ReadError("connection reset by peer"),
        httpx.WriteTimeout("write timed out"),
    ],
    ids=lambda exc: type(exc).__name__,
)
async def test_a_write_with_unknown_outcome_raises_and_is_sent_exactly_once(
    failure: Exception,
) -> None:
    fake = FakeDCI()
    fake.routes[f"POST {POWER_OFF}"] = [failure, WRITE_OK]
    async with make_client(fake) as client:
        with pytest.raises(DCIOutcomeUnknown) as caught:
            await client.power_off(server_id=7)
    assert len(fake.calls("POST", POWER_OFF)) == 1
    assert caught.value.method == "POST"
    assert caught.value.path == POWER_OFF


async def test_a_delete_with_unknown_outcome_is_not_repeated_either() -> None:
    fake = FakeDCI()
    fake.routes[f"DELETE {OWNER}"] = [httpx.ReadTimeout("read timed out"), WRITE_OK]
    async with make_client(fake) as client:
        with pytest.raises(DCIOutcomeUnknown):
            await client.release_owner(server_id=7)
    assert len(fake.calls("DELETE", OWNER)) == 1


async def test_a_500_on_a_write_is_an_unknown_outcome_not_a_retry() -> None:
    fake = FakeDCI()
    fake.routes[f"POST {POWER_OFF}"] = [error(500, 9000, "internal"), WRITE_OK]
    async with make_client(fake) as client:
        with pytest.raises(DCIOutcomeUnknown) as caught:
            await client.power_off(server_id=7)
    assert caught.value.code == 9000
    assert len(fake.calls("POST", POWER_OFF)) == 1


async def test_a_read_is_repeated_after_a_read_timeout() -> None:
    fake = FakeDCI()
    fake.routes[f"GET {SERVER_PATH}"] = [
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("dropped"),
        httpx.Response(200, json={"id": 7}),
    ]
    async with make_client(fake) as client:
        server = await client.get_server(server_id=7)
    assert server.id == 7
    assert len(fake.calls("GET", SERVER_PATH)) == 3


async def test_a_read_gives_up_after_two_repeats() -> None:
    fake = FakeDCI()
    fake.routes[f"GET {SERVER_PATH}"] = httpx.ReadTimeout("read timed out")
    async with make_client(fake) as client:
        with pytest.raises(DCIRetryableError, match="no answer"):
            await client.get_server(server_id=7)
    assert len(fake.calls("GET", SERVER_PATH)) == 3


async def test_a_read_is_repeated_after_a_gateway_error() -> None:
    fake = FakeDCI()
    fake.routes[f"GET {SERVER_PATH}"] = [
        httpx.Response(502, text="bad gateway"),
        httpx.Response(200, json={"id": 7}),
    ]
    async with make_client(fake) as client:
        assert (await client.get_server(server_id=7)).id == 7


async def test_a_client_error_surfaces_with_code_and_message_and_is_not_repeated() -> None:
    fake = FakeDCI()
    fake.routes["POST /api/dci/v3/server/7/owner"] = error(409, 2101, "Server already has an owner")
    async with make_client(fake) as client:
        with pytest.raises(DCIRequestError) as caught:
            await client.set_owner(server_id=7, user_id=3)
    exc = caught.value
    assert (exc.status, exc.code, exc.msg, exc.value) == (
        409,
        2101,
        "Server already has an owner",
        {},
    )
    assert "[2101] Server already has an owner" in str(exc)
    assert len(fake.calls("POST", OWNER)) == 1


async def test_404_is_not_found() -> None:
    fake = FakeDCI()
    fake.routes[f"GET {SERVER_PATH}"] = error(404, 2001, "Server not found")
    async with make_client(fake) as client:
        with pytest.raises(DCINotFound) as caught:
            await client.get_server(server_id=7)
    assert caught.value.code == 2001
    assert len(fake.calls("GET", SERVER_PATH)) == 1


async def test_an_error_without_a_dcimanager_body_keeps_the_status() -> None:
    fake = FakeDCI()
    fake.routes[f"GET {SERVER_PATH}"] = httpx.Response(400, text="<html>nope</html>")
    async with make_client(fake) as client:
        with pytest.raises(DCIRequestError) as caught:
            await client.get_server(server_id=7)
    assert caught.value.status == 400
    assert caught.value.code is None
    assert "Bad Request" in str(caught.value)


async def test_a_write_answer_without_an_id_is_an_unknown_outcome() -> None:
    fake = FakeDCI()
    fake.routes["POST /api/dci/v3/server/7/operation_os"] = httpx.Response(200, json={"ok": 1})
    async with make_client(fake) as client:
        with pytest.raises(DCIOutcomeUnknown, match="no id"):
            await client.install_os(
                server_id=7, os_template_id=1, password=SecretStr("x"), hdd_raid="none"
            )


async def test_a_write_answer_that_is_not_json_is_an_unknown_outcome() -> None:
    fake = FakeDCI()
    fake.routes[f"POST {POWER_OFF}"] = httpx.Response(200, text="done")
    async with make_client(fake) as client:
        with pytest.raises(DCIOutcomeUnknown, match="not JSON"):
            await client.power_off(server_id=7)


async def test_a_read_answer_of_the_wrong_shape_is_a_protocol_error() -> None:
    fake = FakeDCI()
    fake.routes[f"GET {SERVER_PATH}"] = httpx.Response(200, json={"list": []})
    async with make_client(fake) as client:
        with pytest.raises(DCIProtocolError):
            await client.get_server(server_id=7)
