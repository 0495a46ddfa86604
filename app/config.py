"""Runtime configuration: one Settings object, read from DCIBRIDGE_* variables and .env."""

from __future__ import annotations

import enum

from pydantic import AnyHttpUrl, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.webhooks.config import SOURCE_NAME, GenericWebhookSource, WebhookCancelAction

MIN_SECRET_KEY_LENGTH = 32
DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///./dcibridge.db"
# Used only in simulator mode, where nothing real is protected; a fixed, public key
# keeps the embedded demo restartable without losing what it encrypted.
SIMULATOR_SECRET_KEY = "dcibridge-simulator-mode-key-not-for-production-use"  # noqa: S105


class LogFormat(enum.StrEnum):
    JSON = "json"
    CONSOLE = "console"


class ConfigurationError(Exception):
    """Raised at start-up when the settings cannot run a safe service."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DCIBRIDGE_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    database_url: str = DEFAULT_SQLITE_URL
    # Connections each process keeps open, and the most it opens: no overflow, since
    # opening and closing connections under a steady load costs more than keeping them.
    database_pool_size: int = Field(default=20, ge=1)
    database_echo: bool = False

    dci_url: AnyHttpUrl | None = None
    dci_email: str = ""
    dci_password: SecretStr = SecretStr("")
    dci_connect_timeout: float = Field(default=5.0, gt=0)
    dci_read_timeout: float = Field(default=30.0, gt=0)
    dci_max_connections: int = Field(default=20, ge=1)
    dci_retry_503_seconds: float = Field(default=60.0, ge=0)
    # Concurrent reads of single servers share one filtered list call. The client
    # falls back to single reads by itself if the instance's answer does not fit.
    dci_batch_server_reads: bool = True

    secret_key: SecretStr | None = None
    # Comma-separated keys that encrypted older secrets; still accepted for reading.
    secret_key_previous: SecretStr | None = None

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: str = "INFO"
    log_format: LogFormat | None = None
    readiness_timeout_seconds: float = Field(default=2.0, gt=0)
    # When set, GET /metrics wants "Authorization: Bearer <token>".
    metrics_token: SecretStr | None = None
    run_worker: bool = True
    # `dcibridge worker` serves its own GET /metrics on this port (on `host`) when
    # set: the counters of the steps it runs live in its process, not the API's.
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)

    # Orchestration (the worker)
    # Operations waiting on DCImanager count too (an OS install holds its place
    # until it ends), and cost only a coroutine each: 35-105 KiB measured.
    max_concurrent_operations: int = Field(default=1000, ge=1)
    # How many of them write their step's outcome at once; the rest queue oldest
    # operation first. Below database_pool_size, so the API keeps connections.
    worker_step_slots: int = Field(default=8, ge=1)
    # Waits up to this long happen in the worker (no database work per look);
    # longer ones park the step in the database and free the worker.
    inline_wait_seconds: float = Field(default=10.0, ge=0)
    worker_poll_seconds: float = Field(default=0.2, gt=0)
    lease_seconds: float = Field(default=30.0, ge=3)
    worker_heartbeat_seconds: float = Field(default=5.0, gt=0)
    shutdown_grace_seconds: float = Field(default=20.0, ge=0)
    step_max_attempts: int = Field(default=10, ge=1)
    step_retry_base_seconds: float = Field(default=1.0, gt=0)
    step_retry_max_seconds: float = Field(default=60.0, gt=0)
    # Looks at a running DCImanager operation (install, wipe, IPs) start every
    # task_poll_min_seconds and spread out as the wait grows: the next look comes
    # after task_poll_growth of the time already waited, at most task_poll_seconds
    # later. Finishing is noticed within that share of the wait or within
    # task_poll_seconds, whichever is less; a long install is looked at every
    # task_poll_seconds once the growth reaches that cap.
    task_poll_seconds: float = Field(default=5.0, gt=0)
    task_poll_min_seconds: float = Field(default=1.0, gt=0)
    task_poll_growth: float = Field(default=0.1, ge=0)
    task_timeout_seconds: float = Field(default=7200.0, gt=0)
    stock_cache_seconds: float = Field(default=5.0, ge=0)
    wait_for_stock: bool = False
    stock_retry_seconds: float = Field(default=60.0, gt=0)
    keep_failed_servers: bool = False
    suspend_powers_off: bool = False
    # Unconfirmed upstream values: the vendor's example shows only "none" (skip).
    clear_hdd_mode: str = "fast"
    os_install_hdd_raid: str = "none"

    # Callbacks to billing
    callback_timeout_seconds: float = Field(default=10.0, gt=0)
    callback_deliver_for_seconds: float = Field(default=86_400.0, gt=0)
    callback_retry_base_seconds: float = Field(default=5.0, gt=0)
    callback_retry_max_seconds: float = Field(default=3_600.0, gt=0)
    callback_max_concurrent: int = Field(default=10, ge=1)
    # Delivered callbacks stay this long (billing and the dashboard can look them up),
    # then the worker deletes them with their attempt log. Undelivered ones stay.
    callback_retention_days: float = Field(default=30.0, gt=0)

    # Payment webhooks
    # Stripe endpoint signing secrets, comma-separated (two while rolling one over).
    stripe_webhook_secrets: SecretStr | None = None
    # The API client whose orders Stripe events name (an external_id is unique per client).
    stripe_api_client: str | None = None
    stripe_webhook_tolerance_seconds: int = Field(default=300, ge=1)
    stripe_order_metadata_key: str = Field(default="dcibridge_order", min_length=1, max_length=40)
    # invoice.payment_failed suspends from this invoice attempt_count on.
    stripe_suspend_after_attempts: int = Field(default=1, ge=1)
    # JSON: {"<source>": {"api_client": "<name>", "secrets": ["whsec_..."]}}
    generic_webhook_sources: dict[str, GenericWebhookSource] = Field(default_factory=dict)
    webhook_cancel_action: WebhookCancelAction = WebhookCancelAction.TERMINATE
    webhook_unsuspend_on_payment: bool = True
    webhook_max_body_bytes: int = Field(default=262_144, ge=1_024)
    webhook_max_attempts: int = Field(default=5, ge=1)
    webhook_retry_base_seconds: float = Field(default=5.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=600.0, gt=0)
    # Settled events (processed, ignored, unmatched) stay this long, then the worker
    # deletes them; failed ones stay for the operator. At least a week, beyond any
    # sender's retries (Stripe's: 3 days), since a stored event is what recognises a
    # resent one.
    webhook_retention_days: float = Field(default=90.0, ge=7)

    # Admin dashboard
    # A session unused this long is signed out; none outlives the maximum either.
    admin_session_idle_seconds: float = Field(default=1_800.0, ge=60)
    admin_session_max_seconds: float = Field(default=43_200.0, ge=60)
    # An unfinished operation none of whose steps changed for this long is "stuck".
    admin_stuck_after_seconds: float = Field(default=600.0, gt=0)
    # Failed sign-ins tolerated per username and per client address within the window.
    admin_login_max_failures: int = Field(default=5, ge=1)
    admin_login_window_seconds: float = Field(default=300.0, gt=0)
    # Only behind a reverse proxy that sets them: believe X-Forwarded-Proto/-For.
    admin_trust_proxy_headers: bool = False

    # For crash-safety tests only: "before_record:STEP", "after_record:STEP" or
    # "after_settle:KIND" makes the worker SIGKILL itself at that point.
    debug_crash_at: str | None = None

    # The embedded simulator (simulator mode only)
    simulator_op_seconds: float = Field(default=2.0, ge=0)
    simulator_servers: int = Field(default=10, ge=1)

    @model_validator(mode="after")
    def _require_strong_secret_outside_simulator(self) -> Settings:
        if self.simulator_mode:
            return self
        key = self.secret_key.get_secret_value() if self.secret_key else ""
        if not key:
            raise ValueError(
                "DCIBRIDGE_SECRET_KEY is required when DCIBRIDGE_DCI_URL is set: it encrypts "
                "customers' passwords at rest. Generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`."
            )
        if len(key) < MIN_SECRET_KEY_LENGTH or len(set(key)) < 10:
            raise ValueError(
                f"DCIBRIDGE_SECRET_KEY is too weak: use at least {MIN_SECRET_KEY_LENGTH} "
                "random characters (e.g. `python -c 'import secrets; "
                "print(secrets.token_urlsafe(48))'`)."
            )
        if not self.dci_email or not self.dci_password.get_secret_value():
            raise ValueError(
                "DCIBRIDGE_DCI_EMAIL and DCIBRIDGE_DCI_PASSWORD are required when "
                "DCIBRIDGE_DCI_URL is set."
            )
        return self

    @model_validator(mode="after")
    def _webhook_sources_name_their_api_client(self) -> Settings:
        if self.stripe_secrets and not self.stripe_api_client:
            raise ValueError(
                "DCIBRIDGE_STRIPE_API_CLIENT is required with DCIBRIDGE_STRIPE_WEBHOOK_SECRETS: "
                "name the API client (as in `dcibridge api-key create --name`) whose orders "
                "Stripe's metadata refers to."
            )
        for name in self.generic_webhook_sources:
            if not SOURCE_NAME.match(name):
                raise ValueError(
                    f"DCIBRIDGE_GENERIC_WEBHOOK_SOURCES: source name {name!r} must be 1 to 64 "
                    "letters, digits, '-' or '_'."
                )
        return self

    @property
    def stripe_secrets(self) -> list[str]:
        """Every Stripe signing secret accepted now (several during a rollover)."""
        raw = self.stripe_webhook_secrets.get_secret_value() if self.stripe_webhook_secrets else ""
        return [secret.strip() for secret in raw.split(",") if secret.strip()]

    @property
    def simulator_mode(self) -> bool:
        """No DCImanager configured: the service drives its built-in simulator."""
        return self.dci_url is None

    @property
    def secret_keys(self) -> list[str]:
        """The current encryption key first, then older ones still accepted for reading."""
        current = self.secret_key.get_secret_value() if self.secret_key else ""
        previous = self.secret_key_previous.get_secret_value() if self.secret_key_previous else ""
        older = [key.strip() for key in previous.split(",") if key.strip()]
        return [current or SIMULATOR_SECRET_KEY, *older]

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def effective_log_format(self) -> LogFormat:
        if self.log_format is not None:
            return self.log_format
        return LogFormat.CONSOLE if self.simulator_mode else LogFormat.JSON


def load_settings() -> Settings:
    """Build settings, turning validation failures into one readable start-up error."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        messages = "; ".join(str(err["msg"]).removeprefix("Value error, ") for err in exc.errors())
        raise ConfigurationError(messages) from None
