import configparser
import stat
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlparse

import yaml

from devcloud.health import Health
from devcloud.layout import CLOUDS, SERVICE_PORT_SUFFIX
from devcloud.seed import write_clouds_yaml
from devcloud.services import write_ini


def test_clouds_are_independent_and_loopback_only() -> None:
    ports = [c.port(s) for c in CLOUDS for s in SERVICE_PORT_SUFFIX]
    assert len(ports) == len(set(ports)), "two services share a port"
    assert len({c.region for c in CLOUDS}) == len(CLOUDS)
    hosts = [h for c in CLOUDS for h in c.compute_hosts]
    assert len(hosts) == len(set(hosts)) == 4
    assert len({c.db_url("nova_api") for c in CLOUDS}) == len(CLOUDS)
    for cloud in CLOUDS:
        for service in SERVICE_PORT_SUFFIX:
            assert urlparse(cloud.url(service)).hostname == "127.0.0.1"
        assert "@127.0.0.1:" in cloud.transport_url and cloud.transport_url.endswith(cloud.name)


def test_clouds_yaml_has_admin_and_tenant_entries_private(tmp_path: Path) -> None:
    path = tmp_path / "clouds.yaml"
    write_clouds_yaml(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    clouds = yaml.safe_load(path.read_text())["clouds"]
    assert set(clouds) == {"c1", "c2", "c1-demo", "c2-demo"}
    assert clouds["c1"]["auth"]["auth_url"] != clouds["c2"]["auth"]["auth_url"]
    assert clouds["c2-demo"]["region_name"] == "RegionTwo"


def test_write_ini_keeps_option_case(tmp_path: Path) -> None:
    path = write_ini(tmp_path / "x.conf", {"DEFAULT": {"Transport_URL": "rabbit://a%b"}})
    parser = configparser.RawConfigParser()
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path)
    assert parser["DEFAULT"]["Transport_URL"] == "rabbit://a%b"


def test_health_needs_every_piece() -> None:
    good = Health(
        "c1",
        {s: True for s in SERVICE_PORT_SUFFIX},
        hypervisors_up=["c1-cmp1", "c1-cmp2"],
        resource_providers=2,
        volume_services_up=["cinder-scheduler", "cinder-volume"],
        compute_services_up=["nova-conductor", "nova-scheduler", "nova-compute", "nova-compute"],
    )
    assert good.healthy
    assert not replace(good, hypervisors_up=["c1-cmp1"]).healthy
    assert not replace(good, volume_services_up=["cinder-scheduler"]).healthy
    # a nova scheduler that died leaves hypervisors up, but nothing can boot
    assert not replace(good, compute_services_up=["nova-conductor", "nova-compute"]).healthy
    api_down = replace(good, apis={**good.apis, "glance": False})
    assert not api_down.healthy
    assert "DOWN: glance" in api_down.summary()


def test_a_lab_folder_postgres_cannot_reach_is_named_before_initdb() -> None:
    import shutil
    import tempfile

    from devcloud.infra import _reachable_by_others

    closed = Path(tempfile.mkdtemp())  # mode 0700, like a CI checkout under mktemp -d
    try:
        (closed / "lab" / "pg").mkdir(parents=True)
        assert _reachable_by_others(closed / "lab" / "pg" / "data") == closed
        closed.chmod(0o755)
        assert _reachable_by_others(closed / "lab" / "pg" / "data") is None
    finally:
        shutil.rmtree(closed)
