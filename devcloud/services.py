"""Configure, initialise and start each OpenStack service of one cloud.

One function per service: write its configuration, create its database schema once (a marker
file in the cloud's state directory remembers it), and start its processes through the
process table, which skips any that already run. APIs are the services' own WSGI applications
under gunicorn (``stackferry_lab_plugins.serve``); the rest run as their console scripts.
"""

from __future__ import annotations

import configparser
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from devcloud import infra
from devcloud.layout import LOOPBACK, PASSWORD, Cloud, LabPaths
from devcloud.procs import ProcessTable

Sections = dict[str, dict[str, object]]

# Single-process services are fine on SQLite; nova, neutron and cinder write from several
# processes and get "database is locked" on SQLite, so they use PostgreSQL.
# Glance and placement are on PostgreSQL: under parallel uploads and parallel migrations SQLite
# answered "database is locked" (glance: HTTP 500; placement: nova's "No valid host").
SQLITE_SERVICES = ("keystone",)


@dataclass
class Context:
    paths: LabPaths
    procs: ProcessTable
    cloud: Cloud
    ceph: bool = False  # the cloud has the lab's Ceph cluster (cinder gets an RBD backend)

    @property
    def state(self) -> Path:
        return self.paths.state(self.cloud)

    @property
    def logs(self) -> Path:
        return self.paths.cloud_logs(self.cloud)

    def etc(self, service: str) -> Path:
        path = self.paths.etc(self.cloud, service)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def env(self, **extra: str) -> dict[str, str]:
        path = f"{self.paths.shim_bin}:{self.paths.venv_bin}:{os.environ.get('PATH', '')}"
        return dict(os.environ, PATH=path, PYTHONWARNINGS="ignore", **extra)

    def database(self, service: str, name: str) -> str:
        if service in SQLITE_SERVICES:
            return f"sqlite:///{self.state}/{name}.db"
        db = f"{self.cloud.name}_{name}"
        infra.ensure_database(db)
        return self.cloud.db_url(name)

    def once(self, marker: str, argvs: list[list[str]]) -> None:
        """Run schema commands once per cloud; the marker is written only when all succeed."""
        done = self.state / f".{marker}.done"
        if done.exists():
            return
        log = self.logs / f"{marker}-init.log"
        for argv in argvs:
            with log.open("ab") as out:
                result = subprocess.run(
                    argv, stdout=out, stderr=subprocess.STDOUT, env=self.env(), cwd=self.state
                )
            if result.returncode:
                raise RuntimeError(f"{self.cloud.name}: {' '.join(argv[:3])} failed; see {log}")
        done.touch()

    def start(self, service: str, argv: list[str], **env: str) -> None:
        name = f"{self.cloud.name}-{service}"
        self.procs.start(
            name, argv, self.logs / f"{service}.out", env=self.env(**env), cwd=self.state
        )

    def serve(self, service: str, app: str, port: int, *app_argv: str, **env: str) -> None:
        self.start(
            service,
            [
                str(self.paths.python),
                "-m",
                "stackferry_lab_plugins.serve",
                f"{self.cloud.name}-{service}",
                app,
                str(port),
                *app_argv,
            ],
            **env,
        )

    def bin(self, command: str) -> str:
        return str(self.paths.venv_bin / command)


def write_ini(path: Path, sections: Sections) -> Path:
    parser = configparser.RawConfigParser()
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    for section, options in sections.items():
        parser[section] = {key: str(value) for key, value in options.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        parser.write(f)
    return path


def _service_user(cloud: Cloud, user: str, **extra: object) -> dict[str, object]:
    return {
        "auth_url": cloud.url("keystone"),
        "auth_type": "password",
        "project_domain_name": "Default",
        "user_domain_name": "Default",
        "project_name": "service",
        "username": user,
        "password": PASSWORD,
        "region_name": cloud.region,
        **extra,
    }


def _authtoken(cloud: Cloud, user: str) -> dict[str, object]:
    return _service_user(
        cloud, user, www_authenticate_uri=cloud.url("keystone"), service_token_roles_required="true"
    )


def keystone(ctx: Context) -> None:
    cloud, state = ctx.cloud, ctx.state
    conf = write_ini(
        ctx.etc("keystone") / "keystone.conf",
        {
            "DEFAULT": {"log_file": ctx.logs / "keystone.log"},
            "database": {"connection": ctx.database("keystone", "keystone")},
            "token": {"provider": "fernet"},
            "fernet_tokens": {"key_repository": state / "keystone-fernet"},
            "credential": {"key_repository": state / "keystone-credential"},
        },
    )
    manage = [ctx.bin("keystone-manage"), "--config-file", str(conf)]
    ctx.once(
        "keystone",
        [
            [*manage, "db_sync"],
            [*manage, "fernet_setup", "--keystone-user", "root", "--keystone-group", "root"],
            [*manage, "credential_setup", "--keystone-user", "root", "--keystone-group", "root"],
            [
                *manage,
                "bootstrap",
                "--bootstrap-password",
                PASSWORD,
                "--bootstrap-admin-url",
                cloud.keystone_url,
                "--bootstrap-public-url",
                cloud.keystone_url,
                "--bootstrap-internal-url",
                cloud.keystone_url,
                "--bootstrap-region-id",
                cloud.region,
            ],
        ],
    )
    ctx.serve(
        "keystone",
        "keystone.wsgi.api:application",
        cloud.port("keystone"),
        OS_KEYSTONE_CONFIG_FILES=str(conf),
    )


def glance(ctx: Context) -> None:
    cloud, state = ctx.cloud, ctx.state
    etc = ctx.etc("glance")
    (etc / "glance-api-paste.ini").write_text(
        (ctx.paths.venv / "etc/glance/glance-api-paste.ini").read_text()
    )
    conf = write_ini(
        etc / "glance-api.conf",
        {
            "DEFAULT": {
                "log_file": ctx.logs / "glance.log",
                # Two stores, so images can be moved between backends (copy-image import).
                "enabled_backends": "fs:file, fs2:file",
                "enabled_import_methods": "[glance-direct,web-download,copy-image]",
                "bind_host": LOOPBACK,
                "bind_port": cloud.port("glance"),
            },
            "database": {"connection": ctx.database("glance", "glance")},
            "glance_store": {"default_backend": "fs"},
            "fs": {"filesystem_store_datadir": state / "glance-images"},
            "fs2": {"filesystem_store_datadir": state / "glance-images-2"},
            "os_glance_staging_store": {"filesystem_store_datadir": state / "glance-staging"},
            "os_glance_tasks_store": {"filesystem_store_datadir": state / "glance-tasks"},
            "paste_deploy": {"flavor": "keystone"},
            "oslo_concurrency": {"lock_path": state / "lock"},
            "keystone_authtoken": _authtoken(cloud, "glance"),
        },
    )
    ctx.once("glance-pg", [[ctx.bin("glance-manage"), "--config-file", str(conf), "db_sync"]])
    ctx.serve(
        "glance", "glance.wsgi.api:application", cloud.port("glance"), OS_GLANCE_CONFIG_DIR=str(etc)
    )


def placement(ctx: Context) -> None:
    etc = ctx.etc("placement")
    conf = write_ini(
        etc / "placement.conf",
        {
            "DEFAULT": {"log_file": ctx.logs / "placement.log"},
            "placement_database": {"connection": ctx.database("placement", "placement")},
            "api": {"auth_strategy": "keystone"},
            "keystone_authtoken": _authtoken(ctx.cloud, "placement"),
        },
    )
    ctx.once(
        "placement-pg", [[ctx.bin("placement-manage"), "--config-file", str(conf), "db", "sync"]]
    )
    ctx.serve(
        "placement",
        "placement.wsgi.api:application",
        ctx.cloud.port("placement"),
        OS_PLACEMENT_CONFIG_DIR=str(etc),
    )


# neutron 29.0.0's alembic migrations fail on SQLite ("No support for ALTER of constraints") and
# on PostgreSQL ("ALTER TABLE tags CONVERT TO CHARACTER SET utf8mb4" is MySQL-only). Build the
# schema from the models, as neutron's own tests do, then stamp the alembic heads.
NEUTRON_SCHEMA = (
    "import sys, sqlalchemy; from neutron.db.migration.models import head; "
    "head.get_metadata().create_all(sqlalchemy.create_engine(sys.argv[1]))"
)


def neutron(ctx: Context) -> None:
    cloud, state = ctx.cloud, ctx.state
    etc = ctx.etc("neutron")
    (etc / "api-paste.ini").write_text((ctx.paths.venv / "etc/neutron/api-paste.ini").read_text())
    db = ctx.database("neutron", "neutron")
    conf = write_ini(
        etc / "neutron.conf",
        {
            "DEFAULT": {
                "log_file": ctx.logs / "neutron.log",
                "core_plugin": "ml2",
                "service_plugins": "router,qos",
                "auth_strategy": "keystone",
                "transport_url": cloud.transport_url,
                "api_paste_config": etc / "api-paste.ini",
                "state_path": state / "neutron",
                "notify_nova_on_port_status_changes": "true",
                "notify_nova_on_port_data_changes": "true",
            },
            "database": {"connection": db},
            "oslo_concurrency": {"lock_path": state / "lock"},
            "keystone_authtoken": _authtoken(cloud, "neutron"),
            "nova": _service_user(cloud, "nova"),
            "ml2": {
                "type_drivers": "flat,vlan,vxlan",
                "tenant_network_types": "vxlan",
                "mechanism_drivers": "bind_all",
                "extension_drivers": "port_security,qos",
            },
            "ml2_type_flat": {"flat_networks": "public"},
            "ml2_type_vlan": {"network_vlan_ranges": "physnet1:100:200"},
            "ml2_type_vxlan": {"vni_ranges": "1:1000"},
        },
    )
    ctx.once(
        "neutron",
        [
            [str(ctx.paths.python), "-c", NEUTRON_SCHEMA, db],
            [ctx.bin("neutron-db-manage"), "--config-file", str(conf), "stamp", "heads"],
        ],
    )
    ctx.serve(
        "neutron", "neutron.wsgi.api:application", cloud.port("neutron"), "--config-file", str(conf)
    )


def nova(ctx: Context) -> None:
    cloud, state = ctx.cloud, ctx.state
    etc = ctx.etc("nova")
    (etc / "api-paste.ini").write_text((ctx.paths.venv / "etc/nova/api-paste.ini").read_text())
    api_db = ctx.database("nova", "nova_api")
    cell0_db = ctx.database("nova", "nova_cell0")
    cell1_db = ctx.database("nova", "nova_cell1")
    conf = write_ini(
        etc / "nova.conf",
        {
            "DEFAULT": {
                "transport_url": cloud.transport_url,
                # nova's FakeDriverWithoutFakeNodes (a stable node identity, so a compute service
                # restarts on existing state) with a root disk file per image-backed server.
                "compute_driver": "lab_disks.DiskFakeDriver",  # see install._nova_driver_shim
                "state_path": state / "nova",
                "host": f"{cloud.name}-ctl",
                "my_ip": LOOPBACK,
                "allow_resize_to_same_host": "false",
            },
            "lab_disks": {"root": ctx.paths.server_disks(cloud)},
            "api": {"auth_strategy": "keystone"},
            "wsgi": {"api_paste_config": etc / "api-paste.ini"},
            "api_database": {"connection": api_db},
            "database": {"connection": cell1_db},
            "oslo_concurrency": {"lock_path": state / "lock"},
            "conductor": {"workers": 1},
            "scheduler": {"workers": 1, "discover_hosts_in_cells_interval": 5},
            "vnc": {"enabled": "false"},
            "glance": {"region_name": cloud.region},
            "cinder": _service_user(cloud, "nova", os_region_name=cloud.region),
            # As deployments must since CVE-2023-2088: cinder lets only nova (its service
            # token) remove the attachments of nova's servers, e.g. when one is deleted.
            "service_user": _service_user(cloud, "nova", send_service_user_token="true"),
            "keystone_authtoken": _authtoken(cloud, "nova"),
            "placement": _service_user(cloud, "placement"),
            "neutron": _service_user(cloud, "neutron"),
        },
    )
    manage = [ctx.bin("nova-manage"), "--config-file", str(conf)]
    ctx.once(
        "nova",
        [
            [*manage, "api_db", "sync"],
            [*manage, "cell_v2", "map_cell0", "--database_connection", cell0_db],
            [*manage, "cell_v2", "create_cell", "--name", "cell1"],
            [*manage, "db", "sync"],
        ],
    )
    ctx.serve(
        "nova-api",
        "nova.wsgi.osapi_compute:application",
        cloud.port("nova"),
        OS_NOVA_CONFIG_DIR=str(etc),
    )
    for service in ("conductor", "scheduler"):
        ctx.start(
            f"nova-{service}",
            [
                ctx.bin(f"nova-{service}"),
                "--config-file",
                str(conf),
                "--log-file",
                str(ctx.logs / f"nova-{service}.log"),
            ],
        )
    for host in cloud.compute_hosts:
        host_state = state / host
        host_state.mkdir(parents=True, exist_ok=True)
        host_conf = write_ini(
            etc / f"{host}.conf", {"DEFAULT": {"host": host, "state_path": host_state}}
        )
        ctx.start(
            f"nova-compute-{host}",
            [
                ctx.bin("nova-compute"),
                "--config-file",
                str(conf),
                "--config-file",
                str(host_conf),
                "--log-file",
                str(ctx.logs / f"nova-compute-{host}.log"),
            ],
        )


def cinder(ctx: Context) -> None:
    """Cinder with the file-backed driver (``file1``); with the lab's Ceph, also the RBD
    driver on the cloud's cluster (``ceph``, pool ``volumes``)."""
    cloud, state = ctx.cloud, ctx.state
    etc = ctx.etc("cinder")
    (etc / "api-paste.ini").write_text((ctx.paths.venv / "etc/cinder/api-paste.ini").read_text())
    ceph_conf = ctx.paths.root / cloud.name / "ceph" / "ceph.conf"
    backends: Sections = {
        "file1": {
            "volume_driver": "stackferry_lab_plugins.cinder_file.FileVolumeDriver",
            "volume_backend_name": "file1",
            "file_volume_dir": state / "cinder-volumes",
            "image_upload_use_cinder_backend": "false",
        },
    }
    if ctx.ceph:
        backends["ceph"] = {
            "volume_driver": "cinder.volume.drivers.rbd.RBDDriver",
            "volume_backend_name": "ceph",
            "rbd_pool": "volumes",
            "rbd_ceph_conf": ceph_conf,
            "rbd_user": "admin",
            # os-brick finds the keyring at /etc/ceph/CLUSTER.client.USER.keyring, as on real
            # hosts (see devcloud.ceph.host_keyring): a cluster name per cloud keeps them apart
            "rbd_cluster_name": cloud.name,
            "rbd_flatten_volume_from_snapshot": "false",
        }
    conf = write_ini(
        etc / "cinder.conf",
        {
            "DEFAULT": {
                "transport_url": cloud.transport_url,
                "auth_strategy": "keystone",
                "api_paste_config": etc / "api-paste.ini",
                "state_path": state / "cinder",
                "host": f"{cloud.name}-cinder",
                "my_ip": LOOPBACK,
                "enabled_backends": ",".join(backends),
                "default_volume_type": "__DEFAULT__",
                "glance_api_servers": cloud.url("glance"),
            },
            "database": {"connection": ctx.database("cinder", "cinder")},
            "oslo_concurrency": {"lock_path": state / "lock"},
            "keystone_authtoken": _authtoken(cloud, "cinder"),
            "nova": _service_user(cloud, "nova"),
            **backends,
        },
    )
    ctx.once("cinder", [[ctx.bin("cinder-manage"), "--config-file", str(conf), "db", "sync"]])
    ctx.serve(
        "cinder-api",
        "cinder.wsgi.api:application",
        cloud.port("cinder"),
        "--config-file",
        str(conf),
    )
    for service in ("scheduler", "volume"):
        ctx.start(
            f"cinder-{service}",
            [
                ctx.bin(f"cinder-{service}"),
                "--config-file",
                str(conf),
                "--log-file",
                str(ctx.logs / f"cinder-{service}.log"),
            ],
        )
