"""Smoke: nova boots a server on a neutron port, and cold migration confirms and reverts; the
lab's hypervisor keeps the server's root disk as a file (from its image, across the moves, and
into a snapshot)."""

from __future__ import annotations

import os

from devcloud.lab import Lab
from devcloud.tenants import Tenant, unique_name
from tests.cloud.waits import wait_status


def _host(tenant: Tenant, server_id: str) -> str:
    return str(tenant.admin.compute.get_server(server_id).compute_host)


def test_boot_then_cold_migrate_confirm_and_revert(lab: Lab, tenant: Tenant) -> None:
    conn, admin = tenant.conn, tenant.admin
    data = os.urandom(1024 * 1024)
    image = conn.image.create_image(
        name=unique_name("img"),
        data=data,
        disk_format="raw",
        container_format="bare",
        allow_duplicates=True,
    )
    network = conn.network.create_network(name=unique_name("net"))
    conn.network.create_subnet(network_id=network.id, ip_version=4, cidr="10.20.0.0/24")
    port = conn.network.create_port(network_id=network.id, name=unique_name("port"))
    flavor = conn.compute.find_flavor("m1.tiny", ignore_missing=False)

    server = conn.compute.create_server(
        name=unique_name("vm"), flavor_id=flavor.id, image_id=image.id, networks=[{"port": port.id}]
    )
    server = wait_status(lambda: conn.compute.get_server(server.id), "ACTIVE", "server boot")
    bound = admin.network.get_port(port.id)  # binding details are visible to admins only
    assert bound.binding_vif_type == "ovs" and bound.device_id == server.id
    assert bound.status == "ACTIVE"
    first_host = _host(tenant, server.id)
    disk = lab.paths.server_disk(tenant.cloud, first_host, server.id)
    assert disk.read_bytes() == data  # written from the image at spawn
    with disk.open("r+b") as f:  # a guest write
        f.seek(4096)
        f.write(b"written by the guest")
    written = disk.read_bytes()

    # Cold migration is admin-only by default policy; the tenant is refused.
    admin.compute.migrate_server(server.id)
    wait_status(lambda: conn.compute.get_server(server.id), "VERIFY_RESIZE", "cold migration")
    admin.compute.confirm_server_resize(server.id)
    wait_status(lambda: conn.compute.get_server(server.id), "ACTIVE", "confirm")
    second_host = _host(tenant, server.id)
    assert second_host != first_host
    assert lab.paths.server_disk(tenant.cloud, second_host, server.id).read_bytes() == written
    assert not disk.exists()  # confirmed: the source host's copy is gone

    admin.compute.migrate_server(server.id)
    wait_status(lambda: conn.compute.get_server(server.id), "VERIFY_RESIZE", "cold migration")
    assert _host(tenant, server.id) == first_host  # only two hosts: it went back to the first
    admin.compute.revert_server_resize(server.id)
    wait_status(lambda: conn.compute.get_server(server.id), "ACTIVE", "revert")
    assert _host(tenant, server.id) == second_host
    migrations = [m for m in admin.compute.migrations() if m.server_id == server.id]
    assert sorted(m.status for m in migrations) == ["confirmed", "reverted"]

    snapshot_id = conn.compute.get_server(server.id).create_image(conn.compute, unique_name("s"))
    snapshot = wait_status(lambda: conn.image.get_image(snapshot_id), "active", "snapshot")
    assert b"".join(conn.image.download_image(snapshot, stream=True).iter_content(65536)) == (
        written
    )
    conn.compute.delete_server(server.id)
    conn.compute.wait_for_delete(server, wait=120)
    assert not lab.paths.server_disk(tenant.cloud, second_host, server.id).exists()
