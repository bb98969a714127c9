"""The bundle format on its own: round trip, a standard .tar.zst, streaming with a rewind
after a failed member, and refusal of anything damaged, cut short or from the future."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from stackferry.data import bundle as bundle_format
from stackferry.data.bundle import BundleError, BundleReader, BundleWriter
from stackferry.data.stream import TransferError
from stackferry.engine.model import Resource
from stackferry.engine.registry import Registry
from stackferry.errors import LocalError, StackferryError
from stackferry.kinds.catalog import registry as make_registry

MIB = 1024 * 1024
DATA = os.urandom(3 * MIB) + b"\0" * (2 * MIB) + b"abc"  # not a multiple of the chunk


def _chunks(data: bytes, size: int = MIB) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _write(path: Path) -> None:
    with BundleWriter(path, {"tenant": {"name": "t", "domain": "Default"}}) as writer:
        writer.add_bytes("workdir/stackferry.yaml", b"format: 1\n")
        writer.add_stream("data/image/i1", len(DATA), _chunks(DATA), kind="image")
        writer.add_bytes("data/image/empty", b"")


def test_a_bundle_round_trips_and_is_a_plain_tar_zst(tmp_path: Path) -> None:
    path = tmp_path / "b.tar.zst"
    _write(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["b.tar.zst"]  # no temporary left
    reader = BundleReader(path)
    assert reader.header["tenant"] == {"name": "t", "domain": "Default"}
    assert reader.check() == len(DATA) + len(b"format: 1\n")
    assert reader.read("data/image/i1") == DATA
    assert reader.read("data/image/empty") == b""
    assert reader.members["data/image/i1"].sha256 == hashlib.sha256(DATA).hexdigest()
    assert reader.members["data/image/i1"].details == {"kind": "image"}
    # Standard tools read it: zstd and tar, member by member.
    whole = zstandard.ZstdDecompressor().stream_reader(path.open("rb")).read()
    with tarfile.open(fileobj=io.BytesIO(whole)) as tar:
        assert tar.getnames() == [
            "workdir/stackferry.yaml",
            "data/image/i1",
            "data/image/empty",
            "MANIFEST.json",
        ]
        member = tar.extractfile("data/image/i1")
        assert member is not None and member.read() == DATA
    listed = subprocess.run(["tar", "--zstd", "-tf", str(path)], capture_output=True, text=True)
    assert listed.returncode == 0 and "data/image/i1" in listed.stdout.split()


def test_members_are_read_lazily_in_chunks(tmp_path: Path) -> None:
    path = tmp_path / "b.tar.zst"
    _write(path)
    chunks = BundleReader(path).chunks("data/image/i1")
    first = next(chunks)
    assert len(first) <= bundle_format.CHUNK  # bounded memory: one chunk at a time
    assert first + b"".join(chunks) == DATA


def test_a_failed_member_is_cut_off_and_can_be_written_again(tmp_path: Path) -> None:
    path = tmp_path / "b.tar.zst"

    def failing() -> Iterator[bytes]:
        yield DATA[:MIB]
        raise ConnectionError("the source dropped the download")

    with BundleWriter(path, {}) as writer:
        writer.add_bytes("workdir/stackferry.yaml", b"x")
        with pytest.raises(ConnectionError):
            writer.add_stream("data/image/i1", len(DATA), failing())
        with pytest.raises(TransferError, match="announced"):
            writer.add_stream("data/image/i1", len(DATA) + 1, _chunks(DATA))
        writer.add_stream("data/image/i1", len(DATA), _chunks(DATA))
    reader = BundleReader(path)
    assert list(reader.members) == ["workdir/stackferry.yaml", "data/image/i1"]
    assert reader.read("data/image/i1") == DATA
    reader.check()


def test_a_bundle_whose_writing_fails_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "b.tar.zst"
    with pytest.raises(RuntimeError), BundleWriter(path, {}) as writer:
        writer.add_bytes("workdir/stackferry.yaml", b"x")
        raise RuntimeError("killed halfway")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", [0.02, 0.3, 0.5, 0.7, 0.9, 0.999])
def test_a_flipped_byte_anywhere_is_refused(tmp_path: Path, where: float) -> None:
    path = tmp_path / "b.tar.zst"
    _write(path)
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"corrupted|truncated|not a stackferry bundle"):
        BundleReader(path).check()


@pytest.mark.parametrize("keep", [0, 3, 100, 0.5, -1])
def test_a_bundle_cut_short_is_refused(tmp_path: Path, keep: float) -> None:
    path = tmp_path / "b.tar.zst"
    _write(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(BundleError, match=r"truncated|not a stackferry bundle"):
        BundleReader(path)


def test_other_files_and_future_formats_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = tmp_path / "plain.tar.zst"  # a real .tar.zst, but not a bundle
    with open(plain, "wb") as f, zstandard.ZstdCompressor().stream_writer(f) as z:
        z.write(b"\0" * 1024)
    with pytest.raises(BundleError, match="not a stackferry bundle"):
        BundleReader(plain)
    with pytest.raises(BundleError, match="folder"):
        BundleReader(tmp_path)
    with pytest.raises(BundleError, match="no such bundle"):
        BundleReader(tmp_path / "missing")
    future = tmp_path / "future.tar.zst"
    monkeypatch.setattr(bundle_format, "FORMAT", bundle_format.FORMAT + 1)
    _write(future)
    monkeypatch.undo()
    with pytest.raises(BundleError, match=f"format {bundle_format.FORMAT + 1} by a newer"):
        BundleReader(future)
    assert issubclass(BundleError, StackferryError)  # the CLI prints it, exit 2


def _quota(service: str) -> Resource:
    return Resource("quota", {"service": service})


def test_only_and_skip_choose_resources_of_a_kind_by_name() -> None:
    reg: Registry = make_registry()
    nova = reg.selected_resources(["quotas:compute"], [])
    assert [k.name for k in reg.select(["quotas:compute"], [])].count("quota") == 1
    assert [nova(_quota(s)) for s in ("compute", "network", "block-storage")] == [
        True,
        False,
        False,
    ]
    both = reg.selected_resources(["quotas:compute", "quota:network"], [])
    assert [both(_quota(s)) for s in ("compute", "network", "block-storage")] == [
        True,
        True,
        False,
    ]
    whole = reg.selected_resources(["quotas", "quotas:compute"], [])  # the whole kind wins
    assert whole(_quota("network"))
    no_cinder = reg.selected_resources([], ["quotas:block-*"])
    assert "quota" in [k.name for k in reg.select([], ["quotas:block-*"])]
    assert [no_cinder(_quota(s)) for s in ("compute", "block-storage")] == [True, False]
    assert no_cinder(Resource("keypair", {"name": "block-key", "user": {"name": "u"}}))
    with pytest.raises(StackferryError, match="unknown kind"):
        reg.selected_resources(["quotaz:compute"], [])
    with pytest.raises(StackferryError, match="both --only and --skip"):
        reg.select(["quotas:compute"], ["quotas"])


def test_a_full_disk_is_named_as_local_and_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "b.tar.zst"

    class FullDisk(io.BytesIO):
        def write(self, data: bytes) -> int:  # type: ignore[override]
            raise OSError(28, "No space left on device")

    with (
        pytest.raises(LocalError, match=r"No space left on device.*on this machine"),
        BundleWriter(path, {}) as writer,
    ):
        writer._raw = FullDisk()
        writer.add_stream("data/image/i1", len(DATA), _chunks(DATA))
    assert list(tmp_path.iterdir()) == []
