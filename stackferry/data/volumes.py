"""Cinder volumes as byte streams, through the APIs only: a volume becomes a (temporary) image
with ``os-volume_upload_image``, and a volume is made from an image with ``imageRef``.

In-use volumes are read through a temporary snapshot and a temporary volume made from it,
so the server keeps running and nothing is uploaded while it writes.
"""

from __future__ import annotations

from typing import Any

from openstack import exceptions
from openstack.connection import Connection

from stackferry.cloud import sdk
from stackferry.cloud.connection import rest
from stackferry.cloud.glance import Glance
from stackferry.cloud.retry import TransientError, wait_until

GIB = 1024**3


def timeout_for(size_gib: int) -> float:
    """Generous: the lab moves ~100 MB/s, real backends may be slower."""
    return 300.0 + 120.0 * size_gib


def upload_to_image(conn: Connection, volume_id: str, image_name: str) -> str:
    """Start copying the volume into a new raw image; returns the image ID."""
    response = rest(
        conn.block_storage,
        "post",
        f"/volumes/{volume_id}/action",
        json={
            "os-volume_upload_image": {
                "image_name": image_name,
                "disk_format": "raw",
                "container_format": "bare",
                "force": False,
            }
        },
    )
    return str(response.json()["os-volume_upload_image"]["image_id"])


def wait_image_active(conn: Connection, image_id: str, what: str, timeout: float) -> dict[str, Any]:
    """Wait for an image cinder is uploading. Cinder deletes (or glance kills) the image when
    the upload fails on its side: that is retried, as a transient failure."""
    try:
        image: dict[str, Any] = wait_until(
            lambda: Glance(conn).get(image_id),
            lambda i: i.get("status") == "active",
            what,
            timeout,
            failed=lambda i: (
                f"image went {i['status']}"
                if i.get("status") in ("killed", "deleted", "deactivated")
                else None
            ),
        )
    except exceptions.NotFoundException:
        raise TransientError(f"{what}: the block storage service abandoned the upload") from None
    except RuntimeError as exc:
        raise TransientError(str(exc)) from None
    return image


def wait_volume(conn: Connection, volume_id: str, want: set[str], what: str, timeout: float) -> Any:
    bs = sdk.block_storage(conn)
    return wait_until(
        lambda: bs.get_volume(volume_id),
        lambda v: v.status in want,
        what,
        timeout,
        failed=lambda v: f"volume went {v.status}" if v.status.startswith("error") else None,
    )


def wait_snapshot(conn: Connection, snapshot_id: str, what: str, timeout: float) -> Any:
    bs = sdk.block_storage(conn)
    return wait_until(
        lambda: bs.get_snapshot(snapshot_id),
        lambda s: s.status == "available",
        what,
        timeout,
        failed=lambda s: f"snapshot went {s.status}" if s.status.startswith("error") else None,
    )
