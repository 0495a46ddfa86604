from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from app.config import ConfigurationError, Settings
from app.dci.client import create_dci_client
from app.dci.exceptions import DCIAuthError, DCIError
from app.kit.http_transport import AiohttpTransport
from tests.unit.dci.fakes import EMAIL, PASSWORD, FakeDCI, error, make_client

SECRET_KEY = secrets.token_urlsafe(48)


def production_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "dci_url": "https://dci.example/",
        "dci_email": EMAIL,
        "dci_password": SecretStr(PASSWORD),
        "secret_key": SecretStr(SECRET_KEY),
        "dci_connect_timeout": 3.0,
        "dci_read_timeout": 25.0,
        "dci_max_connections": 7,
        **overrides,
    }
    return Settings(_env_file=None, **values)


def test_factory_builds_one_client_with_explicit_timeouts_and_a_bounded_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[dict[str, Any]] = []
    real_client = httpx.AsyncClient

    def recording_client(**kwargs: Any) -> httpx.AsyncClient:
        built.append(kwargs)
        return real_client(**kwargs)

    monkeypatch.setattr(httpx, "AsyncClient", recording_client)
    create_dci_client(production_settings())

    assert len(built) == 1
    kwargs = built[0]
    assert kwargs["base_url"] == "https://dci.example/"
    timeout = kwargs["timeout"]
    assert (timeout.connect, timeout.read) == (3.0, 25.0)
    transport = kwargs["transport"]
    assert isinstance(transport, AiohttpTransport)
    assert transport.limits.max_connections == 7


async def test_factory_runs_against_an_injected_transport_and_base_url() -> None:
    fake = FakeDCI()
    fake.routes["GET /sim/api/ip/v3/ippool"] = httpx.Response(200, json={"list": []})
    settings = Settings(_env_file=None, dci_email=EMAIL, dci_password=SecretStr(PASSWORD))
    async with create_dci_client(
        settings, transport=fake.transport(), base_url="http://simulator/sim/"
    ) as client:
        page = await client.list_pools()
    assert page.items == []
    assert str(fake.requests[-1].url) == "http://simulator/sim/api/ip/v3/ippool"


def test_factory_without_any_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        create_dci_client(Settings(_env_file=None))


def test_repr_of_client_and_settings_hides_the_password() -> None:
    settings = production_settings()
    client = create_dci_client(settings)
    assert PASSWORD not in repr(client)
    assert EMAIL in repr(client)
    assert PASSWORD not in repr(settings)


async def test_password_and_token_never_reach_logs_or_errors() -> None:
    fake = FakeDCI()
    fake.routes["GET /api/dci/v3/server/7"] = [
        httpx.Response(503),
        httpx.Response(200, json={"id": 7}),
    ]
    fake.routes["DELETE /api/auth/v4/token/tok-1"] = httpx.Response(200, json={})
    fake.routes["POST /api/dci/v3/server/7/power_on"] = error(403, 3001, "Unauthorized")
    errors: list[DCIError] = []
    with capture_logs() as logs:
        async with make_client(fake) as client:
            await client.get_server(server_id=7)
            await client.logout()
            with pytest.raises(DCIAuthError) as caught:
                await client.power_on(server_id=7)
            errors.append(caught.value)

    requests = [entry for entry in logs if entry["event"] == "dci.request"]
    assert {"method", "path", "status", "latency_ms"} <= requests[0].keys()
    assert ("DELETE", "/api/auth/v4/token/<token>") in [(e["method"], e["path"]) for e in logs]
    assert any(entry["event"] == "dci.retry" for entry in logs)
    captured = repr(logs) + repr(errors) + str(errors[0])
    for secret in (PASSWORD, "tok-1", "tok-2", "tok-3"):
        assert secret not in captured
    assert all(entry["log_level"] == "debug" for entry in requests)
