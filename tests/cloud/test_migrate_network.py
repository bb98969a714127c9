"""Networks and subnets migrate with every portable field; a re-run writes nothing."""

from __future__ import annotations

from typing import Any

from devcloud.layout import DESTINATION, PASSWORD
from devcloud.seed import connect
from stackferry.cloud import sdk
from tests.cloud.migration import Migration

# What the API shows, listed here and not taken from stackferry's own field declarations, so
# that a field stackferry dropped on both sides (and verify would not notice) is caught.
NETWORK_FIELDS = ("description", "mtu", "port_security_enabled", "shared", "router:external",
                  "admin_state_up", "availability_zone_hints")  # fmt: skip
SUBNET_FIELDS = ("name", "description", "ip_version", "gateway_ip", "enable_dhcp",
                 "dns_nameservers", "allocation_pools", "host_routes", "ipv6_ra_mode",
                 "ipv6_address_mode")  # fmt: skip


def _as_the_api_shows(conn: Any, project_id: str) -> dict[str, Any]:
    networks = conn.network.get("/networks", params={"project_id": project_id}).json()
    subnets = conn.network.get("/subnets", params={"project_id": project_id}).json()
    names = {n["id"]: n["name"] for n in networks["networks"]}
    shown: dict[str, Any] = {}
    for n in networks["networks"]:
        tags = sorted(t for t in n["tags"] if t != "stackferry")
        shown[f"network {n['name']}"] = {**{f: n[f] for f in NETWORK_FIELDS}, "tags": tags}
    for sn in subnets["subnets"]:
        key = f"subnet {names[sn['network_id']]} {sn['cidr']}"
        shown[key] = {f: sn[f] for f in SUBNET_FIELDS}
    return shown


def test_networks_and_subnets_migrate_then_rerun_is_idempotent(migration: Migration) -> None:
    net = migration.source.admin.network
    pid = migration.source.project_id
    n1 = net.create_network(name="front", project_id=pid, mtu=1400, description="web tier")
    net.set_tags(n1, ["tier=front", "owner=ops"])
    net.create_network(name="back", project_id=pid, port_security_enabled=False)
    net.create_subnet(
        network_id=n1.id,
        project_id=pid,
        name="front-v4",
        cidr="10.1.0.0/24",
        ip_version=4,
        dns_nameservers=["10.0.0.53"],
        enable_dhcp=False,
        allocation_pools=[{"start": "10.1.0.10", "end": "10.1.0.99"}],
        host_routes=[{"destination": "10.9.0.0/16", "nexthop": "10.1.0.254"}],
    )
    net.create_subnet(
        network_id=n1.id, project_id=pid, cidr="10.1.1.0/24", ip_version=4, gateway_ip=None
    )
    net.create_subnet(
        network_id=n1.id,
        project_id=pid,
        cidr="fd00:1::/64",
        ip_version=6,
        ipv6_ra_mode="dhcpv6-stateless",
        ipv6_address_mode="dhcpv6-stateless",
    )

    first = migration.migrate("--only", "networks", "--only", "subnets")
    assert first.exit_code == 0, first.output
    verify = migration.last_report("verify")
    assert verify["equal"] is True and verify["differences"] == []
    kinds = sorted(e["kind"] for e in verify["id_map"])
    assert kinds == ["domain", "network", "network", "project", "subnet", "subnet", "subnet"]
    dst = connect(migration.clouds_yaml, DESTINATION.name)
    (project,) = sdk.identity(dst).projects(name=migration.source.project_name)
    source = _as_the_api_shows(migration.source.admin, pid)
    assert _as_the_api_shows(dst, project.id) == source
    assert (
        source["network front"]["mtu"] == 1400
        and source["network back"]["port_security_enabled"] is False
    )

    # Nothing secret reaches a file: not the clouds' password, not a token.
    token = str(migration.source.admin.auth_token)
    for path in migration.workdir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert PASSWORD.encode() not in data and token.encode() not in data, path
            assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"

    second = migration.migrate("--only", "networks", "--only", "subnets")
    assert second.exit_code == 0, second.output
    report = migration.last_report("apply")
    assert report["write_calls"] == 0
    assert set(report["summary"]) == {"unchanged"}
