"""Address groups (and the rules that allow from them) and QoS policies with their rules
(and the networks and ports that use them) migrate, checked in the destination's own API;
a re-run writes nothing; changes in the source are carried over in place."""

from __future__ import annotations

from typing import Any

from devcloud.layout import DESTINATION
from devcloud.seed import connect
from stackferry.cloud import sdk
from tests.cloud.migration import Migration

KINDS = ("projects", "networks", "subnets", "ports", "security_groups", "security_group_rules",
         "address_groups", "qos_policies")  # fmt: skip
ONLY = tuple(arg for kind in KINDS for arg in ("--only", kind))


def _rules(policy: Any) -> list[dict[str, Any]]:
    keep = ("type", "direction", "max_kbps", "max_burst_kbps", "min_kbps", "dscp_mark")
    return sorted(
        ({k: r[k] for k in keep if k in r} for r in policy.rules),
        key=lambda r: (r["type"], r.get("direction") or ""),
    )


def test_address_groups_and_qos_policies_migrate(migration: Migration) -> None:
    net, pid = migration.source.admin.network, migration.source.project_id
    office = net.create_address_group(
        name="office",
        project_id=pid,
        description="our offices",
        addresses=["192.0.2.0/24", "198.51.100.0/25"],
    )
    ssh = net.create_security_group(name="ssh", project_id=pid)
    net.create_security_group_rule(
        security_group_id=ssh.id, project_id=pid, direction="ingress", ethertype="IPv4",
        protocol="tcp", port_range_min=22, port_range_max=22, remote_address_group_id=office.id,
    )  # fmt: skip
    gold = net.create_qos_policy(name="gold", project_id=pid, description="gold tier")
    net.create_qos_bandwidth_limit_rule(
        gold, max_kbps=10000, max_burst_kbps=2000, direction="egress"
    )
    net.create_qos_dscp_marking_rule(gold, dscp_mark=26)
    network = net.create_network(name="qnet", project_id=pid, qos_policy_id=gold.id)
    net.create_subnet(network_id=network.id, project_id=pid, cidr="10.77.0.0/24", ip_version=4)
    net.create_port(network_id=network.id, project_id=pid, name="qport", qos_policy_id=gold.id)

    first = migration.migrate(*ONLY)
    assert first.exit_code == 0, first.output

    dst = connect(migration.clouds_yaml, DESTINATION.name)
    (project,) = sdk.identity(dst).projects(name=migration.source.project_name)
    dpid = project.id
    (d_office,) = dst.network.address_groups(project_id=dpid)
    assert (d_office.name, d_office.description) == ("office", "our offices")
    assert sorted(d_office.addresses) == ["192.0.2.0/24", "198.51.100.0/25"]
    (d_ssh,) = (g for g in dst.network.security_groups(project_id=dpid) if g.name == "ssh")
    (rule,) = (r for r in d_ssh.security_group_rules if r["direction"] == "ingress")
    assert rule["remote_address_group_id"] == d_office.id and rule["port_range_min"] == 22
    (d_gold,) = dst.network.qos_policies(project_id=dpid)
    assert (d_gold.name, d_gold.description) == ("gold", "gold tier")
    assert _rules(d_gold) == _rules(net.get_qos_policy(gold.id))
    assert _rules(d_gold) == [
        {
            "type": "bandwidth_limit",
            "direction": "egress",
            "max_kbps": 10000,
            "max_burst_kbps": 2000,
        },
        {"type": "dscp_marking", "dscp_mark": 26},
    ]
    (d_net,) = dst.network.networks(project_id=dpid, name="qnet")
    assert d_net.qos_policy_id == d_gold.id
    (d_port,) = dst.network.ports(project_id=dpid, name="qport")
    assert d_port.qos_policy_id == d_gold.id

    again = migration.migrate(*ONLY)
    assert again.exit_code == 0 and migration.last_report("apply")["write_calls"] == 0

    # Changes in the source are carried over in place.
    net.add_addresses_to_address_group(office, ["203.0.113.0/24"])
    net.remove_addresses_from_address_group(office, ["198.51.100.0/25"])
    policy = net.get_qos_policy(gold.id)
    by_type = {r["type"]: r for r in policy.rules}
    net.update_qos_bandwidth_limit_rule(by_type["bandwidth_limit"]["id"], gold, max_kbps=20000)
    net.delete_qos_dscp_marking_rule(by_type["dscp_marking"]["id"], gold)
    net.create_qos_minimum_bandwidth_rule(gold, min_kbps=1000, direction="egress")
    changed = migration.migrate(*ONLY)
    assert changed.exit_code == 0, changed.output
    updates = sorted(
        (s["kind"], sorted(s["changes"]))
        for s in migration.last_report("apply")["steps"]
        if s["action"] == "update"
    )
    assert updates == [("address_group", ["addresses"]), ("qos_policy", ["rules"])]
    assert sorted(dst.network.get_address_group(d_office.id).addresses) == [
        "192.0.2.0/24",
        "203.0.113.0/24",
    ]
    assert _rules(dst.network.get_qos_policy(d_gold.id)) == [
        {
            "type": "bandwidth_limit",
            "direction": "egress",
            "max_kbps": 20000,
            "max_burst_kbps": 2000,
        },
        {"type": "minimum_bandwidth", "direction": "egress", "min_kbps": 1000},
    ]
    assert dst.network.get_qos_policy(d_gold.id).id == d_gold.id  # in place, same policy
