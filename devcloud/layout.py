"""Where the lab lives on disk and on which loopback ports each cloud answers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PASSWORD = "secret"  # lab-only credential, written to the lab's own clouds.yaml
LOOPBACK = "127.0.0.1"
PG_PORT = 5433
RABBIT_PORT = 5672
RABBIT_DIST_PORT = 25672
EPMD_PORT = 4369
COMPUTES_PER_CLOUD = 2
PG_BIN = Path("/usr/lib/postgresql/15/bin")
RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")

# The releases the lab runs; exact transitive versions are pinned in constraints.txt.
OPENSTACK_PACKAGES = (
    "keystone==30.0.0",
    "glance==33.0.0",
    "nova==34.0.0",
    "neutron==29.0.0",
    "cinder==29.0.0",
    "openstack-placement==16.0.0",
    "gunicorn",
    "psycopg2-binary",
)
DEBIAN_PACKAGES = ("rabbitmq-server", "postgresql-15", "qemu-utils")

SERVICE_PORT_SUFFIX = {
    "keystone": "000",
    "glance": "292",
    "neutron": "696",
    "placement": "778",
    "nova": "774",
    "cinder": "776",
}


@dataclass(frozen=True)
class Cloud:
    """One independent cloud: own keystone, databases, ports, region and compute hosts."""

    name: str
    region: str
    port_prefix: int
    external_cidr: str

    def port(self, service: str) -> int:
        return int(f"{self.port_prefix}{SERVICE_PORT_SUFFIX[service]}")

    def url(self, service: str) -> str:
        return f"http://{LOOPBACK}:{self.port(service)}"

    @property
    def keystone_url(self) -> str:
        return self.url("keystone") + "/v3"

    @property
    def compute_hosts(self) -> list[str]:
        return [f"{self.name}-cmp{i}" for i in range(1, COMPUTES_PER_CLOUD + 1)]

    @property
    def transport_url(self) -> str:
        return f"rabbit://{self.name}:{PASSWORD}@{LOOPBACK}:{RABBIT_PORT}/{self.name}"

    def db_url(self, database: str) -> str:
        return f"postgresql+psycopg2://postgres@{LOOPBACK}:{PG_PORT}/{self.name}_{database}"


CLOUDS = (
    Cloud("c1", "RegionOne", 15, "172.24.4.0/24"),
    Cloud("c2", "RegionTwo", 25, "172.25.4.0/24"),
)
SOURCE, DESTINATION = CLOUDS


def default_lab_dir() -> Path:
    """``$STACKFERRY_LAB_DIR``, else ``.lab`` beside this package (the repository's root)."""
    env = os.environ.get("STACKFERRY_LAB_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / ".lab"


@dataclass(frozen=True)
class LabPaths:
    root: Path

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def venv_bin(self) -> Path:
        return self.venv / "bin"

    @property
    def python(self) -> Path:
        return self.venv_bin / "python"

    @property
    def shim_bin(self) -> Path:
        return self.root / "bin"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def clouds_yaml(self) -> Path:
        return self.root / "clouds.yaml"

    @property
    def timings(self) -> Path:
        return self.root / "timings.json"

    @property
    def pg_data(self) -> Path:
        return self.root / "pg" / "data"

    @property
    def rabbit_home(self) -> Path:
        return self.root / "rabbitmq"

    def etc(self, cloud: Cloud, service: str) -> Path:
        return self.root / cloud.name / "etc" / service

    def state(self, cloud: Cloud) -> Path:
        return self.root / cloud.name / "state"

    def server_disks(self, cloud: Cloud) -> Path:
        """The compute hosts' server root disks: ``<host>/<server uuid>/disk`` below."""
        return self.state(cloud) / "server-disks"

    def server_disk(self, cloud: Cloud, host: str, server_id: str) -> Path:
        return self.server_disks(cloud) / host / server_id / "disk"

    def cloud_logs(self, cloud: Cloud) -> Path:
        return self.root / cloud.name / "logs"
