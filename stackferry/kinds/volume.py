"""Cinder volumes of the tenant, with their bytes (the user-data-migration seed's job).

The bytes travel through the APIs only, every intermediate recorded in the journal before
it exists (so a killed run's leftovers are removed by the next run):

    source volume (or, when in use, a temporary snapshot -> temporary volume)
      -> temporary source image (os-volume_upload_image)
      -> streamed into a temporary destination image (checksums compared)
      -> destination volume, created under a temporary name from that image
      -> read back into another temporary image, whose checksum must equal the source's
      -> metadata, bootable flag and image metadata set, then renamed to its real name.

A volume cinder keeps on Ceph in the source, going to a volume type on Ceph in the destination,
takes the RBD path instead when the operator gave stackferry both clusters (``--ceph``): the
destination volume is created empty through cinder (cinder owns it) under a name that says
which source volume it follows (``stackferry-tmp-sync-ID``), a snapshot of the source's image
is sent into its image (``rbd export-diff | import-diff``) in passes - warm ones while the
source is in use (``stackferry sync``), each only what changed since the last, the journal
keeping where they are - then, at the cutover, a last pass, both images hashed at its
snapshot and compared, the snapshots gone, and the volume named as above. The plan says which
path each volume takes, and why.

A destination volume therefore carries its real name only once its bytes verified: a volume
with that name is complete, whatever happened to the run that made it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, Protocol, TypeVar

from openstack import exceptions
from openstack.connection import Connection

from stackferry.cloud import catalog, sdk
from stackferry.cloud.retry import OPERATIONS, is_transient, wait_until
from stackferry.data import rbd
from stackferry.data.stream import Digests, Fingerprint, TransferError, glance_download
from stackferry.data.transfer import SourceBytes
from stackferry.data.volumes import (
    GIB,
    timeout_for,
    upload_to_image,
    wait_image_active,
    wait_snapshot,
    wait_volume,
)
from stackferry.engine.context import Context
from stackferry.engine.formats import NAME
from stackferry.engine.kind import Field, Kind, Progressed
from stackferry.engine.model import Resource, identity_key
from stackferry.engine.temporaries import undoes
from stackferry.kinds import cutover
from stackferry.kinds.image import stream_to_temporary_image

TMP_PREFIX = "stackferry-tmp-"
# The journal keys of a copy's temporaries: f"{tmp}{suffix}".
SUFFIXES = (":src-snapshot", ":src-volume", ":src-image", ":dst-image", ":dst-volume",
            ":check-image")  # fmt: skip
T = TypeVar("T")
SOURCE_SUFFIXES = (":src-image", ":src-volume", ":src-snapshot")
# What a bundle records of the image a volume was uploaded to: its bytes' fingerprint and
# how to make the destination's image of them.
IMAGE_RECORD = ("id", "name", "disk_format", "container_format", "size", "checksum",
                "os_hash_algo", "os_hash_value")  # fmt: skip


class Stage(Protocol):
    """One step of a copy, retried on its own."""

    def __call__(self, name: str, call: Callable[[], T]) -> T: ...


SETTLED = {"available", "in-use"}
BUSY = {"uploading", "downloading", "creating", "attaching", "detaching", "backing-up"}
# Cinder's own keys in a volume's image metadata that name the image in one cloud only.
CLOUD_LOCAL_IMAGE_KEYS = frozenset({"image_id"})


SETTLE_SECONDS = 300  # how long removing a temporary waits for it to leave a busy state


def _settled(fetch: Callable[[], Any], busy: set[str], what: str) -> None:
    """Wait while the thing is in a state it cannot be deleted in (gone is fine too)."""
    with contextlib.suppress(exceptions.NotFoundException):
        wait_until(fetch, lambda item: item.status not in busy, what, SETTLE_SECONDS)


def _gone(fetch: Callable[[], Any], what: str) -> None:
    """Wait until cinder has deleted it; one it could not delete says so."""
    with contextlib.suppress(exceptions.NotFoundException):
        wait_until(
            fetch,
            lambda item: item.status not in ("available", "deleting"),
            f"{what} to be deleted",
            SETTLE_SECONDS,
        )
        raise RuntimeError(f"cinder could not delete {what}: {fetch().status}")


@undoes("snapshot_named")
def _delete_snapshots_named(conn: Connection, spec: dict[str, Any]) -> None:
    bs = sdk.block_storage(conn)
    for snap in list(bs.snapshots(details=True, all_projects=True, name=spec["name"])):
        snap_id = str(snap.id)
        _settled(partial(bs.get_snapshot, snap_id), {"creating"}, f"snapshot {spec['name']}")
        bs.delete_snapshot(snap_id, force=True)


SYNC_PREFIX = f"{TMP_PREFIX}sync-"  # a destination volume a warm sync keeps up to date


def sync_key(resource: Resource) -> str:
    """Where the journal keeps a volume's sync over RBD (by its source ID)."""
    return f"rbd-sync:{resource.cloud_id}"


def _volume_exists(bs: Any, volume_id: str) -> bool:
    try:
        bs.get_volume(volume_id)
    except exceptions.NotFoundException:
        return False
    return True


def _delete_volume(bs: Any, volume_id: str) -> None:
    """Deleted, and waited for until cinder has no such volume (one made next under the
    same name is then never mistaken for it)."""
    fetch = partial(bs.get_volume, volume_id)
    with contextlib.suppress(exceptions.NotFoundException):
        _settled(fetch, {"creating", "downloading", "uploading"}, f"volume {volume_id}")
        bs.delete_volume(volume_id, force=True)
        _settled(fetch, {"deleting", "available", "error", "error_deleting"},
                 f"volume {volume_id} to go")  # fmt: skip


@undoes("volume_named")
def _delete_volumes_named(conn: Connection, spec: dict[str, Any]) -> None:
    bs = sdk.block_storage(conn)
    for volume in list(bs.volumes(details=True, all_projects=True, name=spec["name"])):
        volume_id = str(volume.id)
        # A volume still being written (from an image) or read (to an image) cannot go yet.
        _settled(
            partial(bs.get_volume, volume_id),
            {"creating", "downloading", "uploading"},
            f"volume {spec['name']}",
        )
        bs.delete_volume(volume_id, force=True)


class Volume(Kind):
    name = "volume"
    plural = "volumes"
    description = "Cinder volumes of the tenant, with their bytes"
    identity_schema = {"name": NAME}
    fields = (
        Field("description", {"type": ["string", "null"], "maxLength": 255}),
        Field("size", {"type": "integer", "minimum": 1}, required=True, immutable=True),
        Field(
            "volume_type",
            {"type": ["string", "null"]},
            mapping="volume_types",
            immutable=True,
            omit_empty=True,
        ),
        Field(
            "availability_zone",
            {"type": ["string", "null"]},
            mapping="availability_zones",
            immutable=True,
            omit_empty=True,
        ),
        Field(
            "bootable",
            {"type": "boolean"},
            attr="is_bootable",
            wire=None,  # an action of its own
            default=False,
            convert=lambda value: str(value).lower() == "true",
        ),
        Field(
            "metadata",
            {"type": "object", "additionalProperties": {"type": "string"}},
            default={},
            convert=dict,
        ),
        # What cinder recorded of the image the volume was made from (its ID is this cloud's).
        Field("image_metadata", {"type": "object"}, attr=None, wire=None),
    )
    after = ("image",)  # a volume's image metadata names its image: see soft_needs
    service = "block-storage"
    optional_service = True  # a cloud without cinder has no volumes to move
    moves_data = True
    retire = True

    def read(self, ctx: Context) -> list[Resource]:
        bs = sdk.block_storage(ctx.conn)
        out = []
        for v in bs.volumes(details=True, all_projects=True, project_id=ctx.project_id):
            if (v.name or "").startswith(TMP_PREFIX):
                continue  # ours, unfinished: a temporary the journal removes
            image_metadata = dict(v.volume_image_metadata or {})
            params = {
                **self.params_of(ctx, v),
                "image_metadata": {
                    k: val for k, val in image_metadata.items() if k not in CLOUD_LOCAL_IMAGE_KEYS
                },
            }
            out.append(
                self.resource(
                    {"name": v.name or ""},
                    params,
                    v.id,
                    ctx,
                    status=v.status,
                    size=v.size * GIB,
                    image_id=image_metadata.get("image_id"),
                    snapshot_id=v.snapshot_id,
                    attached_to=sorted(a.get("server_id", "") for a in v.attachments or []),
                    backends=sorted(catalog.backends_of(v.host)),
                )
            )
        return out

    def check(self, ctx: Context, resource: Resource) -> list[str]:
        p, problems = resource.params, []
        if p.get("volume_type"):
            types = catalog.volume_types(ctx.conn, ctx.cache)
            if p["volume_type"] not in types:
                problems.append(
                    catalog.missing("volume type", p["volume_type"], types, "volume_types")
                )
        zone = p.get("availability_zone")
        if zone:
            zones = catalog.volume_zones(ctx.conn, ctx.cache)
            if zone not in zones:
                problems.append(
                    catalog.missing("availability zone", zone, zones, "availability_zones")
                )
        return problems

    def soft_needs(self, resource: Resource) -> list[str]:
        image_name = (resource.params.get("image_metadata") or {}).get("image_name")
        return [identity_key("image", {"name": image_name})] if image_name else []

    def create(self, ctx: Context, resource: Resource) -> str:
        """The five stages of the module's docstring. Each is retried on its own when it fails
        in a transient way (a fault costs one stage, not the whole copy), and each starts by
        looking at what a try whose answer was lost left behind. If the copy fails anyway,
        what it made is removed at once (it counts against the tenant's quota)."""
        temporaries = ctx.temporaries
        if temporaries is None:
            raise RuntimeError("volumes are only created by apply, which records temporaries")
        tmp = f"{TMP_PREFIX}{uuid.uuid4().hex[:12]}"
        what = f"volume {resource.label}"

        def stage(name: str, call: Callable[[], T]) -> T:
            return OPERATIONS.run(call, f"{what}: {name}")

        over_rbd = self.data_path(ctx, resource)[0]
        if ctx.options.get("sync") == "warm":
            if not over_rbd:
                raise Progressed("not on the RBD path: copied whole at the cutover")
            self._rbd_copy(ctx, resource, stage)  # one warm pass: raises Progressed
        servers = self._stop_servers(ctx, resource)
        try:
            if over_rbd:
                volume_id = self._rbd_copy(ctx, resource, stage)
            else:
                volume_id = self._api_copy(ctx, resource, tmp, stage)
            stage("name", lambda: self._finish(ctx, resource, volume_id))
            if over_rbd:
                ctx.kept.put(sync_key(resource), None)  # named: complete, nothing to follow
        except BaseException as exc:
            for suffix in SUFFIXES:
                temporaries.undo(tmp + suffix)
            if not is_transient(exc):  # their servers cannot move in this run
                for server_id in servers:
                    cutover.restart_source(ctx, server_id, f"server {server_id}")
            raise
        temporaries.keep(f"{tmp}:dst-volume")
        for suffix in (":dst-image", ":check-image"):
            temporaries.undo(tmp + suffix)
        return volume_id

    def _api_copy(self, ctx: Context, resource: Resource, tmp: str, stage: Stage) -> str:
        """Through the APIs: upload to image, stream, create from image, read back."""
        assert ctx.temporaries is not None
        bundle = ctx.data.bundle
        if bundle is not None:  # the bytes, and the record of the image they came from
            src_image = dict(bundle.members[resource.bytes_member].details["image"])
        else:
            readable = stage("source", lambda: self._readable_source(ctx, resource, tmp))
            src_image = stage("upload to image", lambda: self._upload(ctx, resource, readable, tmp))
        digests, dst_image_id = stage("stream", lambda: self._stream(ctx, resource, src_image, tmp))
        for suffix in SOURCE_SUFFIXES:
            ctx.temporaries.undo(tmp + suffix)  # the source has served; free its space now
        volume_id = stage(
            "create from image", lambda: self._new_volume(ctx, resource, tmp, dst_image_id)
        )
        stage("read back", lambda: self._read_back(ctx, resource, volume_id, digests, tmp))
        return volume_id

    @contextlib.contextmanager
    def _bytes(self, ctx: Context, resource: Resource) -> Iterator[SourceBytes]:
        assert ctx.temporaries is not None
        tmp, what = f"{TMP_PREFIX}{uuid.uuid4().hex[:12]}", f"volume {resource.label}"
        try:
            readable = OPERATIONS.run(
                lambda: self._readable_source(ctx, resource, tmp), f"{what}: source"
            )
            src_image = OPERATIONS.run(
                lambda: self._upload(ctx, resource, readable, tmp), f"{what}: upload to image"
            )
            with glance_download(ctx.data.source_conn(), str(src_image["id"])) as chunks:
                record = {k: src_image.get(k) for k in IMAGE_RECORD}
                yield SourceBytes(chunks, Fingerprint.of(src_image), {"image": record})
        finally:
            for suffix in SOURCE_SUFFIXES:
                ctx.temporaries.undo(tmp + suffix)

    def source_bytes(
        self, ctx: Context, resource: Resource
    ) -> contextlib.AbstractContextManager[SourceBytes] | None:
        """For a bundle: the volume uploaded to a temporary image of the source (from a
        temporary snapshot when in use: crash-consistent), that image's bytes, then the
        temporaries removed; the record of the image goes into the bundle with them."""
        return self._bytes(ctx, resource)

    def data_path(self, ctx: Context, resource: Resource) -> tuple[bool, str]:
        """Whether the bytes go cluster to cluster (RBD), and why or why not: decided from
        the source volume's cinder backend and the destination type's."""
        ceph = ctx.data.ceph
        if ceph.source is None or ceph.destination is None:
            return False, ""
        found = set(resource.facts.get("backends") or [])
        if not found & ceph.source.backends:
            return False, (
                f"through glance: its source backend ({', '.join(sorted(found)) or 'unknown'}) "
                "is not on the source cluster"
            )
        volume_type = resource.params.get("volume_type")
        backend = catalog.volume_type_backend(ctx.conn, ctx.cache, volume_type)
        if not ceph.destination.serves(backend):
            return False, (
                f"through glance: destination type {volume_type or '(default)'} goes to "
                f"backend {backend or '(any)'}, not to the destination cluster"
            )
        return True, "over RBD, cluster to cluster"

    def _rbd_copy(self, ctx: Context, resource: Resource, stage: Stage) -> str:
        """Cluster to cluster, in passes (``_rbd_pass``); the journal keeps where they are,
        so a kill or a failure costs at most the pass it hit. Warm (``stackferry sync``):
        one pass and no more. Cutover: a last pass (only what changed since the warm ones),
        both images hashed at its snapshot, the snapshots removed, the volume named."""
        src, dst = ctx.data.ceph.source, ctx.data.ceph.destination
        assert src is not None and dst is not None
        key = sync_key(resource)
        try:
            state = stage("copy over RBD", lambda: self._rbd_pass(ctx, resource, key))
            if ctx.options.get("sync") == "warm":
                raise Progressed(
                    f"warm pass {state['passes']}: {state['sent']} bytes sent (the volume "
                    "follows its source; the cutover sends what changed since)"
                )
            volume_id, snap = str(state["volume_id"]), str(state["base"])
            images = (src.image(resource.cloud_id), dst.image(volume_id))
            stage("check", lambda: self._rbd_check(ctx, resource, *images, snap))
        except Progressed:
            raise
        except BaseException as exc:
            if not is_transient(exc) and not isinstance(exc, KeyboardInterrupt):
                self._rbd_forget(ctx, resource, key)  # a copy proven wrong starts afresh
            raise
        for access, image in ((src, images[0]), (dst, images[1])):
            rbd.remove_snapshot(access, image, snap)
        ctx.kept.put(key, {**state, "base": None})
        return volume_id

    def _rbd_pass(self, ctx: Context, resource: Resource, key: str) -> dict[str, Any]:
        """Snapshot the source image and send what changed since the last pass's snapshot
        (everything, the first time) into the destination volume's image; then the older
        snapshot goes from both. What a pass is about to make is kept before it exists: a
        pass cut short is undone (the destination rolled back to the last snapshot both hold,
        or made afresh) before the next, so no image holds half a difference."""
        src, dst = ctx.data.ceph.source, ctx.data.ceph.destination
        assert src is not None and dst is not None
        bs = sdk.block_storage(ctx.conn)
        source_image = src.image(resource.cloud_id)
        state = ctx.kept.get(key) or {}
        volume_id = state.get("volume_id")
        if volume_id and not _volume_exists(bs, volume_id):
            state, volume_id = {}, None  # removed meanwhile: from the start
        if state.get("pending"):
            state = self._undo_pass(ctx, resource, key, state)
            volume_id = state.get("volume_id")
        if volume_id is None:
            name = f"{SYNC_PREFIX}{resource.cloud_id}"
            state = {"name": name, "passes": 0}
            ctx.kept.put(key, state)
            volume_id = self._new_volume(ctx, resource, name, None, temporary=False)
            state["volume_id"] = volume_id
            ctx.kept.put(key, state)
            if not rbd.exists(dst, volume_id):
                raise RuntimeError(
                    f"volume {resource.label}: cinder put the new volume elsewhere than pool "
                    f"{dst.pool} of the destination cluster: check pool and backends in --ceph"
                )
        destination_image, base = dst.image(volume_id), state.get("base")
        passes = int(state.get("passes") or 0) + 1
        snap = f"{rbd.SNAP_PREFIX}sync-{passes}"
        state = {**state, "pending": snap}
        ctx.kept.put(key, state)
        rbd.create_snapshot(src, source_image, snap)
        what = f"volume {resource.label} (RBD{', incremental' if base else ''})"
        meter = ctx.data.monitor.start(what, int(resource.params["size"]) * GIB)
        try:
            sent = rbd.copy(src, source_image, snap, dst, destination_image, meter.advance, base)
        except BaseException:
            meter.finish(False)
            raise
        meter.finish(True)
        return self._passed(ctx, resource, key, state, sent)

    def _passed(
        self, ctx: Context, resource: Resource, key: str, state: dict[str, Any], sent: int | None
    ) -> dict[str, Any]:
        """Both images hold the pending snapshot: it is the new base; the old one goes."""
        src, dst = ctx.data.ceph.source, ctx.data.ceph.destination
        assert src is not None and dst is not None
        images = ((src, src.image(resource.cloud_id)),
                  (dst, dst.image(str(state["volume_id"]))))  # fmt: skip
        if state.get("base"):
            for access, image in images:
                rbd.remove_snapshot(access, image, str(state["base"]))
        state = {**state, "base": state["pending"], "pending": None,
                 "passes": int(state.get("passes") or 0) + 1, "sent": sent}  # fmt: skip
        ctx.kept.put(key, state)
        return state

    def _undo_pass(
        self, ctx: Context, resource: Resource, key: str, state: dict[str, Any]
    ) -> dict[str, Any]:
        """A pass was cut short. Finished, only not recorded: recorded now. Else its snapshot
        goes, and the destination goes back to the last snapshot both hold (none: the
        destination volume is made afresh)."""
        src, dst = ctx.data.ceph.source, ctx.data.ceph.destination
        assert src is not None and dst is not None
        pending, base = str(state["pending"]), state.get("base")
        source_image = src.image(resource.cloud_id)
        volume_id = state.get("volume_id")
        destination_image = dst.image(str(volume_id)) if volume_id else None
        on_source = pending in rbd.snapshots(src, source_image)
        on_destination = (
            bool(destination_image)
            and rbd.exists(dst, str(volume_id))
            and (pending in rbd.snapshots(dst, str(destination_image)))
        )
        if on_source and on_destination:
            return self._passed(ctx, resource, key, state, None)
        rbd.remove_snapshot(src, source_image, pending)
        if destination_image and base:
            rbd.rollback(dst, destination_image, str(base))
            state = {**state, "pending": None}
        else:
            if volume_id:
                _delete_volume(sdk.block_storage(ctx.conn), str(volume_id))
            state = {"name": state.get("name"), "passes": 0}
        ctx.kept.put(key, state)
        return state

    def _rbd_forget(self, ctx: Context, resource: Resource, key: str) -> None:
        """Drop a sync: its snapshots on the source, its destination volume, its record."""
        state = ctx.kept.get(key)
        src = ctx.data.ceph.source
        if not state or src is None:
            return
        with contextlib.suppress(Exception):
            for snap in (state.get("base"), state.get("pending")):
                if snap:
                    rbd.remove_snapshot(src, src.image(resource.cloud_id), str(snap))
            if state.get("volume_id"):
                _delete_volume(sdk.block_storage(ctx.conn), str(state["volume_id"]))
            ctx.kept.put(key, None)

    @staticmethod
    def _rbd_check(
        ctx: Context, resource: Resource, source_image: str, destination_image: str, snap: str
    ) -> None:
        """Both images' bytes at the snapshot, hashed at once; the source's also go to the
        archive (read once), committed only when they match."""
        src, dst = ctx.data.ceph.source, ctx.data.ceph.destination
        assert src is not None and dst is not None
        archive = (
            ctx.data.archive.writer(f"volumes/{resource.identity['name'] or resource.id}.raw")
            if ctx.data.archive is not None
            else None
        )
        try:
            (want, size), (got, got_size) = rbd.checksums(
                src, source_image, dst, destination_image, snap,
                archive.write if archive is not None else None,
            )  # fmt: skip
            if (want, size) != (got, got_size):
                raise TransferError(
                    f"volume {resource.label}: the destination image holds other bytes than the "
                    f"source at {snap} (sha256 {want[:12]}... {size} B, got {got[:12]}... "
                    f"{got_size} B); it is removed with the run's temporaries"
                )
        except BaseException:
            if archive is not None:
                archive.abort()
            raise
        if archive is not None:
            archive.commit(want, size, kind="volume", name=resource.identity["name"],
                           source_id=resource.id, path="rbd")  # fmt: skip

    @staticmethod
    def _moving_servers(ctx: Context, resource: Resource) -> list[str]:
        """The source servers it is attached to that this run moves too."""
        return [
            server_id
            for server_id in resource.facts.get("attached_to") or []
            if ctx.will_create(cutover.SERVER, server_id)
        ]

    def _stop_servers(self, ctx: Context, resource: Resource) -> list[str]:
        """``--cutover stop``: the servers it is attached to are stopped before its bytes are
        read, as their own disks are; returns those stopped because of stackferry."""
        return [
            server_id
            for server_id in self._moving_servers(ctx, resource)
            if cutover.stop_source(ctx, server_id, f"server {server_id}")
        ]

    def explain(self, ctx: Context, resource: Resource) -> str:
        over_rbd, why = self.data_path(ctx, resource)
        reasons = [why]
        warm = ctx.kept.get(sync_key(resource)) if over_rbd else None
        if warm and warm.get("base"):
            reasons.append(
                f"warm: {warm.get('passes')} pass(es) done, the cutover sends what changed since"
            )
        if self._moving_servers(ctx, resource):
            reasons.append(
                "attached to a server that moves: copied while it runs (crash-consistent)"
                if cutover.mode(ctx) == "live"
                else "attached to a server that moves: copied once that server is stopped"
            )
        return "; ".join(r for r in reasons if r)

    def _upload(self, ctx: Context, resource: Resource, readable: str, tmp: str) -> dict[str, Any]:
        """1. The source volume's bytes as a temporary image in the source cloud."""
        assert ctx.temporaries is not None
        source, what = ctx.data.source_conn(), f"volume {resource.label}"
        wait = timeout_for(resource.params["size"])
        ctx.temporaries.record(f"{tmp}:src-image", f"{what}: source image {tmp}", "image_named",
                               {"name": tmp}, cloud="source")  # fmt: skip
        # A try whose answer was lost may have left the volume uploading: let it finish first.
        wait_volume(source, readable, SETTLED, f"{what}: source before upload", wait)
        image_id = upload_to_image(source, readable, tmp)
        return wait_image_active(source, image_id, f"{what}: upload to image", wait)

    def _stream(
        self, ctx: Context, resource: Resource, src_image: dict[str, Any], tmp: str
    ) -> tuple[Digests, str]:
        """2. Streamed into a new temporary image in the destination tenant."""
        return stream_to_temporary_image(ctx, resource, src_image, f"{tmp}:dst-image", "volumes")

    def _new_volume(
        self,
        ctx: Context,
        resource: Resource,
        tmp: str,
        image_id: str | None,
        temporary: bool = True,
    ) -> str:
        """3. The destination volume, under its temporary name, from that image (empty, for
        the RBD path); one that a try whose answer was lost made already is used."""
        assert ctx.temporaries is not None
        p, what = resource.params, f"volume {resource.label}"
        if temporary:  # else the journal keeps it otherwise (a warm sync's volume)
            ctx.temporaries.record(f"{tmp}:dst-volume", f"{what}: destination volume {tmp}",
                                   "volume_named", {"name": tmp})  # fmt: skip
        bs = sdk.block_storage(ctx.conn)
        made = [
            v
            for v in bs.volumes(details=True, all_projects=True, name=tmp)
            if not str(v.status).startswith("error") and v.status != "deleting"
        ]
        if made:
            volume_id = str(made[0].id)
        else:
            attrs = {**self.create_body(ctx, p), "name": tmp}
            if image_id is not None:
                attrs["image_id"] = image_id
            volume_id = str(sdk.block_storage(ctx.project_conn()).create_volume(**attrs).id)
        wait = timeout_for(p["size"])
        wait_volume(ctx.conn, volume_id, {"available"}, f"{what}: create from image", wait)
        return volume_id

    def _read_back(
        self, ctx: Context, resource: Resource, volume_id: str, digests: Digests, tmp: str
    ) -> None:
        """4. Read back: the destination volume's bytes must be the source's."""
        assert ctx.temporaries is not None
        what, wait = f"volume {resource.label}", timeout_for(resource.params["size"])
        ctx.temporaries.record(f"{tmp}:check-image", f"{what}: read-back image {tmp}-check",
                               "image_named", {"name": f"{tmp}-check"})  # fmt: skip
        wait_volume(ctx.conn, volume_id, {"available"}, f"{what}: before read back", wait)
        check_id = upload_to_image(ctx.conn, volume_id, f"{tmp}-check")
        check = wait_image_active(ctx.conn, check_id, f"{what}: read back", wait)
        wait_volume(ctx.conn, volume_id, {"available"}, f"{what}: after read back", wait)
        problems = digests.fingerprint().mismatches(Fingerprint.of(check))
        if problems:
            raise TransferError(
                f"{what}: the destination volume holds other bytes than the source ("
                + ", ".join(problems)
                + "); it is removed with the run's temporaries"
            )

    def _finish(self, ctx: Context, resource: Resource, volume_id: str) -> None:
        """5. What the user sees, then the real name: from now on it counts as migrated."""
        self._set_flags(ctx, volume_id, resource)
        sdk.block_storage(ctx.conn).update_volume(volume_id, name=resource.identity["name"])

    def _readable_source(self, ctx: Context, resource: Resource, tmp: str) -> str:
        """A source volume cinder will upload: the volume itself when available; for one in
        use, a temporary copy made from a temporary snapshot."""
        assert ctx.temporaries is not None
        source = ctx.data.source_conn()
        wait = timeout_for(resource.params["size"])
        bs = sdk.block_storage(source)
        volume = bs.get_volume(resource.cloud_id)
        if volume.status in BUSY:  # e.g. still uploading for a run that was killed
            volume = wait_volume(source, volume.id, SETTLED, f"source {resource.label}", wait)
        if volume.status == "available":
            return str(volume.id)
        if volume.status != "in-use":
            raise RuntimeError(
                f"source volume {resource.label} is {volume.status}; it must be available "
                "or in-use to be copied"
            )
        what = f"volume {resource.label}"
        ctx.temporaries.record(f"{tmp}:src-snapshot", f"{what}: source snapshot {tmp}",
                               "snapshot_named", {"name": tmp}, cloud="source")  # fmt: skip
        snapshot = bs.create_snapshot(volume_id=volume.id, name=tmp, force=True)
        wait_snapshot(source, snapshot.id, f"{what}: snapshot", wait)
        ctx.temporaries.record(f"{tmp}:src-volume", f"{what}: source volume {tmp}",
                               "volume_named", {"name": tmp}, cloud="source")  # fmt: skip
        copy = bs.create_volume(name=tmp, size=volume.size, snapshot_id=snapshot.id)
        wait_volume(source, copy.id, {"available"}, f"{what}: copy from snapshot", wait)
        return str(copy.id)

    def delete(self, ctx: Context, current: Resource) -> None:
        """To retire the source's volume: only one no server holds (its servers go first),
        once it is available; its snapshots first (cinder refuses a volume that has any),
        each waited for until gone."""
        bs, volume_id = sdk.block_storage(ctx.conn), current.cloud_id
        what = f"volume {current.label}"
        volume = bs.get_volume(volume_id)  # gone: NotFoundException, as a delete would say
        servers = sorted(str(a.get("server_id")) for a in volume.attachments or [])
        if servers:
            raise RuntimeError(f"{what} is attached to server(s) {', '.join(servers)}: left")
        if volume.status != "available":
            wait_volume(ctx.conn, volume_id, {"available"}, f"{what} to be available",
                        SETTLE_SECONDS)  # fmt: skip
        for snap in list(bs.snapshots(details=True, all_projects=True, volume_id=volume_id)):
            snap_id = str(snap.id)
            _settled(partial(bs.get_snapshot, snap_id), {"creating"}, f"snapshot of {what}")
            bs.delete_snapshot(snap_id, ignore_missing=True)
            _gone(partial(bs.get_snapshot, snap_id), f"snapshot {snap_id} of {what}")
        bs.delete_volume(volume_id, ignore_missing=False)
        _gone(partial(bs.get_volume, volume_id), what)

    def update(
        self, ctx: Context, resource: Resource, current: Resource, changed: set[str]
    ) -> None:
        bs = sdk.block_storage(ctx.conn)
        if "description" in changed:
            bs.update_volume(current.cloud_id, description=resource.params.get("description"))
        if "metadata" in changed:
            want = resource.params.get("metadata") or {}
            old = current.params.get("metadata") or {}
            for key in set(old) - set(want):
                bs.delete_volume_metadata(current.cloud_id, keys=[key])
            if want:
                bs.set_volume_metadata(current.cloud_id, **want)
        if changed & {"bootable", "image_metadata"}:
            self._set_flags(ctx, current.cloud_id, resource)

    def _set_flags(self, ctx: Context, volume_id: str, resource: Resource) -> None:
        bs = sdk.block_storage(ctx.conn)
        bs.set_volume_bootable_status(volume_id, bool(resource.params.get("bootable")))
        want = dict(resource.params.get("image_metadata") or {})
        # image_id names an image of this cloud: the migrated image of that name, if any.
        image_name = want.get("image_name")
        image_id = ctx.ids.id("image", {"name": image_name}) if image_name else None
        if image_id:
            want["image_id"] = image_id
        current = dict(bs.get_volume(volume_id).volume_image_metadata or {})
        extra = [k for k in current if k not in want]
        if extra:
            bs.delete_volume_image_metadata(volume_id, keys=extra)
        if want and want != {k: current.get(k) for k in want}:
            bs.set_volume_image_metadata(volume_id, **{k: str(v) for k, v in want.items()})
