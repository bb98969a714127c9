"""kill -9 at each phase of a migration, then re-run: the very next run exits 0, with nothing
missing and nothing duplicated. (Kills while bytes stream are in test_migrate_data.py, a run
whose journal was lost too in test_migrate_network_kinds.py.)"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from devcloud.demo import seed_tenant
from devcloud.layout import DESTINATION, SOURCE
from tests.cloud.migration import Migration
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


def _done(journal: Path, kind: str | None = None) -> int:
    where = f" AND kind = '{kind}'" if kind else ""
    return _query(journal, f"SELECT count(*) FROM steps WHERE state = 'done'{where}")


@dataclass(frozen=True)
class KillPoint:
    name: str
    reached: Callable[[Path, float], bool]  # (workdir, seconds since start) -> kill now


def _journal(workdir: Path) -> Path:
    return workdir / "journal.sqlite"


POINTS = [
    KillPoint(  # reading the source; nothing is written yet
        "export",
        lambda wd, t: t > 1.0 and not (wd / "stackferry.yaml").exists(),
    ),
    KillPoint("apply: the project made", lambda wd, t: _done(_journal(wd), "project") >= 1),
    KillPoint(  # the keypairs' user exists in the destination, without a role there yet
        "apply: a user made, before its roles",
        lambda wd, t: (
            _done(_journal(wd), "user") >= 1 and _done(_journal(wd), "role_assignment") == 0
        ),
    ),
    KillPoint("apply: among the network kinds", lambda wd, t: _done(_journal(wd)) >= 14),
    KillPoint(  # apply finished, verify reads both clouds
        "verify",
        lambda wd, t: (
            _query(_journal(wd), "SELECT count(*) FROM runs WHERE finished_at IS NOT NULL") >= 1
        ),
    ),
]


def _migrate_and_kill(migration: Migration, point: KillPoint) -> None:
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(migration.clouds_yaml))
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
        if point.reached(migration.workdir, time.monotonic() - started):
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    errors = proc.stderr.read().decode() if proc.stderr else ""
    assert killed and proc.returncode == -signal.SIGKILL, (
        f"migrate ended (exit {proc.returncode}) before '{point.name}': {errors}"
    )


@pytest.fixture(scope="module")
def kill_points_tried() -> list[str]:
    return []


@pytest.mark.parametrize("point", POINTS, ids=[p.name for p in POINTS])
def test_kill_minus_nine_then_the_next_run_exits_0(
    migration: Migration, point: KillPoint, kill_points_tried: list[str]
) -> None:
    seed_tenant(migration.source.admin, migration.source.project_id, 1, migration.source.user_id)
    _migrate_and_kill(migration, point)
    kill_points_tried.append(point.name)

    again = migration.migrate("--skip", "flavors")
    assert again.exit_code == 0, again.output
    assert "source and destination are equal" in again.output
    assert_no_duplicates(migration.clouds_yaml, migration.source.project_name)
    rerun = migration.migrate("--skip", "flavors")
    assert rerun.exit_code == 0 and migration.last_report("apply")["write_calls"] == 0
    print(f"kill points tried so far: {kill_points_tried}")
