"""Security groups and their rules, routers, free-standing ports and floating IPs migrate;
neutron's own rules in the destination are pruned; re-runs, even without the journal, write
nothing twice."""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterator
from typing import Any

import openstack
import pytest

from devcloud.layout import DESTINATION, SOURCE
from devcloud.seed import connect
from stackferry.cloud import sdk
from tests.cloud.migration import Migration

VIP_MAC = "fa:16:3e:12:34:56"
NETWORK_KINDS = {"security_group", "security_group_rule", "router", "port", "floating_ip"}
# The tenant and its neutron resources only: global kinds (flavors...) are other tests' too.
ONLY = [
    arg
    for kind in ("projects", "networks", "subnets", *(f"{k}s" for k in sorted(NETWORK_KINDS)))
    for arg in ("--only", kind)
]


@pytest.fixture
def network_migration(migration: Migration) -> Iterator[Migration]:
    """The migration, with routes cleared before the tenants are purged: neutron refuses to
    remove a router interface that a static route needs."""
    yield migration
    for cloud in (SOURCE, DESTINATION):
        admin = connect(migration.clouds_yaml, cloud.name)
        for project in sdk.identity(admin).projects(
            name=migration.source.project_name, domain_id="default"
        ):
            for router in admin.network.routers(project_id=project.id):
                if router.routes:
                    admin.network.update_router(router, routes=[])


def _destination(migration: Migration) -> tuple[openstack.connection.Connection, str]:
    admin = connect(migration.clouds_yaml, DESTINATION.name)
    projects = list(
        sdk.identity(admin).projects(name=migration.source.project_name, domain_id="default")
    )
    assert len(projects) == 1
    return admin, projects[0].id


def _groups(admin: openstack.connection.Connection, pid: str) -> dict[str, Any]:
    groups = list(admin.network.security_groups(project_id=pid))
    names = [g.name for g in groups]
    assert len(names) == len(set(names)), f"duplicate security groups: {sorted(names)}"
    return {g.name: g for g in groups}


def _rule_counts(admin: openstack.connection.Connection, pid: str) -> Counter[str]:
    return Counter({name: len(g.security_group_rules) for name, g in _groups(admin, pid).items()})


def _differences(verify: dict[str, Any]) -> list[dict[str, Any]]:
    """Differences of this test's kinds (global ones, e.g. flavors, may be other tests')."""
    return [d for d in verify["differences"] if d["kind"] in NETWORK_KINDS]


def _rule(net: Any, group: Any, pid: str, **fields: Any) -> None:
    net.create_security_group_rule(security_group_id=group.id, project_id=pid, **fields)


def _ports(low: int, high: int | None = None) -> dict[str, int]:
    return {"port_range_min": low, "port_range_max": low if high is None else high}


def _seed_groups(migration: Migration) -> dict[str, Any]:
    """default, web and db with rules referencing each other both ways, a stateless group."""
    net, pid = migration.source.admin.network, migration.source.project_id
    groups = {
        "default": next(iter(net.security_groups(project_id=pid, name="default"))),
        "web": net.create_security_group(name="web", project_id=pid, description="web tier"),
        "db": net.create_security_group(name="db", project_id=pid),  # no default egress rules
        "raw": net.create_security_group(name="raw", project_id=pid, stateful=False),
    }
    net.set_tags(groups["web"], ["tier=web"])
    i4, i6 = (
        {"direction": "ingress", "ethertype": "IPv4"},
        {"direction": "ingress", "ethertype": "IPv6"},
    )
    e4, e6 = (
        {"direction": "egress", "ethertype": "IPv4"},
        {"direction": "egress", "ethertype": "IPv6"},
    )
    rules: list[tuple[str, dict[str, Any]]] = [
        # what neutron puts into a default group and into every new group
        ("default", {**i4, "remote_group_id": "default"}),
        ("default", e4),
        ("web", e4),
        ("web", e6),
        # prefixes in forms neutron keeps as given: "any", host bits set, capitals
        ("web", {**i4, "protocol": "tcp", **_ports(443), "remote_ip_prefix": "0.0.0.0/0"}),
        ("web", {**i4, "protocol": "tcp", **_ports(80, 81), "remote_ip_prefix": "10.0.0.5/24"}),
        ("web", {**i6, "protocol": "tcp", **_ports(22), "remote_ip_prefix": "FD00:99::/64"}),
        ("web", {**i4, "protocol": "icmp", **_ports(8, 0)}),
        ("web", {**i6, "protocol": "icmp"}),  # neutron makes it ipv6-icmp
        # remote groups both ways: web <- db and db <- web
        ("web", {**i4, "protocol": "tcp", **_ports(8080), "remote_group_id": "db"}),
        ("db", {**i4, "protocol": "tcp", **_ports(5432), "remote_group_id": "web"}),
        ("db", {**i6, "protocol": "udp", **_ports(1000, 2000), "remote_group_id": "web"}),
        ("db", {**e4, "protocol": "6", **_ports(443), "remote_ip_prefix": "10.30.0.0/16"}),
    ]
    for group, fields in rules:
        if "remote_group_id" in fields:
            fields["remote_group_id"] = groups[fields["remote_group_id"]].id
        _rule(net, groups[group], pid, **fields)
    # an admin's rule made without project_id is the admin project's, in the tenant's group
    net.create_security_group_rule(
        security_group_id=groups["db"].id,
        **i4,
        protocol="tcp",
        **_ports(22),
        remote_ip_prefix="10.1.0.0/16",
    )
    # and one the tenant's own user adds
    migration.source.conn.network.create_security_group_rule(
        security_group_id=groups["raw"].id,
        **i4,
        protocol="udp",
        **_ports(4789),
        description="vxlan",
    )
    return groups


def test_security_groups_routers_ports_and_floating_ips_migrate(
    network_migration: Migration,
) -> None:
    migration = network_migration
    net, pid = migration.source.admin.network, migration.source.project_id
    groups = _seed_groups(migration)
    public = net.find_network("public", ignore_missing=False)

    front = net.create_network(name="front", project_id=pid)
    front4 = net.create_subnet(
        network_id=front.id, project_id=pid, cidr="10.20.0.0/24", ip_version=4
    )
    front6 = net.create_subnet(
        network_id=front.id, project_id=pid, cidr="fd00:20::/64", ip_version=6
    )
    back = net.create_network(name="back", project_id=pid)
    back4 = net.create_subnet(network_id=back.id, project_id=pid, cidr="10.21.0.0/24", ip_version=4)

    edge = net.create_router(
        name="edge",
        project_id=pid,
        description="to the world",
        external_gateway_info={"network_id": public.id, "enable_snat": False},
    )
    net.set_tags(edge, ["zone=dmz"])
    net.add_interface_to_router(edge, subnet=front4.id)  # at the gateway address, 10.20.0.1
    spare = net.create_port(
        network_id=back.id,
        project_id=pid,
        fixed_ips=[{"subnet_id": back4.id, "ip_address": "10.21.0.254"}],
    )
    net.add_interface_to_router(edge, port=spare.id)  # at another address
    net.update_router(edge, routes=[{"destination": "192.168.50.0/24", "nexthop": "10.21.0.10"}])
    net.create_router(name="inner", project_id=pid, admin_state_up=False)

    vip = net.create_port(
        network_id=front.id,
        project_id=pid,
        name="vip",
        description="virtual IP",
        mac_address=VIP_MAC,
        fixed_ips=[
            {"subnet_id": front4.id, "ip_address": "10.20.0.50"},
            {"subnet_id": front6.id, "ip_address": "fd00:20::50"},
        ],
        allowed_address_pairs=[
            {"ip_address": "10.20.0.200"},
            {"ip_address": "10.20.1.0/24", "mac_address": "fa:16:3e:00:00:01"},
        ],
        security_group_ids=[groups["web"].id, groups["db"].id],
    )
    net.set_tags(vip, ["role=vip"])
    bare = net.create_port(
        network_id=back.id,
        project_id=pid,
        name="bare",
        fixed_ips=[{"subnet_id": back4.id, "ip_address": "10.21.0.60"}],
        port_security_enabled=False,
        security_group_ids=[],
        admin_state_up=False,
    )
    net.create_port(
        network_id=back.id,
        project_id=pid,
        fixed_ips=[{"subnet_id": back4.id, "ip_address": "10.21.0.61"}],
        security_group_ids=[groups["raw"].id],
    )
    bound = net.create_ip(
        floating_network_id=public.id,
        project_id=pid,
        port_id=vip.id,
        fixed_ip_address="10.20.0.50",
        description="vip",
    )
    net.set_tags(bound, ["svc=web"])
    loose = net.create_ip(floating_network_id=public.id, project_id=pid)
    source_rules = _rule_counts(migration.source.admin, pid)
    assert source_rules == Counter(default=2, web=8, db=4, raw=1)

    first = migration.migrate(*ONLY)
    assert first.exit_code == 0, first.output
    verify = migration.last_report("verify")
    assert verify["equal"] is True and _differences(verify) == [], verify["differences"]
    kinds = Counter(e["kind"] for e in verify["id_map"])
    assert kinds["security_group"] == 4
    assert kinds["security_group_rule"] == sum(source_rules.values())
    assert (kinds["router"], kinds["port"], kinds["floating_ip"]) == (2, 3, 2)

    admin, dst_pid = _destination(migration)
    dst = admin.network
    assert _rule_counts(admin, dst_pid) == source_rules  # default once, each rule once
    dst_groups = _groups(admin, dst_pid)
    assert dst_groups["raw"].stateful is False
    assert sorted(dst_groups["web"].tags) == ["stackferry", "tier=web"]

    dst_edge = next(iter(dst.routers(project_id=dst_pid, name="edge")))
    assert (
        dst_edge.external_gateway_info["network_id"]
        == dst.find_network("public", ignore_missing=False).id
    )
    assert dst_edge.external_gateway_info["enable_snat"] is False
    assert dst_edge.routes == [{"destination": "192.168.50.0/24", "nexthop": "10.21.0.10"}]
    interfaces = dst.ports(device_id=dst_edge.id, device_owner="network:router_interface")
    assert sorted(ip["ip_address"] for p in interfaces for ip in p.fixed_ips) == [
        "10.20.0.1",
        "10.21.0.254",
    ]

    free = {p.mac_address: p for p in dst.ports(project_id=dst_pid, device_owner="")}
    assert len(free) == 3 and bare.mac_address in free
    dst_vip = free[VIP_MAC]
    assert sorted(ip["ip_address"] for ip in dst_vip.fixed_ips) == ["10.20.0.50", "fd00:20::50"]
    assert {dst_groups["web"].id, dst_groups["db"].id} == set(dst_vip.security_group_ids)
    assert free[bare.mac_address].is_port_security_enabled is False

    fips = {
        e["identity"]["source_address"]: e for e in verify["id_map"] if e["kind"] == "floating_ip"
    }
    assert set(fips) == {bound.floating_ip_address, loose.floating_ip_address}
    for address, entry in fips.items():
        moved = entry["floating_ip_address"]
        assert moved["source"] == address
        assert ipaddress.ip_address(moved["destination"]) in ipaddress.ip_network(
            DESTINATION.external_cidr
        )
    dst_bound = dst.get_ip(fips[bound.floating_ip_address]["destination_id"])
    assert (dst_bound.port_id, dst_bound.fixed_ip_address) == (dst_vip.id, "10.20.0.50")
    assert f"stackferry-src:{bound.floating_ip_address}" in dst_bound.tags

    # Drift in the destination. Rules neutron adds by itself (a new group's egress rules, the
    # default group's own), which the source's groups lack: the next run deletes them. And
    # changes by hand: a route and an interface gone, a port renamed, a FIP let go.
    _rule(dst, dst_groups["db"], dst_pid, direction="egress", ethertype="IPv4")
    _rule(dst, dst_groups["db"], dst_pid, direction="egress", ethertype="IPv6")
    _rule(
        dst,
        dst_groups["default"],
        dst_pid,
        direction="ingress",
        ethertype="IPv6",
        remote_group_id=dst_groups["default"].id,
    )
    dst.update_router(dst_edge, routes=[])
    dst_back4 = next(iter(dst.subnets(project_id=dst_pid, cidr="10.21.0.0/24")))
    dst.remove_interface_from_router(dst_edge, subnet=dst_back4.id)
    dst.update_port(free[bare.mac_address], name="renamed")
    dst.update_ip(dst_bound, port_id=None)

    second = migration.migrate(*ONLY)
    assert second.exit_code == 0, second.output
    steps = migration.last_report("apply")["steps"]
    writes = Counter((s["kind"], s["action"]) for s in steps if s["action"] != "unchanged")
    assert writes == {
        ("security_group_rule", "delete"): 3,
        ("router", "update"): 1,
        ("port", "update"): 1,
        ("floating_ip", "update"): 1,
    }
    assert {s["result"] for s in steps} == {"done", "unchanged"}
    assert migration.last_report("verify")["equal"] is True
    assert _differences(migration.last_report("verify")) == []
    assert _rule_counts(admin, dst_pid) == source_rules
    dst_edge = dst.get_router(dst_edge.id)
    assert dst_edge.routes == [{"destination": "192.168.50.0/24", "nexthop": "10.21.0.10"}]
    assert dst.get_ip(dst_bound.id).port_id == dst_vip.id

    third = migration.migrate(*ONLY)
    assert third.exit_code == 0, third.output
    report = migration.last_report("apply")
    assert report["write_calls"] == 0
    assert set(report["summary"]) == {"unchanged"}


def test_interrupted_run_without_journal_creates_nothing_twice(
    network_migration: Migration,
) -> None:
    """Groups created and a FIP made but not yet tagged, when the run and its journal were
    lost: the next run finds them all and creates no second one."""
    migration = network_migration
    _seed_groups(migration)
    src = migration.source.admin.network
    fip = src.create_ip(
        floating_network_id=src.find_network("public", ignore_missing=False).id,
        project_id=migration.source.project_id,
        description="spare",
    )
    source_rules = _rule_counts(migration.source.admin, migration.source.project_id)

    exported = migration.export(*ONLY)
    assert exported.exit_code == 0, exported.output
    partial = migration.apply("--only", "projects", "--only", "security_groups")
    assert partial.exit_code == 0, partial.output
    admin, dst_pid = _destination(migration)
    dst = admin.network
    half_made = dst.create_ip(  # as the FIP kind leaves it between its POST and its tags
        floating_network_id=dst.find_network("public", ignore_missing=False).id,
        project_id=dst_pid,
        description=f"stackferry-src:{fip.floating_ip_address}",
    )
    (migration.workdir / "journal.sqlite").unlink()  # the run's record is lost

    resumed = migration.migrate(*ONLY)
    assert resumed.exit_code == 0, resumed.output
    actions = {(s["kind"], s["action"]) for s in migration.last_report("apply")["steps"]}
    assert {a for k, a in actions if k == "security_group"} == {"unchanged"}
    assert ("floating_ip", "update") in actions
    assert migration.last_report("verify")["equal"] is True
    assert _differences(migration.last_report("verify")) == []
    assert _rule_counts(admin, dst_pid) == source_rules  # and no group twice (checked inside)
    (only,) = dst.ips(project_id=dst_pid)
    assert only.id == half_made.id and only.description == "spare"
    assert f"stackferry-src:{fip.floating_ip_address}" in only.tags
