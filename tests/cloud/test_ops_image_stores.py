"""images move-store against the lab's glance (multi-store: fs, the default, and fs2).

Every run is the real command in a process of its own, restricted to the test's own project
(other tests use the same glance at the same time)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import openstack

from devcloud.lab import Lab
from devcloud.tenants import Tenant, unique_name, write_member_clouds_yaml
from tests.cloud.waits import wait_for

STACKFERRY = [sys.executable, "-m", "stackferry.cli"]
FS, FS2 = "fs", "fs2"
MIB = 1024 * 1024
SIZES = (1, 4099, 1024 * 1024 + 1, 3 * 1024 * 1024 + 5, 6 * 1024 * 1024 + 7)


def _env(clouds_yaml: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    return dict(env, OS_CLIENT_CONFIG_FILE=str(clouds_yaml), COLUMNS="200")


def _command(cloud: str, project: str, report: Path, *extra: str) -> list[str]:
    return [
        *STACKFERRY,
        "images",
        "move-store",
        "--cloud",
        cloud,
        "--project",
        project,
        "--from",
        FS,
        "--to",
        FS2,
        "--report",
        str(report),
        *extra,
    ]


def move_store(
    clouds_yaml: Path, cloud: str, project: str, report: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(cloud, project, report, *extra),
        env=_env(clouds_yaml),
        capture_output=True,
        text=True,
        timeout=600,
    )


def _report(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def _get(admin: openstack.connection.Connection, image_id: str) -> dict[str, Any]:
    response = admin.image.get(f"/images/{image_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _stores(image: dict[str, Any]) -> set[str]:
    return {s for s in str(image.get("stores") or "").split(",") if s}


def _project_images(admin: openstack.connection.Connection, pid: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for hidden in ("false", "true"):
        response = admin.image.get("/images", params={"owner": pid, "os_hidden": hidden})
        assert response.status_code == 200, response.text
        found += response.json()["images"]
    return found


def _kept(image: dict[str, Any]) -> dict[str, Any]:
    """What must not change when an image changes store: all but glance's own bookkeeping."""
    return {
        k: v
        for k, v in image.items()
        if k not in ("stores", "updated_at") and not k.startswith("os_glance_")
    }


def _settled(image: dict[str, Any]) -> bool:
    return image["status"] == "active" and not image.get("os_glance_import_task")


def seed(tenant: Tenant, sizes: tuple[int, ...] = SIZES) -> dict[str, tuple[bytes, dict[str, Any]]]:
    """Images of the given sizes on fs, uploaded by the tenant's member user: some with custom
    properties, tags and minimums, the second protected, the third hidden. Returns
    {id: (bytes, image as glance shows it)}."""
    seeded: dict[str, tuple[bytes, dict[str, Any]]] = {}
    for n, size in enumerate(sizes):
        payload = os.urandom(size)
        fields: dict[str, Any] = {
            "name": f"img{n}-{unique_name()}",
            "disk_format": "raw",
            "container_format": "bare",
            "protected": n == 1,
            "os_hidden": n == 2,
            "min_disk": n,
            "tags": [f"tag{n}"],
        }
        if n % 2 == 0:
            fields |= {"stackferry_test": f"value-{n}", "hw_disk_bus": "virtio"}
        created = tenant.conn.image.post("/images", json=fields)
        assert created.status_code == 201, created.text
        image_id = created.json()["id"]
        upload = tenant.conn.image.put(
            f"/images/{image_id}/file",
            data=payload,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert upload.status_code == 204, upload.text
        seeded[image_id] = (payload, {})
    for image_id, (payload, _) in seeded.items():
        shown = wait_for(partial(_get, tenant.admin, image_id), _settled, f"image {image_id}")
        assert _stores(shown) == {FS}, shown
        assert shown["checksum"] == hashlib.md5(payload).hexdigest()
        seeded[image_id] = (payload, shown)
    return seeded


def copy_by_hand(admin: openstack.connection.Connection, image_id: str) -> dict[str, Any]:
    """What an interrupted earlier run leaves: the image on both stores."""
    body = {"method": {"name": "copy-image"}, "stores": [FS2]}
    response = admin.image.post(f"/images/{image_id}/import", json=body)
    assert response.status_code == 202, response.text
    image = wait_for(
        lambda: _get(admin, image_id),
        lambda i: _settled(i) and FS2 in _stores(i),
        f"copy of {image_id} to {FS2}",
        timeout=120,
    )
    assert _stores(image) == {FS, FS2}
    return dict(image)


def assert_all_moved(tenant: Tenant, seeded: dict[str, tuple[bytes, dict[str, Any]]]) -> None:
    """Every image only on fs2 with its ID, properties and bytes; none lost, none added."""
    in_project = _project_images(tenant.admin, tenant.project_id)
    assert sorted(i["id"] for i in in_project) == sorted(seeded)
    for image_id, (payload, before) in seeded.items():
        after = _get(tenant.admin, image_id)
        assert _stores(after) == {FS2}, after
        assert _kept(after) == _kept(before)
        assert after["checksum"] == hashlib.md5(payload).hexdigest()
        assert after["os_hash_value"] == hashlib.sha512(payload).hexdigest()
        download = tenant.admin.image.get(f"/images/{image_id}/file")
        assert download.status_code == 200
        assert download.content == payload  # fs2 holds the only copy now


def test_moves_images_keeping_ids_bytes_and_properties_then_rerun_writes_nothing(
    tenant: Tenant, lab: Lab, tmp_path: Path
) -> None:
    seeded = seed(tenant)
    report = tmp_path / "first.json"
    first = move_store(lab.paths.clouds_yaml, tenant.cloud.name, tenant.project_id, report)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "5 moved" in first.stdout
    assert_all_moved(tenant, seeded)

    document = _report(report)
    assert (document["from"], document["to"], document["summary"]) == (FS, FS2, {"moved": 5})
    assert document["project"]["id"] == tenant.project_id
    entries = {e["id"]: e for e in document["images"]}
    assert set(entries) == set(seeded)
    for image_id, (_, before) in seeded.items():
        entry = entries[image_id]
        assert (entry["from"], entry["to"], entry["result"]) == (FS, FS2, "moved")
        assert entry["name"] == before["name"]
        assert entry["checksum_before"] == entry["checksum_after"] == before["checksum"]
        assert entry["protected"] is before["protected"]
    assert document["api_calls_by_method"]["POST"] == 5  # one copy-image import each
    assert document["api_calls_by_method"]["DELETE"] == 5  # one store removal each
    assert document["write_calls"] == 10

    again = tmp_path / "second.json"
    second = move_store(lab.paths.clouds_yaml, tenant.cloud.name, tenant.project_id, again)
    assert second.returncode == 0, second.stdout + second.stderr
    document = _report(again)
    assert document["write_calls"] == 0
    assert set(document["api_calls_by_method"]) == {"GET"}
    assert {(e["result"], e["reason"]) for e in document["images"]} == {
        ("skipped", f"already on {FS2}")
    }
    assert len(document["images"]) == 5
    assert_all_moved(tenant, seeded)


def test_killed_run_and_hand_copied_image_finish_on_rerun(
    source_tenant: Tenant, lab: Lab, tmp_path: Path
) -> None:
    tenant = source_tenant
    seeded = seed(
        tenant, (3 * 1024 * 1024, 2 * 1024 * 1024, 5 * 1024 * 1024, 1024, 4 * 1024 * 1024)
    )
    by_name = sorted(seeded, key=lambda i: seeded[i][1]["name"])
    last = by_name[-1]  # the killed run works by name: it does not reach this one
    copy_by_hand(tenant.admin, last)

    proc = subprocess.Popen(
        # One at a time, in name order, so that the kill lands between known images.
        _command(tenant.cloud.name, tenant.project_id, tmp_path / "killed.json", "--parallel", "1"),
        env=_env(lab.paths.clouds_yaml),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        second = _get(tenant.admin, by_name[1])
        if second.get("os_glance_import_task") or FS2 in _stores(second):
            proc.send_signal(signal.SIGKILL)  # mid-way: the second image's copy has begun
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, (
        f"the run ended by itself (exit {proc.returncode}) before it could be killed: "
        f"{proc.stderr.read().decode() if proc.stderr else ''}"
    )
    left = {i: _stores(_get(tenant.admin, i)) for i in seeded}
    assert left[by_name[0]] == {FS2}  # finished before the kill
    assert left[last] == {FS, FS2}
    assert sum(1 for s in left.values() if s == {FS}) >= 2  # not reached
    assert not (tmp_path / "killed.json").exists()

    report = tmp_path / "rerun.json"
    rerun = move_store(lab.paths.clouds_yaml, tenant.cloud.name, tenant.project_id, report)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert_all_moved(tenant, seeded)
    entries = {e["id"]: e for e in _report(report)["images"]}
    assert entries[by_name[0]]["result"] == "skipped"
    assert entries[by_name[0]]["reason"] == f"already on {FS2}"
    assert (entries[last]["result"], entries[last]["action"]) == ("moved", f"removal from {FS}")
    assert entries[by_name[1]]["result"] == "moved"
    for image_id in by_name[2:-1]:
        assert entries[image_id]["action"] == f"copy to {FS2}, removal from {FS}"


def test_member_credentials_are_refused_with_what_is_needed(
    source_tenant: Tenant, tmp_path: Path
) -> None:
    tenant = source_tenant
    seeded = seed(tenant, (2048, 4096))
    only_fs, both = sorted(seeded, key=lambda i: seeded[i][1]["name"])
    copy_by_hand(tenant.admin, both)
    clouds_yaml = write_member_clouds_yaml(tenant, tmp_path / "clouds.yaml")
    before = {i: _get(tenant.admin, i) for i in seeded}

    for image_id, rule in ((only_fs, "copy_image"), (both, "delete_image_location")):
        report = tmp_path / f"{rule}.json"
        result = move_store(clouds_yaml, "member", tenant.project_name, report, "--image", image_id)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "admin credentials" in result.stderr and rule in result.stderr
        assert "HTTP 403" in result.stderr
        assert "Traceback" not in result.stderr
        document = _report(report)
        assert document["stopped"] and document["images"][0]["result"] == "not attempted"

    for image_id, image in before.items():
        assert _get(tenant.admin, image_id) == image  # nothing changed, not even updated_at


def test_dry_run_lists_what_would_move_and_changes_nothing(
    source_tenant: Tenant, lab: Lab, tmp_path: Path
) -> None:
    tenant = source_tenant
    seeded = seed(tenant, (1000, 2000, 3000))
    first, second, third = sorted(seeded, key=lambda i: seeded[i][1]["name"])
    copy_by_hand(tenant.admin, second)
    before = {i: _get(tenant.admin, i) for i in seeded}
    report = tmp_path / "dry.json"
    names = (before[first]["name"], before[second]["name"])
    result = move_store(
        lab.paths.clouds_yaml,
        tenant.cloud.name,
        tenant.project_name,
        report,
        "--dry-run",
        "--image",
        names[0],
        "--image",
        names[1],
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "dry run: nothing was changed" in result.stdout
    document = _report(report)
    assert document["dry_run"] and document["write_calls"] == 0
    assert [(e["id"], e["result"], e["action"]) for e in document["images"]] == [
        (first, "planned", "copy, then remove the old copy"),
        (second, "planned", "remove the old copy"),
    ]  # the third was not asked for
    for image_id, image in before.items():
        assert _get(tenant.admin, image_id) == image
    assert _stores(before[third]) == {FS}


def test_unknown_store_exits_2_listing_the_clouds_stores(lab: Lab, tmp_path: Path) -> None:
    report = tmp_path / "never.json"
    for args in (("--from", "nfs", "--to", FS2), ("--from", FS, "--to", "ceph")):
        result = subprocess.run(
            [*STACKFERRY, "images", "move-store", "--cloud", "c1", *args, "--report", str(report)],
            env=_env(lab.paths.clouds_yaml),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 2, result.stdout + result.stderr
        assert "unknown store" in result.stderr
        assert "fs (default), fs2" in result.stderr
    assert not report.exists()
