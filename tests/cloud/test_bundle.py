"""Bundles against the lab: a tenant carried in one file to a destination that cannot reach
the source (its entries gone from clouds.yaml), kill -9 during the bundle's apply, refusals
of damaged bundles with nothing written, and the seed's selective options at both ends."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
import zstandard
from openstack.connection import Connection

from devcloud.demo import seed_tenant
from devcloud.lab import Lab
from devcloud.layout import CLOUDS, DESTINATION, SOURCE
from devcloud.seed import connect
from devcloud.tenants import Tenant
from stackferry.cloud import sdk
from stackferry.data import bundle as bundle_format
from stackferry.kinds.volume import TMP_PREFIX
from tests.cloud.migration import Migration, kill_when, leftovers, run_cli

STACKFERRY = [sys.executable, "-m", "stackferry.cli"]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _destination_only(clouds_yaml: Path, path: Path) -> Path:
    """clouds.yaml without the source cloud: the bundle's side of an air gap."""
    clouds = yaml.safe_load(clouds_yaml.read_text())["clouds"]
    kept = {n: c for n, c in clouds.items() if not n.startswith(SOURCE.name)}
    assert DESTINATION.name in kept and SOURCE.name not in kept
    path.write_text(yaml.safe_dump({"clouds": kept}))
    path.chmod(0o600)
    return path


def _project_id(admin: Connection, name: str) -> str | None:
    project = sdk.identity(admin).find_project(name, domain_id="default")
    return str(project.id) if project else None


def _images(admin: Connection, project_id: str) -> list[dict[str, Any]]:
    params = {"owner": project_id, "visibility": "all"}
    return list(admin.image.get("/images", params=params).json()["images"])


def _volumes(admin: Connection, project_id: str) -> list[Any]:
    bs = sdk.block_storage(admin)
    return list(bs.volumes(details=True, all_projects=True, project_id=project_id))


def _volume_file(lab: Lab, cloud_index: int, volume_id: str) -> Path:
    return lab.paths.state(CLOUDS[cloud_index]) / "cinder-volumes" / f"volume-{volume_id}"


def _seed_image_and_volume(tenant: Tenant) -> dict[str, str]:
    """Two small images (one protected, with a property) and a 1 GiB volume holding one of
    them, as the tenant's user makes them: little data, every path of a bundle's bytes."""
    images, volumes = sdk.image(tenant.conn), sdk.block_storage(tenant.conn)
    made = {}
    plain: dict[str, Any] = {}
    for name, attrs in (
        ("golden", {"is_protected": True, "os_distro": "cirros"}),
        ("tools", plain),
    ):
        made[name] = str(images.create_image(
            name=name, data=os.urandom(2 * 1024 * 1024), disk_format="raw",
            container_format="bare", wait=True, **attrs).id)  # fmt: skip
    volume = volumes.create_volume(name="vol", size=1, image_id=made["tools"])
    volumes.wait_for_status(volume, "available", wait=300)
    made["vol"] = str(volume.id)
    return made


def test_a_tenant_with_its_bytes_crosses_in_a_bundle_and_survives_a_kill(
    lab: Lab, migration: Migration, tmp_path: Path
) -> None:
    source = migration.source
    made = _seed_image_and_volume(source)
    bundle = tmp_path / "carry" / "tenant.tar.zst"
    result = migration.export("--bundle", str(bundle), "--with-data")
    assert result.exit_code == 0, result.output
    assert "the bytes of 3 resource(s)" in result.output
    assert bundle.stat().st_mode & 0o777 == 0o600
    assert not [p for p in bundle.parent.iterdir() if p != bundle]  # no .part left
    assert leftovers(lab.paths.clouds_yaml) == []  # the volumes' uploads are gone again
    listed = subprocess.run(
        ["tar", "--zstd", "-tf", str(bundle)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "workdir/stackferry.yaml" in listed and "MANIFEST.json" in listed
    assert sum(1 for name in listed if name.startswith("data/")) == 3
    whole = zstandard.ZstdDecompressor().stream_reader(bundle.open("rb")).read()
    credentials = [source.password.encode(), b"password: secret", b"auth_url", b"gAAAAA"]
    for secret in credentials:  # no password of clouds.yaml, no token
        assert secret not in whole

    # The destination's side: no source cloud at all.
    air_gapped = _destination_only(lab.paths.clouds_yaml, tmp_path / "dst-only.yaml")
    workdir = tmp_path / "destination-side"
    destination = connect(lab.paths.clouds_yaml, DESTINATION.name)

    def volume_streaming() -> bool:
        images = destination.image.get("/images", params={"visibility": "all"}).json()["images"]
        return any(
            (i["name"] or "").startswith(TMP_PREFIX) and i["status"] == "saving" for i in images
        )

    argv = [*STACKFERRY, "migrate", "--bundle", str(bundle), "--dst", DESTINATION.name,
            "--workdir", str(workdir), "-q", "--parallel", "2"]  # fmt: skip
    kill_when(argv, air_gapped, volume_streaming, "a volume was streaming from the bundle")
    again = run_cli(air_gapped, *argv[3:])
    assert again.exit_code == 0, again.output
    assert "source and destination are equal" in again.output

    dst_project = _project_id(destination, source.project_name)
    assert dst_project is not None
    src_images = {i["name"]: i for i in _images(source.admin, source.project_id)}
    dst_images = [i for i in _images(destination, dst_project)]
    assert sorted(i["name"] for i in dst_images) == sorted(src_images)  # each once
    for got in dst_images:
        want = src_images[got["name"]]
        for field in ("checksum", "os_hash_value", "size", "disk_format", "protected"):
            assert got[field] == want[field], (got["name"], field)
    dst_volumes = {v.name: v for v in _volumes(destination, dst_project)}
    assert sorted(dst_volumes) == ["vol"]
    for name in dst_volumes:
        assert _sha256(_volume_file(lab, 0, made[name])) == _sha256(
            _volume_file(lab, 1, dst_volumes[name].id)
        ), name
    assert leftovers(lab.paths.clouds_yaml) == []

    # With the source back: verify against the live source is equal; a re-run writes nothing.
    live = run_cli(
        lab.paths.clouds_yaml, "verify", "--src", SOURCE.name, "--dst", DESTINATION.name,
        "--workdir", str(workdir),
    )  # fmt: skip
    assert live.exit_code == 0, live.output
    rerun = run_cli(air_gapped, *argv[3:])
    assert rerun.exit_code == 0, rerun.output
    reports = sorted((workdir / "reports").glob("apply-*.json"))
    assert json.loads(reports[-1].read_text())["write_calls"] == 0


def _damaged(bundle: Path, tmp_path: Path) -> dict[str, Path]:
    data = bundle.read_bytes()
    middle = len(data) // 2
    cases = {
        "truncated": data[: len(data) - 100],
        "flipped byte": data[:middle] + bytes([data[middle] ^ 0x10]) + data[middle + 1 :],
        "not a bundle": b"clouds:\n  c1: {}\n",
    }
    paths = {}
    for name, content in cases.items():
        paths[name] = tmp_path / f"{name.replace(' ', '-')}.tar.zst"
        paths[name].write_bytes(content)
    return paths


def test_damaged_or_future_bundles_are_refused_before_anything_is_written(
    lab: Lab, migration: Migration, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = migration.source
    seed_tenant(source.admin, source.project_id, user_id=source.user_id)
    good = tmp_path / "good.tar.zst"
    assert migration.export("--bundle", str(good)).exit_code == 0
    damaged = _damaged(good, tmp_path)
    monkeypatch.setattr(bundle_format, "FORMAT", bundle_format.FORMAT + 1)
    damaged["future format"] = tmp_path / "future.tar.zst"
    assert migration.export("--bundle", str(damaged["future format"])).exit_code == 0
    monkeypatch.undo()
    air_gapped = _destination_only(lab.paths.clouds_yaml, tmp_path / "dst-only.yaml")
    destination = connect(lab.paths.clouds_yaml, DESTINATION.name)
    expected = {
        "truncated": "truncated",
        "flipped byte": "corrupted",
        "not a bundle": "not a stackferry bundle",
        "future format": "by a newer stackferry",
    }
    for name, path in damaged.items():
        workdir = tmp_path / f"wd-{name.replace(' ', '-')}"
        for command in ("plan", "apply", "migrate"):
            result = run_cli(air_gapped, command, "--bundle", str(path), "--dst",
                             DESTINATION.name, "--workdir", str(workdir))  # fmt: skip
            assert result.exit_code == 2, (name, command, result.output)
            assert expected[name] in " ".join(result.output.split()), (name, result.output)
            assert "Traceback" not in result.output
        assert not (workdir / "resources").exists(), name  # nothing unpacked
        assert _project_id(destination, source.project_name) is None, name  # nothing made
    # The good one is accepted by the same command.
    ok = run_cli(air_gapped, "plan", "--bundle", str(good), "--dst", DESTINATION.name,
                 "--workdir", str(tmp_path / "wd-good"))  # fmt: skip
    assert ok.exit_code == 0, ok.output


def test_the_seeds_selective_options_at_both_ends(
    lab: Lab, migration: Migration, tmp_path: Path
) -> None:
    """soc6-soc7's --keypairs, --quotas, --nova/--neutron/--cinder-quotas and
    --security-groups, as --only selections of one bundle (and of its export)."""
    source = migration.source
    seed_tenant(source.admin, source.project_id, user_id=source.user_id)
    bundle = tmp_path / "all.tar.zst"
    assert migration.export("--bundle", str(bundle)).exit_code == 0
    air_gapped = _destination_only(lab.paths.clouds_yaml, tmp_path / "dst-only.yaml")
    destination = connect(lab.paths.clouds_yaml, DESTINATION.name)
    workdir = tmp_path / "upload"

    def upload(*only: str) -> None:
        selection = [a for o in only for a in ("--only", o)]
        result = run_cli(air_gapped, "apply", "--bundle", str(bundle), "--dst",
                         DESTINATION.name, "--workdir", str(workdir), "-q", *selection)  # fmt: skip
        assert result.exit_code == 0, (only, result.output)

    src_compute = source.admin.compute.get_quota_set(source.project_id)
    src_network = source.admin.network.get_quota(source.project_id)
    src_block = sdk.block_storage(source.admin).get_quota_set(source.project_id)

    def quotas() -> tuple[int, int, int]:
        pid = _project_id(destination, source.project_name)
        assert pid is not None
        return (
            destination.compute.get_quota_set(pid).instances,
            destination.network.get_quota(pid).networks,
            sdk.block_storage(destination).get_quota_set(pid).volumes,
        )

    def groups() -> list[str]:
        pid = _project_id(destination, source.project_name)
        return sorted(g.name for g in destination.network.security_groups(project_id=pid))

    upload("quotas:compute")  # --nova-quotas
    after_nova = quotas()
    assert after_nova[0] == src_compute.instances
    assert after_nova[1] != src_network.networks and after_nova[2] != src_block.volumes
    assert groups() == ["default"]
    upload("quotas:network")  # --neutron-quotas
    assert quotas()[1] == src_network.networks and quotas()[2] != src_block.volumes
    upload("quotas:block-storage")  # --cinder-quotas
    assert quotas() == (src_compute.instances, src_network.networks, src_block.volumes)

    src_groups = sorted(
        g.name for g in source.admin.network.security_groups(project_id=source.project_id)
    )
    upload("security_groups", "security_group_rules")  # --security-groups
    assert groups() == src_groups
    pid = _project_id(destination, source.project_name)
    rules = len(list(destination.network.security_group_rules(project_id=pid)))
    upload("security_groups", "security_group_rules")  # never twice
    assert groups() == src_groups
    assert len(list(destination.network.security_group_rules(project_id=pid))) == rules
    reports = sorted((workdir / "reports").glob("apply-*.json"))
    assert json.loads(reports[-1].read_text())["write_calls"] == 0

    src_keys = sorted(k.name for k in source.admin.compute.keypairs(user_id=source.user_id))
    assert src_keys
    upload("users", "role_assignments", "keypairs")  # --keypairs, for the tenant's users
    user = sdk.identity(destination).find_user(source.user_name, domain_id="default")
    assert user is not None
    assert sorted(k.name for k in destination.compute.keypairs(user_id=user.id)) == src_keys

    # And at the download end: a bundle of the compute quotas only (--quotas --nova-quotas).
    only_nova = tmp_path / "nova.tar.zst"
    assert migration.export("--bundle", str(only_nova), "--only", "quotas:compute").exit_code == 0
    reader = bundle_format.BundleReader(only_nova)
    files = {n.rsplit("/", 1)[1] for n in reader.members if n.startswith("workdir/resources/")}
    assert "quotas.yaml" in files and files <= {"quotas.yaml", "projects.yaml", "domains.yaml"}
    carried = yaml.safe_load(reader.read("workdir/resources/quotas.yaml"))["resources"]
    assert [r["identity"]["service"] for r in carried] == ["compute"]
