"""Volumes on Ceph RBD, moved at storage speed: cluster to cluster, no glance, no file.

For a volume cinder keeps on RBD in the source, going to an RBD-backed volume type in the
destination, when the operator gave stackferry access to both clusters (``--ceph FILE``):

    snapshot of the source image (``volume-<ID>@stackferry-<run>``)
      -> ``rbd export-diff`` | ``rbd import-diff`` into the destination volume's image,
         which cinder made (so cinder owns it), relayed here with bounded memory and counted
      -> the image's bytes at that snapshot on both clusters, hashed (SHA-256) and compared
      -> the snapshots removed.

The ``rbd`` tool (Debian's ``ceph-common``) does the talking, with the operator's ceph.conf,
keyring and cephx user; decisions come from its exit status and JSON, never its messages.
The settings are never printed or written to a report: the journal holds only the cloud's
role ("source"/"destination"), image and snapshot names.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import jsonschema
import yaml

from stackferry.cloud.retry import TransientError
from stackferry.errors import StackferryError

CHUNK = 4 * 1024 * 1024
SNAP_PREFIX = "stackferry-"
# cinder's default volume_name_template; an RBD image per volume in the backend's pool.
IMAGE_NAME = "volume-{}"
ROLES = ("source", "destination")

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        role: {
            "type": "object",
            "additionalProperties": False,
            "required": ["conf", "pool", "backends"],
            "properties": {
                "conf": {"type": "string", "minLength": 1},
                "keyring": {"type": "string", "minLength": 1},
                "client": {"type": "string", "minLength": 1},
                "pool": {"type": "string", "minLength": 1},
                "backends": {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1},
                    "minItems": 1,
                },
            },
        }
        for role in ROLES
    },
}


class RbdError(Exception):
    """The rbd tool failed; ``code`` is its exit status (the errno of what failed)."""

    def __init__(self, what: str, code: int, detail: str) -> None:
        super().__init__(f"{what}: rbd exited {code}: {detail}")
        self.code = code


class TransientRbdError(RbdError, TransientError):
    """The cluster was briefly unable (a timeout, a connection refused or reset): retried."""


# EAGAIN, ECONNRESET, ECONNREFUSED, ETIMEDOUT, EBUSY: worth another try.
TRANSIENT_CODES = frozenset({11, 104, 111, 110, 16})


def rbd_error(what: str, code: int, detail: str) -> RbdError:
    cls = TransientRbdError if code in TRANSIENT_CODES else RbdError
    return cls(what, code, detail)


@dataclass(frozen=True)
class CephAccess:
    """One cloud's cluster as the operator gave it: which cinder backends live on it."""

    conf: Path
    pool: str
    backends: frozenset[str]
    keyring: Path | None = None
    client: str = "admin"

    def argv(self, *args: str) -> list[str]:
        base = ["rbd", "--conf", str(self.conf), "--id", self.client]
        if self.keyring is not None:
            base += ["--keyring", str(self.keyring)]
        return [*base, *args]

    def image(self, volume_id: str) -> str:
        return f"{self.pool}/{IMAGE_NAME.format(volume_id)}"

    def serves(self, backend: str | None) -> bool:
        return backend is not None and backend in self.backends


@dataclass(frozen=True)
class CephSettings:
    source: CephAccess | None = None
    destination: CephAccess | None = None

    @classmethod
    def load(cls, path: Path | None) -> CephSettings:
        """The ``--ceph`` file: per role (source, destination), the cluster's ceph.conf,
        keyring, cephx client, cinder's RBD pool and the cinder backends on that cluster."""
        if path is None:
            return cls()
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            jsonschema.validate(document, SCHEMA)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise StackferryError(f"cannot read the ceph settings {path}: {exc}") from None
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "(top)"
            raise StackferryError(f"ceph settings {path}: at {where}: {exc.message}") from None
        out: dict[str, CephAccess] = {}
        for role, entry in document.items():
            conf = Path(entry["conf"]).expanduser()
            keyring = Path(entry["keyring"]).expanduser() if entry.get("keyring") else None
            for file in (conf, keyring):
                if file is not None and not file.is_file():
                    raise StackferryError(f"ceph settings {path}: {role}: no file {file}")
            out[role] = CephAccess(
                conf, entry["pool"], frozenset(entry["backends"]), keyring,
                entry.get("client", "admin"),
            )  # fmt: skip
        return cls(out.get("source"), out.get("destination"))


def _run(access: CephAccess, what: str, *args: str, timeout: float = 300) -> str:
    result = subprocess.run(
        access.argv(*args), capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode:
        raise rbd_error(what, result.returncode, _tail(result.stderr))
    return result.stdout


def _tail(text: str | bytes) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no message)"


ENOENT = 2  # rbd exits with the errno of what failed


def exists(access: CephAccess, volume_id: str) -> bool:
    """Whether the volume's image is in the pool (decided by the tool's exit status)."""
    try:
        _run(access, "rbd info", "info", "--format", "json", access.image(volume_id), timeout=60)
    except RbdError as exc:
        if exc.code == ENOENT:
            return False
        raise
    return True


def snapshots(access: CephAccess, image: str) -> list[str]:
    listed = json.loads(_run(access, f"rbd snap ls {image}", "snap", "ls", "--format", "json",
                             image, timeout=60) or "[]")  # fmt: skip
    return [str(s["name"]) for s in listed]


def create_snapshot(access: CephAccess, image: str, snap: str) -> None:
    if snap in snapshots(access, image):
        return  # a try whose answer was lost made it
    _run(access, f"snapshot {image}@{snap}", "snap", "create", f"{image}@{snap}")


def remove_snapshot(access: CephAccess, image: str, snap: str) -> None:
    """Gone already (or the image is) is what was wanted."""
    try:
        _run(access, f"removing {image}@{snap}", "snap", "rm", "--no-progress", f"{image}@{snap}")
    except RbdError as exc:
        if exc.code != ENOENT:
            raise


def rollback(access: CephAccess, image: str, snap: str) -> None:
    """The image's head back to the snapshot (what a cut-short import-diff wrote goes)."""
    _run(access, f"rolling {image} back to {snap}", "snap", "rollback", "--no-progress",
         f"{image}@{snap}", timeout=3600)  # fmt: skip


def copy(
    source: CephAccess,
    source_image: str,
    snap: str,
    destination: CephAccess,
    destination_image: str,
    progress: Callable[[int], None],
    from_snap: str | None = None,
) -> int:
    """``export-diff`` of the source image at ``snap`` (from ``from_snap``, or all of it)
    into ``import-diff`` of the destination image, which ends holding ``snap`` too. Relayed
    through here in chunks: memory stays bounded and the bytes are counted. Returns the
    size of the diff stream."""
    export_args = ["export-diff", "--no-progress"]
    if from_snap:
        export_args += ["--from-snap", from_snap]
    reader = subprocess.Popen(
        source.argv(*export_args, f"{source_image}@{snap}", "-"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    writer = subprocess.Popen(
        destination.argv("import-diff", "--no-progress", "-", destination_image),
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    errors: dict[str, bytes] = {}
    drains = [
        threading.Thread(target=_drain, args=(reader.stderr, errors, "export"), daemon=True),
        threading.Thread(target=_drain, args=(writer.stderr, errors, "import"), daemon=True),
    ]
    for thread in drains:
        thread.start()
    sent = 0
    assert reader.stdout is not None and writer.stdin is not None
    try:
        while chunk := reader.stdout.read(CHUNK):
            writer.stdin.write(chunk)
            sent += len(chunk)
            progress(len(chunk))
        writer.stdin.close()
    except BrokenPipeError:
        reader.kill()  # import-diff stopped: its exit status says why
    except BaseException:
        reader.kill()
        writer.kill()
        raise
    finally:
        exported, imported = reader.wait(), writer.wait()
        for thread in drains:
            thread.join(timeout=10)
    if exported:
        raise rbd_error(
            f"export-diff {source_image}@{snap}", exported, _tail(errors.get("export", b""))
        )
    if imported:
        raise rbd_error(f"import-diff into {destination_image}", imported,
                       _tail(errors.get("import", b"")))  # fmt: skip
    return sent


def _drain(stream: IO[bytes] | None, into: dict[str, bytes], key: str) -> None:
    if stream is not None:
        into[key] = stream.read()


def checksum(
    access: CephAccess, image: str, snap: str, sink: Callable[[bytes], None] | None = None
) -> tuple[str, int]:
    """SHA-256 and size of the image's bytes at the snapshot (``rbd export``, streamed);
    ``sink`` gets the same bytes (an archive copy, read once)."""
    proc = subprocess.Popen(
        access.argv("export", "--no-progress", f"{image}@{snap}", "-"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    errors: dict[str, bytes] = {}
    drain = threading.Thread(target=_drain, args=(proc.stderr, errors, "export"), daemon=True)
    drain.start()
    digest, size = hashlib.sha256(), 0
    assert proc.stdout is not None
    try:
        while chunk := proc.stdout.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if sink is not None:
                sink(chunk)
    except BaseException:
        proc.kill()
        raise
    finally:
        code = proc.wait()
    drain.join(timeout=10)
    if code:
        raise rbd_error(f"export {image}@{snap}", code, _tail(errors.get("export", b"")))
    return digest.hexdigest(), size


def checksums(
    source: CephAccess,
    source_image: str,
    destination: CephAccess,
    destination_image: str,
    snap: str,
    source_sink: Callable[[bytes], None] | None = None,
) -> tuple[tuple[str, int], tuple[str, int]]:
    """Both images hashed at once (each read is its own cluster's)."""
    results: dict[str, tuple[str, int]] = {}
    failures: list[BaseException] = []

    def run(key: str, access: CephAccess, image: str) -> None:
        try:
            sink = source_sink if key == "source" else None
            results[key] = checksum(access, image, snap, sink)
        except BaseException as exc:  # re-raised below, in the caller's thread
            failures.append(exc)

    threads = [
        threading.Thread(target=run, args=("source", source, source_image)),
        threading.Thread(target=run, args=("destination", destination, destination_image)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return results["source"], results["destination"]
