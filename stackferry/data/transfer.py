"""One transfer as the kinds run it: stream, meter, and archive copy, all or nothing.

The archive file is committed as soon as the bytes are verified against the source's own
checksum (it is a copy of the source, whatever happens next in the destination), and
removed if the stream fails; a retried transfer starts it afresh.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from openstack.connection import Connection

from stackferry.data.archive import Archive
from stackferry.data.bundle import BundleReader
from stackferry.data.monitor import Monitor, SilentMonitor
from stackferry.data.rbd import CephSettings
from stackferry.data.stream import Digests, Fingerprint, glance_download, stream_chunks


@dataclass
class DataPlane:
    """What kinds that move bytes need besides the destination: the source cloud to read
    from (or a bundle holding the bytes), where to keep a second copy, and where to report
    progress."""

    source: Connection | None = None
    archive: Archive | None = None
    monitor: Monitor = field(default_factory=SilentMonitor)
    ceph: CephSettings = field(default_factory=CephSettings)  # --ceph: the RBD path
    bundle: BundleReader | None = None  # --bundle: the bytes come from it, not the source

    def source_conn(self) -> Connection:
        if self.source is None:
            raise LookupError("moving data needs the source cloud: give --src")
        return self.source


@dataclass
class SourceBytes:
    """A resource's bytes as its source cloud has them, for a bundle: the chunks, what the
    source records of them, and what an upload of them elsewhere needs to know."""

    chunks: Iterator[bytes]
    expected: Fingerprint
    details: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def _source_bytes(data: DataPlane, image_id: str, member: str) -> Iterator[Iterator[bytes]]:
    if data.bundle is not None:
        yield data.bundle.chunks(member)
    else:
        with glance_download(data.source_conn(), image_id) as chunks:
            yield chunks


def transfer(
    data: DataPlane,
    label: str,
    archive_path: str,
    source_image_id: str,
    destination: Connection,
    destination_id: str,
    expected: Fingerprint,
    member: str,
    **details: Any,
) -> Digests:
    """Stream source image ``source_image_id`` (or, with a bundle, its member ``member``)
    into destination image ``destination_id``."""
    archive = data.archive.writer(archive_path) if data.archive is not None else None
    meter = data.monitor.start(label, expected.size)
    try:
        with _source_bytes(data, source_image_id, member) as chunks:
            digests = stream_chunks(chunks, destination, destination_id, expected, meter, archive)
    except BaseException:
        meter.finish(False)
        if archive is not None:
            archive.abort()
        raise
    meter.finish(True)
    if archive is not None and digests.sha256 is not None:
        archive.commit(
            digests.sha256.hexdigest(),
            digests.size,
            md5=digests.md5.hexdigest(),
            destination_id=destination_id,
            **details,
        )
    return digests
