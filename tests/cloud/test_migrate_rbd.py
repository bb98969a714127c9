"""Volumes on Ceph move cluster to cluster (issue 12): with ``--ceph``, a volume cinder keeps on
RBD in the source, going to an RBD volume type in the destination, is sent by
``rbd export-diff | import-diff`` into a volume cinder made, hashed on both clusters; a volume
on another backend in the same tenant takes the API path. The plan says which and why."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from openstack.connection import Connection

from devcloud.ceph import Cluster
from devcloud.lab import Lab
from devcloud.layout import DESTINATION, SOURCE
from devcloud.seed import connect
from devcloud.tenants import unique_name
from stackferry.cloud import sdk
from tests.cloud.migration import Migration, leftovers

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def clusters(lab: Lab) -> dict[str, Cluster]:
    """The lab's two clusters (``lab up --ceph``; brought up here when missing)."""
    if not lab.has_ceph:
        lab.up(with_ceph=True)
    found = {c.cloud.name: c for c in lab.clusters()}
    assert set(found) == {SOURCE.name, DESTINATION.name}
    return found


@pytest.fixture
def ceph_settings(clusters: dict[str, Cluster], tmp_path: Path) -> Path:
    path = tmp_path / "ceph.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                role: {"conf": str(clusters[cloud.name].conf), "pool": "volumes",
                       "backends": ["ceph"], "client": "admin"}
                for role, cloud in (("source", SOURCE), ("destination", DESTINATION))
            }
        )
    )  # fmt: skip
    return path


def _image_sha256(cluster: Cluster, volume_id: str) -> str:
    """The bytes of a volume's RBD image, read with the rbd tool."""
    proc = subprocess.Popen(
        ["rbd", "-c", str(cluster.conf), "export", "--no-progress", f"volumes/volume-{volume_id}",
         "-"], stdout=subprocess.PIPE,
    )  # fmt: skip
    digest = hashlib.sha256()
    assert proc.stdout is not None
    while chunk := proc.stdout.read(MIB):
        digest.update(chunk)
    assert proc.wait() == 0
    return digest.hexdigest()


def _snapshots(cluster: Cluster, volume_id: str) -> str:
    return subprocess.run(
        ["rbd", "-c", str(cluster.conf), "snap", "ls", f"volumes/volume-{volume_id}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def _volume_from_random_image(conn: Connection, name: str, volume_type: str | None) -> str:
    image = sdk.image(conn).create_image(
        name=unique_name("bytes"), data=os.urandom(8 * MIB), disk_format="raw",
        container_format="bare", allow_duplicates=True,
    )  # fmt: skip
    bs = sdk.block_storage(conn)
    attrs = {"volume_type": volume_type} if volume_type else {}
    volume = bs.create_volume(name=name, size=1, image_id=image.id, **attrs)
    bs.wait_for_status(volume, "available", wait=300)
    sdk.image(conn).delete_image(image)
    return str(volume.id)


@pytest.fixture
def mixed(migration: Migration, clusters: dict[str, Cluster]) -> Iterator[dict[str, str]]:
    conn = migration.source.conn
    yield {
        "fast": _volume_from_random_image(conn, "fast", "ceph"),
        "slow": _volume_from_random_image(conn, "slow", None),
    }


def test_a_volume_on_ceph_moves_cluster_to_cluster_and_one_elsewhere_through_the_apis(
    lab: Lab, migration: Migration, clusters: dict[str, Cluster], ceph_settings: Path,
    mixed: dict[str, str],
) -> None:  # fmt: skip
    src, dst = clusters[SOURCE.name], clusters[DESTINATION.name]
    assert migration.migrate("--dry-run", "--ceph", str(ceph_settings)).exit_code == 0
    steps = {s["identity"]["name"]: s for s in
             migration.plan_json("--ceph", str(ceph_settings))["steps"]
             if s["kind"] == "volume"}  # fmt: skip
    assert steps["fast"]["reason"] == "over RBD, cluster to cluster", steps["fast"]
    assert steps["slow"]["reason"].startswith("through glance: its source backend (file1"), steps

    archive = ceph_settings.parent / "archive"
    result = migration.migrate("--ceph", str(ceph_settings), "--archive", str(archive))
    assert result.exit_code == 0, result.output
    assert "source and destination are equal" in result.output
    kept = (archive / "volumes" / "fast.raw").read_bytes()
    assert hashlib.sha256(kept).hexdigest() == _image_sha256(src, mixed["fast"]), "archived"
    assert (
        f"{_image_sha256(src, mixed['fast'])}  volumes/fast.raw"
        in (archive / "SHA256SUMS").read_text()
    )

    admin = connect(migration.clouds_yaml, DESTINATION.name)
    project = sdk.identity(admin).find_project(
        migration.source.project_name, domain_id="default", ignore_missing=False
    )
    moved = {v.name: v for v in sdk.block_storage(admin).volumes(
        details=True, all_projects=True, project_id=project.id)}  # fmt: skip
    assert sorted(moved) == ["fast", "slow"]
    fast = moved["fast"]
    assert fast.volume_type == "ceph" and str(fast.host).endswith("@ceph#ceph")
    assert _image_sha256(dst, fast.id) == _image_sha256(src, mixed["fast"])
    assert _snapshots(src, mixed["fast"]) == "" and _snapshots(dst, fast.id) == ""
    assert str(moved["slow"].host).endswith("@file1#file1")
    assert leftovers(migration.clouds_yaml) == []
    report = migration.last_report("apply")
    copies = {t["transfer"]: t for t in report["transfers"]}
    assert "volume fast" not in copies, "no glance round trip for a volume on RBD"
    assert copies["volume fast (RBD)"]["ok"] and copies["volume fast (RBD)"]["bytes"] >= 8 * MIB
    assert copies["volume slow"]["ok"]

    again = migration.migrate("--ceph", str(ceph_settings))
    assert again.exit_code == 0 and "0 write call(s)" in again.output, again.output


GUEST_WRITE = """
import sys, rados, rbd
conf, image, offset, path = sys.argv[1:5]
with rados.Rados(conffile=conf) as cluster, cluster.open_ioctx("volumes") as ioctx:
    with rbd.Image(ioctx, image) as disk, open(path, "rb") as data:
        disk.write(data.read(), int(offset))
"""


def _guest_write(lab: Lab, cluster: Cluster, volume_id: str, offset: int, data: bytes) -> None:
    """Bytes written into a volume's image through librbd, as a guest's disk driver would
    (the lab's python has Debian's rados/rbd bindings)."""
    path = cluster.dir / f"write-{volume_id}"
    path.write_bytes(data)
    try:
        subprocess.run([str(lab.paths.python), "-c", GUEST_WRITE, str(cluster.conf),
                        f"volume-{volume_id}", str(offset), str(path)], check=True)  # fmt: skip
    finally:
        path.unlink()


def _sync(migration: Migration, settings: Path) -> dict[str, Any]:
    result = migration.cli(
        "sync", "--src", SOURCE.name, "--dst", DESTINATION.name, "--project",
        migration.source.project_name, "--workdir", str(migration.workdir), "--ceph",
        str(settings), "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "progressed" in result.output, result.output
    return {t["transfer"]: t for t in migration.last_report("apply")["transfers"]}


def test_warm_sync_sends_only_what_changed_and_the_cutover_only_the_last_difference(
    lab: Lab, migration: Migration, clusters: dict[str, Cluster], ceph_settings: Path
) -> None:
    """A volume in use by a running server: sync copies it whole, then (after a guest wrote
    5% of it) only about what changed, leaving the source running and the destination
    volume unattached; migrate stops the server, sends the last difference, and the
    destination's bytes equal the source's."""
    src, dst = clusters[SOURCE.name], clusters[DESTINATION.name]
    conn = migration.source.conn
    volume_id = _volume_from_random_image(conn, "data", "ceph")
    image = sdk.image(conn).create_image(
        name=unique_name("img"), data=os.urandom(65536), disk_format="raw",
        container_format="bare", allow_duplicates=True,
    )  # fmt: skip
    network = conn.network.create_network(name="n")
    conn.network.create_subnet(network_id=network.id, ip_version=4, cidr="10.67.0.0/24")
    flavor = conn.compute.find_flavor("m1.tiny", ignore_missing=False)
    server = conn.compute.create_server(
        name="vm", flavor_id=flavor.id, image_id=image.id, networks=[{"uuid": network.id}]
    )
    conn.compute.wait_for_server(server, wait=300)
    conn.compute.create_volume_attachment(server, volume_id=volume_id)
    sdk.block_storage(conn).wait_for_status(
        sdk.block_storage(conn).get_volume(volume_id), "in-use", wait=120
    )

    first = _sync(migration, ceph_settings)
    full = first["volume data (RBD)"]
    assert full["ok"] and full["bytes"] >= 8 * MIB
    assert conn.compute.get_server(server.id).status == "ACTIVE", "sync stops nothing"
    admin = connect(migration.clouds_yaml, DESTINATION.name)
    (warm,) = [v for v in sdk.block_storage(admin).volumes(all_projects=True)
               if v.name == f"stackferry-tmp-sync-{volume_id}"]  # fmt: skip
    assert warm.status == "available" and not warm.attachments, "unattached until cutover"

    changed = 51 * MIB + 123  # 5% of the 1 GiB volume, not on an object boundary
    _guest_write(lab, src, volume_id, 300 * MIB + 7, os.urandom(changed))
    second = _sync(migration, ceph_settings)
    incremental = second["volume data (RBD, incremental)"]
    assert changed <= incremental["bytes"] <= changed + 2 * MIB, incremental

    result = migration.migrate("--ceph", str(ceph_settings))
    assert result.exit_code == 0, result.output
    assert "source and destination are equal" in result.output
    last = {t["transfer"]: t for t in migration.last_report("apply")["transfers"]}
    assert last["volume data (RBD, incremental)"]["bytes"] < 1 * MIB, "only the last difference"
    moved = sdk.block_storage(admin).get_volume(warm.id)
    assert moved.name == "data" and moved.status == "in-use", "attached to the moved server"
    assert _image_sha256(dst, moved.id) == _image_sha256(src, volume_id)
    assert _snapshots(src, volume_id) == "" and _snapshots(dst, moved.id) == ""
    assert conn.compute.get_server(server.id).status == "SHUTOFF"
    assert leftovers(migration.clouds_yaml) == []


def _children_running(pid: int, word: str) -> list[int]:
    """PIDs of ``pid``'s child processes whose command line has ``word``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and word in cmdline:
            found.append(int(proc.name))
    return found


def _sync_killed_mid_import(migration: Migration, settings: Path, after: float = 0.3) -> None:
    """``stackferry sync`` killed -9 while rbd import-diff writes into the destination."""
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(migration.clouds_yaml))
    proc = subprocess.Popen(
        [sys.executable, "-m", "stackferry.cli", "sync", "--src", SOURCE.name, "--dst",
         DESTINATION.name, "--project", migration.source.project_name, "--workdir",
         str(migration.workdir), "--ceph", str(settings), "-q"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline, killed = time.monotonic() + 300, False
    while proc.poll() is None and time.monotonic() < deadline:
        if _children_running(proc.pid, "import-diff"):
            time.sleep(after)
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    errors = proc.stderr.read().decode() if proc.stderr else ""
    assert killed and proc.returncode == -signal.SIGKILL, f"sync ended first: {errors}"
    deadline = time.monotonic() + 60
    while _children_running(1, "import-diff") and time.monotonic() < deadline:
        time.sleep(0.1)  # its orphaned rbd pipes end once their other side is gone


def test_kill_minus_nine_in_a_full_and_an_incremental_pass_then_byte_equal(
    lab: Lab, migration: Migration, clusters: dict[str, Cluster], ceph_settings: Path
) -> None:
    """kill -9 while a full pass writes into the destination, and again in an incremental
    one: the next sync and the cutover end with exactly one destination volume whose bytes
    equal the source's, no snapshot and no temporary left."""
    src, dst = clusters[SOURCE.name], clusters[DESTINATION.name]
    volume_id = _volume_from_random_image(migration.source.conn, "big", "ceph")
    _guest_write(lab, src, volume_id, 16 * MIB, os.urandom(400 * MIB))
    admin = connect(migration.clouds_yaml, DESTINATION.name)

    def destination_volumes() -> list[Any]:
        return [v for v in sdk.block_storage(admin).volumes(all_projects=True)
                if v.name in ("big", f"stackferry-tmp-sync-{volume_id}")]  # fmt: skip

    _sync_killed_mid_import(migration, ceph_settings)
    _sync(migration, ceph_settings)  # the cut-short first pass is made afresh
    assert len([v for v in destination_volumes() if v.status != "deleting"]) == 1

    _guest_write(lab, src, volume_id, 500 * MIB, os.urandom(300 * MIB))
    _sync_killed_mid_import(migration, ceph_settings)
    result = migration.migrate("--ceph", str(ceph_settings))  # rolled back, then the rest
    assert result.exit_code == 0, result.output
    assert "source and destination are equal" in result.output
    (moved,) = [v for v in destination_volumes() if v.status != "deleting"]
    assert moved.name == "big"
    assert _image_sha256(dst, moved.id) == _image_sha256(src, volume_id)
    assert _snapshots(src, volume_id) == "" and _snapshots(dst, moved.id) == ""
    assert leftovers(migration.clouds_yaml) == []
