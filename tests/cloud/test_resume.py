"""kill -9 at each phase of a migration, then re-run: the very next run exits 0, with nothing
missing and nothing duplicated. (Kills while bytes stream are in test_migrate_data.py, a run
whose journal was lost too in test_migrate_network_kinds.py.)

One tenant, migrated again and again: before each kill point the source gains what that
point needs (a user with keypairs, more networks), so each killed run has work in flight
without starting from an empty destination."""

from __future__ import annotations

import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devcloud.demo import seed_tenant
from devcloud.layout import DESTINATION, SOURCE
from devcloud.seed import connect
from devcloud.tenants import unique_name
from stackferry.cloud import sdk
from tests.cloud.migration import Migration
from tests.cloud.test_bad_input import SSH_KEY
from tests.cloud.test_faults import assert_no_duplicates

STACKFERRY = [sys.executable, "-m", "stackferry.cli"]


def _query(journal: Path, sql: str) -> int:
    if not journal.exists():
        return 0
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5)
    try:
        return int(db.execute(sql).fetchone()[0] or 0)
    except sqlite3.OperationalError:  # tables not created yet
        return 0
    finally:
        db.close()


def _done(workdir: Path, kind: str | None = None) -> int:
    where = f" AND kind = '{kind}'" if kind else ""
    sql = f"SELECT count(*) FROM steps WHERE state = 'done'{where}"
    return _query(workdir / "journal.sqlite", sql)


def _finished_runs(workdir: Path) -> int:
    sql = "SELECT count(*) FROM runs WHERE finished_at IS NOT NULL"
    return _query(workdir / "journal.sqlite", sql)


@dataclass(frozen=True)
class KillPoint:
    name: str
    # (workdir, seconds since the run started, a reading of the workdir taken at its start)
    reached: Callable[[Path, float, dict[str, int]], bool]


def _manifest_written(workdir: Path) -> int:
    manifest = workdir / "stackferry.yaml"
    return manifest.stat().st_mtime_ns if manifest.exists() else 0


def _baseline(workdir: Path) -> dict[str, int]:
    return {
        "manifest": _manifest_written(workdir),
        "done": _done(workdir),
        "users": _done(workdir, "user"),
        "roles": _done(workdir, "role_assignment"),
        "runs": _finished_runs(workdir),
    }


def _migrate_and_kill(migration: Migration, point: KillPoint) -> None:
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(migration.clouds_yaml))
    start = _baseline(migration.workdir)
    proc = subprocess.Popen(
        [*STACKFERRY, "migrate", "--src", SOURCE.name, "--dst", DESTINATION.name,
         "--project", migration.source.project_name, "--workdir", str(migration.workdir),
         "--skip", "flavors", "-q", "--parallel", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    started = time.monotonic()
    killed = False
    while proc.poll() is None and time.monotonic() < started + 300:
        if point.reached(migration.workdir, time.monotonic() - started, start):
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    errors = proc.stderr.read().decode() if proc.stderr else ""
    assert killed and proc.returncode == -signal.SIGKILL, (
        f"migrate ended (exit {proc.returncode}) before '{point.name}': {errors}"
    )


USER = unique_name("sf-kill")


def _add_user_with_keys(migration: Migration) -> None:
    source = migration.source
    idn = sdk.identity(source.admin)
    user = idn.create_user(name=USER, domain_id="default", password=secrets.token_urlsafe(12))
    idn.assign_project_role_to_user(
        source.project_id, user.id, idn.find_role("reader", ignore_missing=False).id
    )
    for name in ("k-a", "k-b"):
        source.admin.compute.create_keypair(name=name, public_key=SSH_KEY, user_id=user.id)


def _add_networks(migration: Migration) -> None:
    net, pid = migration.source.admin.network, migration.source.project_id
    for i in range(4):  # within the quotas seed_tenant sets
        network = net.create_network(name=f"more{i}", project_id=pid)
        for j in range(2):
            net.create_subnet(
                network_id=network.id, project_id=pid, ip_version=4, cidr=f"10.9{i}.{j}.0/24"
            )


POINTS: list[tuple[KillPoint, Callable[[Migration], None] | None]] = [
    (KillPoint("apply: the project made", lambda wd, t, b: _done(wd, "project") >= 1), None),
    (  # reading the source, nothing written yet
        KillPoint("export", lambda wd, t, b: t > 1.2 and _manifest_written(wd) == b["manifest"]),
        None,
    ),
    (  # the user exists in the destination, without a role there yet
        KillPoint(
            "apply: a user made, before its roles",
            lambda wd, t, b: (
                _done(wd, "user") > b["users"] and _done(wd, "role_assignment") == b["roles"]
            ),
        ),
        _add_user_with_keys,
    ),
    (
        KillPoint("apply: among the network kinds", lambda wd, t, b: _done(wd) >= b["done"] + 6),
        _add_networks,
    ),
    (  # apply finished; verify reads both clouds
        KillPoint("verify", lambda wd, t, b: _finished_runs(wd) > b["runs"]),
        None,
    ),
]


def test_kill_minus_nine_at_each_phase_then_the_next_run_exits_0(migration: Migration) -> None:
    seed_tenant(migration.source.admin, migration.source.project_id, 1, migration.source.user_id)
    try:
        _kill_at_each_point(migration)
    finally:
        for cloud in (migration.source.admin, connect(migration.clouds_yaml, DESTINATION.name)):
            for user in sdk.identity(cloud).users(name=USER, domain_id="default"):
                for keypair in cloud.compute.keypairs(user_id=user.id):
                    cloud.compute.delete_keypair(keypair, user_id=user.id)
                sdk.identity(cloud).delete_user(user.id)


def _kill_at_each_point(migration: Migration) -> None:
    tried = []
    for point, grow in POINTS:
        if grow is not None:
            grow(migration)
        _migrate_and_kill(migration, point)
        tried.append(point.name)
        again = migration.migrate("--skip", "flavors")
        assert again.exit_code == 0, f"after a kill at '{point.name}': {again.output}"
        assert "source and destination are equal" in again.output
        assert_no_duplicates(migration.clouds_yaml, migration.source.project_name)
    print(f"kill points tried: {len(tried)}: {', '.join(tried)}")
    rerun = migration.migrate("--skip", "flavors")
    assert rerun.exit_code == 0 and migration.last_report("apply")["write_calls"] == 0
