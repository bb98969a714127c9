"""stackferry usage on the lab's source cloud, as an operator runs it (a subprocess): two servers
of a throw-away tenant, one deleted after some seconds, archived by hour with nova's pages
forced down to one server each; the hours must match the wall-clock time the servers existed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from openstack import exceptions

from devcloud.lab import Lab
from devcloud.tenants import Tenant, unique_name
from stackferry.ops.usage.chart import PALETTE
from tests.browser import assert_chart_renders
from tests.cloud.waits import wait_for, wait_status

ALIVE_SECONDS = 20  # both servers run this long; then one is deleted
AFTER_DELETE_SECONDS = 10
SLACK_SECONDS = 5.0  # besides the ±5 %: nova's timestamps are whole microseconds of its own clock


def _usage(lab: Lab, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env |= {"OS_CLIENT_CONFIG_FILE": str(lab.paths.clouds_yaml), "COLUMNS": "250"}
    return subprocess.run(
        [sys.executable, "-m", "stackferry.cli", "usage", "--cloud", "c1", *args],
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _gone(conn: Any, server_id: str) -> bool:
    try:
        conn.compute.get_server(server_id)
    except exceptions.NotFoundException:
        return True
    return False


def close(value: float) -> Any:
    """Sums of the same floats in another order."""
    return pytest.approx(value, rel=1e-9, abs=1e-9)


def _within(seconds: float, lowest: float, highest: float) -> bool:
    """``seconds`` is between the shortest and longest the server can have existed, with 5 %
    and a few seconds to spare."""
    return lowest * 0.95 - SLACK_SECONDS <= seconds <= highest * 1.05 + SLACK_SECONDS


def _hour_windows(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` cut at every full hour: what --step hour must give."""
    cuts, at = [], start
    while at < end:
        boundary = at.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        cuts.append((at, min(boundary, end)))
        at = cuts[-1][1]
    return cuts


def test_usage_archive_matches_the_servers_lifetimes(
    lab: Lab, source_tenant: Tenant, tmp_path: Path
) -> None:
    conn = source_tenant.conn
    image = conn.image.create_image(
        name=unique_name("img"),
        data=os.urandom(1024 * 1024),
        disk_format="raw",
        container_format="bare",
        allow_duplicates=True,
    )
    network = conn.network.create_network(name=unique_name("net"))
    conn.network.create_subnet(network_id=network.id, ip_version=4, cidr="10.31.0.0/24")
    flavor = conn.compute.find_flavor("m1.tiny", ignore_missing=False)  # 1 vCPU, 256 MB, 1 GB
    since = datetime.now(UTC) - timedelta(minutes=5)

    created = time.time()
    names = [unique_name("usage-kept"), unique_name("usage-gone")]
    ids = [
        conn.compute.create_server(
            name=name,
            flavor_id=flavor.id,
            image_id=image.id,
            networks=[{"uuid": network.id}],
        ).id
        for name in names
    ]
    for server_id in ids:
        wait_status(partial(conn.compute.get_server, server_id), "ACTIVE", "boot")
    active = time.time()
    time.sleep(ALIVE_SECONDS)
    kept_id, gone_id = ids
    deleting = time.time()
    conn.compute.delete_server(gone_id)
    wait_for(partial(_gone, conn, gone_id), bool, "the deleted server to be gone")
    deleted = time.time()
    time.sleep(AFTER_DELETE_SECONDS)

    out = tmp_path / "archive"
    before = time.time()
    run = _usage(
        lab,
        tmp_path,
        *("--project", source_tenant.project_id, "--since", _stamp(since)),
        *("--step", "hour", "--page-limit", "1", "--out", str(out)),
    )
    after = time.time()
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 project(s), 2 server(s)" in run.stdout and "wrote 3 file(s)" in run.stdout, run.stdout

    summary = json.loads((out / "summary.json").read_text())
    assert summary["cloud"] == "c1" and summary["step"] == "hour"
    assert summary["page_limit"] == 1 and summary["all_projects"] is False
    [row] = summary["projects"]
    assert (row["id"], row["name"]) == (source_tenant.project_id, source_tenant.project_name)
    document = json.loads((out / row["file"]).read_text())
    servers = {s["name"]: s for s in document["servers"]}
    assert set(servers) == set(names)
    kept, gone = servers[names[0]], servers[names[1]]
    assert (kept["instance_id"], gone["instance_id"]) == (kept_id, gone_id)
    for server in (kept, gone):
        sizes = (server["flavor"], server["vcpus"], server["memory_mb"], server["local_gb"])
        assert sizes == ("m1.tiny", 1, 256, 1), server
        assert server["started_at"]
    assert kept["ended_at"] is None and kept["state"] == "active"
    assert gone["ended_at"] and gone["state"] == "terminated"

    # hours against the wall clock: launched between create and ACTIVE; ended between the
    # delete call and gone (or, still running, when the command read nova)
    assert _within(gone["hours"] * 3600, deleting - active, deleted - created), gone
    assert _within(kept["hours"] * 3600, before - active, after - created), kept
    totals = document["totals"]
    assert totals["servers"] == 2
    assert totals["total_hours"] == close(kept["hours"] + gone["hours"])  # both pages
    assert totals["total_vcpus_usage"] == close(totals["total_hours"])
    assert totals["total_memory_mb_usage"] == close(256 * totals["total_hours"])
    assert totals["total_local_gb_usage"] == close(totals["total_hours"])
    assert summary["totals"]["total_hours"] == close(totals["total_hours"])

    # one step per hour window, from the first server's start to the end of the window
    used = document["used"]
    used_start, used_end = (datetime.fromisoformat(used[k]) for k in ("start", "end"))
    assert used_end == datetime.fromisoformat(summary["window"]["end"])
    steps = [
        tuple(datetime.fromisoformat(s[k]) for k in ("start", "end")) for s in document["steps"]
    ]
    assert steps == _hour_windows(used_start, used_end)
    for key in ("total_hours", "total_vcpus_usage", "total_memory_mb_usage"):
        assert sum(s[key] for s in document["steps"]) == close(totals[key])

    # what the other services say now
    now = document["now"]
    assert now["images"]["count"] == 1 and now["images"]["bytes"] == 1024 * 1024
    assert now["floating_ips"]["count"] == 0 and now["volumes"]["count"] == 0
    assert now["quotas"]["compute"]["quotas"]["instances"]["in_use"] == 1
    assert set(now["quotas"]) == {"compute", "network", "block-storage"}

    html = (out / "usage.html").read_text()
    assert all(name in html for name in names) and "<svg" in html and "<script" not in html
    # drawn by a real browser (headless Chromium): not blank, and the one project's bars on
    # it in their colour, the palette's first
    assert_chart_renders(out / "usage.html", tmp_path / "usage.png")
    fills = re.findall(r'<rect [^>]*fill="([^"]*)"', html)
    assert fills and set(fills) == {PALETTE[0]}, fills
    written = "".join(p.read_text() for p in out.rglob("*") if p.is_file())
    admin = yaml.safe_load(lab.paths.clouds_yaml.read_text())["clouds"]["c1"]["auth"]
    assert admin["password"] not in written and source_tenant.password not in written

    # without --page-limit: the same servers, and the deleted one's hours to the microsecond
    whole = tmp_path / "whole"
    again = _usage(
        lab,
        tmp_path,
        *("--project", source_tenant.project_id, "--since", _stamp(since), "--out", str(whole)),
    )
    assert again.returncode == 0, again.stdout + again.stderr
    other = json.loads((whole / row["file"]).read_text())
    assert {s["instance_id"]: s["hours"] for s in other["servers"]}[gone_id] == gone["hours"]
    first, last = (datetime.fromisoformat(other["used"][k]) for k in ("start", "end"))
    assert len(other["servers"]) == 2
    assert len(other["steps"]) == (1 if (first.year, first.month) == (last.year, last.month) else 2)

    # bad input: nothing read, nothing written
    refused = tmp_path / "refused"
    bad = _usage(
        lab,
        tmp_path,
        *("--project", source_tenant.project_id, "--since", "2024-03-01"),
        *("--until", "2024-02-01", "--out", str(refused)),
    )
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert "is not before" in bad.stderr and "Traceback" not in bad.stderr
    assert not refused.exists()
