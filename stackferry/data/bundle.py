"""A bundle: one compressed, versioned file that carries a migration across an air gap.

It is a plain ``.tar.zst`` (``tar --zstd -tf`` lists it, ``-x`` unpacks it) with two
properties of its own:

- every member is compressed as its own zstd frame, and the last member, ``MANIFEST.json``,
  lists each member's SHA-256, size and the offset of its frame: a member is read (and
  checked) on its own, seeking straight to it, so many transfers read one bundle at once;
- after the tar's end comes a zstd *skippable frame* (ignored by zstd and tar) holding where
  the manifest is and its SHA-256: a bundle cut short, or not a bundle, is known at once.

Writing streams: a member's bytes are hashed and compressed as they arrive, with their size
declared first (as tar needs), and memory stays bounded whatever their size. A member whose
stream fails is rewound (its frame cut off the file) so it can be tried again. The file is
written under a temporary name, mode 0600, and renamed only once whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import tarfile
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

import zstandard

from stackferry import __version__
from stackferry.data.stream import TransferError
from stackferry.errors import LocalError, StackferryError

FORMAT = 1
MANIFEST = "MANIFEST.json"
CHUNK = 1024 * 1024
BLOCK = 512
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
SKIPPABLE_MAGIC = 0x184D2A5E  # one of zstd's sixteen skippable-frame magics
END_MAGIC = b"SFBUNDL1"
_END = struct.Struct("<IIQQ32s8s")  # skippable magic, payload size, offset, length, sha, ours
DEFAULT_LEVEL = 1  # measured (bench/bundle.py): as small as -3 on disk-like bytes, 5x faster


class BundleError(StackferryError):
    """The file is not a bundle this stackferry can use; nothing was written."""


@dataclass(frozen=True)
class Member:
    name: str
    size: int
    sha256: str
    offset: int  # of the member's zstd frame in the bundle file
    details: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size": self.size,
            "sha256": self.sha256,
            "offset": self.offset,
            "details": self.details,
        }


@dataclass
class Written:
    """What a streamed member's bytes were (md5 too: glance records md5)."""

    size: int
    sha256: str
    md5: str


def _tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.type = size, 0o600, int(time.time()), tarfile.REGTYPE
    header = info.tobuf(tarfile.GNU_FORMAT, "utf-8", "strict")  # GNU: sizes beyond 8 GiB
    if len(header) != BLOCK:
        raise ValueError(f"bundle member name too long for one tar block: {name!r}")
    return header


def _local(what: str, exc: OSError) -> LocalError:
    return LocalError(f"{what}: {exc.strerror or exc} (on this machine, not the cloud)")


class BundleWriter:
    """Use as a context manager: the bundle exists at ``path`` only if the block ends well."""

    def __init__(
        self, path: Path, header: dict[str, Any], level: int = DEFAULT_LEVEL, threads: int = 0
    ) -> None:
        self.path, self.header = path, header
        self._compressor = zstandard.ZstdCompressor(
            level=level, write_checksum=True, threads=threads
        )
        self._members: list[Member] = []
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        except OSError as exc:
            raise _local(f"the bundle {path} cannot be written", exc) from None
        self._tmp = Path(tmp)  # mkstemp: mode 0600
        self._raw: BinaryIO = os.fdopen(fd, "w+b")

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if kind is None:
            self._commit()
        else:
            self._abort()

    @property
    def names(self) -> set[str]:
        return {m.name for m in self._members}

    def add_bytes(self, name: str, data: bytes, **details: Any) -> Written:
        return self.add_stream(name, len(data), [data], **details)

    def add_stream(self, name: str, size: int, chunks: Iterable[bytes], **details: Any) -> Written:
        """Append one member of ``size`` bytes from ``chunks``; if they fail or are not
        ``size`` bytes, the member is cut off again and the error raised (try again, or not)."""
        if name in self.names or name == MANIFEST:
            raise ValueError(f"bundle member {name!r} twice")
        offset = self._raw.tell()
        sha256, md5, count = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
        try:
            frame = self._compressor.stream_writer(self._raw, closefd=False)
            self._put(frame, _tar_header(name, size))
            for chunk in chunks:  # what fails here is the source's, raised as it is
                count += len(chunk)
                if count > size:
                    break
                sha256.update(chunk)
                md5.update(chunk)
                self._put(frame, chunk)
            if count != size:
                raise TransferError(
                    f"{name}: the source sent {'more than' if count > size else count} of the "
                    f"{size} bytes it announced"
                )
            self._put(frame, b"\0" * (-size % BLOCK))
            self._put(frame, None)
        except BaseException:
            self._rewind(offset)
            raise
        self._members.append(Member(name, size, sha256.hexdigest(), offset, details))
        return Written(size, sha256.hexdigest(), md5.hexdigest())

    def _put(self, frame: Any, data: bytes | None) -> None:
        """Write to the bundle (None: end the member's frame); a local failure (a full disk)
        is named as local, never taken for the source's."""
        try:
            if data is None:
                frame.flush(zstandard.FLUSH_FRAME)
            else:
                frame.write(data)
        except OSError as exc:
            raise _local(f"the bundle {self.path}", exc) from None

    def _rewind(self, offset: int) -> None:
        with contextlib.suppress(OSError):  # a full disk: the whole bundle goes anyway
            self._raw.seek(offset)
            self._raw.truncate()

    def _commit(self) -> None:
        manifest = {
            "format": FORMAT,
            "kind": "stackferry-bundle",
            "written_by": f"stackferry {__version__}",
            "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **self.header,
            "members": [m.as_dict() for m in self._members],
        }
        text = json.dumps(manifest, indent=1, sort_keys=True).encode()
        try:
            offset = self._raw.tell()
            frame = self._compressor.stream_writer(self._raw, closefd=False)
            frame.write(_tar_header(MANIFEST, len(text)))
            frame.write(text + b"\0" * (-len(text) % BLOCK))
            frame.write(b"\0" * (2 * BLOCK))  # the tar's end
            frame.flush(zstandard.FLUSH_FRAME)
            length = self._raw.tell() - offset
            payload = _END.size - 8
            self._raw.write(
                _END.pack(
                    SKIPPABLE_MAGIC,
                    payload,
                    offset,
                    length,
                    hashlib.sha256(text).digest(),
                    END_MAGIC,
                )
            )
            self._raw.flush()
            os.fsync(self._raw.fileno())
            self._raw.close()
            os.replace(self._tmp, self.path)
        except OSError as exc:
            self._abort()
            raise _local(f"the bundle {self.path}", exc) from None

    def _abort(self) -> None:
        with contextlib.suppress(OSError):
            self._raw.close()
        self._tmp.unlink(missing_ok=True)


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    parts, left = [], size
    while left:
        part = stream.read(min(left, CHUNK))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


class BundleReader:
    """A bundle opened for reading: its manifest checked at once, each member on demand."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.manifest = self._read_manifest()
        self.members = {m["name"]: Member(**m) for m in self.manifest["members"]}

    @property
    def header(self) -> dict[str, Any]:
        return {k: v for k, v in self.manifest.items() if k != "members"}

    def __contains__(self, name: object) -> bool:
        return name in self.members

    def _refuse(self, why: str) -> BundleError:
        return BundleError(f"{self.path}: {why}; nothing was written")

    def _read_manifest(self) -> dict[str, Any]:
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                start = f.read(4)
                if size < len(ZSTD_MAGIC) + _END.size:
                    end = b""
                else:
                    f.seek(size - _END.size)
                    end = f.read(_END.size)
                parsed = _END.unpack(end) if len(end) == _END.size else None
                if start != ZSTD_MAGIC:
                    raise self._refuse("not a stackferry bundle (not zstd-compressed)")
                if parsed is None or parsed[0] != SKIPPABLE_MAGIC or parsed[5] != END_MAGIC:
                    raise self._refuse(
                        "truncated, or not a stackferry bundle: its end record is missing "
                        "(a copy cut short? compare its size with the original's)"
                    )
                _, _, offset, length, digest, _ = parsed
                if offset + length > size - _END.size:
                    raise self._refuse("corrupted: its end record points past the file")
                f.seek(offset)
                raw = f.read(length)
        except IsADirectoryError:
            raise BundleError(f"{self.path} is a folder, not a bundle") from None
        except FileNotFoundError:
            raise BundleError(f"{self.path}: no such bundle") from None
        except OSError as exc:
            raise BundleError(f"{self.path}: cannot be read: {exc.strerror}") from None
        try:
            data = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
            info = tarfile.TarInfo.frombuf(data[:BLOCK], "utf-8", "strict")
        except (zstandard.ZstdError, tarfile.TarError) as exc:
            raise self._refuse(f"corrupted: its manifest cannot be read ({exc})") from None
        text = data[BLOCK : BLOCK + info.size]
        if info.name != MANIFEST or hashlib.sha256(text).digest() != digest:
            raise self._refuse("corrupted: its manifest does not match its end record")
        manifest: dict[str, Any] = json.loads(text)
        version = manifest.get("format")
        if manifest.get("kind") != "stackferry-bundle" or not isinstance(version, int):
            raise self._refuse("not a stackferry bundle (its manifest says otherwise)")
        if version > FORMAT:
            raise self._refuse(
                f"written in bundle format {version} by a newer stackferry "
                f"({manifest.get('written_by')}); this one reads formats 1 to {FORMAT}: "
                "upgrade stackferry on this side"
            )
        return manifest

    def chunks(self, name: str) -> Iterator[bytes]:
        """The bytes of member ``name``, checked against the manifest as they go: the last
        chunk comes only if every byte is the one written (else BundleError)."""
        member = self.members[name]
        digest, left, last = hashlib.sha256(), member.size, b""
        try:
            with (
                open(self.path, "rb") as f,
                zstandard.ZstdDecompressor().stream_reader(
                    f, read_across_frames=False, closefd=False
                ) as frame,
            ):
                f.seek(member.offset)
                header = _read_exactly(frame, BLOCK)
                info = tarfile.TarInfo.frombuf(header, "utf-8", "strict")
                if info.name != name or info.size != member.size:
                    raise self._refuse(f"corrupted: member {name} is not where its manifest says")
                while left:
                    chunk = frame.read(min(left, CHUNK))
                    if not chunk:
                        raise self._refuse(f"corrupted: member {name} ends early")
                    left -= len(chunk)
                    digest.update(chunk)
                    if left:
                        yield chunk
                    else:
                        last = chunk
        except (zstandard.ZstdError, tarfile.TarError) as exc:
            raise self._refuse(f"corrupted: member {name} cannot be read ({exc})") from None
        except OSError as exc:
            raise BundleError(f"{self.path}: cannot be read: {exc.strerror}") from None
        if digest.hexdigest() != member.sha256:
            raise self._refuse(f"corrupted: member {name} has other bytes than were written")
        if member.size:
            yield last

    def read(self, name: str) -> bytes:
        return b"".join(self.chunks(name))

    def check(self) -> int:
        """Read every member through, as apply would: a flipped byte anywhere is found
        before anything is written. Returns the bytes checked."""
        total = 0
        for name in self.members:
            for chunk in self.chunks(name):
                total += len(chunk)
        return total
