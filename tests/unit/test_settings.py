from __future__ import annotations

import pytest

from app.config import ConfigurationError, LogFormat, Settings, load_settings

STRONG_KEY = "q8Vd1nF3kP0zXw7Lm2Rt9Yb4Hc6Js5Ae"
DCI_URL = "https://dci.example.net"
DCI_PASSWORD = "upstream-pass-Z9"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("DCIBRIDGE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(str(tmp_path))  # no stray .env


def _configure_upstream(monkeypatch: pytest.MonkeyPatch, secret_key: str | None) -> None:
    monkeypatch.setenv("DCIBRIDGE_DCI_URL", DCI_URL)
    monkeypatch.setenv("DCIBRIDGE_DCI_EMAIL", "bridge@example.net")
    monkeypatch.setenv("DCIBRIDGE_DCI_PASSWORD", DCI_PASSWORD)
    if secret_key is not None:
        monkeypatch.setenv("DCIBRIDGE_SECRET_KEY", secret_key)


def test_defaults_run_the_embedded_simulator_on_sqlite() -> None:
    settings = load_settings()
    assert settings.simulator_mode
    assert settings.database_url == "sqlite+aiosqlite:///./dcibridge.db"
    assert settings.is_sqlite
    assert settings.effective_log_format is LogFormat.CONSOLE


def test_missing_secret_key_outside_simulator_is_a_clear_startup_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _configure_upstream(monkeypatch, secret_key=None)
    with pytest.raises(ConfigurationError, match="DCIBRIDGE_SECRET_KEY is required"):
        load_settings()


@pytest.mark.parametrize("weak", ["short", "a" * 64, "changeme-changeme-changeme-changeme"])
def test_weak_secret_key_outside_simulator_is_refused(
    monkeypatch: pytest.MonkeyPatch, weak: str
) -> None:
    _configure_upstream(monkeypatch, secret_key=weak)
    with pytest.raises(ConfigurationError, match="too weak") as excinfo:
        load_settings()
    assert weak not in str(excinfo.value)


def test_strong_secret_key_with_upstream_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    _configure_upstream(monkeypatch, secret_key=STRONG_KEY)
    settings = load_settings()
    assert not settings.simulator_mode
    assert settings.effective_log_format is LogFormat.JSON
    assert settings.secret_keys == [STRONG_KEY]


def test_upstream_credentials_are_required_with_a_dci_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DCIBRIDGE_DCI_URL", DCI_URL)
    monkeypatch.setenv("DCIBRIDGE_SECRET_KEY", STRONG_KEY)
    with pytest.raises(ConfigurationError, match="DCIBRIDGE_DCI_EMAIL"):
        load_settings()


def test_secrets_never_appear_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    _configure_upstream(monkeypatch, secret_key=STRONG_KEY)
    settings = load_settings()
    for rendered in (repr(settings), str(settings), settings.model_dump_json()):
        assert DCI_PASSWORD not in rendered
        assert STRONG_KEY not in rendered


def test_env_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    from pathlib import Path

    Path(".env").write_text("DCIBRIDGE_PORT=9123\nDCIBRIDGE_LOG_FORMAT=json\n")
    settings = Settings()
    assert settings.port == 9123
    assert settings.effective_log_format is LogFormat.JSON


def test_previous_secret_keys_follow_the_current_one(monkeypatch: pytest.MonkeyPatch) -> None:
    _configure_upstream(monkeypatch, secret_key=STRONG_KEY)
    monkeypatch.setenv(
        "DCIBRIDGE_SECRET_KEY_PREVIOUS", "old-one-aaaaaaaaaaaaaaaa, old-two-bbbbbbbb"
    )
    assert load_settings().secret_keys == [
        STRONG_KEY,
        "old-one-aaaaaaaaaaaaaaaa",
        "old-two-bbbbbbbb",
    ]
