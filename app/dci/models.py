"""Shapes of DCImanager answers.

Only what the vendor's examples guarantee is required; everything else is
optional, and unknown fields are kept rather than rejected, so a newer
DCImanager that adds fields does not break us.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field


class DCIModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


T = TypeVar("T")


class Page(DCIModel, Generic[T]):
    """One page of a list call; ``size`` is the total number of matching rows."""

    items: list[T] = Field(default_factory=list, alias="list")
    size: int | None = None


class TaskRef(DCIModel):
    """Answer of a write: the object's id and, for asynchronous work, the task id."""

    id: int
    task: int | None = None


class ConfigurationStock(DCIModel):
    configuration: str | None = None
    free_server_count: int = 0


class Operation(DCIModel):
    id: int | None = None
    type: str | None = None
    status: str | None = None
    status_info: Any = None
    progress_info: Any = None


class OsTemplate(DCIModel):
    id: int | None = None
    name: str | None = None


class SwitchConnection(DCIModel):
    admin_status: str | None = None
    oper_status: str | None = None


class Server(DCIModel):
    id: int
    domain: str | None = None
    configuration: str | None = None
    state: str | None = None
    state_info: Any = None
    hardware_info: Any = None
    operation: Operation | None = None
    os_template: OsTemplate | None = None
    ip: list[Any] = Field(default_factory=list)
    switch_connection: list[SwitchConnection] = Field(default_factory=list)
    owner_email: str | None = None
    is_new: bool | None = None
    location_id: int | None = None
    power_status: str | None = None


class User(DCIModel):
    id: int
    email: str | None = None
    server_count: int | None = None
    # The vendor example shows a string ("[@user]"); other versions may send a list.
    roles: str | list[str] | None = None
    vlans_per_user: int | None = None


class IPAddress(DCIModel):
    id: int
    name: str | None = None
    domain: str | None = None
    family: str | None = None
    gateway: str | None = None
    network: str | None = None
    server: str | None = None
    status: str | None = None
    status_info: Any = None


# The vendor example types counters as strings, but nothing promises that they
# are not sent as numbers, so both are accepted.
Counter = str | int | None


class Network(DCIModel):
    id: int
    name: str | None = None
    family: int | str | None = None
    mask: int | None = None
    gateway: str | None = None
    userspace: int | None = None
    vlan: str | int | None = None
    note: str | None = None
    size: Counter = None
    using_ip: Counter = None
    total_ip: Counter = None


class Pool(DCIModel):
    id: int
    name: str | None = None
    userspace: int | None = None
    note: str | None = None
    is_public: str | bool | None = None
    using_ip: Counter = None
    using_ipv4: Counter = None
    using_ipv6: Counter = None
    total_ip: Counter = None
    total_ipv4: Counter = None
    total_ipv6: Counter = None


class LoginAnswer(DCIModel):
    id: int | str | None = None
    token: str = Field(repr=False)
