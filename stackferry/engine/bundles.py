"""A workdir, and with ``--with-data`` its resources' bytes, in one bundle; and back.

The bundle carries the workdir's files as they are (``workdir/stackferry.yaml``,
``workdir/resources/*.yaml``: what a person reads and edits) and each resource's bytes as
``data/<kind>/<source ID>`` (see ``Resource.bytes_member``), read once from the source
and streamed in. On the other side its workdir files are written into the workdir (whose
journal and reports stay) and its bytes stream out of it into the destination, checked
against the bundle's SHA-256 and the source's own record of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from stackferry.cloud.retry import OPERATIONS
from stackferry.data.bundle import BundleError, BundleReader, BundleWriter
from stackferry.data.stream import Fingerprint, TransferError
from stackferry.engine.context import Context
from stackferry.engine.kind import Kind
from stackferry.engine.model import Resource
from stackferry.engine.workdir import Workdir, ensure_folder
from stackferry.files import write_atomic

WORKDIR = "workdir/"


@dataclass
class Bundled:
    """What went into a bundle, for the terminal and the report."""

    path: Path
    files: int = 0
    resources_with_bytes: int = 0
    data_bytes: int = 0
    left_out: list[str] = field(default_factory=list)  # resources whose bytes are not in it


def _workdir_files(wd: Workdir) -> list[Path]:
    folder = wd.root / "resources"
    return [wd.manifest_path, *(sorted(folder.glob("*.yaml")) if folder.is_dir() else [])]


def write(
    wd: Workdir,
    path: Path,
    kinds: list[Kind],
    header: dict[str, Any],
    source: Context | None = None,
) -> Bundled:
    """The workdir ``wd`` (just exported) into the bundle ``path``; with ``source``, the
    bytes of every resource of ``kinds`` that has them, read from that cloud."""
    done = Bundled(path)
    chosen = {k.name for k in kinds}
    known = {wd.kind_path(k).name for k in kinds}
    with BundleWriter(path, {**header, "with_data": source is not None}) as writer:
        for file in _workdir_files(wd):
            if file.parent.name == "resources" and file.name not in known:
                continue  # left by an earlier export of other kinds
            writer.add_bytes(WORKDIR + str(file.relative_to(wd.root)), file.read_bytes())
            done.files += 1
        if source is None:
            return done
        for kind in kinds:
            if not kind.moves_data or kind.name not in chosen:
                continue
            for resource in wd.resources.get(kind.name, []):
                if kind.source_bytes(source, resource) is None:
                    done.left_out.append(f"{kind.name} {resource.label}")
                    continue
                size = OPERATIONS.run(
                    partial(_add, writer, source, kind, resource),
                    f"{kind.name} {resource.label}: into the bundle",
                )
                done.resources_with_bytes += 1
                done.data_bytes += size
    return done


def _add(writer: BundleWriter, source: Context, kind: Kind, resource: Resource) -> int:
    """One resource's bytes into the bundle, checked against the source's record of them;
    a try that fails leaves nothing of the member behind (it is tried again)."""
    opened = kind.source_bytes(source, resource)
    assert opened is not None
    with opened as found:
        if found.expected.size is None:
            raise TransferError(f"{kind.name} {resource.label}: the source does not say its size")
        written = writer.add_stream(
            resource.bytes_member,
            found.expected.size,
            found.chunks,
            kind=kind.name,
            label=resource.label,
            **found.details,
        )
    problems = found.expected.mismatches(Fingerprint(written.size, written.md5, None, None))
    if problems:
        raise TransferError(
            f"{kind.name} {resource.label}: the source sent bytes that differ from its own "
            f"record ({', '.join(problems)}): its store may be damaged; the bundle was not made"
        )
    return written.size


def unpack(reader: BundleReader, root: Path) -> int:
    """The bundle's workdir files into the workdir ``root`` (journal and reports stay);
    returns the bytes checked. The whole bundle is read through first: a flipped byte
    anywhere refuses it before anything is written, here or in a cloud."""
    checked = reader.check()
    names = [n for n in reader.members if n.startswith(WORKDIR)]
    if WORKDIR + "stackferry.yaml" not in names:
        raise BundleError(f"{reader.path}: holds no workdir; nothing was written")
    for name in names:
        relative = Path(name[len(WORKDIR) :])
        if relative.is_absolute() or ".." in relative.parts:
            raise BundleError(f"{reader.path}: member {name} leaves the workdir; nothing written")
    ensure_folder(root)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    Workdir(root).check_writable()
    for name in sorted(names, key=lambda n: n.endswith("/stackferry.yaml")):  # manifest last
        write_atomic(root / name[len(WORKDIR) :], reader.read(name).decode("utf-8"))
    return checked


def missing_bytes(reader: BundleReader, resource: Resource) -> str | None:
    """Why a bundle cannot give ``resource``'s bytes, or None when it can."""
    if resource.bytes_member in reader:
        return None
    if not reader.header.get("with_data"):
        return "its bytes are not in the bundle (made without --with-data)"
    return f"the bundle does not hold its bytes (stackferry does not bundle {resource.kind}s)"
