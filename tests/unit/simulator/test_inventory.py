from __future__ import annotations

import json
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.simulator.inventory import Inventory, load_inventory

YAML_INVENTORY = """
admin: {email: root@dc.test, password: s3cret}
configurations:
  - name: small
    servers: 2
    cpu: Xeon
    ram_gb: 16
    disks: [240GB SSD]
  - {name: big, servers: 1, switch_ports: 2, new_servers: 1}
networks:
  - {cidr: 192.0.2.0/28, pool: only, gateway: 192.0.2.14}
os_templates:
  - {id: 10, name: FreeBSD 14}
timings: {os_install: 30, ip_allocate: 0}
"""


def test_default_inventory_has_the_documented_site() -> None:
    inventory = Inventory()
    assert [c.name for c in inventory.configurations] == [
        "i9-9900K-64Gb-2x1024NVMe",
        "E-2288G-32Gb-2x480SSD",
        "EPYC-7443P-128Gb-2x1920NVMe",
    ]
    assert [str(n.cidr) for n in inventory.networks] == ["203.0.113.0/24", "198.51.100.0/24"]
    assert [n.effective_gateway for n in inventory.networks] == [
        IPv4Address("203.0.113.1"),
        IPv4Address("198.51.100.1"),
    ]
    assert inventory.admin.email == "admin@dcimanager.local"


def test_yaml_inventory_loads(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(YAML_INVENTORY)
    inventory = load_inventory(path)
    assert (inventory.admin.email, inventory.admin.password) == ("root@dc.test", "s3cret")
    assert [(c.name, c.servers, c.switch_ports) for c in inventory.configurations] == [
        ("small", 2, 1),
        ("big", 1, 2),
    ]
    assert inventory.networks[0].effective_gateway == IPv4Address("192.0.2.14")
    assert inventory.timings.os_install == 30
    assert inventory.timings.clear_hdd == 2.0


def test_json_inventory_loads_the_same_as_yaml(tmp_path: Path) -> None:
    yaml_path, json_path = tmp_path / "site.yml", tmp_path / "site.json"
    yaml_path.write_text(YAML_INVENTORY)
    from_yaml = load_inventory(yaml_path)
    json_path.write_text(json.dumps(from_yaml.model_dump(mode="json")))
    assert load_inventory(json_path) == from_yaml


def test_empty_file_means_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_inventory(path) == Inventory()


def test_unknown_extension_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text("")
    with pytest.raises(ValueError, match=r"\.json, \.yaml or \.yml"):
        load_inventory(path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"configurations": [{"name": "a"}, {"name": "a"}]}, "duplicate configuration name: a"),
        (
            {
                "networks": [
                    {"cidr": "10.0.0.0/24", "pool": "p"},
                    {"cidr": "10.0.0.128/25", "pool": "q"},
                ]
            },
            "overlap",
        ),
        ({"networks": [{"cidr": "10.0.0.0/24", "pool": "p", "gateway": "10.0.0.255"}]}, "gateway"),
        ({"networks": [{"cidr": "10.0.0.0/24", "pool": "p", "gateway": "10.0.1.1"}]}, "gateway"),
        ({"networks": [{"cidr": "10.0.0.0/31", "pool": "p"}]}, "too small"),
        ({"os_templates": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]}, "duplicate OS"),
        ({"configurations": [{"name": "a", "servers": 1, "new_servers": 2}]}, "new_servers"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_inconsistent_inventories_are_refused(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Inventory.model_validate(data)


def test_overrides_replace_counts_and_long_operation_times_only() -> None:
    base = Inventory.model_validate(
        {"configurations": [{"name": "a", "servers": 5, "new_servers": 3}]}
    )
    changed = base.with_overrides(servers_per_configuration=2, op_seconds=0.5)
    assert [(c.servers, c.new_servers) for c in changed.configurations] == [(2, 2)]
    assert (changed.timings.os_install, changed.timings.clear_hdd, changed.timings.diag) == (
        0.5,
        0.5,
        0.5,
    )
    assert changed.timings.ip_allocate == base.timings.ip_allocate
    assert base.with_overrides() == base
