"""`dcibridge serve` on its embedded defaults, as the README's quick start runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.live_server import free_port


def test_serve_on_embedded_defaults_migrates_and_answers(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCIBRIDGE_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, "serve exited early"
                assert time.monotonic() < deadline, "serve did not start in time"
                time.sleep(0.2)
        assert response.status_code == 200
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 200
        assert ready.json()["dci_mode"] == "simulator"
        assert (tmp_path / "dcibridge.db").is_file()
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    # uvicorn re-raises the signal after a graceful shutdown, so the exit status is
    # the signal's; the log shows the lifespan really ran to its end.
    assert process.returncode in (0, -15)
    assert "app.stopped" in output
    assert "SIMULATOR MODE" in output
    assert "db.migrated" in output


def test_serve_refuses_an_unmigrated_postgres_schema(tmp_path: Path) -> None:
    database_url = os.environ.get("DCIBRIDGE_TEST_DATABASE_URL")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCIBRIDGE_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    # A reachable server whose schema is not ours: with PostgreSQL in the run, its
    # maintenance database; the check itself is the same on any non-SQLite URL.
    base = database_url or "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    env["DCIBRIDGE_DATABASE_URL"] = base.rsplit("/", 1)[0] + "/postgres"
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(free_port())],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "dcibridge migrate" in result.stderr
