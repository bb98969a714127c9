"""kill -9 at several points of apply, then re-run: nothing missing, nothing duplicated."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from devcloud.layout import DESTINATION
from devcloud.seed import connect
from stackferry import sdk
from tests.cloud.migration import Migration

STACKFERRY = [sys.executable, "-m", "stackferry.cli"]


def _done_steps(journal: Path) -> int:
    if not journal.exists():
        return 0
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5)
    try:
        return int(db.execute("SELECT count(*) FROM steps WHERE state = 'done'").fetchone()[0])
    except sqlite3.OperationalError:  # tables not created yet
        return 0
    finally:
        db.close()


def _apply_and_kill(migration: Migration, after_done: int) -> int:
    """Start apply in a process of its own; SIGKILL it once the journal shows ``after_done``
    more finished steps. Returns how many were done in all when it died."""
    journal = migration.workdir / "journal.sqlite"
    start = _done_steps(journal)
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(migration.clouds_yaml))
    proc = subprocess.Popen(
        [
            *STACKFERRY,
            "apply",
            "--dst",
            DESTINATION.name,
            "--workdir",
            str(migration.workdir),
            "-q",
            "--parallel",
            "2",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if _done_steps(journal) >= start + after_done:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, (
        f"apply ended by itself (exit {proc.returncode}) before it could be killed: "
        f"{proc.stderr.read().decode() if proc.stderr else ''}"
    )
    return _done_steps(journal)


def test_kill_minus_nine_at_several_points_then_rerun(migration: Migration) -> None:
    net = migration.source.admin.network
    pid = migration.source.project_id
    for i in range(8):
        network = net.create_network(name=f"net{i}", project_id=pid)
        for j in range(2):
            net.create_subnet(
                network_id=network.id,
                project_id=pid,
                ip_version=4,
                cidr=f"10.{i}.{j}.0/24",
                name=f"net{i}-sub{j}",
            )
    assert migration.export().exit_code == 0

    progress = [_apply_and_kill(migration, n) for n in (1, 4, 6)]
    assert progress == sorted(progress) and progress[-1] < 25  # 1 project + 8 + 16 steps

    final = migration.apply()
    assert final.exit_code == 0, final.output
    assert migration.verify().exit_code == 0

    dst = connect(migration.clouds_yaml, DESTINATION.name)
    projects = list(sdk.identity(dst).projects(name=migration.source.project_name))
    assert len(projects) == 1
    names = Counter(n.name for n in dst.network.networks(project_id=projects[0].id))
    assert names == Counter({f"net{i}": 1 for i in range(8)})
    cidrs = Counter(s.cidr for s in dst.network.subnets(project_id=projects[0].id))
    assert len(cidrs) == 16 and set(cidrs.values()) == {1}
