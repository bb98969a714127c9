"""The --ceph settings file and cinder host names: what decides a volume's RBD path."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackferry.cloud.catalog import backends_of
from stackferry.data.rbd import CephAccess, CephSettings
from stackferry.errors import StackferryError


def _conf(tmp_path: Path) -> Path:
    conf = tmp_path / "ceph.conf"
    conf.write_text("[global]\n")
    return conf


def test_settings_name_each_side_cluster_pool_and_backends(tmp_path: Path) -> None:
    conf = _conf(tmp_path)
    path = tmp_path / "ceph.yaml"
    path.write_text(
        f"source: {{conf: {conf}, pool: volumes, backends: [ceph, rbd-2], client: cinder}}\n"
        f"destination: {{conf: {conf}, pool: vols, backends: [ceph]}}\n"
    )
    settings = CephSettings.load(path)
    assert settings.source is not None and settings.destination is not None
    assert settings.source == CephAccess(conf, "volumes", frozenset({"ceph", "rbd-2"}),
                                         None, "cinder")  # fmt: skip
    assert settings.destination is not None and settings.destination.client == "admin"
    assert settings.destination.image("v-1") == "vols/volume-v-1"
    assert settings.destination.argv("info")[:5] == ["rbd", "--conf", str(conf), "--id", "admin"]
    assert CephSettings.load(None) == CephSettings(None, None)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("source: [1, 2]\n", "at source"),
        ("source: {conf: /nowhere/ceph.conf, pool: v, backends: [ceph]}\n", "no file"),
        ("source: {pool: v, backends: [ceph]}\n", "'conf' is a required property"),
        ("elsewhere: {}\n", "Additional properties"),
        ("source: {conf: x, pool: v, backends: []}\n", "at source/backends"),
        ("source: [unclosed\n", "cannot read"),
    ],
)
def test_bad_settings_are_refused_with_where_and_why(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "ceph.yaml"
    path.write_text(text)
    with pytest.raises(StackferryError, match=problem):
        CephSettings.load(path)


def test_a_volumes_backend_from_cinders_host_name() -> None:
    assert backends_of("c1-cinder@ceph#ceph") == {"ceph"}
    assert backends_of("ctl@rbd-1#RBD") == {"rbd-1", "RBD"}
    assert backends_of("ctl@lvm") == {"lvm"}
    assert backends_of(None) == set() and backends_of("no-backend") == set()
