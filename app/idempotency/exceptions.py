from __future__ import annotations

from app.kit.errors import DCIBridgeError


class IdempotencyError(DCIBridgeError):
    """Answered by the idempotency middleware itself; the endpoint never runs."""


class InvalidIdempotencyKey(IdempotencyError):
    status = 400
    code = "invalid_idempotency_key"
    title = "Invalid Idempotency-Key header"

    def __init__(self, max_length: int) -> None:
        # The key itself is not echoed: it is whatever the caller sent, unchecked.
        super().__init__(
            f"Send exactly one Idempotency-Key of 1 to {max_length} printable ASCII characters."
        )


class IdempotencyKeyReused(IdempotencyError):
    status = 422
    code = "idempotency_key_reused"
    title = "This Idempotency-Key was used for a different request"

    def __init__(self) -> None:
        super().__init__(
            "The key was first sent with another method, path, query or body; "
            "use a new key for a new request."
        )


class IdempotencyKeyInUse(IdempotencyError):
    status = 409
    code = "idempotency_key_in_use"
    title = "A request with this Idempotency-Key is still in progress"

    def __init__(self) -> None:
        super().__init__("Retry once the first request has been answered.")
