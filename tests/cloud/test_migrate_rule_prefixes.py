"""A rule's remote prefix arrives exactly as the source shows it: 0.0.0.0/0 and ::/0 stay
written out, a rule without one stays without one. Neutron takes them for the same rule, its
API does not: verify sees the difference, and apply replaces such a rule."""

from __future__ import annotations

from typing import Any

from devcloud.layout import DESTINATION
from devcloud.seed import connect
from stackferry.cloud import sdk
from tests.cloud.migration import Migration

ONLY = ("--only", "security_groups", "--only", "security_group_rules")


def _ingress(admin: Any, project_id: str) -> dict[int, Any]:
    (group,) = (g for g in admin.network.security_groups(project_id=project_id) if g.name == "web")
    return {
        r["port_range_min"]: r for r in group.security_group_rules if r["direction"] == "ingress"
    }


def test_rule_prefixes_arrive_as_the_source_shows_them(migration: Migration) -> None:
    net, pid = migration.source.admin.network, migration.source.project_id
    web = net.create_security_group(name="web", project_id=pid)
    for port, ethertype, prefix in (
        (443, "IPv4", "0.0.0.0/0"),
        (80, "IPv6", "::/0"),
        (22, "IPv4", None),
    ):
        net.create_security_group_rule(
            security_group_id=web.id, project_id=pid, direction="ingress", ethertype=ethertype,
            protocol="tcp", port_range_min=port, port_range_max=port, remote_ip_prefix=prefix,
        )  # fmt: skip
    source = {
        port: r["remote_ip_prefix"] for port, r in _ingress(migration.source.admin, pid).items()
    }
    assert source == {443: "0.0.0.0/0", 80: "::/0", 22: None}

    assert migration.migrate(*ONLY).exit_code == 0
    dst = connect(migration.clouds_yaml, DESTINATION.name)
    (project,) = sdk.identity(dst).projects(name=migration.source.project_name)
    rules = _ingress(dst, project.id)
    assert {port: r["remote_ip_prefix"] for port, r in rules.items()} == source

    # As an earlier stackferry left it: the same rule, without its prefix written out.
    dst.network.delete_security_group_rule(rules[443]["id"])
    dst.network.create_security_group_rule(
        security_group_id=rules[443]["security_group_id"], project_id=project.id,
        direction="ingress", ethertype="IPv4", protocol="tcp", port_range_min=443,
        port_range_max=443,
    )  # fmt: skip
    result = migration.verify(*ONLY)
    assert result.exit_code == 1 and "remote_ip_prefix" in result.output, result.output

    plan = migration.plan_json(*ONLY)
    replaced = [s for s in plan["steps"] if s["action"] == "replace"]
    assert [s["identity"]["port_range_min"] for s in replaced] == [443]
    assert migration.migrate(*ONLY).exit_code == 0
    assert _ingress(dst, project.id)[443]["remote_ip_prefix"] == "0.0.0.0/0"
    assert migration.verify(*ONLY).exit_code == 0
