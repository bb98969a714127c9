"""Bad input gets a clear error naming its cause, a non-zero exit, and nothing half-written."""

from __future__ import annotations

from pathlib import Path

import yaml

from devcloud.layout import DESTINATION
from devcloud.seed import connect
from stackferry import sdk
from tests.cloud.migration import Migration, run_cli


def _clouds_with(tmp_path: Path, lab_clouds: Path, name: str, **auth: object) -> Path:
    clouds = yaml.safe_load(lab_clouds.read_text())
    entry = clouds["clouds"]["c1"]
    entry["auth"].update(auth)
    clouds["clouds"][name] = entry
    path = tmp_path / "clouds.yaml"
    path.write_text(yaml.safe_dump(clouds))
    return path


def test_wrong_password_and_unreachable_cloud(migration: Migration, tmp_path: Path) -> None:
    bad = _clouds_with(tmp_path, migration.clouds_yaml, "c1-bad", password="not-the-password")
    result = run_cli(
        bad,
        "export",
        "--src",
        "c1-bad",
        "--project",
        migration.source.project_name,
        "--workdir",
        str(migration.workdir),
    )
    assert result.exit_code == 2
    assert "cloud c1-bad: the credentials were refused (HTTP 401)" in result.output
    assert not migration.workdir.exists()

    down = _clouds_with(
        tmp_path, migration.clouds_yaml, "c1-down", auth_url="http://127.0.0.1:9/v3"
    )
    result = run_cli(
        down,
        "export",
        "--src",
        "c1-down",
        "--project",
        migration.source.project_name,
        "--workdir",
        str(migration.workdir),
    )
    assert result.exit_code == 2
    assert "cloud c1-down: cannot reach the identity service" in result.output
    assert not migration.workdir.exists()

    result = migration.cli(
        "export",
        "--src",
        "c1",
        "--project",
        "no-such-project-xyz",
        "--workdir",
        str(migration.workdir),
    )
    assert result.exit_code == 2 and "'no-such-project-xyz'" in result.output
    assert not (migration.workdir / "stackferry.yaml").exists()


def test_dangling_reference_is_blocked_not_guessed(migration: Migration) -> None:
    net = migration.source.admin.network
    network = net.create_network(name="only", project_id=migration.source.project_id)
    net.create_subnet(
        network_id=network.id,
        project_id=migration.source.project_id,
        cidr="10.3.0.0/24",
        ip_version=4,
    )
    assert migration.export().exit_code == 0
    path = migration.workdir / "resources" / "subnets.yaml"
    document = yaml.safe_load(path.read_text())
    document["resources"][0]["params"]["network"] = {"name": "ghost"}
    path.write_text(yaml.safe_dump(document))

    plan = migration.plan_json()
    blocked = [s for s in plan["steps"] if s["action"] == "blocked"]
    assert len(blocked) == 1 and 'network:{"name":"ghost"}' in blocked[0]["reason"]
    result = migration.apply()
    assert result.exit_code == 1
    report = migration.last_report("apply")
    assert report["summary"]["blocked"] == 1 and report["summary"]["done"] >= 2


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

    # One at a time: neutron's quota check can let concurrent creates overshoot a quota.
    result = migration.apply("--parallel", "1")
    assert result.exit_code == 1
    report = migration.last_report("apply")
    errors = [s["error"] for s in report["steps"] if s["result"] == "failed"]
    assert len(errors) == 2
    assert all("HTTP 409" in e and "Quota exceeded" in e for e in errors), errors
    assert len(list(dst.network.networks(project_id=project.id))) == 1

    dst.network.update_quota(project.id, networks=10)
    assert migration.apply().exit_code == 0
    assert sorted(n.name for n in dst.network.networks(project_id=project.id)) == ["n0", "n1", "n2"]
    assert migration.verify().exit_code == 0
