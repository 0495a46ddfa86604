from __future__ import annotations

from collections.abc import Iterable

from app.kit.errors import DCIBridgeError, NotFound


class OrderNotFound(NotFound):
    def __init__(self, order_id: int) -> None:
        super().__init__(f"No order {order_id} for this API client.")


class OperationNotFound(NotFound):
    def __init__(self, operation_id: int) -> None:
        super().__init__(f"No operation {operation_id} for this API client.")


class InvalidOrderState(DCIBridgeError):
    status = 409
    code = "invalid_order_state"
    title = "The order is not in a state that allows this"


class UnknownConfiguration(DCIBridgeError):
    status = 422
    code = "unknown_configuration"
    title = "DCImanager has no such server configuration"

    def __init__(self, configuration: str, known: Iterable[str]) -> None:
        super().__init__(
            f"Configuration {configuration!r} is not offered by DCImanager.",
            known_configurations=sorted(known),
        )
