"""Bad input gets a clear error naming its cause, the right exit code, no traceback, and -
for what the plan can judge - nothing written in the destination (listed before and after).

Table-driven: each case takes a fresh copy of one exported workdir, spoils something (a file,
an option, the mapping, clouds.yaml, the destination), runs one command and checks how it
ended. The few cases that need more (credentials, quotas, name clashes) follow the table."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result

from devcloud.lab import Lab
from devcloud.layout import DESTINATION, SOURCE
from devcloud.seed import connect
from devcloud.tenants import (
    Tenant,
    create_tenant,
    purge_project_named,
    purge_tenant,
    write_member_clouds_yaml,
)
from stackferry.cloud import sdk
from tests.cloud.migration import Migration, apply_argv, run_cli

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGv9c7d2LQ4xnUPMk1tRBfWDEmW2mWLvWkG0nWc1Pw5d test"


def _clouds_with(tmp_path: Path, lab_clouds: Path, name: str, **auth: object) -> Path:
    clouds = yaml.safe_load(lab_clouds.read_text())
    entry = clouds["clouds"]["c1"]
    entry["auth"].update(auth)
    clouds["clouds"][name] = entry
    path = tmp_path / "clouds.yaml"
    path.write_text(yaml.safe_dump(clouds))
    return path


def destination_listing(clouds_yaml: Path, project_name: str) -> list[str]:
    """Everything of the project in the destination, by kind and name (empty: no project)."""
    admin = connect(clouds_yaml, DESTINATION.name)
    listing = []
    for project in sdk.identity(admin).projects(name=project_name, domain_id="default"):
        pid = project.id
        listing.append(f"project {project.name} {project.description!r}")
        listing += [f"network {n.name}" for n in admin.network.networks(project_id=pid)]
        listing += [f"subnet {s.cidr}" for s in admin.network.subnets(project_id=pid)]
        for group in admin.network.security_groups(project_id=pid):
            listing.append(f"security_group {group.name} {group.description!r}")
            listing += [
                f"rule {group.name} {r['direction']} {r['protocol']} {r['port_range_min']}"
                for r in group.security_group_rules
            ]
        listing += [f"router {r.name}" for r in admin.network.routers(project_id=pid)]
        images = admin.image.get("/images", params={"owner": pid, "visibility": "all"}).json()
        listing += [f"image {i['name']}" for i in images["images"]]
    return sorted(listing)


@pytest.fixture(scope="module")
def exported(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Tenant, Path]]:
    """One source tenant (a network and subnet, a security group, a keypair, an image),
    exported once; each case works on a copy of the workdir."""
    tenant = create_tenant(lab.paths.clouds_yaml, SOURCE)
    net, pid = tenant.admin.network, tenant.project_id
    network = net.create_network(name="front", project_id=pid, mtu=1400)
    net.create_subnet(network_id=network.id, project_id=pid, cidr="10.7.0.0/24", ip_version=4)
    group = net.create_security_group(name="web", project_id=pid, description="web tier")
    net.create_security_group_rule(
        security_group_id=group.id, project_id=pid, direction="ingress", ethertype="IPv4",
        protocol="tcp", port_range_min=443, port_range_max=443, remote_ip_prefix="0.0.0.0/0",
    )  # fmt: skip
    tenant.admin.compute.create_keypair(name="k1", public_key=SSH_KEY, user_id=tenant.user_id)
    sdk.image(tenant.conn).create_image(
        name="tiny", data=b"x" * 4 * 1024 * 1024, disk_format="raw", container_format="bare",
        wait=True,
    )  # fmt: skip
    workdir = tmp_path_factory.mktemp("bad-input") / "workdir"
    result = run_cli(
        lab.paths.clouds_yaml, "export", "--src", SOURCE.name, "--project",
        tenant.project_name, "--workdir", str(workdir), "--skip", "flavors",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    yield tenant, workdir
    purge_project_named(lab.paths.clouds_yaml, DESTINATION, tenant.project_name)
    purge_tenant(tenant)


@dataclass
class Case:
    """Spoil something in ``workdir`` (or around it) and return the command's arguments."""

    name: str
    spoil: Callable[[Path, Path], list[str]]  # (workdir, tmp) -> CLI arguments
    exit_code: int
    says: tuple[str, ...]
    warns: tuple[str, ...] = ()
    clouds: Callable[[Path, Path], Path] | None = None  # a clouds.yaml of the case's own
    cleanup: list[Callable[[], None]] = field(default_factory=list)


def _edit(workdir: Path, kind_file: str, change: Callable[[dict[str, Any]], None]) -> None:
    path = workdir / "resources" / kind_file
    document = yaml.safe_load(path.read_text())
    change(document["resources"][0])
    path.write_text(yaml.safe_dump(document))


def _apply(workdir: Path, *extra: str) -> list[str]:
    return apply_argv(workdir, *extra, src=SOURCE.name)


def _plan(workdir: Path, *extra: str) -> list[str]:
    return ["plan", "--dst", DESTINATION.name, "--workdir", str(workdir), *extra]


def _mapping(tmp: Path, document: Any) -> str:
    path = tmp / "mapping.yaml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return str(path)


def _not_utf8(workdir: Path, tmp: Path) -> list[str]:
    path = workdir / "resources" / "networks.yaml"
    path.write_bytes(path.read_bytes().replace(b"front", b"fr\xffnt"))
    return _apply(workdir)


def _workdir_is_a_file(workdir: Path, tmp: Path) -> list[str]:
    (tmp / "a-file").write_text("not a workdir")
    return _apply(tmp / "a-file")


def _journal_cannot_be_written(workdir: Path, tmp: Path) -> list[str]:
    (workdir / "journal.sqlite").mkdir()  # sqlite cannot open a folder
    return _apply(workdir)


def _edit_case(
    kind_file: str, change: Callable[[dict[str, Any]], None]
) -> Callable[..., list[str]]:
    def spoil(workdir: Path, tmp: Path) -> list[str]:
        _edit(workdir, kind_file, change)
        return _apply(workdir)

    return spoil


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(resource: dict[str, Any]) -> None:
        target = resource
        *parents, last = path.split(".")
        for part in parents:
            target = target[part]
        target[last] = value

    return change


def _ghost_network(workdir: Path, tmp: Path) -> list[str]:
    _edit(workdir, "subnets.yaml", _set("params.network", {"name": "ghost"}))
    return _apply(workdir)


def _unknown_external_network(workdir: Path, tmp: Path) -> list[str]:
    mapping = _mapping(tmp, {"external_networks": {"public": "no-such-net"}})
    routers = workdir / "resources" / "routers.yaml"
    routers.write_text(yaml.safe_dump({
        "format": 1, "kind": "router",
        "resources": [{"identity": {"name": "edge"}, "params": {
            "description": "", "admin_state_up": True, "tags": [],
            "external_gateway": {"network": {"name": "public"}, "enable_snat": True},
            "routes": [], "interfaces": []}, "facts": {}}],
    }))  # fmt: skip
    manifest = workdir / "stackferry.yaml"
    document = yaml.safe_load(manifest.read_text())
    document["kinds"].append("router")
    manifest.write_text(yaml.safe_dump(document))
    return _apply(workdir, "--mapping", mapping)


def _unknown_volume_type(workdir: Path, tmp: Path) -> list[str]:
    volumes = workdir / "resources" / "volumes.yaml"
    volumes.write_text(yaml.safe_dump({
        "format": 1, "kind": "volume",
        "resources": [{"identity": {"name": "data"}, "params": {
            "size": 1, "volume_type": "gold", "bootable": False, "metadata": {},
            "image_metadata": {}}, "facts": {"id": "x", "size": 1}}],
    }))  # fmt: skip
    manifest = workdir / "stackferry.yaml"
    document = yaml.safe_load(manifest.read_text())
    document["kinds"].append("volume")
    manifest.write_text(yaml.safe_dump(document))
    return _apply(workdir)


def _member_project_missing(workdir: Path, tmp: Path) -> list[str]:
    def share(resource: dict[str, Any]) -> None:
        resource["params"]["visibility"] = "shared"
        resource["params"]["members"] = [
            {"project": {"name": "nobody-here", "domain": "Default"}, "status": "accepted"}
        ]

    _edit(workdir, "images.yaml", share)
    return _apply(workdir)


def _parallel(value: str) -> Callable[[Path, Path], list[str]]:
    return lambda workdir, tmp: _apply(workdir, "--parallel", value)


def _unknown_file(workdir: Path, tmp: Path) -> list[str]:
    (workdir / "resources" / "notes.yaml").write_text("mine: true\n")
    return ["validate", "--workdir", str(workdir)]


def _broken_clouds(tmp: Path, lab_clouds: Path) -> Path:
    path = tmp / "clouds.yaml"
    path.write_text(lab_clouds.read_text().replace("clouds:", "clouds: [", 1))
    return path


def _broken_mapping(workdir: Path, tmp: Path) -> list[str]:
    return _apply(workdir, "--mapping", _mapping(tmp, "projects: [not, a, table]\n"))


@contextlib.contextmanager
def _filesystem(tmp: Path, size: str, readonly: bool = False) -> Iterator[Path]:
    """A small tmpfs of the test's own (this lab runs as root in a VM of its own)."""
    where = tmp / f"fs-{size}-{'ro' if readonly else 'rw'}"
    where.mkdir()
    options = f"size={size}" + (",ro" if readonly else "")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True
    )
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs for this case: {done.stderr.decode()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


CASES = [
    Case("workdir file not UTF-8", _not_utf8, 2, ("networks.yaml", "not UTF-8 text")),
    Case("--workdir is a file", _workdir_is_a_file, 2, ("is a file",)),
    Case("journal cannot be used", _journal_cannot_be_written, 2, ("journal.sqlite", "cannot be")),
    Case(
        "invalid CIDR",
        _edit_case("subnets.yaml", _set("params.cidr", "10.7.0.0/33")),
        2,
        ("subnets.yaml", "params.cidr", "10.7.0.0/33"),
    ),
    Case(
        "300-character name",
        _edit_case("networks.yaml", _set("identity.name", "n" * 300)),
        2,
        ("networks.yaml", "identity.name", "is too long"),
    ),
    Case(
        "MTU out of range",
        _edit_case("networks.yaml", _set("params.mtu", 99999)),
        2,
        ("networks.yaml", "params.mtu", "99999"),
    ),
    Case(
        "invalid public key",
        _edit_case("keypairs.yaml", _set("params.public_key", "ssh-rsa AAAAnot")),
        2,
        ("keypairs.yaml", "params.public_key"),
    ),
    Case(
        "port out of range",
        _edit_case("security_group_rules.yaml", _set("identity.port_range_min", 70000)),
        2,
        ("security_group_rules.yaml", "identity.port_range_min"),
    ),
    Case("subnet of a network that exists nowhere", _ghost_network, 2, ("1 blocked", "--partial")),
    Case(
        "mapped external network the destination lacks",
        _unknown_external_network,
        2,
        ("1 blocked",),
    ),
    Case("volume type the destination lacks", _unknown_volume_type, 2, ("1 blocked",)),
    Case("image member project the destination lacks", _member_project_missing, 2, ("1 blocked",)),
    Case("--parallel 0", _parallel("0"), 2, ("--parallel",)),
    Case("--parallel -1", _parallel("-1"), 2, ("--parallel",)),
    Case(
        "--only and --skip the same kind",
        lambda w, t: _apply(w, "--only", "networks", "--skip", "networks"),
        2,
        ("both --only and --skip",),
    ),
    Case(
        "invalid --include",
        lambda w, t: [
            "migrate",
            "--src",
            SOURCE.name,
            "--dst",
            DESTINATION.name,
            "--project",
            "x",
            "--include",
            "web[",
            "--workdir",
            str(w),
        ],
        2,
        ("not a regular expression",),
    ),
    Case(
        "unknown --adopt kind",
        lambda w, t: _apply(w, "--adopt", "widgets"),
        2,
        ("unknown kind 'widgets'",),
    ),
    Case("broken mapping file", _broken_mapping, 2, ("mapping file", "projects")),
    Case(
        "broken clouds.yaml",
        lambda w, t: _plan(w),
        2,
        ("clouds.yaml is broken",),
        clouds=_broken_clouds,
    ),
    Case(
        "unknown file in the workdir", _unknown_file, 0, ("valid",), warns=("notes.yaml", "ignored")
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_table(
    case: Case, lab: Lab, exported: tuple[Tenant, Path], tmp_path: Path
) -> None:
    tenant, template = exported
    workdir = tmp_path / "workdir"
    shutil.copytree(template, workdir)
    before = destination_listing(lab.paths.clouds_yaml, tenant.project_name)
    args = case.spoil(workdir, tmp_path)
    clouds = case.clouds(tmp_path, lab.paths.clouds_yaml) if case.clouds else lab.paths.clouds_yaml
    result = run_cli(clouds, *args)
    check(result, case.exit_code, case.says, case.warns)
    assert destination_listing(lab.paths.clouds_yaml, tenant.project_name) == before


def check(
    result: Result, exit_code: int, says: tuple[str, ...], warns: tuple[str, ...] = ()
) -> None:
    output = " ".join(result.output.split())  # tables fold long cells
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    for text in (*says, *warns):
        assert text in output, (text, result.output)


def test_read_only_workdir_and_archive_and_a_full_disk_are_named_as_local(
    lab: Lab, exported: tuple[Tenant, Path], tmp_path: Path
) -> None:
    tenant, template = exported
    with _filesystem(tmp_path, "8m") as mounted:
        shutil.copytree(template, mounted / "workdir")
        subprocess.run(["mount", "-o", "remount,ro", str(mounted)], check=True)
        result = run_cli(lab.paths.clouds_yaml, *_apply(mounted / "workdir"))
    check(result, 2, ("the workdir", "cannot be written", "Read-only file system"))
    assert destination_listing(lab.paths.clouds_yaml, tenant.project_name) == []

    workdir = tmp_path / "workdir"
    shutil.copytree(template, workdir)
    with _filesystem(tmp_path, "1m", readonly=True) as readonly:
        result = run_cli(lab.paths.clouds_yaml, *_apply(workdir, "--archive", str(readonly)))
    check(result, 2, ("--archive folder", "cannot be written", "Read-only file system"))
    assert destination_listing(lab.paths.clouds_yaml, tenant.project_name) == []

    with _filesystem(tmp_path, "1m") as full:  # the image has 4 MiB
        result = run_cli(
            lab.paths.clouds_yaml, *_apply(workdir, "--archive", str(full), "--only", "images")
        )
    check(result, 1, ("1 failed",))
    report = Migration(lab.paths.clouds_yaml, tenant, workdir).last_report("apply")
    failed = [s for s in report["steps"] if s["result"] == "failed"]
    assert [s["identity"]["name"] for s in failed] == ["tiny"]
    assert str(full) in failed[0]["error"] and "No space left on device" in failed[0]["error"]
    assert "on this machine" in failed[0]["error"]
    # Not retried as if the cloud had been unable: one image made (and taken away again).
    posts = sum(
        c["calls"]
        for c in report["api_calls"]
        if (c["cloud"], c["service"], c["method"]) == ("destination", "image", "POST")
    )
    assert posts == 1
    dst = connect(lab.paths.clouds_yaml, DESTINATION.name)
    assert not [i for i in dst.image.get("/images", params={"name": "tiny"}).json()["images"]]


def test_wrong_password_unreachable_cloud_unknown_project_and_member_credentials(
    migration: Migration, tmp_path: Path
) -> None:
    bad = _clouds_with(tmp_path, migration.clouds_yaml, "c1-bad", password="not-the-password")
    export = ["export", "--project", migration.source.project_name,
              "--workdir", str(migration.workdir)]  # fmt: skip
    result = run_cli(bad, *export, "--src", "c1-bad")
    check(result, 2, ("cloud c1-bad: the credentials were refused (HTTP 401)",))
    assert not migration.workdir.exists()

    down = _clouds_with(
        tmp_path, migration.clouds_yaml, "c1-down", auth_url="http://127.0.0.1:9/v3"
    )
    result = run_cli(down, *export, "--src", "c1-down")
    check(result, 2, ("cloud c1-down: cannot reach the identity service",))
    assert not migration.workdir.exists()

    result = migration.cli(
        "export", "--src", "c1", "--project", "no-such-project-xyz",
        "--workdir", str(migration.workdir),
    )  # fmt: skip
    check(result, 2, ("'no-such-project-xyz'",))
    assert not (migration.workdir / "stackferry.yaml").exists()

    # Destination credentials without the admin role: refused by name, before any write.
    assert migration.export().exit_code == 0
    member = create_tenant(migration.clouds_yaml, DESTINATION)
    try:
        clouds = yaml.safe_load(migration.clouds_yaml.read_text())
        mine = yaml.safe_load(write_member_clouds_yaml(member, tmp_path / "m.yaml").read_text())
        clouds["clouds"]["c2-member"] = mine["clouds"]["member"]
        path = tmp_path / "with-member.yaml"
        path.write_text(yaml.safe_dump(clouds))
        result = run_cli(path, "apply", "--dst", "c2-member", "--workdir", str(migration.workdir))
        check(result, 2, ("cloud c2-member", "403", "admin credentials"))
    finally:
        purge_tenant(member)
    assert destination_listing(migration.clouds_yaml, migration.source.project_name) == []


def test_destination_quota_too_small_then_raised(migration: Migration) -> None:
    net = migration.source.admin.network
    for i in range(3):
        net.create_network(name=f"n{i}", project_id=migration.source.project_id)
    # Without the source's quotas, which would lift the destination's small one first.
    assert migration.export("--skip", "quotas").exit_code == 0

    dst = connect(migration.clouds_yaml, DESTINATION.name)
    project = sdk.identity(dst).create_project(
        name=migration.source.project_name, domain_id="default"
    )
    dst.network.update_quota(project.id, networks=1)

    # The operator made the project: stackferry changes it only when told to adopt it.
    conflicts = [s for s in migration.plan_json()["steps"] if s["action"] == "conflict"]
    assert [c["kind"] for c in conflicts] == ["project"]
    assert "stackferry did not make it" in conflicts[0]["reason"]
    assert "--adopt project:" in conflicts[0]["reason"]
    result = migration.apply("--parallel", "1")
    check(result, 2, ("1 conflict", "--adopt"))
    assert list(dst.network.networks(project_id=project.id)) == []

    # One at a time: neutron's quota check can let concurrent creates overshoot a quota.
    result = migration.apply("--parallel", "1", "--adopt", "projects")
    assert result.exit_code == 1
    report = migration.last_report("apply")
    errors = [s["error"] for s in report["steps"] if s["result"] == "failed"]
    assert len(errors) == 2
    assert all("HTTP 409" in e and "Quota exceeded" in e for e in errors), errors
    assert len(list(dst.network.networks(project_id=project.id))) == 1

    dst.network.update_quota(project.id, networks=10)
    assert migration.apply().exit_code == 0  # adopted once, remembered by the journal
    assert sorted(n.name for n in dst.network.networks(project_id=project.id)) == ["n0", "n1", "n2"]
    assert migration.verify().exit_code == 0


def test_a_destination_group_of_the_same_name_is_a_conflict_until_adopted(
    migration: Migration,
) -> None:
    """What stackferry did not make is never changed: the operator's own group keeps its
    description and its rule (tcp 9999 from 192.0.2.0/24), until it is adopted."""
    src, pid = migration.source.admin.network, migration.source.project_id
    group = src.create_security_group(name="web", project_id=pid, description="from the source")
    src.create_security_group_rule(
        security_group_id=group.id, project_id=pid, direction="ingress", ethertype="IPv4",
        protocol="tcp", port_range_min=443, port_range_max=443,
    )  # fmt: skip
    assert (
        migration.export("--only", "security_groups", "--only", "security_group_rules").exit_code
        == 0
    )

    dst = connect(migration.clouds_yaml, DESTINATION.name)
    project = sdk.identity(dst).create_project(
        name=migration.source.project_name,
        domain_id="default",
        description="stackferry test tenant",
    )
    theirs = dst.network.create_security_group(
        name="web", project_id=project.id, description="the operator's own"
    )
    dst.network.create_security_group_rule(
        security_group_id=theirs.id, project_id=project.id, direction="ingress",
        ethertype="IPv4", protocol="tcp", port_range_min=9999, port_range_max=9999,
        remote_ip_prefix="192.0.2.0/24",
    )  # fmt: skip
    before = destination_listing(migration.clouds_yaml, migration.source.project_name)

    plan = migration.plan_json("--adopt", "projects")
    actions = {(s["kind"], s["identity"].get("name") or s["identity"].get("security_group"),
                s["action"]) for s in plan["steps"]}  # fmt: skip
    assert ("security_group", "web", "conflict") in actions
    assert ("security_group_rule", "web", "blocked") in actions
    assert not [s for s in plan["steps"] if s["action"] == "delete"]
    web = next(
        s for s in plan["steps"] if s["kind"] == "security_group" and s["identity"]["name"] == "web"
    )
    assert (
        "stackferry did not make it" in web["reason"] and "--adopt security_group:" in web["reason"]
    )
    rendered = migration.cli("plan", "--dst", DESTINATION.name, "--workdir", str(migration.workdir))
    check(rendered, 0, ("conflict",))  # a table with a delete or a conflict renders

    apply = ["apply", "--dst", DESTINATION.name, "--workdir", str(migration.workdir)]
    for quiet in ((), ("-q",)):
        result = migration.cli(*apply, "--adopt", "projects", *quiet)
        check(result, 2, ("1 conflict", "1 blocked"))
    assert destination_listing(migration.clouds_yaml, migration.source.project_name) == before

    result = migration.apply("--adopt", "projects", "--adopt", "security_groups:web")
    assert result.exit_code == 0, result.output
    group = dst.network.get_security_group(theirs.id)
    assert group.description == "from the source"
    ingress = [
        (r["protocol"], r["port_range_min"])
        for r in group.security_group_rules
        if r["direction"] == "ingress"
    ]
    assert ingress == [("tcp", 443)]  # adopted: brought to the source's state, as asked
    assert migration.apply().exit_code == 0  # and remembered
