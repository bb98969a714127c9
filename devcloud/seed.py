"""Seed each cloud through its APIs: catalog and service users, a demo tenant, a public network.

Runs in stackferry's environment with openstacksdk, one process for all calls (the openstack CLI
costs 1.5-2 s of CPU per call on this machine).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openstack
import yaml

from devcloud.layout import CLOUDS, PASSWORD, Cloud
from stackferry.cloud import sdk

SERVICES = (  # keystone user, catalog type, lab service name, path suffix
    ("glance", "image", "glance", ""),
    ("neutron", "network", "neutron", ""),
    ("placement", "placement", "placement", ""),
    ("nova", "compute", "nova", "/v2.1"),
    ("cinder", "block-storage", "cinder", "/v3"),
    ("cinderv3", "volumev3", "cinder", "/v3"),
)
DEMO_DOMAIN = "lab"


def _auth(cloud: Cloud, user: str, project: str, domain: str) -> dict[str, object]:
    return {
        "auth": {
            "auth_url": cloud.keystone_url,
            "username": user,
            "password": PASSWORD,
            "project_name": project,
            "user_domain_name": domain,
            "project_domain_name": domain,
        },
        "region_name": cloud.region,
        "identity_api_version": 3,
        "interface": "public",
    }


def write_clouds_yaml(path: Path) -> None:
    """Admin entries ``c1``/``c2`` and tenant entries ``c1-demo``/``c2-demo``."""
    clouds: dict[str, object] = {}
    for cloud in CLOUDS:
        clouds[cloud.name] = _auth(cloud, "admin", "admin", "Default")
        clouds[f"{cloud.name}-demo"] = _auth(cloud, "demo", "demo", DEMO_DOMAIN)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump({"clouds": clouds}, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(path)


def connect(clouds_yaml: Path, name: str) -> openstack.connection.Connection:
    config = openstack.config.OpenStackConfig(config_files=[str(clouds_yaml)])
    return openstack.connection.Connection(config=config.get_one(cloud=name))


def _find_user(idn: sdk.Identity, name: str, domain_id: str) -> Any:
    return next(iter(idn.users(name=name, domain_id=domain_id)), None)


def seed_identity(clouds_yaml: Path, cloud: Cloud) -> None:
    idn = sdk.identity(connect(clouds_yaml, cloud.name))
    roles = {r.name: r for r in idn.roles()}
    service_project = idn.find_project("service", domain_id="default") or idn.create_project(
        name="service", domain_id="default"
    )
    for user_name, service_type, lab_service, suffix in SERVICES:
        user = _find_user(idn, user_name, "default") or idn.create_user(
            name=user_name, domain_id="default", password=PASSWORD
        )
        for role in ("admin", "service"):
            if role in roles:
                idn.assign_project_role_to_user(service_project, user, roles[role])
        service = idn.find_service(user_name) or idn.create_service(
            name=user_name, type=service_type
        )
        have = {e.interface for e in idn.endpoints(service_id=service.id)}
        for interface in ("public", "internal", "admin"):
            if interface not in have:
                idn.create_endpoint(
                    service_id=service.id,
                    interface=interface,
                    url=cloud.url(lab_service) + suffix,
                    region_id=cloud.region,
                )
    domain = idn.find_domain(DEMO_DOMAIN) or idn.create_domain(name=DEMO_DOMAIN)
    project = idn.find_project("demo", domain_id=domain.id) or idn.create_project(
        name="demo", domain_id=domain.id
    )
    user = _find_user(idn, "demo", domain.id) or idn.create_user(
        name="demo", domain_id=domain.id, password=PASSWORD
    )
    idn.assign_project_role_to_user(project, user, roles["member"])


def seed_resources(clouds_yaml: Path, cloud: Cloud, ceph: bool = False) -> None:
    """The shared pieces every tenant expects: an external network and a small flavor; with
    Ceph, the volume type ``ceph`` (RBD), the default type staying on the file backend."""
    conn = connect(clouds_yaml, cloud.name)
    if ceph:
        _volume_types(conn)
    net = conn.network.find_network("public")
    if net is None:
        net = conn.network.create_network(
            name="public",
            is_router_external=True,
            provider_network_type="flat",
            provider_physical_network="public",
        )
    if conn.network.find_subnet("public-subnet") is None:
        conn.network.create_subnet(
            name="public-subnet",
            network_id=net.id,
            ip_version=4,
            cidr=cloud.external_cidr,
            is_dhcp_enabled=False,
        )
    if conn.compute.find_flavor("m1.tiny") is None:
        conn.compute.create_flavor(name="m1.tiny", vcpus=1, ram=256, disk=1)


def _volume_types(conn: Any) -> None:
    bs = conn.block_storage
    default = bs.find_type("__DEFAULT__", ignore_missing=False)
    if (default.extra_specs or {}).get("volume_backend_name") != "file1":
        bs.update_type_extra_specs(default, volume_backend_name="file1")
    if bs.find_type("ceph") is None:
        bs.create_type(name="ceph", extra_specs={"volume_backend_name": "ceph"})
