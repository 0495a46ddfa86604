from __future__ import annotations

import json
import logging

import pytest
import structlog

from app.config import LogFormat
from app.kit.logging import REDACTED, configure_logging, redact_secrets
from tests.support.logs import captured_log


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


def test_a_logger_in_use_follows_logging_to_its_new_stream() -> None:
    configure_logging(level="INFO", log_format=LogFormat.JSON)
    log = structlog.get_logger("test.follow")
    log.info("first")  # cached from here on
    configure_logging(level="INFO", log_format=LogFormat.JSON)
    with captured_log() as stream:
        log.info("order.accepted", order_id=7)
        logging.getLogger("thirdparty").warning("plain stdlib line")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["order.accepted", "plain stdlib line"]
    assert lines[0]["logger"] == "test.follow"
    assert lines[0]["level"] == "info"


def test_an_exception_is_rendered_with_its_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="INFO", log_format=LogFormat.JSON)
    try:
        raise ValueError("boom")
    except ValueError:
        structlog.get_logger("test.exc").exception("worker.operation_crashed", token="t0ken")
    line = json.loads(capfd.readouterr().err.strip().splitlines()[-1])
    assert line["level"] == "error"
    assert "ValueError: boom" in line["exception"]
    assert line["token"] == REDACTED


def test_a_line_that_cannot_be_written_does_not_fail_the_caller() -> None:
    configure_logging(level="INFO", log_format=LogFormat.JSON)
    with captured_log() as stream:
        stream.close()
        logging.raiseExceptions = False  # the standard library's own switch for the report
        try:
            structlog.get_logger("test.closed").info("order.accepted")
        finally:
            logging.raiseExceptions = True


def test_the_standard_librarys_levels_decide_for_our_events_too() -> None:
    configure_logging(level="INFO", log_format=LogFormat.JSON)
    quiet = structlog.get_logger("test.quiet")
    with captured_log() as stream:
        quiet.info("heard")
        logging.getLogger("test.quiet").setLevel(logging.WARNING)
        try:
            quiet.info("not heard")
            quiet.warning("heard again")
        finally:
            logging.getLogger("test.quiet").setLevel(logging.NOTSET)
    events = [json.loads(line)["event"] for line in stream.getvalue().splitlines()]
    assert events == ["heard", "heard again"]
