"""--new-mac: ports get MACs of their own, known before they exist (derived from the source's),
and everything that names a port by its MAC follows: servers' NICs, floating IPs, SLAAC
addresses, address pairs on the port's own MAC."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from stackferry.engine.mapping import Mapping
from stackferry.engine.model import Resource
from stackferry.errors import WorkdirError
from stackferry.kinds.catalog import registry
from stackferry.kinds.port import _is_eui64, new_mac

OLD = "fa:16:3e:12:34:56"
SLAAC = "fd00:1::f816:3eff:fe12:3456"  # fd00:1::/64 with OLD's modified EUI-64
VIP = "fa:16:3e:99:99:99"  # a VRRP MAC of some other port: not this port's to change


def _resources() -> dict[str, list[Resource]]:
    port_ref = {"network": "front", "mac_address": OLD}
    port = Resource(
        "port",
        dict(port_ref),
        {
            "network": {"name": "front"},
            "fixed_ips": [
                {"subnet": {"network": "front", "name": "v4"}, "ip_address": "10.0.0.5"},
                {"subnet": {"network": "front", "name": "v6"}, "ip_address": SLAAC},
            ],
            "allowed_address_pairs": [
                {"ip_address": "10.0.0.100", "mac_address": OLD},
                {"ip_address": "10.0.0.101", "mac_address": VIP},
            ],
        },
        {"id": "p1"},
    )
    server = Resource("server", {"name": "web"}, {"ports": [dict(port_ref)]}, {"id": "s1"})
    fip = Resource("floating_ip", {"address": "203.0.113.5"}, {"port": dict(port_ref)}, {})
    return {"port": [port], "server": [server], "floating_ip": [fip]}


def test_without_the_switch_nothing_changes() -> None:
    mapped = Mapping(registry()).apply(_resources())
    assert mapped["port"][0].identity["mac_address"] == OLD
    assert mapped["server"][0].params["ports"][0]["mac_address"] == OLD


def test_with_it_the_port_and_everything_naming_it_get_the_same_new_mac() -> None:
    mapped = Mapping(registry(), switches=frozenset({"new_macs"})).apply(_resources())
    (port,) = mapped["port"]
    new = port.identity["mac_address"]
    assert new != OLD and new == new_mac(OLD) == new_mac(OLD.upper())  # stable: re-runs agree
    assert int(new.split(":")[0], 16) & 0b11 == 0b10, "locally administered unicast"
    assert mapped["server"][0].params["ports"] == [{"network": "front", "mac_address": new}]
    assert mapped["floating_ip"][0].params["port"]["mac_address"] == new
    v4, v6 = port.params["fixed_ips"]
    assert v4["ip_address"] == "10.0.0.5"
    assert v6["ip_address"] != SLAAC and _is_eui64(v6["ip_address"], new)
    assert ipaddress.ip_address(v6["ip_address"]) in ipaddress.ip_network("fd00:1::/64")
    assert [p["mac_address"] for p in port.params["allowed_address_pairs"]] == [new, VIP]
    assert _resources()["port"][0].identity["mac_address"] == OLD, "the workdir's stays"


def test_the_mapping_file_can_switch_it_on_and_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text("new_macs: true\n")
    assert "new_macs" in Mapping.load(path, registry()).switches
    path.write_text("new_macs: sometimes\n")
    with pytest.raises(WorkdirError, match="new_macs"):
        Mapping.load(path, registry())
