from __future__ import annotations

from typing import Any

from app.kit.errors import DCIBridgeError, NotFound


class InvalidSignature(DCIBridgeError):
    """One answer for every way a signature fails: which part failed is not told."""

    status = 400
    code = "invalid_signature"
    title = "The webhook signature is not valid"

    def __init__(self) -> None:
        super().__init__(
            "The request's signature could not be verified with this endpoint's secret."
        )


class InvalidJson(DCIBridgeError):
    status = 400
    code = "invalid_json"
    title = "The request body is not a JSON object"


class InvalidEvent(DCIBridgeError):
    status = 422
    code = "validation_error"
    title = "The request is not valid"

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(errors)} field(s) failed validation", errors=errors)


class PayloadTooLarge(DCIBridgeError):
    status = 413
    code = "request_too_large"
    title = "The request body is too large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"Webhook bodies are limited to {limit} bytes.")


class WebhookSourceNotFound(NotFound):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)


class WebhookEventNotFound(NotFound):
    def __init__(self, event_id: int) -> None:
        super().__init__(f"No webhook event {event_id}.")


class InvalidWebhookEventState(DCIBridgeError):
    status = 409
    code = "invalid_webhook_event_state"
    title = "The webhook event is not in a state that allows this"
