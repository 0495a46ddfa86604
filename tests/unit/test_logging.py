from __future__ import annotations

import json
import logging

import pytest
import structlog

from app.config import LogFormat
from app.kit.logging import REDACTED, configure_logging, redact_secrets


def test_redaction_masks_secret_fields_at_any_depth() -> None:
    event = {
        "event": "dci.login",
        "password": "hunter2",
        "body": {"email": "a@b.c", "password": "p", "nested": [{"token": "t"}]},
        "authorization": "Bearer x",
        "server_id": 7,
    }
    masked = redact_secrets(None, "info", event)
    assert masked["password"] == REDACTED
    assert masked["authorization"] == REDACTED
    assert masked["body"]["password"] == REDACTED
    assert masked["body"]["nested"][0]["token"] == REDACTED
    assert masked["body"]["email"] == "a@b.c"
    assert masked["server_id"] == 7


def test_json_logs_carry_context_and_hide_secrets(capfd: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="INFO", log_format=LogFormat.JSON)
    structlog.contextvars.bind_contextvars(request_id="req-1")
    try:
        structlog.get_logger("test").info("order.accepted", order_id=5, password="s3cret-pw")
        logging.getLogger("thirdparty").warning("plain stdlib line")
    finally:
        structlog.contextvars.clear_contextvars()
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.strip()]
    ours = next(line for line in lines if line["event"] == "order.accepted")
    assert ours["request_id"] == "req-1"
    assert ours["order_id"] == 5
    assert ours["password"] == REDACTED
    assert any(line["event"] == "plain stdlib line" for line in lines)
    assert "s3cret-pw" not in json.dumps(lines)


def test_calls_below_the_level_are_dropped_before_any_processor_runs(
    capfd: pytest.CaptureFixture[str],
) -> None:
    configure_logging(level="INFO", log_format=LogFormat.JSON)
    seen: list[str] = []

    def spy(_: object, __: str, event: dict[str, object]) -> dict[str, object]:
        seen.append(str(event["event"]))
        return event

    processors = structlog.get_config()["processors"]
    structlog.configure(processors=[processors[0], spy, *processors[1:]])
    log = structlog.get_logger("test.levels")
    log.debug("dci.request", path="/api/dci/v3/server")
    log.info("order.accepted")
    assert seen == ["order.accepted"]
    events = [json.loads(line)["event"] for line in capfd.readouterr().err.splitlines() if line]
    assert events == ["order.accepted"]
