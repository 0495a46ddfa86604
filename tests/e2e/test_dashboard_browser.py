"""The dashboard in a real headless Chromium (Debian's `chromium`, driven by Playwright).

An operator signs in, sees the overview with charts drawn from real orders
provisioned against the simulator, opens a failed order's timeline, retries it
through the confirmation page, watches it succeed, and signs out. A POST
without the CSRF token is refused and the sign-in is rate-limited. The
overview and order pages are saved to docs/screenshots for the README.

No browser is downloaded: Playwright drives the system's /usr/bin/chromium
(CI installs it). Without it this test fails, it does not skip.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, async_playwright, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.admin import service
from app.admin.charts import HEIGHT
from app.auth import service as api_keys
from app.config import Settings
from app.kit.crypto import SecretBox
from app.kit.db import create_sessionmaker
from app.orders.models import Operation, Order
from tests.support.bridge import Bridge
from tests.support.receiver import CallbackReceiver

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ADMIN = "operator"
ADMIN_PASSWORD = "a-long-operator-password"
CONFIGURATIONS = [
    "i9-9900K-64Gb-2x1024NVMe",
    "E-2288G-32Gb-2x480SSD",
    "EPYC-7443P-128Gb-2x1920NVMe",
]
# Hours ago each earlier order is moved to, so the 24-hour charts have a shape.
SPREAD_HOURS = [21, 17, 12, 8, 5, 2]
# The charts' plot area ends this far above the bottom edge (see app/admin/charts.py).
BASELINE = HEIGHT - 28


def _require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the dashboard's browser test needs Debian's chromium "
            "(`apt-get install chromium`; .ci/run installs it). It is not skipped on purpose."
        )


async def _spread_over_the_day(db_engine: AsyncEngine, order_ids: list[int]) -> None:
    """Move finished orders (and their operations) back in time by SPREAD_HOURS."""
    async with create_sessionmaker(db_engine)() as session, session.begin():
        for order_id, hours in zip(order_ids, SPREAD_HOURS, strict=False):
            shift = timedelta(hours=hours)
            order = await session.get(Order, order_id)
            assert order is not None
            order.created_at -= shift
            for operation in await session.scalars(
                select(Operation).where(Operation.order_id == order_id)
            ):
                operation.created_at -= shift
                if operation.started_at is not None:
                    operation.started_at -= shift
                if operation.finished_at is not None:
                    operation.finished_at -= shift


async def _sign_in(page: Page, base: str, password: str = ADMIN_PASSWORD) -> None:
    await page.fill("input[name=username]", ADMIN)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")


async def _wait_for_operation(page: Page, operation_id: int, status: str) -> None:
    deadline = time.monotonic() + 60
    card = page.locator(f"#operation-{operation_id}")
    while await card.get_attribute("data-status") != status:
        if time.monotonic() > deadline:
            raise AssertionError(f"operation {operation_id} did not become {status}")
        await asyncio.sleep(0.3)
        await page.reload()


async def _wait_for_callbacks(page: Page, *, at_least: int) -> None:
    deadline = time.monotonic() + 60
    rows = page.locator("#callbacks tbody tr")
    while await rows.count() < at_least or await rows.locator(".badge-pending").count():
        if time.monotonic() > deadline:
            raise AssertionError("the order's callbacks were not all delivered")
        await asyncio.sleep(0.3)
        await page.reload()
    await expect(rows.locator(".badge-delivered")).to_have_count(await rows.count())


async def _open_browser(playwright_profile: Path) -> tuple[object, BrowserContext]:
    manager = async_playwright()
    playwright = await manager.start()
    context = await playwright.chromium.launch_persistent_context(
        str(playwright_profile),
        executable_path=str(CHROMIUM),
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1360, "height": 900},
    )
    return playwright, context


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    with CallbackReceiver().serving() as receiver:
        yield receiver


async def test_operator_journey_in_a_real_browser(
    bridge: Bridge,
    db_engine: AsyncEngine,
    engine_settings: Settings,
    receiver: CallbackReceiver,
    tmp_path: Path,
) -> None:
    _require_chromium()
    base = str(bridge.api.base_url).rstrip("/")
    async with create_sessionmaker(db_engine)() as session, session.begin():
        await service.create_user(session, username=ADMIN, password=ADMIN_PASSWORD)
        # Billing receives callbacks, so the order page has some to show.
        await api_keys.configure_callbacks(
            session,
            name="billing",
            url=receiver.url,
            secrets_box=SecretBox(engine_settings.secret_keys),
        )

    created = [
        await bridge.create(f"svc-web-{n}", configuration=CONFIGURATIONS[n % 3])
        for n in range(len(SPREAD_HOURS) + 1)
    ]
    for order in created:
        await bridge.wait_order(order["id"], lambda o: o["status"] == "active")
    await _spread_over_the_day(db_engine, [o["id"] for o in created])

    await bridge.sim_faults(fail_rate={"os_install": 1.0})
    failed = await bridge.create("svc-web-broken")
    failed = await bridge.wait_order(failed["id"], lambda o: o["status"] == "failed")
    await bridge.sim_faults(fail_rate={})
    operation_id = failed["operations"][0]["id"]

    playwright, context = await _open_browser(tmp_path / "chromium-profile")
    try:
        page = context.pages[0] if context.pages else await context.new_page()

        # Signing in: every page sends there first.
        await page.goto(f"{base}/admin")
        assert "/admin/login" in page.url
        await _sign_in(page, base)
        await page.wait_for_url(f"{base}/admin")
        await expect(page.locator("h1")).to_have_text("Overview")

        # The charts are pictures with something in them.
        bars = page.locator("#orders-chart svg rect.bar")
        assert await bars.count() >= 3
        for index in range(await bars.count()):
            bar = bars.nth(index)
            assert float(await bar.get_attribute("height") or 0) > 0
            box = await bar.bounding_box()
            assert box is not None
            assert box["height"] > 0
        points = page.locator("#duration-chart svg circle.point")
        assert await points.count() >= 3
        for index in range(await points.count()):
            assert float(await points.nth(index).get_attribute("cy") or BASELINE) < BASELINE
        await expect(page.locator("[data-order-status=failed]")).to_have_text("1")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / "overview.png"), full_page=True)

        # The failed order, found through the orders page, and its timeline.
        await page.click("nav >> text=Orders")
        await page.select_option("select[name=status]", "failed")
        await page.click("button:has-text('Filter')")
        await page.click(f"a.order-link:has-text('#{failed['id']}')")
        await page.wait_for_url(f"{base}/admin/orders/{failed['id']}")
        operation = page.locator(f"#operation-{operation_id}")
        await expect(operation).to_have_attribute("data-status", "failed")
        # The seven provisioning steps, then the compensation that released the server.
        assert await operation.locator("tr.step").count() >= 7
        await expect(operation.locator("tr.step-failed")).to_have_count(1)

        # Retry, through the confirmation page.
        await page.click(f"#retry-{operation_id}")
        await expect(page.locator("h1")).to_have_text("Retry operation?")
        await page.click("#confirm")
        await page.wait_for_url(f"{base}/admin/orders/{failed['id']}?notice=retry")
        await expect(page.locator("#notice")).to_contain_text("queued again")
        await _wait_for_operation(page, operation_id, "succeeded")
        await expect(page.locator("h1 .badge")).to_have_text("active")
        await expect(page.locator('tr.audit-row[data-action="operation.retry"]')).to_have_count(1)
        # Billing was told of the failure, then of the success.
        await _wait_for_callbacks(page, at_least=2)
        await page.screenshot(path=str(SCREENSHOTS / "order.png"), full_page=True)

        # A state change without the CSRF token is refused, with the browser's own cookie.
        refused = await context.request.post(f"{base}/admin/logout", form={"x": "1"})
        assert refused.status == 403
        assert "Request refused" in await refused.text()

        # Signing out ends the session.
        await page.click("#logout")
        await page.wait_for_url(f"{base}/admin/login")
        await page.goto(f"{base}/admin/orders")
        assert "/admin/login" in page.url

        # Five wrong passwords, then even the right one is turned away.
        for _ in range(5):
            await _sign_in(page, base, password="wrong-password-guess")
            await expect(page.locator(".alert-error")).to_have_text("Invalid username or password.")
        async with page.expect_response(f"{base}/admin/login") as answer:
            await _sign_in(page, base)
        assert (await answer.value).status == 429
        await expect(page.locator(".alert-error")).to_contain_text("Too many failed sign-ins")
    finally:
        await context.close()
        await playwright.stop()  # type: ignore[attr-defined]
