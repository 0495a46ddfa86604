"""The API's contract on auth, problem+json and request ids, over real HTTP."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from app.auth.scopes import Scope
from app.config import Settings
from app.kit.errors import PROBLEM_CONTENT_TYPE, problem_type
from app.main import create_app
from tests.conftest import ApiKeyFactory
from tests.support.live_server import live_server


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    body: dict[str, object] = response.json()
    assert body["type"] == problem_type(code)
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    return body


async def test_healthz_answers_without_io(api: httpx.AsyncClient) -> None:
    response = await api.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_each_dependency(settings: Settings) -> None:
    with live_server(create_app(settings.model_copy(update={"run_worker": True}))) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            # Ready once the embedded worker's first heartbeat is in, just after start.
            deadline = time.monotonic() + 15
            response = await client.get("/readyz")
            while response.status_code != 200 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert body["dci_mode"] == "simulator"
    for check in ("database", "migrations", "dcimanager", "worker"):
        assert body["checks"][check]["status"] == "ok"


async def test_readyz_is_503_without_a_live_worker(api: httpx.AsyncClient) -> None:
    response = await api.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["worker"]["status"] == "failing"
    assert body["checks"]["database"]["status"] == "ok"


async def test_readyz_is_503_with_detail_when_database_is_unreachable(settings: Settings) -> None:
    unreachable = settings.model_copy(
        update={"database_url": "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"}
    )
    with live_server(create_app(unreachable)) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            response = await client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["database"]["status"] == "failing"
    assert "error" in body["checks"]["database"]


async def test_health_routes_stay_out_of_the_openapi_document(api: httpx.AsyncClient) -> None:
    paths = (await api.get("/openapi.json")).json()["paths"]
    assert "/api/v1/whoami" in paths
    assert "/healthz" not in paths
    assert "/readyz" not in paths


async def test_whoami_with_a_valid_key(api: httpx.AsyncClient, make_api_key: ApiKeyFactory) -> None:
    key = await make_api_key(name="billing")
    response = await api.get("/api/v1/whoami", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    assert response.json() == {"name": "billing", "scopes": ["orders:read", "orders:write"]}


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer dcb_not-a-real-key", "Basic dXNlcjpwYXNz", "Bearer"],
    ids=["missing", "unknown", "wrong-scheme", "empty"],
)
async def test_missing_or_unknown_key_is_401_problem(
    api: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await api.get("/api/v1/whoami", headers=headers)
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_revoked_key_is_401(
    api: httpx.AsyncClient, make_api_key: ApiKeyFactory, session: object
) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.auth import service

    assert isinstance(session, AsyncSession)
    key = await make_api_key(name="old-billing")
    await service.revoke_client(session, name="old-billing")
    await session.commit()
    response = await api.get("/api/v1/whoami", headers={"Authorization": f"Bearer {key}"})
    assert_problem(response, 401, "unauthorized")


async def test_key_without_the_scope_is_403_problem(
    api: httpx.AsyncClient, make_api_key: ApiKeyFactory
) -> None:
    key = await make_api_key(scopes=(Scope.ORDERS_WRITE,))
    response = await api.get("/api/v1/whoami", headers={"Authorization": f"Bearer {key}"})
    body = assert_problem(response, 403, "insufficient_scope")
    assert body["required_scope"] == "orders:read"


async def test_admin_scope_implies_the_others(
    api: httpx.AsyncClient, make_api_key: ApiKeyFactory
) -> None:
    key = await make_api_key(scopes=(Scope.ADMIN,))
    response = await api.get("/api/v1/whoami", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200


async def test_unknown_route_is_404_problem(api: httpx.AsyncClient) -> None:
    body = assert_problem(await api.get("/api/v1/no-such-thing"), 404, "not_found")
    assert body["instance"] == "/api/v1/no-such-thing"


async def test_wrong_method_is_405_problem(api: httpx.AsyncClient) -> None:
    assert_problem(await api.delete("/api/v1/whoami"), 405, "method_not_allowed")


async def test_validation_error_and_unexpected_error_are_problems(settings: Settings) -> None:
    app = create_app(settings)

    @app.get("/test/needs-int")
    async def needs_int(count: int) -> dict[str, int]:
        return {"count": count}

    @app.get("/test/boom")
    async def boom() -> None:
        raise RuntimeError("database password is hunter2")

    with live_server(app) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            invalid = await client.get("/test/needs-int", params={"count": "many"})
            crashed = await client.get("/test/boom", headers={"X-Request-ID": "trace-500"})

    body = assert_problem(invalid, 422, "validation_error")
    errors = body["errors"]
    assert isinstance(errors, list)
    assert errors[0]["loc"] == ["query", "count"]

    body = assert_problem(crashed, 500, "internal_error")
    assert "hunter2" not in crashed.text
    assert crashed.headers["x-request-id"] == "trace-500"


async def test_request_id_is_echoed_or_made(api: httpx.AsyncClient) -> None:
    echoed = await api.get("/healthz", headers={"X-Request-ID": "billing-42.retry:1"})
    assert echoed.headers["x-request-id"] == "billing-42.retry:1"

    made = await api.get("/healthz")
    assert len(made.headers["x-request-id"]) == 32

    hostile = await api.get("/healthz", headers={"X-Request-ID": "x" * 500})
    assert hostile.headers["x-request-id"] != "x" * 500


def test_readyz_reports_a_schema_behind_the_code(settings: Settings, tmp_path: object) -> None:
    from alembic import command

    from app.kit.migrations import alembic_config

    url = f"sqlite+aiosqlite:///{tmp_path}/old.db"
    command.upgrade(alembic_config(url), "0001")
    with live_server(create_app(settings.model_copy(update={"database_url": url}))) as base_url:
        response = httpx.get(f"{base_url}/readyz")
    assert response.status_code == 503
    migrations = response.json()["checks"]["migrations"]
    assert migrations["status"] == "failing"
    assert migrations["applied"] == ["0001"]


async def test_openapi_documents_the_idempotency_key_on_authenticated_posts(
    api: httpx.AsyncClient,
) -> None:
    paths = (await api.get("/openapi.json")).json()["paths"]
    create = paths["/api/v1/orders"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in create["parameters"])
    assert {"400", "409", "422"} <= set(create["responses"])
    for path_item in paths.values():
        for method, operation in path_item.items():
            assert operation.get("operationId"), (method, operation)
            assert operation.get("summary"), (method, operation)
