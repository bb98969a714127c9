"""Benchmark: N image-backed servers and B boot-from-volume servers (running; the image's bytes
on their root disk or boot volume) migrated with ``--cutover stop``, then migrated again
(nothing to do), in one run.

Prints wall time, each server's downtime (the source's stop action, as nova recorded it, to
the destination server's launch), API calls by cloud, service and method, and peak RSS.
Figures only: nothing here passes or fails.
usage: python -m bench.servers [--servers N] [--bfv B] [--disk-mib M] [--parallel P]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.measure import migrate
from bench.migrate_scale import show
from devcloud.lab import Lab
from devcloud.layout import DESTINATION, SOURCE
from devcloud.seed import connect
from devcloud.tenants import create_tenant, purge_project_named, purge_tenant
from stackferry.cloud import sdk


def _wait(fetch: Any, status: str) -> Any:
    deadline = time.monotonic() + 600
    while (item := fetch()).status != status:
        if item.status == "ERROR" or time.monotonic() > deadline:
            raise RuntimeError(f"{item.name}: {item.status}")
        time.sleep(1)
    return item


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00").split(".")[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--servers", type=int, default=10)
    parser.add_argument("--bfv", type=int, default=4, help="boot-from-volume servers (1 GiB)")
    parser.add_argument("--disk-mib", type=int, default=64)
    parser.add_argument("--parallel", type=int, default=8)
    args = parser.parse_args()
    lab = Lab()
    if not lab.is_healthy():
        lab.up()
    tenant = create_tenant(lab.paths.clouds_yaml, SOURCE)
    conn, admin = tenant.conn, tenant.admin
    try:
        admin.compute.update_quota_set(tenant.project_id, instances=args.servers + args.bfv + 5)
        bs = sdk.block_storage(conn)
        sdk.block_storage(admin).update_quota_set(
            tenant.project_id, volumes=args.bfv + 5, gigabytes=10 * args.bfv + 10
        )
        image = conn.image.create_image(
            name="bench-root", data=os.urandom(args.disk_mib * 1024 * 1024), disk_format="raw",
            container_format="bare", allow_duplicates=True,
        )  # fmt: skip
        network = conn.network.create_network(name="bench")
        conn.network.create_subnet(network_id=network.id, ip_version=4, cidr="10.90.0.0/24")
        flavor = conn.compute.find_flavor("m1.tiny", ignore_missing=False)
        t0 = time.monotonic()
        made = [
            conn.compute.create_server(
                name=f"bench{i}",
                flavor_id=flavor.id,
                image_id=image.id,
                networks=[{"uuid": network.id}],
            )
            for i in range(args.servers)
        ]
        roots = [bs.create_volume(name=f"bfv{i}-root", size=1, image_id=image.id)
                 for i in range(args.bfv)]  # fmt: skip
        for root in roots:
            _wait(lambda r=root: bs.get_volume(r.id), "available")
            made.append(
                conn.compute.create_server(
                    name=f"{root.name[:-5]}",
                    flavor_id=flavor.id,
                    networks=[{"uuid": network.id}],
                    block_device_mapping_v2=[
                        {
                            "boot_index": 0,
                            "uuid": root.id,
                            "source_type": "volume",
                            "destination_type": "volume",
                            "delete_on_termination": True,
                        }
                    ],
                )
            )
        servers = [_wait(lambda s=s: conn.compute.get_server(s.id), "ACTIVE") for s in made]
        print(
            f"booted {args.servers} image-backed servers of {args.disk_mib} MiB and {args.bfv} "
            f"from 1 GiB volumes in {time.monotonic() - t0:.0f} s"
        )
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp) / "workdir"
            extra = ("--parallel", str(args.parallel), "--only", "servers", "--only", "ports",
                     "--only", "networks", "--only", "subnets", "--only", "security_groups",
                     "--only", "security_group_rules", "--only", "flavors",
                     "--only", "volumes", "--only", "quotas")  # fmt: skip
            first = migrate(lab.paths.clouds_yaml, tenant.project_name, workdir, *extra)
            show(f"first migrate: {args.servers} + {args.bfv} servers", first)
            _downtimes(lab, tenant.project_name, servers, admin)
            show("second migrate (nothing to do)",
                 migrate(lab.paths.clouds_yaml, tenant.project_name, workdir, *extra))  # fmt: skip
    finally:
        purge_project_named(lab.paths.clouds_yaml, DESTINATION, tenant.project_name)
        purge_tenant(tenant)


def _downtimes(lab: Lab, project: str, sources: list[Any], source_admin: Any) -> None:
    dst = connect(lab.paths.clouds_yaml, DESTINATION.name)
    (pid,) = [p.id for p in sdk.identity(dst).projects(name=project, domain_id="default")]
    launched = {
        s.name: _when(s.launched_at)
        for s in dst.compute.servers(details=True, all_projects=True, project_id=pid)
    }
    down: dict[str, list[float]] = {"image-backed": [], "boot-from-volume": []}
    for server in sources:
        stops = [a for a in source_admin.compute.server_actions(server.id) if a.action == "stop"]
        if stops and server.name in launched:
            seconds = (launched[server.name] - _when(stops[-1].start_time)).total_seconds()
            down["boot-from-volume" if server.name.startswith("bfv") else "image-backed"].append(
                seconds
            )
    for what, times in down.items():
        if times:
            print(
                f"downtime, {what}: min {min(times):.1f} s, median "
                f"{statistics.median(times):.1f} s, max {max(times):.1f} s "
                f"(source stopped -> destination launched), n={len(times)}"
            )


if __name__ == "__main__":
    main()
