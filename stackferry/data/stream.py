"""Stream an image's bytes from one glance to another: no temporary file, bounded memory.

A reader thread pulls chunks from the source download, hashes them (md5; SHA-256 too for the
archive) and copies them to the archive, into a small queue, while the upload sends them: all
three overlap (hashlib and file writes release the GIL), like a ``curl | curl`` pipe. At the
end the bytes read must match the source's record, and the destination's record (md5 and
os_hash, computed by glance as it stored them) must match the source's. At most
``QUEUE_DEPTH + 2`` chunks are in memory per transfer, whatever the image size.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from openstack.connection import Connection

from stackferry.cloud.connection import rest
from stackferry.cloud.glance import Glance
from stackferry.data.archive import ArchiveWriter
from stackferry.data.monitor import Meter

CHUNK = 1024 * 1024
QUEUE_DEPTH = 8


class TransferError(Exception):
    """The bytes that arrived are not the bytes that left: nothing is kept."""


@dataclass(frozen=True)
class Fingerprint:
    """What glance says an image's bytes are; compared end to end."""

    size: int | None
    checksum: str | None  # md5
    os_hash_algo: str | None
    os_hash_value: str | None

    @classmethod
    def of(cls, image: dict[str, Any]) -> Fingerprint:
        return cls(
            image.get("size"),
            image.get("checksum"),
            image.get("os_hash_algo"),
            image.get("os_hash_value"),
        )

    def as_params(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "checksum": self.checksum,
            "os_hash_algo": self.os_hash_algo,
            "os_hash_value": self.os_hash_value,
        }

    def mismatches(self, other: Fingerprint) -> list[str]:
        """Fields both know and that differ."""
        out = []
        names = ["size", "checksum"]
        if self.os_hash_algo == other.os_hash_algo:  # clouds may hash with different algos
            names.append("os_hash_value")
        for name in names:
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is not None and theirs is not None and mine != theirs:
                out.append(f"{name} {theirs} instead of {mine}")
        return out


@dataclass
class Digests:
    """What stackferry hashes itself: md5, to tell a source that sent other bytes than it
    recorded from bytes altered after us (glance hashes with md5 and os_hash_algo on both
    ends, and those records are compared too); SHA-256 only for the archive's manifest.
    Hashing less leaves the CPU to the copy."""

    md5: Any
    sha256: Any | None
    size: int = 0

    @classmethod
    def create(cls, with_sha256: bool) -> Digests:
        return cls(hashlib.md5(usedforsecurity=False), hashlib.sha256() if with_sha256 else None)

    def update(self, chunk: bytes) -> None:
        self.md5.update(chunk)
        if self.sha256 is not None:
            self.sha256.update(chunk)
        self.size += len(chunk)

    def fingerprint(self) -> Fingerprint:
        return Fingerprint(self.size, self.md5.hexdigest(), None, None)


_END = object()


def _read_ahead(chunks: Iterator[bytes], on_chunk: Callable[[bytes], None]) -> Iterator[bytes]:
    """Iterate ``chunks`` in a thread, QUEUE_DEPTH ahead of the consumer. ``on_chunk`` (the
    hashing and the archive copy) runs in that thread too, so it overlaps with the upload:
    hashlib and file writes release the GIL."""
    q: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_DEPTH)
    stop = threading.Event()

    def offer(item: Any) -> bool:
        """Queue ``item`` unless the consumer has gone (then never block on a full queue)."""
        while not stop.is_set():
            try:
                q.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for chunk in chunks:
                on_chunk(chunk)
                if not offer(chunk):
                    return
            offer(_END)
        except BaseException as exc:  # handed to the consumer, which raises it
            offer(exc)

    reader = threading.Thread(target=pump, name="stream-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join(timeout=5)


def stream_image(
    source: Connection,
    source_id: str,
    destination: Connection,
    destination_id: str,
    expected: Fingerprint,
    meter: Meter,
    archive: ArchiveWriter | None = None,
) -> Digests:
    """Copy the bytes of source image ``source_id`` into the queued destination image
    ``destination_id``; raise TransferError unless both ends agree with ``expected``."""
    with glance_download(source, source_id) as chunks:
        return stream_chunks(chunks, destination, destination_id, expected, meter, archive)


@contextlib.contextmanager
def glance_download(conn: Connection, image_id: str) -> Iterator[Iterator[bytes]]:
    """The bytes of image ``image_id``, streamed in CHUNK pieces; the answer closed after."""
    response = rest(conn.image, "get", f"/images/{image_id}/file", stream=True)
    try:
        yield response.iter_content(CHUNK)
    finally:
        response.close()


def stream_chunks(
    chunks: Iterator[bytes],
    destination: Connection,
    destination_id: str,
    expected: Fingerprint,
    meter: Meter,
    archive: ArchiveWriter | None = None,
) -> Digests:
    """Upload ``chunks`` (a source image's bytes, from its glance or from a bundle) into the
    queued destination image ``destination_id``; raise TransferError unless both ends agree
    with ``expected``, the source's own record of them."""
    digests = Digests.create(archive is not None)

    def arrived(chunk: bytes) -> None:
        digests.update(chunk)
        if archive is not None:
            archive.write(chunk)

    def outgoing() -> Iterator[bytes]:
        for chunk in _read_ahead(chunks, arrived):
            meter.advance(len(chunk))
            yield chunk

    rest(
        destination.image,
        "put",
        f"/images/{destination_id}/file",
        data=outgoing(),
        headers={"Content-Type": "application/octet-stream"},
    )
    read = digests.fingerprint()
    problems = expected.mismatches(read)
    if problems:
        raise TransferError(
            "the source sent bytes that differ from its own record ("
            + ", ".join(problems)
            + "): the source image changed since export or its store is damaged"
        )
    landed = Fingerprint.of(Glance(destination).get(destination_id))
    # What we read (size, md5) and what the source recorded beyond it (its os_hash).
    source_hash = Fingerprint(None, None, expected.os_hash_algo, expected.os_hash_value)
    problems = read.mismatches(landed) + source_hash.mismatches(landed)
    if problems or landed.checksum is None:
        raise TransferError(
            "the destination stored bytes that differ from those sent ("
            + (", ".join(problems) or "no checksum recorded")
            + "): altered in flight"
        )
    return digests
