"""`dcibridge serve` settles the garbage collector once started; an app embedded in
someone else's process (tests, an ASGI host) leaves the collector alone."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import httpx
import pytest

from app.config import Settings
from app.kit.heap import YOUNG_GENERATION_THRESHOLD, settle_heap
from app.main import create_app
from tests.support.live_server import live_server


@pytest.fixture
def pristine_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("pristine_collector")
def test_settle_heap_freezes_what_exists_and_raises_the_young_threshold() -> None:
    _, middle, old = gc.get_threshold()
    survivor = {"built": "at start-up"}
    settle_heap()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (YOUNG_GENERATION_THRESHOLD, middle, old)
    # Frozen objects are out of the collector's sight, not gone.
    assert survivor["built"] == "at start-up"
    assert not any(obj is survivor for obj in gc.get_objects())


@pytest.mark.usefixtures("pristine_collector")
@pytest.mark.parametrize("owns_process", [True, False])
async def test_the_app_settles_the_heap_only_when_it_owns_the_process(
    settings: Settings, owns_process: bool
) -> None:
    default_young = gc.get_threshold()[0]
    with live_server(create_app(settings, owns_process=owns_process)) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            assert (await client.get("/healthz")).status_code == 200
        frozen = gc.get_freeze_count()
        young = gc.get_threshold()[0]
    if owns_process:
        assert frozen > 0
        assert young == YOUNG_GENERATION_THRESHOLD
    else:
        assert frozen == 0
        assert young == default_young
