"""Finishing a migration: `finish --dst` takes stackferry's marker off the destination and
leaves no temporary, a later migrate still knows what it made; `finish --retire-source`
deletes the migrated resources from the source - only once verify is equal, only the
workdir's - and leaves the destination as it is."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openstack.connection import Connection

from devcloud.layout import DESTINATION, SOURCE
from devcloud.seed import connect
from stackferry.cloud import sdk
from tests.cloud.migration import Migration, leftovers

MARKER = "stackferry"
KINDS = ("projects", "users", "role_assignments", "keypairs", "networks", "subnets", "routers",
         "security_groups", "security_group_rules", "ports", "floating_ips", "images")  # fmt: skip
ONLY = [arg for kind in KINDS for arg in ("--only", kind)]


def _public_key(tmp: Path) -> str:
    key = tmp / "finish-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key.with_suffix(".pub").read_text().strip()


def _project_id(admin: Connection, name: str) -> str:
    (project,) = sdk.identity(admin).projects(name=name, domain_id="default")
    return str(project.id)


def _tenant(admin: Connection, pid: str, user_id: str) -> dict[str, Any]:
    """What the test made, as the cloud shows it (read with openstacksdk, not stackferry):
    name -> (ID, tags) per kind."""
    net = admin.network

    def tagged(items: Any) -> dict[str, tuple[str, list[str]]]:
        return {i.name: (i.id, sorted(i.tags or [])) for i in items}

    images = admin.image.get("/images", params={"owner": pid, "visibility": "all"}).json()
    return {
        "networks": tagged(net.networks(project_id=pid)),
        "subnets": tagged(net.subnets(project_id=pid)),
        "routers": tagged(net.routers(project_id=pid)),
        "security_groups": tagged(net.security_groups(project_id=pid)),
        "ports": {p.id: (p.device_owner, sorted(p.tags or [])) for p in net.ports(project_id=pid)},
        "floating_ips": {f.id: (f.port_id, sorted(f.tags or [])) for f in net.ips(project_id=pid)},
        "images": {i["name"]: (i["id"], sorted(i["tags"])) for i in images["images"]},
        "keypairs": sorted(k.name for k in admin.compute.keypairs(user_id=user_id)),
        "roles": sorted(
            a.role["id"] for a in sdk.identity(admin).role_assignments(scope_project_id=pid)
        ),
    }


def _marked(tenant: dict[str, Any]) -> list[str]:
    return sorted(
        f"{kind} {name}"
        for kind in KINDS
        if kind in tenant and kind != "keypairs"
        for name, (_, tags) in tenant[kind].items()
        if MARKER in tags
    )


@pytest.fixture
def finishing(migration: Migration, tmp_path: Path) -> Iterator[Migration]:
    """A small tenant in the source: a network with a subnet, a router with a gateway and an
    interface, a port with a floating IP, a security group with a rule, a keypair of the
    tenant's user, a tiny image (protected, so retiring it must unprotect it first)."""
    src = migration.source
    net, pid = src.admin.network, src.project_id
    public = net.find_network("public", ignore_missing=False)
    front = net.create_network(name="front", project_id=pid)
    net.set_tags(front, ["tier=front"])
    subnet = net.create_subnet(
        network_id=front.id, project_id=pid, name="front-v4", cidr="10.44.0.0/24", ip_version=4
    )
    edge = net.create_router(
        name="edge", project_id=pid, external_gateway_info={"network_id": public.id}
    )
    net.add_interface_to_router(edge, subnet=subnet.id)
    vip = net.create_port(network_id=front.id, project_id=pid, name="vip")
    net.create_ip(floating_network_id=public.id, project_id=pid, port_id=vip.id)
    web = net.create_security_group(name="web", project_id=pid)
    net.create_security_group_rule(
        security_group_id=web.id,
        project_id=pid,
        direction="ingress",
        ethertype="IPv4",
        protocol="tcp",
        port_range_min=443,
        port_range_max=443,
    )
    src.admin.compute.create_keypair(
        name="finish-key", user_id=src.user_id, public_key=_public_key(tmp_path)
    )
    sdk.image(src.conn).create_image(
        name="tiny",
        data=os.urandom(64 * 1024),
        disk_format="raw",
        container_format="bare",
        visibility="private",
        is_protected=True,
        tags=["small"],
        allow_duplicates=True,
        wait=True,
    )
    yield migration
    for cloud in (SOURCE, DESTINATION):  # the purge cannot delete a protected image
        admin = connect(migration.clouds_yaml, cloud.name)
        for project in sdk.identity(admin).projects(name=src.project_name, domain_id="default"):
            for image in sdk.image(admin).images(owner=project.id):
                if image.is_protected:
                    sdk.image(admin).update_image(image, is_protected=False)


def test_finish_unmarks_the_destination_then_retires_only_the_workdirs_source_resources(
    finishing: Migration,
) -> None:
    migration, src = finishing, finishing.source
    first = migration.migrate(*ONLY)
    assert first.exit_code == 0, first.output
    c1, c2 = src.admin, connect(migration.clouds_yaml, DESTINATION.name)
    dst_pid = _project_id(c2, src.project_name)
    dst_user = next(iter(sdk.identity(c2).users(name=src.user_name))).id
    before = _tenant(c2, dst_pid, dst_user)
    assert "networks front" in _marked(before) and "images tiny" in _marked(before)
    assert "security_groups default" in _marked(before)  # the one stackferry brought in line
    (fip,) = before["floating_ips"]
    assert len(_marked(before)) == 8  # and the port, the floating IP and the subnet
    workdir = str(migration.workdir)
    finish = ["finish", "--dst", DESTINATION.name, "--workdir", workdir]

    # A dry run shows what goes, and changes and writes nothing.
    journal = migration.workdir / "journal.sqlite"
    journal_bytes = journal.read_bytes()
    dry = migration.cli(*finish, "--dry-run", "-v")
    assert dry.exit_code == 0, dry.output
    assert "marker   network front" in dry.output and "dry run: nothing was changed" in dry.output
    assert _tenant(c2, dst_pid, dst_user) == before
    assert journal.read_bytes() == journal_bytes
    assert not list((migration.workdir / "reports").glob("finish-*"))

    done = migration.cli(*finish)
    assert done.exit_code == 0, done.output
    after = _tenant(c2, dst_pid, dst_user)
    assert _marked(after) == [], after
    assert after["networks"]["front"] == (before["networks"]["front"][0], ["tier=front"])
    assert after["images"]["tiny"] == (before["images"]["tiny"][0], ["small"])
    (source_tag,) = after["floating_ips"][fip][1]  # the tag that names the FIP stays
    assert source_tag.startswith("stackferry-src:")
    assert leftovers(migration.clouds_yaml) == []
    report = migration.last_report("finish")
    assert report["finished"] is True and report["failed"] == []
    unmarked = {(m["kind"], m["identity"].get("name")) for m in report["markers_removed"]}
    assert {("network", "front"), ("router", "edge"), ("image", "tiny")} <= unmarked

    again = migration.cli(*finish)
    assert again.exit_code == 0, again.output
    assert "nothing to remove" in again.output and "was finished at" in again.output

    # What stackferry made is still its own (the journal says so now): nothing to do.
    rerun = migration.migrate(*ONLY)
    assert rerun.exit_code == 0, rerun.output
    apply_report = migration.last_report("apply")
    assert apply_report["write_calls"] == 0 and set(apply_report["summary"]) == {"unchanged"}
    assert migration.last_report("verify")["equal"] is True
    # and brings it in line when the source changes: an update, not a conflict, not a copy
    src_front = c1.network.find_network("front", project_id=src.project_id, ignore_missing=False)
    c1.network.update_network(src_front, description="web tier")
    changed = migration.migrate(*ONLY)
    assert changed.exit_code == 0, changed.output
    steps = migration.last_report("apply")["steps"]
    assert [(s["kind"], s["action"], s["result"]) for s in steps if s["action"] != "unchanged"] == [
        ("network", "update", "done")
    ]
    assert migration.last_report("verify")["equal"] is True
    assert _marked(_tenant(c2, dst_pid, dst_user)) == []

    # Made in the source after the last export: not the migration's.
    late_group = c1.network.create_security_group(name="late", project_id=src.project_id)
    late_net = c1.network.create_network(name="late-net", project_id=src.project_id)
    source_before = _tenant(c1, src.project_id, src.user_id)
    retire = [
        "finish", "--retire-source", "--src", SOURCE.name, "--dst", DESTINATION.name,
        "--workdir", workdir,
    ]  # fmt: skip

    dry = migration.cli(*retire, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "dry run: nothing was deleted" in dry.output
    assert _tenant(c1, src.project_id, src.user_id) == source_before

    # The destination differs: refused, nothing deleted.
    c2.network.update_network(after["networks"]["front"][0], description="changed by hand")
    refused = migration.cli(*retire, "--yes")
    assert refused.exit_code == 2, refused.output
    assert "verify found 1 difference(s)" in refused.output
    assert "verify report" in refused.output and "nothing was deleted" in refused.output
    assert _tenant(c1, src.project_id, src.user_id) == source_before
    c2.network.update_network(after["networks"]["front"][0], description="web tier")

    retired = migration.cli(*retire, "--yes")
    assert retired.exit_code == 0, retired.output
    source_after = _tenant(c1, src.project_id, src.user_id)
    assert set(source_after["networks"]) == {"late-net"}
    assert source_after["networks"]["late-net"][0] == late_net.id
    assert source_after["subnets"] == {} and source_after["routers"] == {}
    assert source_after["ports"] == {}  # the router's interface went with it
    assert source_after["floating_ips"] == {}
    assert set(source_after["security_groups"]) == {"default", "late"}
    assert source_after["security_groups"]["late"][0] == late_group.id
    assert source_after["images"] == {} and source_after["keypairs"] == []
    assert source_after["roles"] == []  # revoked; the user and the project stay
    assert sdk.identity(c1).get_user(src.user_id).id == src.user_id
    report = migration.last_report("retire")
    assert report["failed"] == []
    left = {(e["kind"], e["identity"].get("name")) for e in report["left"]}
    assert {("project", src.project_name), ("user", src.user_name)} <= left
    assert ("security_group", "default") in left
    # The destination is as it was.
    final = _tenant(c2, dst_pid, dst_user)
    assert final == after, (final, after)

    rerun = migration.cli(*retire, "--yes")
    assert rerun.exit_code == 0, rerun.output
    assert "nothing to delete" in rerun.output and "was finished at" in rerun.output
