"""Images and volumes migrate with their bytes: verified, archived, resumable after kill -9,
and a transfer altered in flight is caught."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from openstack.connection import Connection

from devcloud.demo import seed_data
from devcloud.lab import Lab
from devcloud.layout import CLOUDS, DESTINATION, SOURCE
from devcloud.seed import connect
from devcloud.tenants import Tenant, create_tenant, purge_tenant
from stackferry.cloud import sdk
from stackferry.kinds.volume import TMP_PREFIX
from tests.cloud.faults import FaultProxy, Rule
from tests.cloud.migration import Migration, kill_when, leftovers, run_cli

STACKFERRY = [sys.executable, "-m", "stackferry.cli"]
MIB = 1024 * 1024


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def _images(admin: Connection, project_id: str) -> list[dict[str, Any]]:
    return list(
        admin.image.get("/images", params={"owner": project_id, "visibility": "all"}).json()[
            "images"
        ]
    )


def _volumes(admin: Connection, project_id: str) -> list[Any]:
    return list(
        sdk.block_storage(admin).volumes(details=True, all_projects=True, project_id=project_id)
    )


def _project_id(admin: Connection, name: str) -> str:
    return str(sdk.identity(admin).find_project(name, domain_id="default", ignore_missing=False).id)


def _images_all(admin: Connection) -> list[dict[str, Any]]:
    return list(admin.image.get("/images", params={"visibility": "all"}).json()["images"])


def _volume_file(lab: Lab, cloud_index: int, volume_id: str) -> Path:
    return lab.paths.state(CLOUDS[cloud_index]) / "cinder-volumes" / f"volume-{volume_id}"


@pytest.fixture
def share_targets(lab: Lab) -> Iterator[tuple[Tenant, Tenant]]:
    """A project in each cloud to share an image with: the source's is mapped to the other."""
    source_other = create_tenant(lab.paths.clouds_yaml, SOURCE)
    destination_other = create_tenant(lab.paths.clouds_yaml, DESTINATION)
    yield source_other, destination_other
    purge_tenant(source_other)
    purge_tenant(destination_other)


def test_images_and_volumes_migrate_with_bytes_members_and_archive(
    lab: Lab, migration: Migration, share_targets: tuple[Tenant, Tenant], tmp_path: Path
) -> None:
    source = migration.source
    source_other, destination_other = share_targets
    made = seed_data(
        source.admin, source.conn, source.project_id, share_with=source_other.project_id
    )
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        yaml.safe_dump({"projects": {source_other.project_name: destination_other.project_name}})
    )
    archive = tmp_path / "archive"

    result = migration.migrate("--mapping", str(mapping), "--archive", str(archive))
    assert result.exit_code == 0, result.output
    assert "source and destination are equal" in result.output

    destination = connect(lab.paths.clouds_yaml, DESTINATION.name)
    dst_project = _project_id(destination, source.project_name)
    src_images = {i["name"]: i for i in _images(source.admin, source.project_id)}
    dst_images = {i["name"]: i for i in _images(destination, dst_project)}
    assert sorted(dst_images) == sorted(src_images) == ["golden", "shared-tools", "small-private"]
    for name, want in src_images.items():
        got = dst_images[name]
        for field in ("checksum", "os_hash_value", "size", "disk_format", "min_disk", "min_ram"):
            assert got[field] == want[field], (name, field)
        assert got["visibility"] == want["visibility"]
        assert got["protected"] == want["protected"]
    assert dst_images["golden"]["protected"] is True
    assert dst_images["golden"]["os_distro"] == "cirros"
    assert sorted(dst_images["golden"]["tags"]) == ["golden", "stackferry"]  # ours, marked
    assert dst_images["small-private"]["build"] == "42"
    members = destination.image.get(f"/images/{dst_images['shared-tools']['id']}/members").json()
    assert [(m["member_id"], m["status"]) for m in members["members"]] == [
        (destination_other.project_id, "accepted")
    ]

    src_volumes = {v.name: v for v in _volumes(source.admin, source.project_id)}
    dst_volumes = {v.name: v for v in _volumes(destination, dst_project)}
    assert sorted(dst_volumes) == ["boot-vol", "data-from-snap"]
    assert dst_volumes["boot-vol"].is_bootable in (True, "true")
    assert dst_volumes["data-from-snap"].is_bootable in (False, "false")
    assert dst_volumes["data-from-snap"].metadata == {"purpose": "data"}
    assert src_volumes["data-from-snap"].snapshot_id  # it really was made from a snapshot
    for name in ("boot-vol", "data-from-snap"):
        assert dst_volumes[name].size == src_volumes[name].size
        src_meta = dict(src_volumes[name].volume_image_metadata or {})
        dst_meta = dict(dst_volumes[name].volume_image_metadata or {})
        src_meta.pop("image_id"), dst_meta.pop("image_id")
        assert dst_meta == src_meta, name
        # The bytes, read back from the block devices (the lab's volume files) of both clouds.
        assert _sha256(_volume_file(lab, 0, made[name])) == _sha256(
            _volume_file(lab, 1, dst_volumes[name].id)
        ), name
    # A volume made from a migrated image names that image in the destination.
    boot_meta = dst_volumes["boot-vol"].volume_image_metadata
    assert boot_meta["image_id"] == dst_images["small-private"]["id"]

    # The archive: one file per image and volume, matching its manifest and the source.
    manifest = json.loads((archive / "manifest.json").read_text())
    assert len(manifest) == 5
    assert not list(archive.rglob("*.part"))
    sums = (archive / "SHA256SUMS").read_text().splitlines()
    assert len(sums) == 5
    for line in sums:
        digest, relpath = line.split("  ", 1)
        assert _sha256(archive / relpath) == digest == manifest[relpath]["sha256"]
        entry = manifest[relpath]
        if entry["kind"] == "image":
            assert entry["md5"] == src_images[entry["name"]]["checksum"]
        else:
            assert digest == _sha256(_volume_file(lab, 0, made[entry["name"]]))

    assert leftovers(lab.paths.clouds_yaml) == []

    again = migration.migrate("--mapping", str(mapping))
    assert again.exit_code == 0, again.output
    assert migration.last_report("apply")["write_calls"] == 0

    # Changes in the source after a migration are carried over in place, bytes untouched.
    images = sdk.image(source.conn)
    images.update_image(made["golden"], os_distro="ubuntu", release="24.04")
    source.conn.image.patch(
        f"/images/{made['small-private']}",
        json=[{"op": "remove", "path": "/build"}],
        headers={"Content-Type": "application/openstack-images-v2.1-json-patch"},
    )
    volumes = sdk.block_storage(source.conn)
    volumes.set_volume_metadata(made["data-from-snap"], purpose="archive", owner="ops")
    volumes.update_volume(made["boot-vol"], description="boots it, still")
    changed = migration.migrate("--mapping", str(mapping))
    assert changed.exit_code == 0, changed.output
    report = migration.last_report("apply")
    assert sorted(
        (s["kind"], s["identity"]["name"], sorted(s["changes"]))
        for s in report["steps"]
        if s["action"] == "update"
    ) == [
        ("image", "golden", ["properties"]),
        ("image", "small-private", ["properties"]),
        ("volume", "boot-vol", ["description"]),
        ("volume", "data-from-snap", ["metadata"]),
    ]
    assert report["transfers"] == []  # no bytes moved again
    after = {i["name"]: i for i in _images(destination, dst_project)}
    assert after["golden"]["id"] == dst_images["golden"]["id"]
    assert (after["golden"]["os_distro"], after["golden"]["release"]) == ("ubuntu", "24.04")
    assert "build" not in after["small-private"]
    assert {v.name: v.metadata for v in _volumes(destination, dst_project)}["data-from-snap"] == {
        "purpose": "archive",
        "owner": "ops",
    }


def _apply_until(migration: Migration, condition: Callable[[], bool], what: str) -> None:
    """Run apply in its own process and SIGKILL it the moment ``condition`` holds."""
    kill_when(
        [*STACKFERRY, "apply", "--src", SOURCE.name, "--dst", DESTINATION.name,
         "--workdir", str(migration.workdir), "-q", "--parallel", "1"],
        migration.clouds_yaml, condition, what,
    )  # fmt: skip


def test_kill_during_image_and_volume_transfers_then_rerun(
    lab: Lab, migration: Migration, tmp_path: Path
) -> None:
    source = migration.source
    images = sdk.image(source.conn)
    data = os.urandom(8 * MIB) * 16  # 128 MiB: streams for a second or two, long enough to catch
    big = images.create_image(
        name="big", data=data, disk_format="raw", container_format="bare", wait=True
    )
    volume = sdk.block_storage(source.conn).create_volume(name="vol", size=1, image_id=big.id)
    sdk.block_storage(source.conn).wait_for_status(volume, "available", wait=300)
    assert migration.export("--only", "images", "--only", "volumes").exit_code == 0
    destination = connect(lab.paths.clouds_yaml, DESTINATION.name)

    def destination_image(name: str, status: str) -> Callable[[], bool]:
        def check() -> bool:
            return any(
                i["name"] == name and i["status"] == status for i in _images_all(destination)
            )

        return check

    def volume_stream_running() -> bool:
        return any(
            (i["name"] or "").startswith(TMP_PREFIX) and i["status"] == "saving"
            for i in _images_all(destination)
        )

    _apply_until(migration, destination_image("big", "saving"), "the image was streaming")
    dst_project = _project_id(destination, source.project_name)
    assert [i["status"] for i in _images(destination, dst_project)] != ["active"]
    _apply_until(migration, volume_stream_running, "the volume was streaming")
    assert leftovers(lab.paths.clouds_yaml), "the kill should have left temporaries behind"

    result = migration.apply("--src", SOURCE.name)
    assert result.exit_code == 0, result.output
    dst_images = [i for i in _images(destination, dst_project) if i["name"] == "big"]
    assert len(dst_images) == 1 and dst_images[0]["status"] == "active"
    assert dst_images[0]["checksum"] == hashlib.md5(data, usedforsecurity=False).hexdigest()
    dst_volumes = _volumes(destination, dst_project)
    assert [v.name for v in dst_volumes] == ["vol"]
    assert _sha256(_volume_file(lab, 0, volume.id)) == _sha256(
        _volume_file(lab, 1, dst_volumes[0].id)
    )
    assert leftovers(lab.paths.clouds_yaml) == []
    assert migration.verify().exit_code == 0


def test_bytes_altered_in_flight_are_caught_and_nothing_is_kept(
    lab: Lab, migration: Migration, tmp_path: Path
) -> None:
    source = migration.source
    sdk.image(source.conn).create_image(
        name="victim", data=os.urandom(6 * MIB), disk_format="raw", container_format="bare",
        wait=True,
    )  # fmt: skip
    tamper = Rule("PUT", r"^/v2/images/[^/]+/file$", "tamper")
    with FaultProxy(DESTINATION, rules=[tamper]) as proxy:
        tampered_yaml = proxy.clouds_yaml(lab.paths.clouds_yaml, tmp_path / "c.yaml", "c2-tamper")
        result = run_cli(
            tampered_yaml,
            "migrate", "--src", SOURCE.name, "--dst", "c2-tamper",
            "--project", source.project_name, "--workdir", str(migration.workdir),
            "--only", "images", "-q",
        )  # fmt: skip
    assert tamper.hits == 1
    assert result.exit_code == 1, result.output
    assert "altered in flight" in " ".join(result.output.split())
    destination = connect(lab.paths.clouds_yaml, DESTINATION.name)
    dst_project = _project_id(destination, source.project_name)
    assert _images(destination, dst_project) == []  # the bad copy was deleted
    report = migration.last_report("apply")
    failed = [s for s in report["steps"] if s["result"] == "failed"]
    assert [s["identity"] for s in failed] == [{"name": "victim"}]
    assert "altered in flight" in failed[0]["error"]

    # Without the tampering proxy, the same command completes.
    assert migration.migrate("--only", "images").exit_code == 0
    assert [i["status"] for i in _images(destination, dst_project)] == ["active"]


def test_a_volume_in_use_is_read_through_a_temporary_snapshot(
    lab: Lab, migration: Migration
) -> None:
    """Cinder will not upload a volume in use: stackferry copies it through a snapshot and a
    volume of its own, and removes both; the volume stays attached throughout."""
    source = migration.source
    images = sdk.image(source.conn)
    seed = images.create_image(
        name="seed", data=os.urandom(5 * MIB), disk_format="raw", container_format="bare",
        wait=True,
    )  # fmt: skip
    volumes = sdk.block_storage(source.conn)
    volume = volumes.create_volume(name="busy", size=1, image_id=seed.id)
    volumes.wait_for_status(volume, "available", wait=300)
    admin_volumes = sdk.block_storage(source.admin)
    # Attached through cinder's attachment API (what nova does), to a server that need not
    # exist for cinder: the volume is really in use as far as cinder is concerned.
    headers = {"OpenStack-API-Version": "volume 3.44"}
    attachment = source.admin.block_storage.post(
        "/attachments",
        json={"attachment": {"volume_uuid": volume.id, "instance_uuid": str(uuid.uuid4()),
                             "connector": {"host": "test", "initiator": "test"}}},
        headers=headers,
    ).json()["attachment"]  # fmt: skip
    source.admin.block_storage.post(
        f"/attachments/{attachment['id']}/action", json={"os-complete": None}, headers=headers
    )
    assert admin_volumes.get_volume(volume.id).status == "in-use"
    try:
        result = migration.migrate("--only", "volumes")
        assert result.exit_code == 0, result.output
        assert admin_volumes.get_volume(volume.id).status == "in-use"  # untouched
    finally:
        source.admin.block_storage.delete(f"/attachments/{attachment['id']}", headers=headers)
    destination = connect(lab.paths.clouds_yaml, DESTINATION.name)
    [copied] = _volumes(destination, _project_id(destination, source.project_name))
    assert copied.name == "busy"
    assert _sha256(_volume_file(lab, 0, volume.id)) == _sha256(_volume_file(lab, 1, copied.id))
    assert leftovers(lab.paths.clouds_yaml) == []
