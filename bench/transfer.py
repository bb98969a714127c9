"""Benchmark: move a 1 GiB image and a 1 GiB volume between the lab's clouds; compare the
image's throughput with the raw limit measured in the same run.

The raw limit is a plain streaming pipe, ``curl`` downloading from the source glance into
``curl`` uploading to the destination glance, with the same tokens stackferry gets. Printed:
bytes/s of each, stackferry's share of the raw pipe, the volume's stages, peak RSS of the
stackferry process, and its API calls by method. Figures only: nothing passes or fails.

usage: python -m bench.transfer [--gib N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from bench.measure import api_calls, migrate, rate
from devcloud.lab import Lab
from devcloud.layout import DESTINATION, SOURCE
from devcloud.seed import connect
from devcloud.tenants import create_tenant, purge_project_named, purge_tenant
from stackferry.cloud import sdk

MIB = 1024 * 1024


def random_chunks(total: int) -> Iterator[bytes]:
    block = os.urandom(64 * MIB)  # random enough to defeat compression, cheap to make
    sent = 0
    while sent < total:
        piece = block[: min(len(block), total - sent)]
        sent += len(piece)
        yield piece


def raw_pipe(clouds_yaml: Path, source_image: str, size: int) -> float:
    """Seconds for curl | curl to copy the image into a new destination image."""
    src, dst = connect(clouds_yaml, SOURCE.name), connect(clouds_yaml, DESTINATION.name)
    target = str(uuid.uuid4())
    dst.image.post("/images", json={"id": target, "name": "bench-raw-pipe",
                                    "disk_format": "raw", "container_format": "bare"})  # fmt: skip
    src_url = f"{str(src.image.get_endpoint()).rstrip('/')}/images/{source_image}/file"
    dst_url = f"{str(dst.image.get_endpoint()).rstrip('/')}/images/{target}/file"
    start = time.monotonic()
    download = subprocess.Popen(
        ["curl", "-sS", "--fail", "-H", f"X-Auth-Token: {src.auth_token}", src_url],
        stdout=subprocess.PIPE,
    )
    upload = subprocess.run(
        ["curl", "-sS", "--fail", "-X", "PUT", "-T", "-", "-H", f"X-Auth-Token: {dst.auth_token}",
         "-H", "Content-Type: application/octet-stream", dst_url],
        stdin=download.stdout,
        check=True,
    )  # fmt: skip
    download.wait()
    seconds = time.monotonic() - start
    landed = dst.image.get(f"/images/{target}").json()
    dst.image.delete(f"/images/{target}")
    if upload.returncode or landed.get("size") != size:
        sys.exit(f"raw pipe failed: {landed}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=int, default=1, help="size of the image and the volume")
    args = parser.parse_args()
    size = args.gib * 1024 * MIB
    lab = Lab()
    if not lab.is_healthy():
        sys.exit("the lab is not up: run `python -m devcloud up` first")
    clouds_yaml = lab.paths.clouds_yaml
    tenant = create_tenant(clouds_yaml, SOURCE)
    try:
        admin = tenant.admin
        sdk.block_storage(admin).update_quota_set(tenant.project_id, gigabytes=100)
        image_id = str(uuid.uuid4())
        admin.image.post("/images", json={"id": image_id, "name": "bench-image",
                                          "disk_format": "raw", "container_format": "bare",
                                          "owner": tenant.project_id})  # fmt: skip
        admin.image.put(f"/images/{image_id}/file", data=random_chunks(size),
                        headers={"Content-Type": "application/octet-stream"})  # fmt: skip
        volumes = sdk.block_storage(tenant.conn)
        volume = volumes.create_volume(name="bench-volume", size=args.gib, image_id=image_id)
        volumes.wait_for_status(volume, "available", wait=900)

        raw_seconds = raw_pipe(clouds_yaml, image_id, size)
        with tempfile.TemporaryDirectory() as tmp:
            images = migrate(clouds_yaml, tenant.project_name, Path(tmp) / "i", "--only", "images")
            vols = migrate(clouds_yaml, tenant.project_name, Path(tmp) / "v", "--only", "volumes")
        image_transfer = next(t for t in images["report"]["transfers"] if t["ok"])
        volume_transfer = next(t for t in vols["report"]["transfers"] if t["ok"])
        volume_step = vols["wall"]

        print(f"data: {args.gib} GiB image, {args.gib} GiB volume (random bytes)")
        print(f"raw pipe  curl | curl, glance -> glance   {raw_seconds:7.1f} s "
              f"{rate(size, raw_seconds)}")  # fmt: skip
        print(f"stackferry image stream                    {image_transfer['seconds']:7.1f} s "
              f"{rate(size, image_transfer['seconds'])}  "
              f"= {raw_seconds / image_transfer['seconds']:.0%} of the raw pipe")  # fmt: skip
        print(f"stackferry image migrate (export..verify)  {images['wall']:7.1f} s")
        print(f"stackferry volume stream (image -> image)  {volume_transfer['seconds']:7.1f} s "
              f"{rate(size, volume_transfer['seconds'])}  "
              f"= {raw_seconds / volume_transfer['seconds']:.0%} of the raw pipe")  # fmt: skip
        print(
            f"stackferry volume migrate, all stages      {volume_step:7.1f} s  (upload to "
            "image, stream, create from image, read back and compare)"
        )
        print(
            f"peak RSS of stackferry: image run {images['rss_mib']:.0f} MiB, "
            f"volume run {vols['rss_mib']:.0f} MiB"
        )
        for name, run in (("image", images), ("volume", vols)):
            print(f"API calls, {name} apply: {api_calls(run['report'])}")
    finally:
        purge_project_named(clouds_yaml, DESTINATION, tenant.project_name)
        purge_tenant(tenant)


if __name__ == "__main__":
    main()
