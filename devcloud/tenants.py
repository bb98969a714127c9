"""Throw-away tenants on the lab's clouds (for tests and benchmarks): create, then purge."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import openstack
import yaml
from openstack import exceptions

from devcloud.layout import Cloud
from devcloud.seed import connect
from stackferry.cloud import sdk


@dataclass
class Tenant:
    cloud: Cloud
    admin: openstack.connection.Connection
    conn: openstack.connection.Connection  # scoped to the tenant's project as its member user
    project_id: str
    project_name: str
    user_id: str
    user_name: str
    password: str


def write_member_clouds_yaml(tenant: Tenant, path: Path, name: str = "member") -> Path:
    """A clouds.yaml (mode 0600) with the tenant's own member user as cloud ``name``: for
    testing what stackferry says to credentials without the admin role."""
    entry = {
        "auth": {
            "auth_url": tenant.cloud.keystone_url,
            "username": tenant.user_name,
            "password": tenant.password,
            "project_name": tenant.project_name,
            "user_domain_id": "default",
            "project_domain_id": "default",
        },
        "region_name": tenant.cloud.region,
        "identity_api_version": 3,
    }
    path.write_text(yaml.safe_dump({"clouds": {name: entry}}))
    path.chmod(0o600)
    return path


def unique_name(prefix: str = "sf") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_tenant(clouds_yaml: Path, cloud: Cloud) -> Tenant:
    admin = connect(clouds_yaml, cloud.name)
    name = unique_name("sf-test")
    password = secrets.token_urlsafe(16)
    idn = sdk.identity(admin)
    project = idn.create_project(
        name=name, domain_id="default", description="stackferry test tenant"
    )
    user = idn.create_user(
        name=name, domain_id="default", password=password, default_project_id=project.id
    )
    idn.assign_project_role_to_user(project, user, idn.find_role("member", ignore_missing=False))
    conn = openstack.connect(
        auth_url=cloud.keystone_url,
        username=name,
        password=password,
        project_name=name,
        user_domain_id="default",
        project_domain_id="default",
        region_name=cloud.region,
    )
    return Tenant(cloud, admin, conn, project.id, name, user.id, name, password)


def _wait_gone(fetch: Callable[[], object], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            fetch()
        except exceptions.NotFoundException:
            return
        time.sleep(1)


def purge_project_named(
    clouds_yaml: Path, cloud: Cloud, name: str, domain: str = "default"
) -> None:
    """Purge a project someone else created (e.g. stackferry, in the destination), by name."""
    admin = connect(clouds_yaml, cloud.name)
    idn = sdk.identity(admin)
    for project in idn.projects(name=name, domain_id=domain):
        # Only the project's own users: never the admin purging it, nor anyone who merely
        # holds a role there.
        users = []
        for assignment in idn.role_assignments(scope_project_id=project.id):
            if not assignment.user or assignment.user["id"] == admin.current_user_id:
                continue
            user = idn.get_user(assignment.user["id"])
            if user.default_project_id == project.id or user.name == project.name:
                users.append(user.id)
        purge_project(admin, project.id, sorted(set(users)))


def purge_tenant(tenant: Tenant) -> None:
    """Delete everything the tenant owns, then the user and project; tolerant of leftovers."""
    purge_project(tenant.admin, tenant.project_id, [tenant.user_id])


def _each(delete: Callable[[Any], object], items: list[Any]) -> None:
    """Delete these at the same time (neutron, glance and cinder take a delete at a time each,
    but serve several): tests' tear-down is a good share of the suite's time."""
    if not items:
        return
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(delete, items))


def _delete_keypair(admin: openstack.connection.Connection, user_id: str, keypair: Any) -> None:
    admin.compute.delete_keypair(keypair, user_id=user_id)


def _detached(volume_api: Any, volume: Any) -> None:
    """A volume whose server is gone but whose attachment stayed (nova could not remove it:
    a lab made before nova sent cinder its service token) is detached by force."""
    for attachment in volume.attachments or []:
        volume_api.post(
            f"/volumes/{volume.id}/action",
            json={"os-force_detach": {"attachment_id": attachment["attachment_id"]}},
        ).raise_for_status()
    deadline = time.monotonic() + 120
    while volume.attachments and time.monotonic() < deadline:
        if volume_api.get_volume(volume.id).status == "available":
            return
        time.sleep(1)


def purge_project(admin: openstack.connection.Connection, pid: str, user_ids: list[str]) -> None:
    """Delete everything in a project, its users' keypairs, the users, then the project."""
    servers = list(admin.compute.servers(all_projects=True, project_id=pid))
    _each(lambda server: admin.compute.delete_server(server, force=False), servers)
    _each(lambda server: _wait_gone(partial(admin.compute.get_server, server.id)), servers)
    for user_id in user_ids:
        keypairs = list(admin.compute.keypairs(user_id=user_id))
        _each(partial(_delete_keypair, admin, user_id), keypairs)
    _each(admin.network.delete_ip, list(admin.network.ips(project_id=pid)))

    def delete_router(router: Any) -> None:
        if router.routes:  # static routes pin the interfaces their next hops go through
            admin.network.update_router(router, routes=[])
        for port in admin.network.ports(
            device_id=router.id, device_owner="network:router_interface"
        ):
            admin.network.remove_interface_from_router(router, port=port.id)
        if router.external_gateway_info:
            admin.network.update_router(router, external_gateway_info={})
        admin.network.delete_router(router)

    _each(delete_router, list(admin.network.routers(project_id=pid)))
    ports = [
        p
        for p in admin.network.ports(project_id=pid)
        if not p.device_owner.startswith("network:dhcp")
    ]
    _each(admin.network.delete_port, ports)
    # A network takes its subnets along.
    _each(admin.network.delete_network, list(admin.network.networks(project_id=pid)))
    groups = [g for g in admin.network.security_groups(project_id=pid) if g.name != "default"]
    _each(admin.network.delete_security_group, groups)
    volume_api, image_api = sdk.block_storage(admin), sdk.image(admin)
    volumes = list(volume_api.volumes(all_projects=True, project_id=pid))
    snapshots = list(volume_api.snapshots(all_projects=True, project_id=pid))
    _each(lambda snapshot: volume_api.delete_snapshot(snapshot, force=True), snapshots)
    _each(lambda snapshot: _wait_gone(partial(volume_api.get_snapshot, snapshot.id)), snapshots)
    _each(lambda volume: _detached(volume_api, volume), volumes)
    _each(lambda volume: volume_api.delete_volume(volume, force=True), volumes)
    _each(lambda volume: _wait_gone(partial(volume_api.get_volume, volume.id)), volumes)

    def delete_image(image: Any) -> None:
        if image.is_protected:
            image_api.update_image(image, is_protected=False)
        image_api.delete_image(image)

    _each(delete_image, list(image_api.images(owner=pid)))
    for group in admin.network.security_groups(project_id=pid):
        admin.network.delete_security_group(group)
    # After the groups (whose rules may allow from them) and the networks and ports (that may
    # use them); a cloud without these extensions lists none.
    _each(admin.network.delete_address_group, list(admin.network.address_groups(project_id=pid)))
    if admin.network.find_extension("qos"):
        _each(admin.network.delete_qos_policy, list(admin.network.qos_policies(project_id=pid)))
    idn = sdk.identity(admin)
    for user_id in user_ids:
        idn.delete_user(user_id, ignore_missing=True)
    idn.delete_project(pid, ignore_missing=True)
