"""Servers move between the clouds (issue 11): image-backed servers with their root disk bytes
(a guest write included), a boot-from-volume server with a data volume, the same ports (MACs
and fixed IPs, NIC order), a floating IP, keys of two users, an anti-affinity group and power
states; the sources are left SHUTOFF; a re-run writes nothing. A destination that cannot build
a server removes it and starts the source again."""

from __future__ import annotations

import base64
import ipaddress
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import openstack
import yaml

from devcloud.lab import Lab
from devcloud.layout import DESTINATION, SOURCE
from devcloud.seed import connect
from devcloud.tenants import Tenant, unique_name
from stackferry.cloud import sdk
from stackferry.engine.journal import Journal
from stackferry.kinds.server import TMP_PREFIX
from tests.cloud.migration import Migration, leftovers
from tests.cloud.test_resume import KillPoint, _migrate_and_kill
from tests.cloud.waits import wait_status

USER_DATA = base64.b64encode(b"#cloud-config\npassword: not-for-reports\n").decode()


def _public_key(seed: str) -> str:
    """A syntactically valid ed25519 public key, different per seed."""
    raw = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + seed.encode().ljust(32, b"x")[:32]
    return f"ssh-ed25519 {base64.b64encode(raw).decode()} {seed}"


@dataclass
class Workload:
    servers: dict[str, Any]  # name -> source server
    disks: dict[str, bytes]  # name -> root disk bytes in the source (after the guest write)
    volumes: dict[str, bytes]  # name -> a boot-from-volume server's volume bytes in the source
    fip: str
    front_mac: str
    other_user: str


def _boot(conn: openstack.connection.Connection, **attrs: Any) -> Any:
    server = conn.compute.create_server(**attrs)
    return wait_status(lambda: conn.compute.get_server(server.id), "ACTIVE", attrs["name"])


def _seed(lab: Lab, src: Tenant) -> Workload:
    admin, conn, pid = src.admin, src.conn, src.project_id
    image = conn.image.create_image(
        name=unique_name("img"),
        data=os.urandom(1024 * 1024),
        disk_format="raw",
        container_format="bare",
        allow_duplicates=True,
    )
    flavor = conn.compute.find_flavor("m1.tiny", ignore_missing=False)
    front = conn.network.create_network(name="front")
    front_subnet = conn.network.create_subnet(
        network_id=front.id, ip_version=4, cidr="10.61.0.0/24", name="front4"
    )
    back = conn.network.create_network(name="back")
    conn.network.create_subnet(network_id=back.id, ip_version=4, cidr="10.62.0.0/24")
    public = admin.network.find_network("public", ignore_missing=False)
    router = conn.network.create_router(
        name="edge", external_gateway_info={"network_id": public.id}
    )
    conn.network.add_interface_to_router(router, subnet=front_subnet.id)
    group = conn.network.create_security_group(name="web")
    conn.network.create_security_group_rule(
        security_group_id=group.id, direction="ingress", protocol="tcp", port_range_min=80,
        port_range_max=80, ethertype="IPv4",
    )  # fmt: skip
    web_front = conn.network.create_port(
        network_id=front.id, security_group_ids=[group.id], name="web-front"
    )
    web_back = conn.network.create_port(network_id=back.id)
    fip = conn.network.create_ip(floating_network_id=public.id, port_id=web_front.id)
    conn.compute.create_keypair(name="k1", public_key=_public_key("k1-of-the-tenant-user"))
    apart = conn.compute.create_server_group(name="apart", policy="anti-affinity")

    # A second member of the project boots a server with a keypair of its own.
    idn, password = sdk.identity(admin), "pw-" + unique_name()
    other = idn.create_user(name=unique_name("sf-user"), domain_id="default", password=password)
    idn.assign_project_role_to_user(pid, other.id, idn.find_role("member", ignore_missing=False))
    as_other = openstack.connect(
        auth_url=src.cloud.keystone_url,
        username=other.name,
        password=password,
        user_domain_id="default",
        project_id=pid,
        region_name=src.cloud.region,
    )
    as_other.compute.create_keypair(name="k2", public_key=_public_key("k2-of-another-user"))

    common = {"flavor_id": flavor.id, "image_id": image.id}
    servers = {
        "web": _boot(
            conn,
            name="web",
            networks=[{"port": web_front.id}, {"port": web_back.id}],
            key_name="k1",
            metadata={"role": "frontend"},
            user_data=USER_DATA,
            **common,
        ),
        "off": _boot(conn, name="off", networks=[{"uuid": back.id}], **common),
        "g1": _boot(
            conn,
            name="g1",
            networks=[{"uuid": back.id}],
            scheduler_hints={"group": apart.id},
            **common,
        ),
        "g2": _boot(
            conn,
            name="g2",
            networks=[{"uuid": back.id}],
            scheduler_hints={"group": apart.id},
            **common,
        ),
        "other": _boot(
            as_other, name="other", networks=[{"uuid": back.id}], key_name="k2", **common
        ),
    }
    servers["db"] = _boot_from_volume(lab, src, image.id, flavor.id, back.id)
    servers["web"].add_tag(conn.compute, "tier-1")
    conn.compute.stop_server(servers["off"])
    wait_status(lambda: conn.compute.get_server(servers["off"].id), "SHUTOFF", "off stops")
    disks = {}
    for name, server in servers.items():
        if name == "db":
            continue  # its disks are volumes
        host = admin.compute.get_server(server.id).compute_host
        disk = lab.paths.server_disk(SOURCE, host, server.id)
        with disk.open("r+b") as f:  # a guest write, different in each server
            f.seek(8192)
            f.write(f"{name} wrote this".encode())
        disks[name] = disk.read_bytes()
    volumes = {v.name: _volume_file(lab, SOURCE, v.id).read_bytes()
               for v in sdk.block_storage(conn).volumes()}  # fmt: skip
    return Workload(
        servers,
        disks,
        volumes,
        str(fip.floating_ip_address),
        str(web_front.mac_address),
        other.name,
    )


def _volume_file(lab: Lab, cloud: Any, volume_id: str) -> Path:
    """The lab's cinder keeps each volume's bytes in a file."""
    return lab.paths.state(cloud) / "cinder-volumes" / f"volume-{volume_id}"


def _boot_from_volume(lab: Lab, src: Tenant, image_id: str, flavor_id: str, net: str) -> Any:
    """db boots from a volume made from the image (deleted with the server), and has a data
    volume (kept) with a guest write."""
    bs = sdk.block_storage(src.conn)
    root = bs.create_volume(name="db-root", size=1, image_id=image_id)
    data = bs.create_volume(name="db-data", size=1)
    for volume_id in (root.id, data.id):
        wait_status(partial(bs.get_volume, volume_id), "available", "a volume of db")
    server = _boot(
        src.conn,
        name="db",
        flavor_id=flavor_id,
        networks=[{"uuid": net}],
        block_device_mapping_v2=[
            {"boot_index": 0, "uuid": root.id, "source_type": "volume",
             "destination_type": "volume", "delete_on_termination": True},
            {"boot_index": None, "uuid": data.id, "source_type": "volume",
             "destination_type": "volume", "delete_on_termination": False},
        ],
    )  # fmt: skip
    with _volume_file(lab, SOURCE, data.id).open("r+b") as f:
        f.seek(4096)
        f.write(b"db wrote this")
    return server


def _destination(migration: Migration) -> tuple[openstack.connection.Connection, str]:
    admin = connect(migration.clouds_yaml, DESTINATION.name)
    (project,) = sdk.identity(admin).projects(
        name=migration.source.project_name, domain_id="default"
    )
    return admin, str(project.id)


def _ports_in_order(admin: openstack.connection.Connection, server: Any) -> list[tuple[Any, ...]]:
    """The server's NICs in the order nova shows them (its addresses, by network)."""
    out = []
    macs = [a["OS-EXT-IPS-MAC:mac_addr"] for addrs in server.addresses.values() for a in addrs]
    for mac in dict.fromkeys(macs):
        (port,) = admin.network.ports(mac_address=mac)
        network = admin.network.get_network(port.network_id)
        ips = sorted(ip["ip_address"] for ip in port.fixed_ips)
        out.append((network.name, port.mac_address, ips, sorted(port.security_group_ids)))
    return out


def _group_names(admin: openstack.connection.Connection, ids: list[str]) -> list[str]:
    return sorted(admin.network.get_security_group(i).name for i in ids)


def test_image_backed_servers_migrate_with_their_disks_ports_keys_and_groups(
    lab: Lab, migration: Migration
) -> None:
    src = migration.source
    work = _seed(lab, src)

    result = migration.migrate()
    assert result.exit_code == 0, result.output
    assert "not-for-reports" not in result.output and USER_DATA not in result.output

    admin, pid = _destination(migration)
    dst = {s.name: s for s in admin.compute.servers(details=True, all_projects=True,
                                                    project_id=pid)}  # fmt: skip
    assert sorted(dst) == sorted(work.servers), "exactly one destination server each"
    source_admin = src.admin
    for name, server in work.servers.items():
        mine = admin.compute.get_server(dst[name].id)
        theirs = source_admin.compute.get_server(server.id)
        assert theirs.status == "SHUTOFF", f"source {name} is left SHUTOFF"
        assert mine.status == ("SHUTOFF" if name == "off" else "ACTIVE"), name
        if name in work.disks:
            disk = lab.paths.server_disk(DESTINATION, mine.compute_host, mine.id)
            assert disk.read_bytes() == work.disks[name], f"{name}: root disk bytes differ"
        source_nics = _ports_in_order(source_admin, theirs)
        nics = _ports_in_order(admin, mine)
        assert [n[:3] for n in nics] == [n[:3] for n in source_nics], f"{name}: NICs differ"
        assert len(nics) == (2 if name == "web" else 1)
        assert [_group_names(admin, n[3]) for n in nics] == [
            _group_names(source_admin, n[3]) for n in source_nics
        ]
        assert mine.key_name == theirs.key_name
        assert mine.metadata == theirs.metadata
        assert mine.flavor.original_name == theirs.flavor.original_name
    # The boot-from-volume server: its migrated volumes, the boot one first, the same bytes,
    # deleted with the server or kept as in the source.
    db = admin.compute.get_server(dst["db"].id)
    assert not (db.image and db.image.id), "db boots from its volume"
    bs = sdk.block_storage(admin)
    attached = {bs.get_volume(a.id).name: a.delete_on_termination for a in db.attached_volumes}
    assert attached == {"db-root": True, "db-data": False}, attached
    for volume in bs.volumes(all_projects=True, project_id=pid):
        assert volume.status == "in-use" and volume.attachments[0]["server_id"] == db.id
        copied = _volume_file(lab, DESTINATION, volume.id).read_bytes()
        assert copied == work.volumes[volume.name], f"{volume.name}: bytes differ"
    web = admin.compute.get_server(dst["web"].id)
    assert "tier-1" in (web.tags or [])
    assert web.user_data == USER_DATA
    assert [n[0] for n in _ports_in_order(admin, web)] == ["front", "back"]
    (front,) = admin.network.ports(mac_address=work.front_mac)
    (fip,) = admin.network.ips(project_id=pid)
    assert fip.port_id == front.id  # its address is the destination's (another public net)
    g1, g2 = (admin.compute.get_server(dst[n].id) for n in ("g1", "g2"))
    assert g1.compute_host != g2.compute_host, "anti-affinity kept"
    (group,) = [g for g in admin.compute.server_groups(all_projects=True)
                if g.project_id == pid]  # fmt: skip
    assert sorted(group.member_ids) == sorted([g1.id, g2.id])

    # The report says whose key each server has; nothing secret in it.
    verify = migration.last_report("verify")
    owners = {e["identity"]["name"]: e["key_owner"]["source"]
              for e in verify["id_map"] if e["kind"] == "server"}  # fmt: skip
    assert owners["web"] == src.user_name and owners["other"] == work.other_user
    moved = [e for e in verify["id_map"] if e["kind"] == "floating_ip"]
    assert [work.fip] == [v for e in moved for v in e["identity"].values()], moved
    for report in (migration.workdir / "reports").glob("*"):
        assert "not-for-reports" not in report.read_text() and USER_DATA not in report.read_text()
    assert leftovers(migration.clouds_yaml) == []
    lent = [k.name for k in admin.compute.keypairs() if k.name in ("k1", "k2")]
    assert lent == [], "the keys lent to the operator are gone"

    again = migration.migrate()
    assert again.exit_code == 0, again.output
    assert "0 write call(s)" in again.output, again.output
    assert admin.compute.get_server(dst["web"].id).status == "ACTIVE"

    # Exported again with the sources off, the workdir keeps the power states they had.
    exported = yaml.safe_load((migration.workdir / "resources" / "servers.yaml").read_text())
    states = {s["identity"]["name"]: s["params"]["power_state"] for s in exported["resources"]}
    assert states == {"web": "running", "off": "shutoff", "g1": "running", "g2": "running",
                      "other": "running", "db": "running"}  # fmt: skip


def test_a_server_the_destination_cannot_build_is_removed_and_its_source_restarted(
    lab: Lab, migration: Migration, tmp_path: Path
) -> None:
    """Then, with the dry run's stop window shown first, ``--cutover live`` moves it and the
    source keeps running."""
    src = migration.source
    conn = src.conn
    image = conn.image.create_image(
        name=unique_name("img"), data=os.urandom(65536), disk_format="raw",
        container_format="bare", allow_duplicates=True,
    )  # fmt: skip
    network = conn.network.create_network(name="only")
    conn.network.create_subnet(network_id=network.id, ip_version=4, cidr="10.63.0.0/24")
    flavor = conn.compute.find_flavor("m1.tiny", ignore_missing=False)
    server = _boot(
        conn, name="doomed", flavor_id=flavor.id, image_id=image.id,
        networks=[{"uuid": network.id}],
    )  # fmt: skip
    # The destination's flavor asks for a trait no compute host has: no valid host.
    dst_admin = connect(migration.clouds_yaml, DESTINATION.name)
    impossible = dst_admin.compute.create_flavor(
        name=unique_name("sf-nohost"), ram=64, vcpus=1, disk=1
    )
    try:
        dst_admin.compute.create_flavor_extra_specs(
            impossible, {"trait:CUSTOM_STACKFERRY_NOWHERE": "required"}
        )
        mapping = tmp_path / "mapping.yaml"
        mapping.write_text(yaml.safe_dump({"flavors": {"m1.tiny": impossible.name}}))
        result = migration.migrate("--mapping", str(mapping))
        assert result.exit_code == 1, result.output
        assert "doomed" in result.output and "valid host" in result.output.lower(), result.output
        admin, pid = _destination(migration)
        assert list(admin.compute.servers(all_projects=True, project_id=pid)) == []
        status = src.admin.compute.get_server(server.id).status
        assert status == "ACTIVE", "the source runs again"
        assert leftovers(migration.clouds_yaml) == []

        dry = migration.cli(
            "migrate", "--src", SOURCE.name, "--dst", DESTINATION.name, "--project",
            src.project_name, "--workdir", str(migration.workdir), "--dry-run",
        )  # fmt: skip
        assert dry.exit_code == 0, dry.output
        assert "stopped from its snapshot until the destination is ACTIVE" in dry.output
        assert "1 GiB at most" in dry.output  # m1.tiny's disk: the data to move, at most
        live = migration.migrate("--cutover", "live")
        assert live.exit_code == 0, live.output
        assert src.admin.compute.get_server(server.id).status == "ACTIVE", "live: still running"
        (moved,) = admin.compute.servers(all_projects=True, project_id=pid)
        assert admin.compute.get_server(moved.id).status == "ACTIVE"
        assert leftovers(migration.clouds_yaml) == []
    finally:
        dst_admin.compute.delete_flavor(impossible)


def _throttled(check: Callable[[], bool], every: float = 0.2) -> Callable[..., bool]:
    """A kill point's test that asks the clouds at most every ``every`` seconds."""
    last = [0.0]

    def reached(*_: Any) -> bool:
        if time.monotonic() - last[0] < every:
            return False
        last[0] = time.monotonic()
        return check()

    return reached


def _dst_project(migration: Migration) -> str | None:
    admin = connect(migration.clouds_yaml, DESTINATION.name)
    found = list(
        sdk.identity(admin).projects(name=migration.source.project_name, domain_id="default")
    )
    return str(found[0].id) if found else None


def test_kill_minus_nine_at_each_phase_of_a_servers_migration(
    lab: Lab, migration: Migration
) -> None:
    """Before each kill the source gains a server; the kill lands in that server's move."""
    src = migration.source
    conn, source_admin = src.conn, src.admin
    dst_admin = connect(migration.clouds_yaml, DESTINATION.name)
    image = conn.image.create_image(
        name=unique_name("img"), data=os.urandom(16 * 1024 * 1024), disk_format="raw",
        container_format="bare", allow_duplicates=True,
    )  # fmt: skip
    network = conn.network.create_network(name="net")
    conn.network.create_subnet(network_id=network.id, ip_version=4, cidr="10.64.0.0/24")
    flavor = conn.compute.find_flavor("m1.tiny", ignore_missing=False)
    conn.compute.create_keypair(name="kk", public_key=_public_key("kk-of-the-tenant-user"))
    first = migration.migrate("--skip", "flavors")  # the tenant around the servers
    assert first.exit_code == 0, first.output

    def dst_servers(name: str) -> list[Any]:
        pid = _dst_project(migration)
        return [s for s in dst_admin.compute.servers(all_projects=True, project_id=pid)
                if s.name == name] if pid else []  # fmt: skip

    def ports_made(name: str, mac: str) -> Callable[[], bool]:
        return lambda: (
            bool(list(dst_admin.network.ports(mac_address=mac))) and not dst_servers(name)
        )

    def stopped(server_id: str) -> Callable[[], bool]:
        return lambda: source_admin.compute.get_server(server_id).status == "SHUTOFF"

    def disk_on_its_way(name: str) -> Callable[[], bool]:
        """The root disk's image is in the destination (streaming or streamed), no server yet."""

        def check() -> bool:
            images = dst_admin.image.get("/images", params={"visibility": "all"}).json()
            return not dst_servers(name) and any(
                i["name"].startswith(TMP_PREFIX) for i in images["images"]
            )

        return check

    def building(name: str) -> Callable[[], bool]:
        return lambda: any(s.status == "BUILD" for s in dst_servers(name))

    points: list[tuple[str, Callable[[str, str, str], Callable[[], bool]]]] = [
        ("ports made, server not yet", lambda name, sid, mac: ports_made(name, mac)),
        ("source stopped", lambda name, sid, mac: stopped(sid)),
        ("root disk on its way", lambda name, sid, mac: disk_on_its_way(name)),
        ("destination server in BUILD", lambda name, sid, mac: building(name)),
    ]
    journal = migration.workdir / "journal.sqlite"
    for i, (label, make) in enumerate(points):
        name = f"vm{i}"
        server = _boot(
            conn, name=name, flavor_id=flavor.id, image_id=image.id,
            networks=[{"uuid": network.id}], key_name="kk",
        )  # fmt: skip
        mac = next(iter(server.addresses.values()))[0]["OS-EXT-IPS-MAC:mac_addr"]
        _migrate_and_kill(migration, KillPoint(label, _throttled(make(name, server.id, mac))))
        again = migration.migrate("--skip", "flavors")
        assert again.exit_code == 0, f"after a kill at '{label}': {again.output}"
        assert len(dst_servers(name)) == 1, f"after a kill at '{label}': one server"
        (mine,) = dst_servers(name)
        assert dst_admin.compute.get_server(mine.id).status == "ACTIVE", label
        assert source_admin.compute.get_server(server.id).status == "SHUTOFF", label
        known = Journal.source_changes_at(journal).get(f"server:{server.id}")
        assert known == {"power_state": "running"}, f"{label}: the source's power state"
        assert leftovers(migration.clouds_yaml) == [], label
        assert [k.name for k in dst_admin.compute.keypairs() if k.name == "kk"] == [], label
    rerun = migration.migrate("--skip", "flavors")
    assert rerun.exit_code == 0 and migration.last_report("apply")["write_calls"] == 0


def test_new_mac_gives_ports_macs_of_their_own_and_everything_follows(
    lab: Lab, migration: Migration
) -> None:
    """Clouds sharing a layer 2 must not both have a MAC: with --new-mac the destination's
    ports get their own, the server boots on them, its floating IP and SLAAC address follow,
    verify is equal and a re-run writes nothing."""
    src = migration.source
    conn = src.conn
    image = conn.image.create_image(
        name=unique_name("img"), data=os.urandom(65536), disk_format="raw",
        container_format="bare", allow_duplicates=True,
    )  # fmt: skip
    network = conn.network.create_network(name="l2")
    v4 = conn.network.create_subnet(network_id=network.id, ip_version=4, cidr="10.65.0.0/24")
    conn.network.create_subnet(
        network_id=network.id, ip_version=6, cidr="fd00:65::/64", ipv6_ra_mode="slaac",
        ipv6_address_mode="slaac",
    )  # fmt: skip
    public = src.admin.network.find_network("public", ignore_missing=False)
    router = conn.network.create_router(name="r", external_gateway_info={"network_id": public.id})
    conn.network.add_interface_to_router(router, subnet=v4.id)
    port = conn.network.create_port(network_id=network.id, name="nic")
    conn.network.create_ip(floating_network_id=public.id, port_id=port.id)
    flavor = conn.compute.find_flavor("m1.tiny", ignore_missing=False)
    _boot(conn, name="vm", flavor_id=flavor.id, image_id=image.id, networks=[{"port": port.id}])

    result = migration.migrate("--new-mac")
    assert result.exit_code == 0, result.output
    assert "source and destination are equal" in result.output
    admin, pid = _destination(migration)
    (moved,) = admin.network.ports(project_id=pid, name="nic")
    assert moved.mac_address != port.mac_address
    by_version = {ipaddress.ip_address(ip["ip_address"]).version: ip["ip_address"]
                  for ip in moved.fixed_ips}  # fmt: skip
    source_v4 = next(ip["ip_address"] for ip in port.fixed_ips if ":" not in ip["ip_address"])
    assert by_version[4] == source_v4, "the same IPv4 address"
    assert by_version[6] != next(
        ip["ip_address"] for ip in port.fixed_ips if ":" in ip["ip_address"]
    )
    (server,) = admin.compute.servers(all_projects=True, project_id=pid)
    macs = [a["OS-EXT-IPS-MAC:mac_addr"] for addrs in server.addresses.values() for a in addrs]
    assert set(macs) == {moved.mac_address}, "the server is on the new port"
    (fip,) = admin.network.ips(project_id=pid)
    assert fip.port_id == moved.id
    assert src.conn.network.get_port(port.id).mac_address == port.mac_address, "source as it was"

    again = migration.migrate("--new-mac")
    assert again.exit_code == 0 and "0 write call(s)" in again.output, again.output
    without = migration.verify()  # without the switch: the MACs differ, and verify says so
    assert without.exit_code == 1 and "port" in without.output


def test_boot_from_volume_puts_an_image_backed_server_on_a_new_root_volume(
    lab: Lab, migration: Migration
) -> None:
    """--boot-from-volume: the source's root disk (a guest write included) becomes a new
    volume the destination server boots from, deleted with it as a local disk would be; no
    temporary is left, verify with the switch is equal, a re-run writes nothing, and verify
    without it says the server differs."""
    src = migration.source
    conn = src.conn
    image = conn.image.create_image(
        name=unique_name("img"), data=os.urandom(256 * 1024), disk_format="raw",
        container_format="bare", allow_duplicates=True,
    )  # fmt: skip
    network = conn.network.create_network(name="n")
    conn.network.create_subnet(network_id=network.id, ip_version=4, cidr="10.66.0.0/24")
    flavor = conn.compute.find_flavor("m1.tiny", ignore_missing=False)
    server = _boot(conn, name="vm", flavor_id=flavor.id, image_id=image.id,
                   networks=[{"uuid": network.id}])  # fmt: skip
    host = src.admin.compute.get_server(server.id).compute_host
    disk_file = lab.paths.server_disk(SOURCE, host, server.id)
    with disk_file.open("r+b") as f:
        f.seek(4096)
        f.write(b"vm wrote this")
    disk = disk_file.read_bytes()

    assert migration.migrate("--boot-from-volume", "--dry-run").exit_code == 0
    (step,) = [s for s in migration.plan_json("--boot-from-volume")["steps"]
               if s["kind"] == "server"]  # fmt: skip
    assert step["action"] == "create" and "onto a new volume of 1 GiB" in step["reason"], step
    result = migration.migrate("--boot-from-volume")
    assert result.exit_code == 0, result.output
    assert "source and destination are equal" in result.output
    admin, pid = _destination(migration)
    (moved,) = admin.compute.servers(all_projects=True, project_id=pid)
    assert not (moved.image and moved.image.id), "it boots from a volume"
    (attached,) = moved.attached_volumes
    assert attached["delete_on_termination"] is True, "the root goes with the server"
    root = sdk.block_storage(admin).get_volume(attached["id"])
    assert root.name == "vm-root" and root.metadata.get("stackferry_root_disk_of") == server.id
    assert root.is_bootable
    with _volume_file(lab, DESTINATION, root.id).open("rb") as f:
        assert f.read(len(disk)) == disk, "the root volume holds the source's disk"
    assert leftovers(migration.clouds_yaml) == []

    again = migration.migrate("--boot-from-volume")
    assert again.exit_code == 0 and "0 write call(s)" in again.output, again.output
    without = migration.verify()
    assert without.exit_code == 1 and "server" in without.output, without.output
