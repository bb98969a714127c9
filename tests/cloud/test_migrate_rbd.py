"""Volumes on Ceph move cluster to cluster (issue 12): with ``--ceph``, a volume cinder keeps on
RBD in the source, going to an RBD volume type in the destination, is sent by
``rbd export-diff | import-diff`` into a volume cinder made, hashed on both clusters; a volume
on another backend in the same tenant takes the API path. The plan says which and why."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

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

    result = migration.migrate("--ceph", str(ceph_settings))
    assert result.exit_code == 0, result.output
    assert "source and destination are equal" in result.output

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
