"""A demo tenant to migrate: every kind stackferry moves, seeded through the APIs.

Idempotent (finds before it creates), so ``scripts/demo.sh`` can run any number of times.
``scale`` multiplies the networks, subnets and security groups, for benchmarks.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from openstack import exceptions
from openstack.connection import Connection

from devcloud.seed import connect
from stackferry.cloud import sdk


def _keypair_material(name: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "key"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True
        )
        return (key.with_suffix(".pub")).read_text().strip()


class Seeder:
    def __init__(self, conn: Connection, project_id: str) -> None:
        self.conn, self.pid = conn, project_id
        self.net = conn.network

    def network(self, name: str, **attrs: Any) -> Any:
        found = next(iter(self.net.networks(name=name, project_id=self.pid)), None)
        return found or self.net.create_network(name=name, project_id=self.pid, **attrs)

    def subnet(self, network: Any, cidr: str, **attrs: Any) -> Any:
        found = next(iter(self.net.subnets(network_id=network.id, cidr=cidr)), None)
        return found or self.net.create_subnet(
            network_id=network.id, project_id=self.pid, cidr=cidr, **attrs
        )

    def group(self, name: str, rules: list[dict[str, Any]]) -> Any:
        found = next(iter(self.net.security_groups(name=name, project_id=self.pid)), None)
        if found:
            return found
        group = self.net.create_security_group(
            name=name, project_id=self.pid, description=f"{name} tier"
        )
        for rule in rules:
            self.net.create_security_group_rule(
                security_group_id=group.id, project_id=self.pid, **rule
            )
        return group


def seed_tenant(
    conn: Connection, project_id: str, scale: int = 1, user_id: str | None = None
) -> dict[str, int]:
    s = Seeder(conn, project_id)
    # Quotas first: larger scales need more than the defaults allow.
    conn.compute.update_quota_set(project_id, instances=20, cores=40)
    conn.network.update_quota(
        project_id,
        networks=10 + 5 * scale,
        security_groups=10 + 5 * scale,
        security_group_rules=100 + 20 * scale,
        subnets=10 + 5 * scale,
        ports=50 + 10 * scale,
        floating_ips=10 + 2 * scale,
    )
    sdk.block_storage(conn).update_quota_set(project_id, volumes=15, gigabytes=500)
    public = conn.network.find_network("public", ignore_missing=False)
    router = next(iter(s.net.routers(name="edge", project_id=project_id)), None)
    if router is None:
        router = s.net.create_router(
            name="edge", project_id=project_id, external_gateway_info={"network_id": public.id}
        )
    interfaces = {ip["subnet_id"] for p in s.net.ports(device_id=router.id) for ip in p.fixed_ips}
    groups = {}
    for i in range(scale):
        app = s.network(f"app{i}", mtu=1400, description="application tier")
        db = s.network(f"db{i}", port_security_enabled=True)
        mgmt = s.network(f"mgmt{i}", port_security_enabled=False)
        app4 = s.subnet(
            app,
            f"10.{i}.1.0/24",
            ip_version=4,
            name=f"app{i}-v4",
            dns_nameservers=["10.0.0.53"],
            host_routes=[{"destination": "192.168.50.0/24", "nexthop": f"10.{i}.1.254"}],
        )
        s.subnet(
            app,
            f"fd00:{i}:1::/64",
            ip_version=6,
            name=f"app{i}-v6",
            ipv6_ra_mode="slaac",
            ipv6_address_mode="slaac",
        )
        db4 = s.subnet(db, f"10.{i}.2.0/24", ip_version=4, name=f"db{i}-v4", enable_dhcp=False)
        s.subnet(
            mgmt,
            f"10.{i}.3.0/24",
            ip_version=4,
            name=f"mgmt{i}-v4",
            gateway_ip=None,
            allocation_pools=[{"start": f"10.{i}.3.100", "end": f"10.{i}.3.200"}],
        )
        for subnet in (app4, db4):
            if subnet.id not in interfaces:
                s.net.add_interface_to_router(router, subnet=subnet.id)
        web = s.group(
            f"web{i}",
            [
                {
                    "direction": "ingress",
                    "ethertype": "IPv4",
                    "protocol": "tcp",
                    "port_range_min": 443,
                    "port_range_max": 443,
                    "remote_ip_prefix": "0.0.0.0/0",
                },
                {
                    "direction": "ingress",
                    "ethertype": "IPv6",
                    "protocol": "tcp",
                    "port_range_min": 80,
                    "port_range_max": 80,
                    "remote_ip_prefix": "::/0",
                },
            ],
        )
        groups[f"web{i}"] = web
        s.group(
            f"db{i}",
            [
                {
                    "direction": "ingress",
                    "ethertype": "IPv4",
                    "protocol": "tcp",
                    "port_range_min": 5432,
                    "port_range_max": 5432,
                    "remote_group_id": web.id,
                },
            ],
        )
        s.group(
            f"ssh{i}",
            [
                {
                    "direction": "ingress",
                    "ethertype": "IPv4",
                    "protocol": "tcp",
                    "port_range_min": 22,
                    "port_range_max": 22,
                    "remote_ip_prefix": "10.0.0.0/8",
                },
            ],
        )
        vip = next(iter(s.net.ports(name=f"vip{i}", project_id=project_id)), None)
        if vip is None:
            vip = s.net.create_port(
                name=f"vip{i}",
                network_id=app.id,
                project_id=project_id,
                fixed_ips=[{"subnet_id": app4.id, "ip_address": f"10.{i}.1.10"}],
                allowed_address_pairs=[{"ip_address": f"10.{i}.1.11"}],
                security_group_ids=[web.id],
            )
        if not list(s.net.ips(port_id=vip.id)):
            s.net.create_ip(
                floating_network_id=public.id,
                port_id=vip.id,
                project_id=project_id,
                description=f"vip{i}",
            )
    router = s.net.get_router(router.id)
    if not router.routes:
        s.net.update_router(
            router, routes=[{"destination": "192.168.50.0/24", "nexthop": "10.0.1.254"}]
        )
    if not [f for f in s.net.ips(project_id=project_id) if not f.port_id]:
        s.net.create_ip(floating_network_id=public.id, project_id=project_id, description="spare")
    if user_id:
        for name in ("laptop", "ci"):
            if conn.compute.find_keypair(name, user_id=user_id) is None:
                conn.compute.create_keypair(
                    name=name, public_key=_keypair_material(name), user_id=user_id
                )
    flavor = conn.compute.find_flavor("demo.small")
    if flavor is None:
        flavor = conn.compute.create_flavor(
            name="demo.small", vcpus=1, ram=512, disk=2, is_public=False
        )
        conn.compute.create_flavor_extra_specs(
            flavor, {"hw:cpu_policy": "shared", "demo:tier": "small"}
        )
        conn.compute.flavor_add_tenant_access(flavor, project_id)
    return {
        "networks": len(list(s.net.networks(project_id=project_id))),
        "security_groups": len(list(s.net.security_groups(project_id=project_id))),
    }


def seed_demo(
    clouds_yaml: Path, cloud: str = "c1", project: str = "demo", domain: str = "lab", scale: int = 1
) -> dict[str, int]:
    conn = connect(clouds_yaml, cloud)
    idn = sdk.identity(conn)
    domain_obj = idn.find_domain(domain, ignore_missing=False)
    project_obj = idn.find_project(project, domain_id=domain_obj.id, ignore_missing=False)
    user = next(iter(idn.users(name=project, domain_id=domain_obj.id)), None)
    counts = seed_tenant(conn, project_obj.id, scale, user.id if user else None)
    # Server groups take their project from the token: made as the tenant's own user.
    tenant = connect(clouds_yaml, f"{cloud}-demo")
    if not any(g.name == "spread" for g in tenant.compute.server_groups()):
        tenant.compute.create_server_group(
            name="spread", policy="anti-affinity", rules={"max_server_per_host": 2}
        )
    made = seed_data(conn, tenant, project_obj.id)
    seed_servers(tenant, made["small-private"])
    return {
        **counts,
        "servers": len(list(tenant.compute.servers())),
        "images": len(list(sdk.image(conn).images(owner=project_obj.id))),
        "volumes": len(list(sdk.block_storage(tenant).volumes())),
    }


def _wait(fetch: Any, status: str, what: str, timeout: float = 600) -> Any:
    deadline = time.monotonic() + timeout
    item = fetch()
    while item.status != status:
        if item.status in ("error", "killed", "ERROR") or time.monotonic() > deadline:
            raise RuntimeError(f"{what}: {item.status}")
        time.sleep(1)
        item = fetch()
    return item


def seed_data(
    admin: Connection,
    member: Connection,
    project_id: str,
    share_with: str | None = None,
    image_mib: int = 4,
    volume_gib: int = 1,
) -> dict[str, str]:
    """Three images (one protected with custom properties, one shared, one private with
    limits) and two volumes (one bootable from an image, one made from a snapshot) with random
    bytes, as a tenant's own user would make them. Returns name -> ID. Idempotent by name."""
    images, volumes = sdk.image(member), sdk.block_storage(member)
    sdk.block_storage(admin).update_quota_set(project_id, volumes=20, gigabytes=200, snapshots=10)
    made: dict[str, str] = {}

    def image(name: str, **attrs: Any) -> str:
        found = next(iter(images.images(name=name, owner=project_id)), None)
        if found is None:
            found = images.create_image(
                name=name,
                data=os.urandom(image_mib * 1024 * 1024),
                disk_format="raw",
                container_format="bare",
                allow_duplicates=True,
                wait=True,
                **attrs,
            )
        made[name] = str(found.id)
        return str(found.id)

    image("golden", is_protected=True, tags=["golden"], os_distro="cirros",
          hw_disk_bus="virtio", visibility="private")  # fmt: skip
    shared = image("shared-tools", visibility="shared", team="ops")
    small = image("small-private", visibility="private", min_disk=1, min_ram=64, build="42")
    if share_with and not any(m.member_id == share_with for m in images.members(shared)):
        images.add_member(shared, member_id=share_with)
        admin.image.put(f"/images/{shared}/members/{share_with}", json={"status": "accepted"})

    def volume(name: str, **attrs: Any) -> str:
        found = next((v for v in volumes.volumes() if v.name == name), None)
        if found is None:
            found = volumes.create_volume(name=name, size=volume_gib, **attrs)
            _wait(lambda: volumes.get_volume(found.id), "available", f"volume {name}")
        made[name] = str(found.id)
        return str(found.id)

    volume("boot-vol", image_id=small, description="boots small-private")
    if not any(v.name == "data-from-snap" for v in volumes.volumes()):
        scratch = volume("scratch", image_id=made["golden"])
        snap = volumes.create_snapshot(volume_id=scratch, name="scratch-snap")
        _wait(lambda: volumes.get_snapshot(snap.id), "available", "snapshot")
        volume("data-from-snap", snapshot_id=snap.id, metadata={"purpose": "data"})
        volumes.set_volume_bootable_status(made["data-from-snap"], False)
        volumes.delete_snapshot(snap)
        _wait_deleted(partial(volumes.get_snapshot, snap.id))
        volumes.delete_volume(scratch)
        _wait_deleted(partial(volumes.get_volume, scratch))
        made.pop("scratch")
    else:
        volume("data-from-snap")
    return made


def seed_servers(member: Connection, image_id: str) -> dict[str, str]:
    """Two servers of the tenant's own user, in its anti-affinity group "spread", with its
    "laptop" key: "web" running on the app0 network, "batch" stopped. Idempotent by name."""
    compute = member.compute
    flavor = compute.find_flavor("m1.tiny", ignore_missing=False)
    network = member.network.find_network("app0", ignore_missing=False)
    group = next(g for g in compute.server_groups() if g.name == "spread")
    made: dict[str, str] = {}
    for name, running in (("web", True), ("batch", False)):
        found = next((x for x in compute.servers() if x.name == name), None)
        if found is None:
            found = compute.create_server(
                name=name, flavor_id=flavor.id, image_id=image_id, key_name="laptop",
                networks=[{"uuid": network.id}], scheduler_hints={"group": group.id},
                metadata={"role": name},
            )  # fmt: skip
            found = _wait(lambda f=found: compute.get_server(f.id), "ACTIVE", f"server {name}")
            if not running:
                compute.stop_server(found)
                _wait(lambda f=found: compute.get_server(f.id), "SHUTOFF", f"server {name}")
        made[name] = str(found.id)
    return made


def _wait_deleted(find: Any, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            find()
        except exceptions.NotFoundException:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("not deleted in time")
        time.sleep(1)
