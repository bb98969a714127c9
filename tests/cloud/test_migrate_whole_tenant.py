"""A whole tenant with every kind, in numbers, migrates to zero differences; a re-run writes
nothing. (10+ networks, 15+ subnets with IPv6 and host routes, 5 routers with gateway,
interfaces and static routes, 20 security groups with remote-group rules between them,
10 keypairs of two users, flavors with extra specs, quotas, 2 users with roles.)"""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

from devcloud.demo import seed_tenant
from devcloud.layout import DESTINATION
from devcloud.seed import connect
from devcloud.tenants import unique_name
from stackferry.cloud import sdk
from tests.cloud.migration import Migration


def _public_key(tmp: Path, name: str) -> str:
    key = tmp / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key.with_suffix(".pub").read_text().strip()


def test_whole_tenant_in_numbers(migration: Migration, tmp_path: Path) -> None:
    src = migration.source
    admin, net, pid = src.admin, src.admin.network, src.project_id
    seed_tenant(admin, pid, scale=5)  # 15 networks, 20 subnets, 15 groups, a router, FIPs
    public = net.find_network("public", ignore_missing=False)
    for i in range(1, 5):  # four more routers: gateway, interface, static route
        router = net.create_router(
            name=f"r{i}", project_id=pid, external_gateway_info={"network_id": public.id}
        )
        mgmt = next(iter(net.subnets(project_id=pid, cidr=f"10.{i}.3.0/24")))
        net.update_subnet(mgmt, gateway_ip=f"10.{i}.3.1")
        net.add_interface_to_router(router, subnet=mgmt.id)
        net.update_router(
            router, routes=[{"destination": f"172.30.{i}.0/24", "nexthop": f"10.{i}.3.9"}]
        )
    ring = [net.create_security_group(name=f"ring{i}", project_id=pid) for i in range(5)]
    for i, group in enumerate(ring):  # each admits the next: remote-group rules in a cycle
        net.create_security_group_rule(
            security_group_id=group.id,
            project_id=pid,
            direction="ingress",
            ethertype="IPv4",
            protocol="tcp",
            port_range_min=8000 + i,
            port_range_max=8000 + i,
            remote_group_id=ring[(i + 1) % 5].id,
        )
    idn = sdk.identity(admin)
    second = idn.create_user(name=unique_name("sf-user"), domain_id="default")
    idn.assign_project_role_to_user(
        pid, second.id, idn.find_role("reader", ignore_missing=False).id
    )
    for user_id in (src.user_id, second.id):
        for k in range(5):
            admin.compute.create_keypair(
                name=f"key{k}", user_id=user_id, public_key=_public_key(tmp_path, f"{user_id}-{k}")
            )
    flavor_name = unique_name("sf-flavor")
    flavor = admin.compute.create_flavor(
        name=flavor_name, vcpus=2, ram=2048, disk=10, is_public=False
    )
    admin.compute.create_flavor_extra_specs(flavor, {"hw:mem_page_size": "large"})
    admin.compute.flavor_add_tenant_access(flavor, pid)
    c2 = connect(migration.clouds_yaml, DESTINATION.name)
    try:
        first = migration.migrate()
        assert first.exit_code == 0, first.output
        verify = migration.last_report("verify")
        assert verify["equal"] is True, [
            d for d in verify["differences"] if d["problem"] != "extra"
        ]
        kinds = Counter(e["kind"] for e in verify["id_map"])
        assert kinds["network"] >= 10 and kinds["subnet"] >= 15
        assert kinds["router"] == 5 and kinds["security_group"] >= 20
        assert kinds["keypair"] == 10 and kinds["user"] == 2
        assert kinds["role_assignment"] == 2 and kinds["quota"] == 3
        assert kinds["flavor"] >= 1 and kinds["floating_ip"] >= 6

        project = next(iter(sdk.identity(c2).projects(name=src.project_name)))
        groups = Counter(g.name for g in c2.network.security_groups(project_id=project.id))
        assert set(groups.values()) == {1}, "a security group was created twice"

        again = migration.migrate()
        assert again.exit_code == 0, again.output
        assert migration.last_report("apply")["write_calls"] == 0
    finally:
        idn.delete_user(second.id, ignore_missing=True)
        admin.compute.delete_flavor(flavor)
        for f in c2.compute.flavors(is_public=None):
            if f.name == flavor_name:
                c2.compute.delete_flavor(f)
