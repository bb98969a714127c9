"""Cold migration on the lab's source cloud, through the command as an operator runs it (a
subprocess), on servers of a throw-away tenant only: every drain is limited to the tenant's
project, since other tests may have servers on the same hosts."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import openstack
import pytest

from devcloud.lab import Lab
from devcloud.tenants import Tenant, unique_name, write_member_clouds_yaml
from stackferry.cloud import sdk
from tests.cloud.waits import wait_for, wait_status

HOME, AWAY = "c1-cmp1", "c1-cmp2"
# Three servers at a time. (It was one while the lab's placement kept its data in SQLite, which
# failed concurrent writers and made nova report "No valid host"; placement is on PostgreSQL
# now.) The bound itself is tested in tests/unit/test_ops_servers.py.
LAB_PARALLEL = "3"


@dataclass
class Fleet:
    """Servers of one tenant, pinned to a host at boot, and how to look at them as admin."""

    tenant: Tenant
    clouds_yaml: Path
    tmp: Path
    image_id: str
    network_id: str
    flavor_id: str
    pinner: openstack.connection.Connection  # admin, scoped to the tenant's project

    @property
    def admin(self) -> openstack.connection.Connection:
        return self.tenant.admin

    def boot(self, count: int, host: str = HOME, prefix: str = "vm") -> list[str]:
        """All at once, then each waited for."""
        ids = [
            self.pinner.compute.create_server(
                name=unique_name(prefix),
                flavor_id=self.flavor_id,
                image_id=self.image_id,
                networks=[{"uuid": self.network_id}],
                availability_zone=f"nova:{host}",
            ).id
            for _ in range(count)
        ]
        for server_id in ids:
            wait_status(partial(self.server, server_id), "ACTIVE", "boot")
        assert all(self.server(i).project_id == self.tenant.project_id for i in ids)
        assert {self.server(i).compute_host for i in ids} == {host}
        return ids

    def server(self, server_id: str) -> Any:
        return self.admin.compute.get_server(server_id)

    def statuses(self) -> list[str]:
        """The tenant's servers' statuses, in one call."""
        servers = self.admin.compute.servers(all_projects=True, project_id=self.tenant.project_id)
        return [s.status for s in servers]

    def where(self, ids: list[str]) -> dict[str, tuple[str, str]]:
        return {i: (self.server(i).compute_host, self.server(i).status) for i in ids}

    def migrations(self, server_id: str) -> list[Any]:
        return list(self.admin.compute.migrations(server_id=server_id))

    def stackferry(
        self, *args: str, clouds_yaml: Path | None = None, report: str | None = "report.json"
    ) -> subprocess.CompletedProcess[str]:
        extra = ["--parallel", LAB_PARALLEL]
        extra += ["--report", str(self.tmp / report)] if report else []
        return subprocess.run(
            [sys.executable, "-m", "stackferry.cli", *args, *extra],
            env=self.env(clouds_yaml),
            cwd=self.tmp,
            capture_output=True,
            text=True,
            timeout=600,
        )

    def env(self, clouds_yaml: Path | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        return {
            **env,
            "OS_CLIENT_CONFIG_FILE": str(clouds_yaml or self.clouds_yaml),
            "COLUMNS": "250",
        }

    def drain(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.stackferry(
            "hosts", "drain", "--cloud", "c1", "--project", self.tenant.project_id, *args, **kw
        )

    def report(self, name: str = "report.json") -> dict[str, Any]:
        return dict(json.loads((self.tmp / name).read_text()))


@pytest.fixture
def fleet(lab: Lab, source_tenant: Tenant, tmp_path: Path) -> Iterator[Fleet]:
    tenant = source_tenant
    conn, admin = tenant.conn, tenant.admin
    image = conn.image.create_image(
        name=unique_name("img"),
        data=os.urandom(1024 * 1024),
        disk_format="raw",
        container_format="bare",
        allow_duplicates=True,
    )
    network = conn.network.create_network(name=unique_name("net"))
    conn.network.create_subnet(network_id=network.id, ip_version=4, cidr="10.30.0.0/24")
    flavor = conn.compute.find_flavor("m1.tiny", ignore_missing=False)
    # Pinning a server to a host at boot is admin-only, and the servers must be in the tenant's
    # project: a throw-away user with the admin role there boots them. Never the lab's own admin:
    # purging a project (purge_project_named) deletes every user with a role in it.
    idn = sdk.identity(admin)
    password = secrets.token_urlsafe(16)
    user = idn.create_user(name=unique_name("sf-pin"), domain_id="default", password=password)
    try:
        idn.assign_project_role_to_user(
            tenant.project_id, user.id, idn.find_role("admin", ignore_missing=False)
        )
        pinner = openstack.connect(
            auth_url=tenant.cloud.keystone_url,
            username=user.name,
            password=password,
            user_domain_id="default",
            project_id=tenant.project_id,
            region_name=tenant.cloud.region,
        )
        yield Fleet(
            tenant, lab.paths.clouds_yaml, tmp_path, image.id, network.id, flavor.id, pinner
        )
    finally:  # its servers are the tenant's, purged with it
        idn.delete_user(user.id, ignore_missing=True)


def _compute_posts(report: dict[str, Any]) -> int:
    return sum(
        c["calls"]
        for c in report["api_calls"]
        if c["service"] == "compute" and c["method"] == "POST"
    )


def test_drain_confirms_and_dry_run_changes_nothing(fleet: Fleet) -> None:
    ids = fleet.boot(6)

    dry = fleet.drain(HOME, "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert dry.stdout.count("scheduler's choice") >= 6 and "nothing was changed" in dry.stdout
    for server_id in ids:
        assert fleet.server(server_id).name in dry.stdout
    assert fleet.where(ids) == {i: (HOME, "ACTIVE") for i in ids}
    assert all(fleet.migrations(i) == [] for i in ids)
    assert not (fleet.tmp / "report.json").exists()

    started = time.monotonic()
    run = fleet.drain(HOME)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "6 confirmed" in run.stdout
    assert fleet.where(ids) == {i: (AWAY, "ACTIVE") for i in ids}
    for server_id in ids:
        [migration] = fleet.migrations(server_id)
        assert (migration.status, migration.source_compute, migration.dest_compute) == (
            "confirmed",
            HOME,
            AWAY,
        )
    report = fleet.report()
    assert report["summary"] == {"confirmed": 6} and report["host"] == HOME
    rows = {s["id"]: s for s in report["servers"]}
    assert set(rows) == set(ids)
    for row in rows.values():
        assert (row["from_host"], row["to_host"], row["status"], row["action"]) == (
            HOME,
            AWAY,
            "ACTIVE",
            "migrate+confirm",
        )
    assert _compute_posts(report) == 12  # a migrate and a confirm per server, nothing else
    assert report["api_calls_by_method"]["GET"] > 0
    assert report["seconds"] <= time.monotonic() - started

    again = fleet.drain(HOME, report="again.json")
    assert again.returncode == 0, again.stdout + again.stderr
    assert fleet.report("again.json")["servers"] == []
    assert all(len(fleet.migrations(i)) == 1 for i in ids)


def test_drain_with_revert_leaves_every_server_home(fleet: Fleet) -> None:
    ids = fleet.boot(6)
    run = fleet.drain(HOME, "--revert")
    assert run.returncode == 0, run.stdout + run.stderr
    assert fleet.where(ids) == {i: (HOME, "ACTIVE") for i in ids}
    for server_id in ids:
        [migration] = fleet.migrations(server_id)
        assert (migration.status, migration.dest_compute) == ("reverted", AWAY)
    report = fleet.report()
    assert report["summary"] == {"reverted": 6} and report["revert"] is True
    assert {(s["landed_on"], s["to_host"], s["action"]) for s in report["servers"]} == {
        (AWAY, HOME, "migrate+revert")
    }


def test_interrupted_drain_finishes_without_a_second_migration(fleet: Fleet) -> None:
    ids = fleet.boot(6)
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "stackferry.cli", "hosts", "drain", HOME, "--cloud", "c1"),
            *("--project", fleet.tenant.project_id, "--parallel", LAB_PARALLEL, "-q"),
            *("--report", str(fleet.tmp / "killed.json")),
        ],
        env=fleet.env(),
        cwd=fleet.tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            fleet.statuses,
            lambda statuses: "VERIFY_RESIZE" in statuses,
            "a server in VERIFY_RESIZE",
            timeout=300,
            interval=0.1,
        )
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    at_kill = {i: (fleet.server(i).status, [m.status for m in fleet.migrations(i)]) for i in ids}
    untouched = [i for i, (_, migrations) in at_kill.items() if not migrations]
    assert untouched, at_kill  # it was killed in the middle
    # Nova goes on after the kill: a confirm the killed run had sent completes on its own; a
    # migration it had started reaches VERIFY_RESIZE and waits there for the next run.
    in_flight = [
        i
        for i, (_, migrations) in at_kill.items()
        if migrations and migrations[0] not in ("confirming", "confirmed")
    ]
    assert not (fleet.tmp / "killed.json").exists()

    rerun = fleet.drain(HOME)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert fleet.where(ids) == {i: (AWAY, "ACTIVE") for i in ids}
    for server_id in ids:
        assert [m.status for m in fleet.migrations(server_id)] == ["confirmed"], server_id
    rows = {s["id"]: s for s in fleet.report()["servers"]}
    for server_id in in_flight:
        assert rows[server_id]["resumed"] and "migrate" not in rows[server_id]["actions"]
    for server_id in untouched:
        assert rows[server_id]["action"] == "migrate+confirm"
    # those the killed run had finished already left the host: not even listed
    assert set(rows) == set(untouched) | set(in_flight)


def test_migrations_started_by_hand_are_finished_not_repeated(fleet: Fleet) -> None:
    waiting, moving, fresh, rehearsed = fleet.boot(4)
    for server_id in (waiting, rehearsed):
        fleet.admin.compute.migrate_server(server_id)
        wait_status(partial(fleet.server, server_id), "VERIFY_RESIZE", "migration by hand")
    fleet.admin.compute.migrate_server(moving)
    assert fleet.server(moving).status == "RESIZE"

    # --revert on a server waiting in VERIFY_RESIZE: its migration is reverted, not redone
    revert = fleet.stackferry(
        "servers", "migrate", rehearsed, "--cloud", "c1", "--revert", report="revert.json"
    )
    assert revert.returncode == 0, revert.stdout + revert.stderr
    assert fleet.where([rehearsed]) == {rehearsed: (HOME, "ACTIVE")}
    assert [m.status for m in fleet.migrations(rehearsed)] == ["reverted"]
    [row] = fleet.report("revert.json")["servers"]
    assert (row["action"], row["outcome"], row["resumed"]) == ("revert", "reverted", True)

    run = fleet.drain(HOME)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = {s["id"]: s for s in fleet.report()["servers"]}
    assert {i: (r["action"], r["resumed"]) for i, r in rows.items() if i != rehearsed} == {
        waiting: ("confirm", True),
        moving: ("confirm", True),
        fresh: ("migrate+confirm", False),
    }
    assert rows[rehearsed]["action"] == "migrate+confirm"  # a rehearsal is not a move: moved now
    ids = [waiting, moving, fresh, rehearsed]
    assert fleet.where(ids) == {i: (AWAY, "ACTIVE") for i in ids}
    assert all(
        [m.status for m in fleet.migrations(i)] == ["confirmed"] for i in (waiting, moving, fresh)
    )
    assert sorted(m.status for m in fleet.migrations(rehearsed)) == ["confirmed", "reverted"]


def test_member_credentials_get_the_policy_error(fleet: Fleet) -> None:
    [server_id] = fleet.boot(1)
    tenant = fleet.tenant
    clouds_yaml = write_member_clouds_yaml(tenant, fleet.tmp / "member.yaml")
    for args in (
        ["hosts", "drain", HOME, "--cloud", "member", "--project", tenant.project_id],
        ["servers", "migrate", server_id, "--cloud", "member"],
    ):
        run = fleet.stackferry(*args, clouds_yaml=clouds_yaml)
        assert run.returncode == 2, run.stdout + run.stderr
        assert "HTTP 403" in run.stderr and "admin credentials" in run.stderr, run.stderr
        assert "os_compute_api:os-migrate-server:migrate" in run.stderr
        assert "Traceback" not in run.stderr
    assert fleet.where([server_id]) == {server_id: (HOME, "ACTIVE")}
    assert fleet.migrations(server_id) == []
    assert not (fleet.tmp / "report.json").exists()


def test_no_valid_host_error_servers_and_a_target_host(fleet: Fleet) -> None:
    conn = fleet.tenant.conn
    group = conn.compute.create_server_group(name=unique_name("apart"), policy="anti-affinity")
    apart = []
    for _ in range(2):  # one on each of the two hosts: neither can move
        server = conn.compute.create_server(
            name=unique_name("apart"),
            flavor_id=fleet.flavor_id,
            image_id=fleet.image_id,
            networks=[{"uuid": fleet.network_id}],
            scheduler_hints={"group": group.id},
        )
        wait_status(partial(fleet.server, server.id), "ACTIVE", "boot")
        apart.append(server.id)
    broken, targeted = fleet.boot(2)
    fleet.admin.compute.reset_server_state(broken, "error")
    before = fleet.where(apart)

    run = fleet.stackferry("servers", "migrate", apart[0], broken, "--cloud", "c1")
    assert run.returncode == 1, run.stdout + run.stderr
    rows = {s["id"]: s for s in fleet.report()["servers"]}
    assert rows[apart[0]]["outcome"] == "failed"
    assert "scheduler found no other host" in rows[apart[0]]["note"]
    assert "No valid host was found" in rows[apart[0]]["note"]
    assert rows[broken]["outcome"] == "skipped" and "in ERROR" in rows[broken]["note"]
    assert fleet.where(apart) == before
    assert fleet.migrations(broken) == []

    unknown = fleet.stackferry(
        "servers", "migrate", targeted, "--cloud", "c1", "--to-host", "c1-nowhere"
    )
    assert unknown.returncode == 2 and "no compute target host c1-nowhere" in unknown.stderr

    moved = fleet.stackferry(
        "servers", "migrate", targeted, "--cloud", "c1", "--to-host", AWAY, report="to.json"
    )
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert fleet.where([targeted]) == {targeted: (AWAY, "ACTIVE")}
    [row] = fleet.report("to.json")["servers"]
    assert (row["from_host"], row["to_host"], row["outcome"]) == (HOME, AWAY, "confirmed")
