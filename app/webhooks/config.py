"""Setting types of the payment webhooks (imported by ``app.config``: no app imports here)."""

from __future__ import annotations

import base64
import binascii
import enum
import re

from pydantic import BaseModel, Field, SecretStr, model_validator

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
MIN_SECRET_BYTES = 16

# A generic source's name is a path segment: /api/v1/webhooks/generic/{source}.
SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class WebhookCancelAction(enum.StrEnum):
    """What a cancelled subscription (or service) does to its order."""

    TERMINATE = "terminate"
    # Suspended with reason "admin", so that no later payment lifts it: staff decide.
    SUSPEND = "suspend"
    IGNORE = "ignore"


class GenericWebhookSource(BaseModel):
    """One sender of Standard Webhooks events and the API client whose orders it names."""

    api_client: str = Field(min_length=1, max_length=100)
    # Several while rotating; each a Standard Webhooks secret, "whsec_<base64>".
    secrets: list[SecretStr] = Field(min_length=1)

    @model_validator(mode="after")
    def _secrets_are_standard_webhooks_secrets(self) -> GenericWebhookSource:
        for secret in self.secrets:
            # Never echo the value: it is a secret, even when malformed.
            if len(_secret_bytes(secret.get_secret_value())) < MIN_SECRET_BYTES:
                raise ValueError(
                    "each generic webhook secret must be a Standard Webhooks secret: "
                    f"whsec_ followed by the base64 of at least {MIN_SECRET_BYTES} random bytes"
                )
        return self


def _secret_bytes(secret: str) -> bytes:
    """The key a Standard Webhooks secret stands for; empty when it is not valid base64.

    Stricter than the library, which skips characters that are not base64: a typo
    would silently become another key and every signature would fail.
    """
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return b""
