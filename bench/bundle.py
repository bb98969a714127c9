"""Benchmark: a bundle with 1 GiB of data, and the compression it uses.

1. Compressors compared on the same disk-like bytes (40% zero blocks, 30% text-like, 30%
   random, fresh in every 4 MiB block): zstd at levels 1 (what bundles use), 3 (and 3 on two
   threads), gzip 1 and 6, xz 0 and 6 — ratio, compress and decompress MiB/s.
2. In the lab: an image of that mix in the source; ``stackferry export --bundle --with-data``
   (wall, rate, peak RSS, bundle size), then ``stackferry apply --bundle`` into the
   destination with no source configured (wall, rate, peak RSS); and, as the baseline in the
   same run, ``stackferry migrate`` of the same image cloud to cloud.
Figures only: nothing passes or fails.

usage: python -m bench.bundle [--gib N] [--sample-mib M]
"""

from __future__ import annotations

import argparse
import gzip
import json
import lzma
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import yaml
import zstandard

from bench.measure import migrate, rate, run_measured
from devcloud.lab import Lab
from devcloud.layout import DESTINATION, SOURCE
from devcloud.tenants import create_tenant, purge_project_named, purge_tenant

MIB = 1024 * 1024
BLOCK = 4 * MIB
TEXT = bytes.maketrans(bytes(range(256)), (b"etaoinshrdlucmfw" * 16))  # 4 bits per byte


def disk_like(total: int) -> Iterator[bytes]:
    """What a VM disk holds, roughly: free space, text and binaries, compressed files."""
    for i in range(0, total, BLOCK):
        size, pick = min(BLOCK, total - i), (i // BLOCK) % 10
        if pick < 4:
            yield bytes(size)
        elif pick < 7:
            yield os.urandom(size).translate(TEXT)
        else:
            yield os.urandom(size)


def _timed(func: Callable[[], bytes]) -> tuple[bytes, float]:
    start = time.monotonic()
    out = func()
    return out, time.monotonic() - start


def compare(sample: bytes) -> None:
    codecs: list[tuple[str, Callable[[bytes], bytes], Callable[[bytes], bytes]]] = [
        ("zstd -1 (bundles)", zstandard.ZstdCompressor(level=1).compress,
         zstandard.ZstdDecompressor().decompress),
        ("zstd -3", zstandard.ZstdCompressor(level=3).compress,
         zstandard.ZstdDecompressor().decompress),
        ("zstd -3, 2 threads", zstandard.ZstdCompressor(level=3, threads=2).compress,
         lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b)),
        ("gzip -1", lambda b: gzip.compress(b, 1), gzip.decompress),
        ("gzip -6", lambda b: gzip.compress(b, 6), gzip.decompress),
        ("xz -0", lambda b: lzma.compress(b, preset=0), lzma.decompress),
        ("xz -6", lambda b: lzma.compress(b, preset=6), lzma.decompress),
    ]  # fmt: skip
    print(f"compressors, on {len(sample) // MIB} MiB of the disk-like mix (one core each):")
    for name, compress, decompress in codecs:
        packed, seconds = _timed(lambda c=compress: c(sample))  # type: ignore[misc]
        back, back_seconds = _timed(lambda d=decompress, p=packed: d(p))  # type: ignore[misc]
        assert back == sample
        speeds = f"compress {rate(len(sample), seconds)}"
        speeds += f"  decompress {rate(len(sample), back_seconds)}"
        print(f"  {name:20} size {len(packed) / len(sample):6.1%}  {speeds}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=int, default=1, help="size of the image")
    parser.add_argument("--sample-mib", type=int, default=128, help="for the comparison")
    args = parser.parse_args()
    size = args.gib * 1024 * MIB
    compare(b"".join(disk_like(args.sample_mib * MIB)))

    lab = Lab()
    if not lab.is_healthy():
        sys.exit("the lab is not up: run `python -m devcloud up` first")
    clouds_yaml = lab.paths.clouds_yaml
    tenant = create_tenant(clouds_yaml, SOURCE)
    try:
        image_id = str(uuid.uuid4())
        tenant.admin.image.post("/images", json={
            "id": image_id, "name": "bench-bundle", "disk_format": "raw",
            "container_format": "bare", "owner": tenant.project_id})  # fmt: skip
        tenant.admin.image.put(f"/images/{image_id}/file", data=disk_like(size),
                               headers={"Content-Type": "application/octet-stream"})  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            bundle = folder / "bench.tar.zst"
            env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(clouds_yaml))
            cli = [sys.executable, "-m", "stackferry.cli"]
            code, export_s, export_rss = run_measured(
                [*cli, "export", "--src", SOURCE.name, "--project", tenant.project_name,
                 "--workdir", str(folder / "src-wd"), "--only", "images",
                 "--bundle", str(bundle), "--with-data"],
                env, folder / "export.log")  # fmt: skip
            if code:
                sys.exit((folder / "export.log").read_text())
            bundle_size = bundle.stat().st_size
            clouds = yaml.safe_load(clouds_yaml.read_text())["clouds"]
            air_gapped = folder / "dst-only.yaml"
            air_gapped.write_text(yaml.safe_dump({"clouds": {
                n: c for n, c in clouds.items() if not n.startswith(SOURCE.name)}}))  # fmt: skip
            code, apply_s, apply_rss = run_measured(
                [*cli, "apply", "--bundle", str(bundle), "--dst", DESTINATION.name,
                 "--workdir", str(folder / "dst-wd"), "-q"],
                dict(env, OS_CLIENT_CONFIG_FILE=str(air_gapped)), folder / "apply.log")  # fmt: skip
            if code:
                sys.exit((folder / "apply.log").read_text())
            report = json.loads(sorted((folder / "dst-wd/reports").glob("apply-*.json"))[-1]
                                .read_text())  # fmt: skip
            stream = next(t for t in report["transfers"] if t["ok"])
            purge_project_named(clouds_yaml, DESTINATION, tenant.project_name)
            direct = migrate(
                clouds_yaml, tenant.project_name, folder / "direct", "--only", "images"
            )
            direct_stream = next(t for t in direct["report"]["transfers"] if t["ok"])

        print(f"\nlab: one {args.gib} GiB image of the disk-like mix")
        print(f"export --bundle --with-data   {export_s:7.1f} s {rate(size, export_s)}  "
              f"peak RSS {export_rss:.0f} MiB; bundle {bundle_size / MIB:.0f} MiB "
              f"= {bundle_size / size:.1%} of the data")  # fmt: skip
        print(f"apply --bundle (no source)    {apply_s:7.1f} s {rate(size, apply_s)}  "
              f"peak RSS {apply_rss:.0f} MiB; its stream {stream['seconds']:.1f} s "
              f"{rate(size, stream['seconds'])}")  # fmt: skip
        print(f"baseline: migrate c1 -> c2    {direct['wall']:7.1f} s "
              f"{rate(size, direct['wall'])}  peak RSS {direct['rss_mib']:.0f} MiB; its stream "
              f"{direct_stream['seconds']:.1f} s "
              f"{rate(size, direct_stream['seconds'])}")  # fmt: skip
    finally:
        purge_project_named(clouds_yaml, DESTINATION, tenant.project_name)
        purge_tenant(tenant)


if __name__ == "__main__":
    main()
