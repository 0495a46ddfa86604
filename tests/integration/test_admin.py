"""The /admin dashboard over real HTTP: sign-in, sessions, CSRF, the rate limit,
audited actions, and that no secret ever reaches a page."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.admin import endpoints, service
from app.admin.models import AdminLoginFailure, AdminSession, AdminUser, AuditLog
from app.auth import service as api_keys
from app.callbacks.models import CallbackEvent, CallbackStatus
from app.config import Settings
from app.kit.crypto import SecretBox
from app.kit.db import create_sessionmaker
from app.kit.models import utcnow
from app.main import create_app
from app.webhooks.models import WebhookEvent, WebhookEventStatus, WebhookProvider
from tests.support.bridge import Bridge
from tests.support.live_server import live_server
from tests.support.receiver import CallbackReceiver

ADMIN = "ops"
ADMIN_PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def engine_settings(engine_settings: Settings) -> Settings:
    # A second of silence makes an operation "stuck" here, so the overview can show one.
    return engine_settings.model_copy(update={"admin_stuck_after_seconds": 1.0})


@pytest.fixture
async def admin_user(db_engine: AsyncEngine) -> AdminUser:
    async with create_sessionmaker(db_engine)() as session, session.begin():
        return await service.create_user(session, username=ADMIN, password=ADMIN_PASSWORD)


def csrf_of(page: httpx.Response) -> str:
    match = _CSRF.search(page.text)
    assert match, f"no CSRF token on {page.request.url}"
    return match.group(1)


async def sign_in(
    client: httpx.AsyncClient, *, username: str = ADMIN, password: str = ADMIN_PASSWORD
) -> httpx.Response:
    form = await client.get("/admin/login")
    assert form.status_code == 200
    return await client.post(
        "/admin/login",
        data={"username": username, "password": password, "csrf_token": csrf_of(form)},
    )


@pytest.fixture
async def browser(live_app_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live_app_url, timeout=30) as client:
        yield client


@pytest.fixture
async def bridge_browser(bridge: Bridge) -> AsyncIterator[httpx.AsyncClient]:
    """A cookie-keeping client of the bridge's dashboard (no API key)."""
    async with httpx.AsyncClient(base_url=str(bridge.api.base_url), timeout=30) as client:
        yield client


async def audit_rows(db_engine: AsyncEngine) -> list[AuditLog]:
    async with create_sessionmaker(db_engine)() as session:
        return list((await session.scalars(select(AuditLog).order_by(AuditLog.id))).all())


# -- sessions ------------------------------------------------------------------------


@pytest.mark.usefixtures("admin_user")
async def test_every_page_but_login_needs_a_session(browser: httpx.AsyncClient) -> None:
    for path in ("/admin", "/admin/orders", "/admin/orders/1", "/admin/webhooks", "/admin/x"):
        response = await browser.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/admin/login?next=/admin"), path
    posted = await browser.post("/admin/operations/1/retry", data={"csrf_token": "x"})
    assert posted.status_code == 303
    assert posted.headers["location"] == "/admin/login?next=/admin"
    login = await browser.get("/admin/login")
    assert login.status_code == 200
    assert "Sign in" in login.text
    assert (await browser.get("/admin/static/admin.css")).status_code == 200


@pytest.mark.usefixtures("admin_user")
async def test_sign_in_sets_a_locked_down_session_cookie(browser: httpx.AsyncClient) -> None:
    response = await sign_in(browser)
    assert response.status_code == 303
    assert response.headers["location"] == "/admin"
    cookie = next(
        value
        for name, value in response.headers.multi_items()
        if name == "set-cookie" and value.startswith("dcibridge_admin=")
    )
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "path=/admin" in attributes
    assert "secure" not in attributes  # plain http: a Secure cookie would never come back

    overview = await browser.get("/admin")
    assert overview.status_code == 200
    assert "<h1>Overview</h1>" in overview.text
    assert ADMIN in overview.text
    headers = overview.headers
    assert "default-src 'none'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["cache-control"] == "no-store"


@pytest.mark.usefixtures("admin_user")
async def test_wrong_password_and_unknown_user_get_the_same_answer(
    browser: httpx.AsyncClient,
) -> None:
    wrong = await sign_in(browser, password="not the password at all")
    unknown = await sign_in(browser, username="nobody")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "Invalid username or password." in response.text
        assert "dcibridge_admin=" not in response.headers.get("set-cookie", "")
    assert (await browser.get("/admin")).status_code == 303


@pytest.mark.usefixtures("admin_user")
async def test_logout_ends_the_session_on_the_server(
    browser: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    await sign_in(browser)
    token = browser.cookies.get("dcibridge_admin")
    assert token
    overview = await browser.get("/admin")
    logout = await browser.post("/admin/logout", data={"csrf_token": csrf_of(overview)})
    assert logout.status_code == 303
    assert logout.headers["location"] == "/admin/login"
    # Replaying the old cookie does not work: the session is gone server-side.
    async with httpx.AsyncClient(base_url=browser.base_url) as replay:
        replay.cookies.set("dcibridge_admin", token, path="/admin")
        assert (await replay.get("/admin")).status_code == 303
    actions = [row.action for row in await audit_rows(db_engine)]
    assert actions == ["admin.login", "admin.logout"]


@pytest.mark.usefixtures("admin_user")
async def test_an_idle_session_expires(browser: httpx.AsyncClient, db_engine: AsyncEngine) -> None:
    await sign_in(browser)
    assert (await browser.get("/admin/orders")).status_code == 200
    async with create_sessionmaker(db_engine)() as session, session.begin():
        await session.execute(
            update(AdminSession).values(last_seen_at=utcnow() - timedelta(hours=1))
        )
    response = await browser.get("/admin/orders")
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/login?next=/admin/orders"
    async with create_sessionmaker(db_engine)() as session:
        assert (await session.scalars(select(AdminSession))).all() == []


# -- CSRF ----------------------------------------------------------------------------


@pytest.mark.usefixtures("admin_user")
async def test_state_changes_without_the_csrf_token_are_refused(
    browser: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    await sign_in(browser)
    for data in ({}, {"csrf_token": ""}, {"csrf_token": "forged-token-value"}):
        for path in ("/admin/logout", "/admin/operations/1/retry", "/admin/callbacks/1/redeliver"):
            response = await browser.post(path, data=data)
            assert response.status_code == 403, (path, data)
            assert "Request refused" in response.text
            assert "nothing was done" in response.text
    # Still signed in: the refused logout did nothing.
    assert (await browser.get("/admin")).status_code == 200
    assert [row.action for row in await audit_rows(db_engine)] == ["admin.login"]


@pytest.mark.usefixtures("admin_user")
async def test_the_login_form_has_its_own_csrf_check(browser: httpx.AsyncClient) -> None:
    response = await browser.post(
        "/admin/login", data={"username": ADMIN, "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 403
    assert "had expired or did not come from this site" in response.text
    assert "dcibridge_admin=" not in response.headers.get("set-cookie", "")


# -- the rate limit ------------------------------------------------------------------


@pytest.mark.usefixtures("admin_user")
async def test_five_failures_for_a_username_lock_it_out(
    browser: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    for _ in range(5):
        assert (await sign_in(browser, password="guess-guess-guess")).status_code == 401
    locked = await sign_in(browser)  # even the right password is not heard now
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.text
    assert 1 <= int(locked.headers["retry-after"]) <= 301

    # The window passes: the failures age out and the right password works again.
    async with create_sessionmaker(db_engine)() as session, session.begin():
        await session.execute(update(AdminLoginFailure).values(at=utcnow() - timedelta(minutes=6)))
    assert (await sign_in(browser)).status_code == 303


@pytest.mark.usefixtures("admin_user")
async def test_five_failures_from_one_address_lock_it_out(browser: httpx.AsyncClient) -> None:
    for index in range(5):
        assert (await sign_in(browser, username=f"guess{index}")).status_code == 401
    assert (await sign_in(browser)).status_code == 429


# -- actions and their audit trail ----------------------------------------------------


async def test_operation_actions_are_confirmed_done_and_audited(
    bridge: Bridge, bridge_browser: httpx.AsyncClient, admin_user: AdminUser, db_engine: AsyncEngine
) -> None:
    await bridge.sim_faults(fail_rate={"os_install": 1.0})
    order = await bridge.create("svc-admin-retry")
    order = await bridge.wait_order(order["id"], lambda o: o["status"] == "failed")
    operation_id = order["operations"][0]["id"]
    await bridge.sim_faults(fail_rate={})

    await sign_in(bridge_browser)
    page = await bridge_browser.get(f"/admin/orders/{order['id']}")
    assert f'href="/admin/operations/{operation_id}/retry"' in page.text
    assert "os_install_failed" in page.text or "retries_exhausted" in page.text

    confirm = await bridge_browser.get(f"/admin/operations/{operation_id}/retry")
    assert confirm.status_code == 200
    assert "Retry operation?" in confirm.text
    done = await bridge_browser.post(
        f"/admin/operations/{operation_id}/retry", data={"csrf_token": csrf_of(confirm)}
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/admin/orders/{order['id']}?notice=retry"
    order = await bridge.wait_order(order["id"], lambda o: o["status"] in ("active", "failed"))
    assert order["status"] == "active"

    again = await bridge_browser.post(
        f"/admin/operations/{operation_id}/retry", data={"csrf_token": csrf_of(confirm)}
    )
    assert again.status_code == 409
    assert "succeeded" in again.text

    [login, retry] = await audit_rows(db_engine)
    assert login.action == "admin.login"
    assert retry.action == "operation.retry"
    assert retry.actor == ADMIN
    assert retry.admin_user_id == admin_user.id
    assert (retry.target_type, retry.target_id) == ("operation", str(operation_id))
    assert retry.order_id == order["id"]
    assert retry.client_ip == "127.0.0.1"

    page = await bridge_browser.get(f"/admin/orders/{order['id']}?notice=retry")
    assert "The operation was queued again" in page.text
    assert 'data-action="operation.retry"' in page.text


async def test_cancel_and_mark_failed_need_a_reason_and_are_audited(
    bridge: Bridge, bridge_browser: httpx.AsyncClient, db_engine: AsyncEngine, admin_user: AdminUser
) -> None:
    await bridge.sim_faults(down=True)
    order = await bridge.create("svc-admin-stuck")
    queued = await bridge.request(order["id"], "terminate")
    provision_id = order["operations"][0]["id"]
    await sign_in(bridge_browser)

    # The overview shows DCImanager down, and the queued operation (whose steps
    # nobody touches while the provision ahead of it cannot finish) as stuck.
    await asyncio.sleep(1.5)
    overview = await bridge_browser.get("/admin")
    assert 'id="dci-status">Unreachable<' in overview.text
    assert f'class="stuck-row" data-operation-id="{queued["id"]}"' in overview.text

    confirm = await bridge_browser.get(f"/admin/operations/{queued['id']}/cancel")
    token = csrf_of(confirm)
    cancelled = await bridge_browser.post(
        f"/admin/operations/{queued['id']}/cancel", data={"csrf_token": token}
    )
    assert cancelled.status_code == 303

    confirm = await bridge_browser.get(f"/admin/operations/{provision_id}/fail")
    assert 'name="reason"' in confirm.text
    no_reason = await bridge_browser.post(
        f"/admin/operations/{provision_id}/fail", data={"csrf_token": token, "reason": "  "}
    )
    assert no_reason.status_code == 422
    failed = await bridge_browser.post(
        f"/admin/operations/{provision_id}/fail",
        data={"csrf_token": token, "reason": "DCImanager  offline for maintenance"},
    )
    assert failed.status_code == 303
    await bridge.sim_faults(down=False)

    order = await bridge.order(order["id"])
    assert [op["status"] for op in order["operations"]] == ["failed", "cancelled"]
    assert order["operations"][0]["error"] == "DCImanager offline for maintenance"
    rows = [row for row in await audit_rows(db_engine) if row.action != "admin.login"]
    assert [(row.action, row.target_id) for row in rows] == [
        ("operation.cancel", str(queued["id"])),
        ("operation.mark_failed", str(provision_id)),
    ]
    assert rows[1].detail["reason"] == "DCImanager offline for maintenance"
    assert all(row.order_id == order["id"] for row in rows)


@pytest.mark.usefixtures("admin_user")
async def test_redeliver_a_callback_and_reprocess_a_webhook_event(
    bridge: Bridge,
    bridge_browser: httpx.AsyncClient,
    db_engine: AsyncEngine,
    engine_settings: Settings,
) -> None:
    receiver = CallbackReceiver()
    sessionmaker = create_sessionmaker(db_engine)
    with receiver.serving():
        async with sessionmaker() as session, session.begin():
            await api_keys.configure_callbacks(
                session,
                name="billing",
                url=receiver.url,
                secrets_box=SecretBox(engine_settings.secret_keys),
            )
        order = await bridge.create("svc-admin-callback")
        order = await bridge.wait_order(order["id"], lambda o: o["status"] == "active")
        await receiver.wait_for(1)
        event = None
        for _ in range(100):  # the delivery is recorded just after billing answered
            async with sessionmaker() as session:
                event = await session.scalar(
                    select(CallbackEvent).where(CallbackEvent.order_id == order["id"])
                )
            if event is not None and event.status is CallbackStatus.DELIVERED:
                break
            await asyncio.sleep(0.05)
        assert event is not None
        assert event.status is CallbackStatus.DELIVERED
        async with sessionmaker() as session, session.begin():
            webhook = WebhookEvent(
                provider=WebhookProvider.GENERIC,
                source="shop",
                event_id="evt-admin-1",
                type="payment.failed",
                occurred_at=utcnow(),
                payload={"id": "evt-admin-1"},
                status=WebhookEventStatus.UNMATCHED,
                reason="no order svc-unknown",
                attempts=1,
                order_id=order["id"],
            )
            session.add(webhook)
        await sign_in(bridge_browser)

        page = await bridge_browser.get(f"/admin/orders/{order['id']}")
        assert f'href="/admin/callbacks/{event.id}/redeliver"' in page.text
        confirm = await bridge_browser.get(f"/admin/callbacks/{event.id}/redeliver")
        assert "Redeliver callback?" in confirm.text
        token = csrf_of(confirm)
        done = await bridge_browser.post(
            f"/admin/callbacks/{event.id}/redeliver", data={"csrf_token": token}
        )
        assert done.status_code == 303
        assert done.headers["location"] == f"/admin/orders/{order['id']}?notice=redeliver"

        listing = await bridge_browser.get("/admin/webhooks")
        assert "evt-admin-1" in listing.text
        assert f'href="/admin/webhooks/{webhook.id}/reprocess"' in listing.text
        done = await bridge_browser.post(
            f"/admin/webhooks/{webhook.id}/reprocess", data={"csrf_token": token}
        )
        assert done.status_code == 303
        again = await bridge_browser.post(
            f"/admin/webhooks/{webhook.id}/reprocess", data={"csrf_token": token}
        )
        assert again.status_code in (303, 409)  # 409 unless the worker already decided again

    rows = [row for row in await audit_rows(db_engine) if row.action != "admin.login"]
    assert [(row.action, row.target_type) for row in rows][:2] == [
        ("callback.redeliver", "callback_event"),
        ("webhook.reprocess", "webhook_event"),
    ]
    assert rows[0].order_id == order["id"]
    assert rows[0].detail == {"type": event.type, "previous_status": "delivered"}
    assert rows[1].order_id == order["id"]  # noted before reprocessing forgot it
    assert rows[1].detail["previous_status"] == "unmatched"
    page = await bridge_browser.get(f"/admin/orders/{order['id']}")
    assert 'data-action="callback.redeliver"' in page.text


# -- pages ---------------------------------------------------------------------------


async def test_orders_search_and_pages(
    bridge: Bridge,
    bridge_browser: httpx.AsyncClient,
    admin_user: AdminUser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(endpoints, "PER_PAGE", 2)
    created = [await bridge.create(f"svc-find-{n}") for n in range(3)]
    settled = [await bridge.wait_order(o["id"], lambda o: o["status"] == "active") for o in created]
    await sign_in(bridge_browser)

    def ids(page: httpx.Response) -> list[int]:
        return [int(i) for i in re.findall(r'class="order-link">#(\d+)<', page.text)]

    first = await bridge_browser.get("/admin/orders")
    assert ids(first) == [created[2]["id"], created[1]["id"]]
    assert "Page 1 of 2" in first.text
    second = await bridge_browser.get("/admin/orders?page=2")
    assert ids(second) == [created[0]["id"]]

    by_email = await bridge_browser.get("/admin/orders?customer=SVC-FIND-1%40customers")
    assert ids(by_email) == [created[1]["id"]]
    by_customer_id = await bridge_browser.get("/admin/orders?customer=cust-svc-find-2")
    assert ids(by_customer_id) == [created[2]["id"]]
    by_billing_id = await bridge_browser.get("/admin/orders?billing_id=find-0")
    assert ids(by_billing_id) == [created[0]["id"]]
    server = settled[1]["server_id"]
    by_server = await bridge_browser.get(f"/admin/orders?server_id={server}")
    assert ids(by_server) == [created[1]["id"]]
    by_status = await bridge_browser.get("/admin/orders?status=failed")
    assert ids(by_status) == []
    assert "No order matches." in by_status.text
    like_chars = await bridge_browser.get("/admin/orders?billing_id=%25")
    assert ids(like_chars) == []
    bad_server = await bridge_browser.get("/admin/orders?server_id=abc")
    assert "A server id is a number" in bad_server.text
    for name in ("customer", "billing_id"):
        nul = await bridge_browser.get(f"/admin/orders?{name}=a%00")
        assert nul.status_code == 400, (name, nul.text)
        assert "not valid" in nul.text

    page = await bridge_browser.get(f"/admin/orders/{created[0]['id']}")
    assert page.status_code == 200
    for step in ("ensure_user", "claim_server", "install_os", "power_on"):
        assert step in page.text
    assert (await bridge_browser.get("/admin/orders/999999")).status_code == 404

    overview = await bridge_browser.get("/admin")
    assert 'data-order-status="active">3<' in overview.text
    assert re.search(r'<rect class="bar"[^>]* height="(?!0\.0")[\d.]+"', overview.text)
    assert '<circle class="point"' in overview.text


async def test_no_secret_reaches_any_page(
    bridge: Bridge,
    bridge_browser: httpx.AsyncClient,
    db_engine: AsyncEngine,
    engine_settings: Settings,
) -> None:
    sessionmaker = create_sessionmaker(db_engine)
    async with sessionmaker() as session, session.begin():
        user = await service.create_user(session, username=ADMIN, password=ADMIN_PASSWORD)
        config = await api_keys.configure_callbacks(
            session,
            name="billing",
            # Loopback port 9 refuses at once: deliveries fail and nothing leaves the machine.
            url="http://127.0.0.1:9/hooks?token=url-borne-secret",
            secrets_box=SecretBox(engine_settings.secret_keys),
        )
    raw_key = bridge.api.headers["authorization"].removeprefix("Bearer ")
    password = "Sup3r-Secret-pw-123"
    order = await bridge.create("svc-secrets", password=password)
    await bridge.wait_order(order["id"], lambda o: o["status"] == "active")
    await sign_in(bridge_browser)
    session_token = bridge_browser.cookies["dcibridge_admin"]
    async with sessionmaker() as session:
        event = await session.scalar(select(CallbackEvent))
    assert event is not None

    pages = [
        "/admin",
        "/admin/orders",
        f"/admin/orders/{order['id']}",
        f"/admin/operations/{order['operations'][0]['id']}/retry",
        f"/admin/callbacks/{event.id}/redeliver",
        "/admin/webhooks",
    ]
    secrets = [
        password,
        raw_key,
        api_keys.hash_key(raw_key),
        config.new_secret or "whsec_",
        "url-borne-secret",
        user.password_hash,
        "$argon2",
        session_token,
    ]
    for path in pages:
        response = await bridge_browser.get(path)
        assert response.status_code == 200, path
        for secret in secrets:
            assert secret not in response.text, (path, secret[:8])
    page = await bridge_browser.get(f"/admin/orders/{order['id']}")
    assert "http://127.0.0.1:9/hooks" in page.text


async def test_templates_escape_what_billing_sent(
    bridge: Bridge, bridge_browser: httpx.AsyncClient, admin_user: AdminUser
) -> None:
    body_customer = {
        "external_id": "cust-<script>",
        "email": "x<b>@customers.example.com",
        "name": "<script>alert(1)</script>",
    }
    order = await bridge.create(
        "svc-<img src=x>", customer=body_customer, hostname="esc.example.com"
    )
    await sign_in(bridge_browser)
    page = await bridge_browser.get(f"/admin/orders/{order['id']}")
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "svc-&lt;img src=x&gt;" in page.text
    listing = await bridge_browser.get("/admin/orders")
    assert "<img src=x>" not in listing.text


@pytest.mark.usefixtures("admin_user")
async def test_secure_cookie_behind_a_trusted_proxy(settings: Settings) -> None:
    trusted = settings.model_copy(update={"admin_trust_proxy_headers": True})
    with live_server(create_app(trusted)) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            form = await client.get("/admin/login")
            response = await client.post(
                "/admin/login",
                data={"username": ADMIN, "password": ADMIN_PASSWORD, "csrf_token": csrf_of(form)},
                headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "10.1.2.3, 203.0.113.7"},
            )
    assert response.status_code == 303
    assert "; secure" in response.headers["set-cookie"].lower()


# -- the CLI -------------------------------------------------------------------------


def _cli(
    *args: str, env: dict[str, str], cwd: Path, stdin: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        # No controlling terminal: the password prompt reads standard input, as in CI.
        start_new_session=True,
    )


REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.usefixtures("db_engine")
async def test_create_user_through_the_cli(settings: Settings, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCIBRIDGE_")}
    env["DCIBRIDGE_DATABASE_URL"] = settings.database_url
    env["PYTHONPATH"] = str(REPO_ROOT)

    created = _cli(
        "admin", "create-user", "--username", "Alice", "--password-stdin",
        env=env, cwd=tmp_path, stdin=f"{ADMIN_PASSWORD}\n",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert "admin user 'alice' created" in created.stdout
    assert ADMIN_PASSWORD not in created.stdout + created.stderr

    prompted = _cli(
        "admin", "create-user", "--username", "bob",
        env=env, cwd=tmp_path, stdin=f"{ADMIN_PASSWORD}\n{ADMIN_PASSWORD}\n",
    )  # fmt: skip
    assert prompted.returncode == 0, prompted.stderr
    assert ADMIN_PASSWORD not in prompted.stdout + prompted.stderr

    duplicate = _cli(
        "admin", "create-user", "--username", "alice", "--password-stdin",
        env=env, cwd=tmp_path, stdin=f"{ADMIN_PASSWORD}\n",
    )  # fmt: skip
    assert duplicate.returncode == 2
    assert "already exists" in duplicate.stderr
    weak = _cli(
        "admin", "create-user", "--username", "carol", "--password-stdin",
        env=env, cwd=tmp_path, stdin="short\n",
    )  # fmt: skip
    assert weak.returncode == 2
    assert "at least 12 characters" in weak.stderr

    with live_server(create_app(settings)) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            assert (await sign_in(client, username="alice")).status_code == 303
            async with httpx.AsyncClient(base_url=base_url) as other:
                assert (await sign_in(other, username="BOB")).status_code == 303
