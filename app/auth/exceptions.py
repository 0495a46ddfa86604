from __future__ import annotations

from app.kit.errors import DCIBridgeError, Forbidden, NotFound, Unauthorized


class InvalidApiKey(Unauthorized):
    def __init__(self) -> None:
        # One message for missing, unknown and disabled keys: the answer must not
        # help anyone probe which keys exist.
        super().__init__("Send a valid, enabled API key as `Authorization: Bearer <key>`.")


class MissingScope(Forbidden):
    def __init__(self, needed: str) -> None:
        super().__init__(f"This API key lacks the `{needed}` scope.", required_scope=needed)


class ApiClientNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"No API client named {name!r}.")


class ApiClientExists(DCIBridgeError):
    status = 409
    code = "api_client_exists"
    title = "An API client with this name already exists"
