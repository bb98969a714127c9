"""Benchmark: one volume on Ceph, moved four ways in one run, on the lab with Ceph.

1. the API path (cinder -> glance -> glance -> cinder, read back), without --ceph;
2. the RBD path, a full copy (export-diff | import-diff), with --ceph;
3. the RBD path, incremental: a warm sync, then 5% of the volume rewritten (random bytes,
   through librbd), then a second warm pass - and the cutover's last pass;
4. the raw limit: ``rbd export | rbd import`` from one cluster to the other.

Printed: seconds and MiB/s of each copy, the RBD full copy's share of the raw pipe, the
incremental pass's speed-up over the full one, each run's wall time and peak RSS, and the API
calls of the RBD run. Figures only: nothing passes or fails.

usage: python -m bench.rbd [--gib N]   (the lab: python -m devcloud up --ceph)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.measure import api_calls, migrate, rate, stackferry
from devcloud.ceph import Cluster
from devcloud.lab import Lab
from devcloud.layout import DESTINATION, SOURCE
from devcloud.tenants import Tenant, create_tenant, purge_project_named, purge_tenant
from stackferry.cloud import sdk

MIB = 1024 * 1024
WRITE = """
import os, sys, rados, rbd
conf, image, offset, length = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
block = os.urandom(64 * 1024 * 1024)
with rados.Rados(conffile=conf) as cluster, cluster.open_ioctx("volumes") as ioctx:
    with rbd.Image(ioctx, image) as disk:
        done = 0
        while done < length:
            piece = block[: min(len(block), length - done)]
            disk.write(piece, offset + done)
            done += len(piece)
"""


def write_random(lab: Lab, cluster: Cluster, volume_id: str, offset: int, length: int) -> None:
    """Random bytes into the volume's image through librbd (the lab's python has it)."""
    subprocess.run([str(lab.paths.python), "-c", WRITE, str(cluster.conf), f"volume-{volume_id}",
                    str(offset), str(length)], check=True)  # fmt: skip


def raw_pipe(src: Cluster, dst: Cluster, volume_id: str) -> float:
    """Seconds for rbd export | rbd import of the volume's image into the other cluster."""
    target = "volumes/bench-raw-pipe"
    subprocess.run(["rbd", "-c", str(dst.conf), "rm", "--no-progress", target],
                   capture_output=True, check=False)  # fmt: skip
    start = time.monotonic()
    export = subprocess.Popen(
        ["rbd", "-c", str(src.conf), "export", "--no-progress", f"volumes/volume-{volume_id}", "-"],
        stdout=subprocess.PIPE,
    )
    subprocess.run(["rbd", "-c", str(dst.conf), "import", "--no-progress", "-", target],
                   stdin=export.stdout, check=True)  # fmt: skip
    export.wait()
    seconds = time.monotonic() - start
    subprocess.run(["rbd", "-c", str(dst.conf), "rm", "--no-progress", target],
                   capture_output=True, check=True)  # fmt: skip
    return seconds


def transfer(run: dict[str, Any], label: str) -> dict[str, Any]:
    return dict(next(t for t in run["report"]["transfers"] if t["transfer"] == label and t["ok"]))


def line(what: str, seconds: float, nbytes: int, extra: str = "") -> None:
    print(f"{what:46s} {seconds:7.1f} s {nbytes / MIB:8.0f} MiB {rate(nbytes, seconds)}  {extra}")


def seed(lab: Lab, tenant: Tenant, src: Cluster, gib: int) -> str:
    admin = tenant.admin
    sdk.block_storage(admin).update_quota_set(tenant.project_id, gigabytes=100)
    bs = sdk.block_storage(tenant.conn)
    volume = bs.create_volume(name="bench-rbd", size=gib, volume_type="ceph")
    bs.wait_for_status(volume, "available", wait=300)
    write_random(lab, src, str(volume.id), 0, gib * 1024 * MIB)
    return str(volume.id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=int, default=2, help="size of the volume (random bytes)")
    args = parser.parse_args()
    size = args.gib * 1024 * MIB
    lab = Lab()
    if not lab.has_ceph or not lab.is_healthy():
        sys.exit("the lab with Ceph is not up: run `python -m devcloud up --ceph` first")
    clusters = {c.cloud.name: c for c in lab.clusters()}
    src, dst = clusters[SOURCE.name], clusters[DESTINATION.name]
    clouds_yaml = lab.paths.clouds_yaml
    tenant = create_tenant(clouds_yaml, SOURCE)
    name = tenant.project_name
    try:
        volume_id = seed(lab, tenant, src, args.gib)
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            settings = root / "ceph.yaml"
            settings.write_text(yaml.safe_dump({
                role: {"conf": str(c.conf), "pool": "volumes", "backends": ["ceph"]}
                for role, c in (("source", src), ("destination", dst))
            }))  # fmt: skip
            skip = ("--only", "volumes")
            api = migrate(clouds_yaml, name, root / "api", *skip)
            purge_project_named(clouds_yaml, DESTINATION, name)
            full = migrate(clouds_yaml, name, root / "full", *skip, "--ceph", str(settings))
            purge_project_named(clouds_yaml, DESTINATION, name)
            warm1 = stackferry("sync", clouds_yaml, name, root / "warm", "--ceph", str(settings))
            changed = size // 20
            write_random(lab, src, volume_id, size // 3, changed)
            warm2 = stackferry("sync", clouds_yaml, name, root / "warm", "--ceph", str(settings))
            cutover = migrate(clouds_yaml, name, root / "warm", *skip, "--ceph", str(settings))
            purge_project_named(clouds_yaml, DESTINATION, name)
            raw = raw_pipe(src, dst, volume_id)

        api_copy = transfer(api, "volume bench-rbd")
        rbd_full = transfer(full, "volume bench-rbd (RBD)")
        first = transfer(warm1, "volume bench-rbd (RBD)")
        second = transfer(warm2, "volume bench-rbd (RBD, incremental)")
        last = transfer(cutover, "volume bench-rbd (RBD, incremental)")
        print(f"data: one {args.gib} GiB volume on Ceph, random bytes; 5% rewritten = "
              f"{changed / MIB:.0f} MiB")  # fmt: skip
        line("raw pipe  rbd export | rbd import", raw, size)
        line("API path: glance stream (one stage)", api_copy["seconds"], api_copy["bytes"])
        line("API path: migrate, all stages", api["wall"], size)
        line("RBD full: export-diff | import-diff", rbd_full["seconds"], rbd_full["bytes"],
             f"= {raw / rbd_full['seconds']:.0%} of the raw pipe")  # fmt: skip
        line("RBD full: migrate (copy, hash both, name)", full["wall"], size,
             f"{api['wall'] / full['wall']:.1f}x faster than the API path")  # fmt: skip
        line("warm pass 1 (full, server running)", first["seconds"], first["bytes"])
        line("warm pass 2 after 5% rewritten", second["seconds"], second["bytes"],
             f"{first['seconds'] / second['seconds']:.1f}x faster than the full pass")  # fmt: skip
        line("cutover: last pass", last["seconds"], last["bytes"])
        line("cutover: migrate (last pass, hash both, name)", cutover["wall"], size)
        print("peak RSS of stackferry: " + ", ".join(
            f"{n} {r['rss_mib']:.0f} MiB"
            for n, r in (("API", api), ("RBD full", full), ("warm 1", warm1), ("warm 2", warm2),
                         ("cutover", cutover))
        ))  # fmt: skip
        for label, run in (("API path", api), ("RBD full", full)):
            print(f"API calls, {label} apply: {api_calls(run['report'])}")
    finally:
        purge_project_named(clouds_yaml, DESTINATION, name)
        purge_tenant(tenant)


if __name__ == "__main__":
    main()
