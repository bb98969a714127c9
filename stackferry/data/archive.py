"""A second copy of every transferred byte stream, written while it streams (the seed's "tape
backup in parallel"), with a manifest ``sha256sum -c`` can check.

Files are written as ``NAME.part`` and renamed only once the transfer verified, so a file
without ``.part`` is always complete; ``SHA256SUMS`` and ``manifest.json`` are rewritten
atomically after each file.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from stackferry.errors import LocalError
from stackferry.files import write_atomic

SUMS = "SHA256SUMS"
MANIFEST = "manifest.json"


def local(what: str, exc: OSError) -> LocalError:
    return LocalError(f"{what}: {exc.strerror or exc} (on this machine, not the cloud)")


class Archive:
    def __init__(self, root: Path) -> None:
        """Refuse at once, before anything moves, a folder that cannot be written."""
        self.root = root
        self._lock = threading.Lock()
        probe = root / f".stackferry-probe-{os.getpid()}"
        try:
            root.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise local(f"the --archive folder {root} cannot be written", exc) from None

    def writer(self, relpath: str) -> ArchiveWriter:
        path = self.root / relpath
        if self.root.resolve() not in path.resolve().parents:
            raise ValueError(f"archive path {relpath!r} leaves the archive")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return ArchiveWriter(self, relpath)
        except OSError as exc:
            raise local(f"archive {path}", exc) from None

    def entries(self) -> dict[str, dict[str, Any]]:
        path = self.root / MANIFEST
        if not path.exists():
            return {}
        document: dict[str, dict[str, Any]] = json.loads(path.read_text())
        return document

    def _commit(self, relpath: str, entry: dict[str, Any]) -> None:
        with self._lock:
            entries = self.entries()
            entries[relpath] = entry
            try:
                write_atomic(self.root / MANIFEST, json.dumps(entries, indent=2, sort_keys=True))
                write_atomic(
                    self.root / SUMS,
                    "".join(f"{e['sha256']}  {name}\n" for name, e in sorted(entries.items())),
                )
            except OSError as exc:
                raise local(f"archive manifest in {self.root}", exc) from None


class ArchiveWriter:
    """Receives the chunks of one stream; ``commit`` makes the file and its manifest entry."""

    def __init__(self, archive: Archive, relpath: str) -> None:
        self.archive, self.relpath = archive, relpath
        self.final = archive.root / relpath
        self.part = self.final.with_name(self.final.name + ".part")
        self._file = open(self.part, "wb")  # noqa: SIM115 - closed by commit/abort
        os.chmod(self.part, 0o600)

    def write(self, chunk: bytes) -> None:
        try:
            self._file.write(chunk)
        except OSError as exc:
            raise local(f"archive {self.part}", exc) from None

    def commit(self, sha256: str, size: int, **details: Any) -> Path:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self.part, self.final)
        except OSError as exc:
            raise local(f"archive {self.part}", exc) from None
        self.archive._commit(self.relpath, {"sha256": sha256, "size": size, **details})
        return self.final

    def abort(self) -> None:
        with contextlib.suppress(OSError):  # a full disk may refuse even the close
            self._file.close()
        self.part.unlink(missing_ok=True)
