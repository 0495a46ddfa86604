"""Request bodies of the simulated calls.

Bodies are parsed as JSON whatever the ``Content-Type`` says: the vendor's own
examples use ``curl -d``, which labels JSON as form data. Fields the simulator
does not act on are declared all the same, so a wrongly typed one is refused as
the real service would presumably refuse it; unknown fields are ignored.
"""

from __future__ import annotations

import json
from ipaddress import IPv4Address
from typing import Any, Literal, TypeVar

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from app.simulator.errors import ErrorKind, SimError, describe_invalid

Model = TypeVar("Model", bound=BaseModel)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class LoginBody(_Body):
    email: str
    password: SecretStr


class UserCreateBody(_Body):
    email: str = Field(min_length=3, pattern=r"^[^@\s]+@[^@\s]+$")
    full_name: str = ""
    password: SecretStr = SecretStr("")
    phone_number: str = ""
    role: str = Field(default="user", min_length=1)


class OwnerBody(_Body):
    owner: int


class IpAllocateBody(_Body):
    domain: str = ""
    family: Literal["ipv4"] = "ipv4"
    ip_name: IPv4Address | None = None
    ip_net: int | None = None
    ip_pool: int | None = None
    set_as_main_ipv4: bool = False
    userspace: int | None = None

    @field_validator("ip_name", "ip_net", "ip_pool", mode="before")
    @classmethod
    def _blank_means_any(cls, value: Any) -> Any:
        # Ids start at 1, so clients that cannot omit a field send 0 or "" for "any".
        return None if value in ("", 0) else value


class DiagBody(_Body):
    setup_ipmi: bool = False
    ipmi_pool: int = 0
    os_template_id: int = 0
    clear_hdd: str = "none"


class ClearHddBody(_Body):
    clear_hdd: str = Field(min_length=1)


class OsInstallBody(_Body):
    os_template_id: int
    hdd_raid: str = ""
    password: SecretStr = SecretStr("")
    ssh_pub_keys: list[str] = Field(default_factory=list)


async def read_json(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise SimError(ErrorKind.INVALID_REQUEST, "Request body is not valid JSON") from exc


def invalid_body(exc: ValidationError) -> SimError:
    return SimError(ErrorKind.INVALID_REQUEST, describe_invalid(exc.errors(include_input=False)))


async def parse_body(request: Request, model: type[Model]) -> Model:
    data = await read_json(request)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_body(exc) from exc
