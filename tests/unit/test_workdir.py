"""Workdir files: atomic, private, versioned, validated with precise messages; mapping."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from stackferry.cli.main import cli
from stackferry.engine.context import Tenant
from stackferry.engine.mapping import Mapping
from stackferry.engine.model import Resource
from stackferry.engine.workdir import FORMAT, Workdir, published_schema
from stackferry.errors import WorkdirError
from stackferry.kinds.catalog import registry


def exported(tmp_path: Path) -> Path:
    reg = registry()
    wd = Workdir(tmp_path / "wd")
    wd.resources = {
        "network": [
            Resource(
                "network",
                {"name": "front"},
                {"mtu": 1400, "shared": False, "tags": ["a"]},
                {"id": "n-1"},
            )
        ],
        "subnet": [
            Resource(
                "subnet",
                {"network": "front", "cidr": "10.0.0.0/24"},
                {"network": {"name": "front"}, "cidr": "10.0.0.0/24", "ip_version": 4},
                {"id": "s-1"},
            )
        ],
    }
    kinds = [reg["network"], reg["subnet"]]
    wd.save(reg, Tenant("demo", "lab"), "c1", kinds)
    return wd.root


def test_roundtrip_private_and_without_yaml_anchors(tmp_path: Path) -> None:
    root = exported(tmp_path)
    for path in [root / "stackferry.yaml", *(root / "resources").iterdir()]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert "&id" not in (root / "resources" / "subnets.yaml").read_text()
    loaded = Workdir.load(root, registry())
    assert loaded.tenant == Tenant("demo", "lab")
    assert loaded.resources["subnet"][0].params["network"] == {"name": "front"}
    assert not list(root.rglob("*.tmp"))


def _edit(path: Path, change) -> None:
    document = yaml.safe_load(path.read_text())
    change(document)
    path.write_text(yaml.safe_dump(document))


def test_malformed_yaml_names_the_file(tmp_path: Path) -> None:
    root = exported(tmp_path)
    (root / "resources" / "networks.yaml").write_text("resources: [unclosed\n")
    with pytest.raises(WorkdirError, match=r"networks.yaml: not valid YAML"):
        Workdir.load(root, registry())


def test_newer_format_is_refused_with_the_reason(tmp_path: Path) -> None:
    root = exported(tmp_path)
    _edit(root / "resources" / "subnets.yaml", lambda d: d.update(format=FORMAT + 1))
    with pytest.raises(WorkdirError, match=rf"format {FORMAT + 1} by a newer stackferry"):
        Workdir.load(root, registry())


def test_schema_error_names_file_resource_and_field(tmp_path: Path) -> None:
    root = exported(tmp_path)
    _edit(
        root / "resources" / "networks.yaml",
        lambda d: d["resources"][0]["params"].update(mtu="big"),
    )
    with pytest.raises(WorkdirError) as err:
        Workdir.load(root, registry())
    message = str(err.value)
    assert "networks.yaml" in message and "{'name': 'front'}" in message
    assert "params.mtu" in message and "'big'" in message


def test_duplicate_identity_is_refused(tmp_path: Path) -> None:
    root = exported(tmp_path)
    _edit(root / "resources" / "networks.yaml", lambda d: d["resources"].append(d["resources"][0]))
    with pytest.raises(WorkdirError, match=r"same identity"):
        Workdir.load(root, registry())


def test_validate_command_exit_codes(tmp_path: Path) -> None:
    root = exported(tmp_path)
    ok = CliRunner().invoke(cli, ["validate", "--workdir", str(root)])
    assert ok.exit_code == 0 and "valid (2 resources)" in ok.output
    _edit(root / "resources" / "subnets.yaml", lambda d: d["resources"][0]["params"].pop("cidr"))
    bad = CliRunner().invoke(cli, ["validate", "--workdir", str(root)])
    assert bad.exit_code == 2
    assert "'cidr' is a required property" in bad.output
    missing = CliRunner().invoke(cli, ["validate", "--workdir", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "stackferry export" in missing.output


def test_published_schema_covers_every_kind() -> None:
    schema = published_schema(registry())
    assert {"networks", "subnets", "projects"} <= set(schema["kinds"])
    assert "external_networks" not in schema["kinds"]  # lookups are never written


def test_mapping_renames_tenant_users_and_external_networks(tmp_path: Path) -> None:
    reg = registry()
    path = tmp_path / "mapping.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "projects": {"demo": "demo2"},
                "domains": {"lab": "prod"},
                "external_networks": {"public": "ext"},
            }
        )
    )
    mapping = Mapping.load(path, reg)
    assert mapping.tenant(Tenant("demo", "lab")) == Tenant("demo2", "prod")
    project = Resource(
        "project", {"name": "demo", "domain": "lab"}, {"parent": {"name": "root", "domain": "lab"}}
    )
    mapped = mapping.apply({"project": [project]})["project"][0]
    assert mapped.identity == {"name": "demo2", "domain": "prod"}
    assert mapped.params["parent"] == {"name": "root", "domain": "prod"}
    assert project.identity == {"name": "demo", "domain": "lab"}  # the workdir is untouched


def test_mapping_file_errors_are_clear(tmp_path: Path) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text(yaml.safe_dump({"project": {"a": "b"}}))
    with pytest.raises(WorkdirError, match="'project' was unexpected"):
        Mapping.load(path, registry())
