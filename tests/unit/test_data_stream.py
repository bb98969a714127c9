"""The streaming mover, the archive and the temporaries, with in-memory stand-ins for glance."""

from __future__ import annotations

import hashlib
import json
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from openstack.connection import Connection

from stackferry.data.archive import Archive
from stackferry.data.monitor import SilentMonitor
from stackferry.data.stream import CHUNK, Fingerprint, TransferError, stream_image
from stackferry.data.transfer import DataPlane, transfer
from stackferry.engine.journal import Journal
from stackferry.engine.temporaries import UNDO, Temporaries


class Response:
    def __init__(self, status: int = 200, document: Any = None, chunks: Any = None) -> None:
        self.status_code, self._document, self._chunks = status, document, chunks
        self.closed = False

    def json(self) -> Any:
        return self._document

    def iter_content(self, size: int) -> Iterator[bytes]:
        yield from self._chunks

    def close(self) -> None:
        self.closed = True


class FakeGlance:
    """Just enough of glance's image API: download, upload (which hashes like glance does,
    after an optional ``tamper``), and GET of the image record."""

    def __init__(self, images: dict[str, bytes] | None = None, tamper: Any = None) -> None:
        self.images = dict(images or {})
        self.tamper = tamper
        self.largest_chunk = 0

    def get(self, path: str, **kwargs: Any) -> Response:
        image_id = path.split("/")[2]
        data = self.images[image_id]
        if path.endswith("/file"):
            return Response(chunks=(data[i : i + CHUNK] for i in range(0, len(data), CHUNK)))
        return Response(document=glance_record(data))

    def put(self, path: str, data: Iterator[bytes], **kwargs: Any) -> Response:
        received = bytearray()
        for chunk in data:
            self.largest_chunk = max(self.largest_chunk, len(chunk))
            received += chunk
        body = bytes(received)
        self.images[path.split("/")[2]] = self.tamper(body) if self.tamper else body
        return Response(status=204)


class Conn:
    def __init__(self, glance: FakeGlance) -> None:
        self.image = glance


def conn(glance: FakeGlance) -> Connection:
    return cast(Connection, Conn(glance))


def glance_record(data: bytes) -> dict[str, Any]:
    return {
        "status": "active",
        "size": len(data),
        "checksum": hashlib.md5(data, usedforsecurity=False).hexdigest(),
        "os_hash_algo": "sha512",
        "os_hash_value": hashlib.sha512(data).hexdigest(),
    }


def flip_one_byte(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 1]) + data[middle + 1 :]


DATA = os.urandom(3 * CHUNK + 12345)


def test_stream_copies_bytes_and_checks_both_ends() -> None:
    source, destination = FakeGlance({"s": DATA}), FakeGlance()
    digests = stream_image(
        conn(source), "s", conn(destination), "d", Fingerprint.of(glance_record(DATA)),
        SilentMonitor().start("x", len(DATA)),
    )  # fmt: skip
    assert destination.images["d"] == DATA
    assert digests.md5.hexdigest() == hashlib.md5(DATA, usedforsecurity=False).hexdigest()
    assert digests.size == len(DATA)
    assert destination.largest_chunk <= CHUNK


def test_bytes_altered_on_the_way_are_reported() -> None:
    source, destination = FakeGlance({"s": DATA}), FakeGlance(tamper=flip_one_byte)
    with pytest.raises(TransferError, match="altered in flight"):
        stream_image(
            conn(source), "s", conn(destination), "d", Fingerprint.of(glance_record(DATA)),
            SilentMonitor().start("x", None),
        )  # fmt: skip


def test_a_source_that_changed_since_export_is_reported() -> None:
    exported = Fingerprint.of(glance_record(DATA))
    source, destination = FakeGlance({"s": flip_one_byte(DATA)}), FakeGlance()
    with pytest.raises(TransferError, match="changed since export"):
        stream_image(
            conn(source), "s", conn(destination), "d", exported, SilentMonitor().start("x", None)
        )


def test_memory_stays_bounded_whatever_the_size() -> None:
    """64 MiB through the pipe; the Python heap never holds more than a few chunks."""
    size = 64 * CHUNK

    class Endless(FakeGlance):
        def get(self, path: str, **kwargs: Any) -> Response:
            if path.endswith("/file"):
                return Response(chunks=(b"\0" * CHUNK for _ in range(size // CHUNK)))
            return Response(document=glance_record(b""))

    class Sink(FakeGlance):
        def put(self, path: str, data: Iterator[bytes], **kwargs: Any) -> Response:
            digest = hashlib.md5(usedforsecurity=False)
            for chunk in data:
                digest.update(chunk)
            self.images["d"] = b""
            self.record = {"status": "active", "size": size, "checksum": digest.hexdigest()}
            return Response(status=204)

        def get(self, path: str, **kwargs: Any) -> Response:
            return Response(document=self.record)

    tracemalloc.start()
    sink = Sink()
    stream_image(
        conn(Endless()), "s", conn(sink), "d", Fingerprint(size, None, "sha512", None),
        SilentMonitor().start("x", size),
    )  # fmt: skip
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 16 * CHUNK, f"peak {peak} bytes for a {size}-byte stream"


def test_fingerprints_from_clouds_hashing_differently_compare_on_md5_and_size() -> None:
    a = Fingerprint(10, "m", "sha512", "x")
    assert a.mismatches(Fingerprint(10, "m", "sha256", "y")) == []
    assert a.mismatches(Fingerprint(10, "m", "sha512", "y")) == ["os_hash_value y instead of x"]
    assert a.mismatches(Fingerprint(11, "m", "sha512", "x")) == ["size 11 instead of 10"]


def test_archive_keeps_only_verified_files_with_a_checkable_manifest(tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    source = FakeGlance({"s": DATA, "bad": DATA})
    plane = DataPlane(source=conn(source), archive=archive)
    transfer(
        plane, "ok", "images/ok.raw", "s", conn(FakeGlance()), "d",
        Fingerprint.of(glance_record(DATA)), "data/image/s", kind="image",
    )  # fmt: skip
    with pytest.raises(TransferError):
        transfer(
            plane, "bad", "images/bad.raw", "bad", conn(FakeGlance(tamper=flip_one_byte)), "d",
            Fingerprint.of(glance_record(DATA)), "data/image/bad", kind="image",
        )  # fmt: skip
    sha = hashlib.sha256(DATA).hexdigest()
    assert (tmp_path / "images/ok.raw").read_bytes() == DATA
    assert not (tmp_path / "images/bad.raw").exists()
    assert not list(tmp_path.rglob("*.part"))
    assert (tmp_path / "SHA256SUMS").read_text() == f"{sha}  images/ok.raw\n"
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["images/ok.raw"]["sha256"] == sha
    assert manifest["images/ok.raw"]["md5"] == hashlib.md5(DATA, usedforsecurity=False).hexdigest()
    with pytest.raises(ValueError, match="leaves the archive"):
        archive.writer("../escape")


def test_temporaries_are_undone_newest_first_per_cloud_and_kept_ones_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    undone: list[tuple[str, str]] = []
    monkeypatch.setitem(UNDO, "image_named", lambda conn, spec: undone.append((conn, spec["name"])))
    journal = Journal(tmp_path / "journal.sqlite")
    temporaries = Temporaries(journal, cast(Any, {"source": "SRC", "destination": "DST"}))
    temporaries.record("a", "a", "image_named", {"name": "a"}, cloud="source")
    temporaries.record("b", "b", "image_named", {"name": "b"})
    temporaries.record("c", "c", "image_named", {"name": "c"})
    temporaries.keep("c")
    # Another process (the next run) finds what this one recorded.
    later = Temporaries(Journal(tmp_path / "journal.sqlite"), cast(Any, {"destination": "DST"}))
    assert later.clean() == ["b"]
    assert later.left == ["a: needs a connection to the source cloud"]
    assert temporaries.clean() == ["a"]
    assert undone == [("DST", "b"), ("SRC", "a")]
    assert journal.temporaries_pending() == []


def test_waiting_polls_through_a_dropped_connection_but_not_through_a_real_error() -> None:
    from stackferry.cloud.retry import wait_until

    answers: list[Any] = [ConnectionError("keep-alive dropped"), "saving", "active"]

    def fetch() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return str(answer)

    assert wait_until(fetch, lambda s: s == "active", "image", 10, interval=0.01) == "active"
    with pytest.raises(ValueError):
        wait_until(lambda: int("x"), lambda s: True, "image", 10, interval=0.01)
    with pytest.raises(RuntimeError, match="image: went killed"):
        wait_until(lambda: "killed", lambda s: False, "image", 10, lambda s: f"went {s}")


def test_an_image_converged_after_a_late_error_is_kept_not_cleaned_away(tmp_path: Path) -> None:
    """create() records the image as a temporary until verified; if a transient error hits
    after that (e.g. while adding members), apply finds the image and converges it with
    converge(): from then on it is the real image, and the end of the run must leave it."""
    from stackferry.engine.context import Context, Tenant
    from stackferry.engine.model import Resource
    from stackferry.kinds.image import Image, temporary_key

    class Patches:
        def patch(self, path: str, **kwargs: Any) -> Response:
            return Response(status=200)

    class ImageConn:
        image = Patches()

    deleted: list[str] = []
    temporaries = Temporaries(Journal(tmp_path / "journal.sqlite"), cast(Any, {"destination": 1}))
    temporaries.record(temporary_key("img-1"), "image until verified", "image_id", {"id": "img-1"})
    ctx = Context(cast(Connection, ImageConn()), Tenant("t", "d", id="p"), temporaries=temporaries)
    params = {"visibility": "private", "data": None, "min_ram": 64}
    current = Resource("image", {"name": "x"}, {**params, "min_ram": 0}, {"id": "img-1"})
    Image().converge(ctx, Resource("image", {"name": "x"}, params), current, made_here=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(UNDO, "image_id", lambda conn, spec: deleted.append(spec["id"]))
        assert temporaries.clean() == []
    assert deleted == []
