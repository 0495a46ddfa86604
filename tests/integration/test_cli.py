"""The `dcibridge` command as an operator runs it: a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from tests.support.live_server import live_server

DCIBRIDGE = [sys.executable, "-m", "app.cli"]


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DCIBRIDGE, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def cli_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCIBRIDGE_")}
    env["DCIBRIDGE_DATABASE_URL"] = settings.database_url
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return env


@pytest.mark.usefixtures("db_engine")
async def test_api_key_lifecycle_through_the_cli(
    settings: Settings, cli_env: dict[str, str], tmp_path: Path
) -> None:
    created = run_cli("api-key", "create", "--name", "billing", env=cli_env, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("dcb_")
    assert key not in created.stderr

    scoped = run_cli(
        "api-key", "create", "--name", "ops", "--scope", "admin", env=cli_env, cwd=tmp_path
    )
    assert scoped.returncode == 0, scoped.stderr

    duplicate = run_cli("api-key", "create", "--name", "billing", env=cli_env, cwd=tmp_path)
    assert duplicate.returncode == 2
    assert "already exists" in duplicate.stderr

    listed = run_cli("api-key", "list", env=cli_env, cwd=tmp_path)
    assert listed.returncode == 0
    assert "billing" in listed.stdout
    assert "ops" in listed.stdout
    assert key not in listed.stdout

    with live_server(create_app(settings)) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            auth = {"Authorization": f"Bearer {key}"}
            assert (await client.get("/api/v1/whoami", headers=auth)).status_code == 200
            revoked = run_cli("api-key", "revoke", "--name", "billing", env=cli_env, cwd=tmp_path)
            assert revoked.returncode == 0, revoked.stderr
            assert (await client.get("/api/v1/whoami", headers=auth)).status_code == 401


def test_serve_refuses_a_weak_secret_key_outside_simulator_mode(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = {
        **cli_env,
        "DCIBRIDGE_DCI_URL": "https://dci.example.net",
        "DCIBRIDGE_DCI_EMAIL": "bridge@example.net",
        "DCIBRIDGE_DCI_PASSWORD": "upstream-secret-pw",
        "DCIBRIDGE_SECRET_KEY": "tooshort",
    }
    result = run_cli("serve", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "DCIBRIDGE_SECRET_KEY is too weak" in result.stderr
    assert "upstream-secret-pw" not in result.stderr + result.stdout


def test_help_is_available_for_every_command(cli_env: dict[str, str], tmp_path: Path) -> None:
    for args in (["--help"], ["serve", "--help"], ["migrate", "--help"], ["api-key", "--help"]):
        result = run_cli(*args, env=cli_env, cwd=tmp_path)
        assert result.returncode == 0, (args, result.stderr)
        assert "Usage" in result.stdout
