"""What the simulated data centre holds at start: hardware, networks, templates, admin.

An inventory is plain data, loadable from JSON or YAML, e.g.::

    admin: {email: admin@dcimanager.local, password: secret}
    configurations:
      - {name: E-2288G-32Gb-2x480SSD, servers: 3, cpu: Xeon E-2288G, ram_gb: 32,
         disks: [480GB SSD, 480GB SSD]}
    networks:
      - {cidr: 203.0.113.0/24, pool: public-a}
    timings: {os_install: 5, clear_hdd: 3, diag: 2, ip_allocate: 1}
"""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.simulator.faults import FaultableKind

# The simulator protects nothing real; a fixed, printed credential keeps demos simple.
DEFAULT_ADMIN_PASSWORD = "dcisim-admin"  # noqa: S105


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AdminSpec(_Spec):
    email: str = "admin@dcimanager.local"
    password: str = DEFAULT_ADMIN_PASSWORD
    full_name: str = "DCImanager administrator"


class ConfigurationSpec(_Spec):
    name: str = Field(min_length=1)
    servers: int = Field(default=4, ge=0)
    cpu: str = ""
    ram_gb: int = Field(default=0, ge=0)
    disks: list[str] = Field(default_factory=list)
    location_id: int = 1
    # Servers never diagnosed are reported with is_new=true until a diag finishes.
    new_servers: int = Field(default=0, ge=0)
    switch_ports: int = Field(default=1, ge=0)

    @model_validator(mode="after")
    def _new_within_total(self) -> Self:
        if self.new_servers > self.servers:
            raise ValueError("new_servers cannot exceed servers")
        return self


class NetworkSpec(_Spec):
    cidr: IPv4Network
    pool: str = Field(min_length=1)
    gateway: IPv4Address | None = None
    vlan: str = ""
    note: str = ""

    @model_validator(mode="after")
    def _gateway_is_a_host(self) -> Self:
        if self.cidr.num_addresses < 4:
            raise ValueError(f"{self.cidr} is too small to hold a gateway and servers")
        reserved = (self.cidr.network_address, self.cidr.broadcast_address)
        if self.gateway is not None and (self.gateway not in self.cidr or self.gateway in reserved):
            raise ValueError(f"gateway {self.gateway} is not a host address of {self.cidr}")
        return self

    @property
    def effective_gateway(self) -> IPv4Address:
        return self.gateway if self.gateway is not None else next(self.cidr.hosts())


class OsTemplateSpec(_Spec):
    id: int
    name: str


class Timings(_Spec):
    """Simulated seconds each long operation takes."""

    os_install: float = Field(default=2.0, ge=0)
    clear_hdd: float = Field(default=2.0, ge=0)
    diag: float = Field(default=2.0, ge=0)
    ip_allocate: float = Field(default=1.0, ge=0)

    def seconds(self, kind: FaultableKind) -> float:
        return float(getattr(self, kind))


def _default_configurations() -> list[ConfigurationSpec]:
    return [
        ConfigurationSpec(
            name="i9-9900K-64Gb-2x1024NVMe",
            cpu="Intel Core i9-9900K",
            ram_gb=64,
            disks=["1024GB NVMe", "1024GB NVMe"],
        ),
        ConfigurationSpec(
            name="E-2288G-32Gb-2x480SSD",
            cpu="Intel Xeon E-2288G",
            ram_gb=32,
            disks=["480GB SSD", "480GB SSD"],
        ),
        ConfigurationSpec(
            name="EPYC-7443P-128Gb-2x1920NVMe",
            cpu="AMD EPYC 7443P",
            ram_gb=128,
            disks=["1920GB NVMe", "1920GB NVMe"],
            switch_ports=2,
        ),
    ]


def _default_networks() -> list[NetworkSpec]:
    return [
        NetworkSpec(cidr=IPv4Network("203.0.113.0/24"), pool="public-a", note="TEST-NET-3"),
        NetworkSpec(cidr=IPv4Network("198.51.100.0/24"), pool="public-b", note="TEST-NET-2"),
    ]


def _default_os_templates() -> list[OsTemplateSpec]:
    return [
        OsTemplateSpec(id=1, name="Ubuntu 22.04"),
        OsTemplateSpec(id=2, name="Debian 12"),
        OsTemplateSpec(id=3, name="AlmaLinux 9"),
    ]


class Inventory(_Spec):
    admin: AdminSpec = Field(default_factory=AdminSpec)
    domain_suffix: str = "dc.example.net"
    configurations: list[ConfigurationSpec] = Field(default_factory=_default_configurations)
    networks: list[NetworkSpec] = Field(default_factory=_default_networks)
    os_templates: list[OsTemplateSpec] = Field(default_factory=_default_os_templates)
    timings: Timings = Field(default_factory=Timings)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _require_unique("configuration name", [c.name for c in self.configurations])
        _require_unique("OS template id", [t.id for t in self.os_templates])
        for index, network in enumerate(self.networks):
            for other in self.networks[:index]:
                if network.cidr.overlaps(other.cidr):
                    raise ValueError(f"networks {other.cidr} and {network.cidr} overlap")
        return self

    def with_overrides(
        self, *, servers_per_configuration: int | None = None, op_seconds: float | None = None
    ) -> Inventory:
        """A copy with every configuration's server count and/or every long operation's
        duration replaced, as the command-line flags ask."""
        data = self.model_dump()
        if servers_per_configuration is not None:
            for configuration in data["configurations"]:
                configuration["servers"] = servers_per_configuration
                configuration["new_servers"] = min(
                    configuration["new_servers"], servers_per_configuration
                )
        if op_seconds is not None:
            data["timings"].update(os_install=op_seconds, clear_hdd=op_seconds, diag=op_seconds)
        return Inventory.model_validate(data)


def _require_unique(what: str, values: list[Any]) -> None:
    duplicates = sorted({str(v) for v in values if values.count(v) > 1})
    if duplicates:
        raise ValueError(f"duplicate {what}: {', '.join(duplicates)}")


def load_inventory(path: Path) -> Inventory:
    """Read an inventory from a ``.json``, ``.yaml`` or ``.yml`` file."""
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = json.loads(text)
    elif suffix in (".yaml", ".yml"):
        data = yaml.safe_load(text)
    else:
        raise ValueError(f"{path}: inventory must be a .json, .yaml or .yml file")
    return Inventory.model_validate(data or {})
