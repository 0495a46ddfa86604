"""Async client for ISPsystem DCImanager 6."""

from app.dci.client import DCIClient, create_dci_client
from app.dci.completion import (
    Completion,
    CompletionStatus,
    CompletionStrategy,
    ObjectStateStrategy,
    WorkKind,
    wait_for_completion,
)
from app.dci.exceptions import (
    DCIAuthError,
    DCIError,
    DCINotFound,
    DCIOutcomeUnknown,
    DCIProtocolError,
    DCIRequestError,
    DCIRetryableError,
)
from app.dci.models import TaskRef
from app.dci.where import Field

__all__ = [
    "Completion",
    "CompletionStatus",
    "CompletionStrategy",
    "DCIAuthError",
    "DCIClient",
    "DCIError",
    "DCINotFound",
    "DCIOutcomeUnknown",
    "DCIProtocolError",
    "DCIRequestError",
    "DCIRetryableError",
    "Field",
    "ObjectStateStrategy",
    "TaskRef",
    "WorkKind",
    "create_dci_client",
    "wait_for_completion",
]
