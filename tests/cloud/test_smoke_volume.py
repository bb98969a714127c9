"""Smoke: cinder stores real bytes: volume from an image, snapshot, and upload back to glance."""

from __future__ import annotations

import hashlib
import os

from devcloud.tenants import Tenant, unique_name
from tests.cloud.waits import wait_status

GIB = 1024**3
CHUNK = 4 * 1024 * 1024


def _volume_bytes_via_glance(tenant: Tenant, volume_id: str) -> tuple[bytes, str]:
    """Upload the volume to a new image, then stream it: (first 8 MiB, sha256 of the rest)."""
    conn = tenant.conn
    result = conn.block_storage.upload_volume_to_image(
        volume_id, unique_name("vol2img"), disk_format="raw", container_format="bare"
    )
    image = wait_status(
        lambda: conn.image.get_image(result["image_id"]), "active", "upload-to-image", timeout=300
    )
    assert image.size == GIB
    head, rest = bytearray(), hashlib.sha256()
    response = conn.image.download_image(image, stream=True)
    for chunk in response.iter_content(CHUNK):
        if len(head) < 8 * 1024 * 1024:
            head.extend(chunk)
        else:
            rest.update(chunk)
    return bytes(head[: 8 * 1024 * 1024]), rest.hexdigest()


def test_volume_create_from_image_snapshot_and_upload(tenant: Tenant) -> None:
    conn = tenant.conn
    blank = conn.block_storage.create_volume(name=unique_name("blank"), size=1)
    wait_status(lambda: conn.block_storage.get_volume(blank.id), "available", "blank volume")

    payload = os.urandom(3 * 1024 * 1024 + 5)
    image = conn.image.create_image(
        name=unique_name("img"),
        data=payload,
        disk_format="raw",
        container_format="bare",
        allow_duplicates=True,
    )
    from_image = conn.block_storage.create_volume(
        name=unique_name("fromimg"), size=1, image_id=image.id
    )
    from_image = wait_status(
        lambda: conn.block_storage.get_volume(from_image.id),
        "available",
        "volume from image",
        timeout=300,
    )
    assert from_image.is_bootable

    snapshot = conn.block_storage.create_snapshot(volume_id=from_image.id, name=unique_name("snap"))
    wait_status(lambda: conn.block_storage.get_snapshot(snapshot.id), "available", "snapshot")
    from_snapshot = conn.block_storage.create_volume(
        name=unique_name("fromsnap"), size=1, snapshot_id=snapshot.id
    )
    wait_status(
        lambda: conn.block_storage.get_volume(from_snapshot.id), "available", "volume from snapshot"
    )

    # The bytes that went in come back out: image -> volume -> (snapshot -> volume) -> image.
    zeros_tail = hashlib.sha256(bytes(GIB - 8 * 1024 * 1024)).hexdigest()
    head, tail_hash = _volume_bytes_via_glance(tenant, from_snapshot.id)
    assert head[: len(payload)] == payload
    assert head[len(payload) :] == bytes(len(head) - len(payload))
    assert tail_hash == zeros_tail
