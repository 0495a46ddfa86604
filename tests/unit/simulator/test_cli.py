from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from app.simulator import cli
from app.simulator.runtime import Simulator


def test_run_simulator_prints_credentials_and_serves_the_built_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    served: dict[str, Any] = {}

    def fake_run(app: FastAPI, **options: Any) -> None:
        served.update(options, app=app)

    monkeypatch.setattr("app.simulator.cli.uvicorn.run", fake_run)
    monkeypatch.setattr(cli, "configure_logging", lambda **_: None)
    inventory = tmp_path / "site.yaml"
    inventory.write_text("admin: {email: ops@dc.test, password: pw-123}\n")

    cli.run_simulator(
        host="127.0.0.1", port=9999, inventory_path=inventory, servers=2, op_seconds=0.5
    )

    printed = capsys.readouterr().out
    assert "http://127.0.0.1:9999" in printed
    assert "ops@dc.test" in printed
    assert "pw-123" in printed
    assert (served["host"], served["port"]) == ("127.0.0.1", 9999)
    simulator = served["app"].state.simulator
    assert isinstance(simulator, Simulator)
    assert {
        len([s for s in simulator.dc.servers() if s.configuration == c.name])
        for c in simulator.inventory.configurations
    } == {2}
    assert simulator.inventory.timings.os_install == 0.5
