from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr
from pydantic.config import JsonDict

from app.kit.params import MAX_ID, NO_NUL
from app.orders.lifecycle import SuspensionReason
from app.orders.models import OperationKind, OperationStatus, OrderStatus, StepStatus

_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = rf"^{_LABEL}(\.{_LABEL})*$"
_EMAIL = r"^[^@\s\x00]+@[^@\s\x00]+\.[^@\s\x00]+$"
SshKey = Annotated[str, Field(min_length=1, max_length=16_384, pattern=NO_NUL)]
# A DCImanager id is stored as a 64-bit column; a larger one must be refused
# here rather than overflow the driver.
TemplateId = Annotated[int, Field(ge=0, le=MAX_ID)]


def _refuse_nul(password: SecretStr) -> SecretStr:
    # DCImanager would get it as the OS password; refused here, not at install time.
    if "\x00" in password.get_secret_value():
        raise ValueError("the password must not contain NUL")
    return password


OsPassword = Annotated[
    SecretStr,
    Field(min_length=8, max_length=128, json_schema_extra={"pattern": NO_NUL}),
    AfterValidator(_refuse_nul),
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CustomerIn(_Request):
    external_id: str = Field(min_length=1, max_length=255, pattern=NO_NUL, examples=["cust-1001"])
    email: str = Field(pattern=_EMAIL, max_length=320, examples=["jane@example.com"])
    name: str = Field(default="", max_length=255, pattern=NO_NUL, examples=["Jane Doe"])


_STEP_EXAMPLE: JsonDict = {
    "name": "install_os",
    "status": "succeeded",
    "attempts": 1,
    "dci_task_id": 731,
    "last_error": None,
    "next_attempt_at": None,
    "started_at": "2026-11-29T15:40:02Z",
    "finished_at": "2026-11-29T15:52:40Z",
}
_OPERATION_EXAMPLE: JsonDict = {
    "id": 1,
    "order_id": 1,
    "kind": "provision",
    "status": "succeeded",
    "params": {"os_template_id": 12, "ssh_keys": []},
    "attempts": 9,
    "error_code": None,
    "error": None,
    "created_at": "2026-11-29T15:40:00Z",
    "started_at": "2026-11-29T15:40:00Z",
    "finished_at": "2026-11-29T15:52:41Z",
    "steps": [_STEP_EXAMPLE],
}
_ORDER_EXAMPLE: JsonDict = {
    "id": 1,
    "external_id": "svc-42",
    "status": "active",
    "customer": {"external_id": "client-7", "email": "jane@example.com", "name": "Jane Doe"},
    "configuration": "i9-9900K-64Gb-2x1024NVMe",
    "os_template_id": 12,
    "ipv4_count": 2,
    "hostname": "svc-42.example.com",
    "server_id": 17,
    "ip_addresses": ["203.0.113.2", "203.0.113.3"],
    "suspension_reason": None,
    "failure_reason": None,
    "created_at": "2026-11-29T15:40:00Z",
    "updated_at": "2026-11-29T15:52:41Z",
    "operations": [_OPERATION_EXAMPLE],
}


class OrderCreate(_Request):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "external_id": "svc-42",
                    "customer": {
                        "external_id": "client-7",
                        "email": "jane@example.com",
                        "name": "Jane Doe",
                    },
                    "configuration": "i9-9900K-64Gb-2x1024NVMe",
                    "os_template_id": 1,
                    "ssh_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ1 jane@laptop"],
                    "password": "Initial-Root-Pass-1",
                    "ipv4_count": 2,
                    "hostname": "svc-42.example.com",
                }
            ]
        },
    )

    external_id: str = Field(
        min_length=1,
        max_length=255,
        pattern=NO_NUL,
        description="Billing's service id",
        examples=["svc-42"],
    )
    customer: CustomerIn
    configuration: str = Field(
        min_length=1, max_length=255, pattern=NO_NUL, examples=["i9-9900K-64Gb-2x1024NVMe"]
    )
    os_template_id: TemplateId = Field(examples=[12])
    ssh_keys: list[SshKey] = Field(default_factory=list, max_length=32)
    password: OsPassword | None = Field(
        default=None,
        description="Root password for the OS; stored encrypted only until installed.",
    )
    ipv4_count: int = Field(default=1, ge=0, le=64)
    hostname: str | None = Field(
        default=None, max_length=253, pattern=_HOSTNAME, examples=["web1.example.com"]
    )
    callback_url: AnyHttpUrl | None = Field(
        default=None,
        description="Where this order's events go, instead of the API client's callback URL.",
    )


class SuspendRequest(_Request):
    reason: SuspensionReason = SuspensionReason.NON_PAYMENT


class UnsuspendRequest(_Request):
    reason: SuspensionReason = Field(
        default=SuspensionReason.NON_PAYMENT,
        description="Who lifts it: a `non_payment` unsuspension never lifts an `abuse` or "
        "`admin` suspension.",
    )


class TerminateRequest(_Request):
    pass


class ReinstallRequest(_Request):
    os_template_id: TemplateId = Field(examples=[2])
    ssh_keys: list[SshKey] = Field(default_factory=list, max_length=32)
    password: OsPassword | None = None


class PowerRequest(_Request):
    action: Literal["on", "off", "reset"] = Field(examples=["reset"])


class StepOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    status: StepStatus
    attempts: int
    dci_task_id: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None


class OperationOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True, json_schema_extra={"examples": [_OPERATION_EXAMPLE]}
    )

    id: int
    order_id: int
    kind: OperationKind
    status: OperationStatus
    params: dict[str, Any]
    attempts: int
    error_code: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    steps: list[StepOut]


class CustomerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    external_id: str
    email: str
    name: str


class OrderOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_ORDER_EXAMPLE]})

    id: int
    external_id: str
    status: OrderStatus
    customer: CustomerOut
    configuration: str
    os_template_id: int
    ipv4_count: int
    hostname: str | None
    server_id: int | None
    ip_addresses: list[str]
    suspension_reason: str | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime
    operations: list[OperationOut]


class OrderPage(BaseModel):
    items: list[OrderOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )
