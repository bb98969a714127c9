"""Nova servers of the tenant, moved with their root disk, on their own ports (same MACs and
fixed IPs: ports are migrated first, as the port kind's), with their keypair and group.

An image-backed server's root disk travels as a snapshot:

    source server stopped (its power state journalled first: ``--cutover stop``, the default)
      -> snapshot (createImage) as a temporary source image
      -> streamed into a temporary destination image (checksums compared end to end)
      -> the destination server boots from it on the migrated ports, in NIC order
      -> started or left SHUTOFF as the source was; the temporaries are removed.

Nova looks ``key_name`` up among the *requesting* user's keypairs and stackferry has no
user's password: the owner's public key is put under the operator's user, under that name,
for the create call only (journalled before it exists, removed right after: nova copies the
key into the server when it accepts the request). The destination server is the operator's
(its ``user_id``); the report says whose key it has.

A boot-from-volume server's disks are volumes, moved by the volume kind before it (each copied
once its server is stopped, see ``cutover``); the destination boots from the migrated boot
volume with the others attached in the same order. Every volume is attached with
``delete_on_termination`` off and set as the source had it only once the server is ACTIVE: a
build nova fails is deleted, and must not take migrated volumes with it.

With ``--boot-from-volume`` (the mapping's ``boot_from_volume``), an image-backed server's
root disk goes onto a new volume instead: the snapshot, streamed as above, becomes a cinder
volume of the flavor's disk size (under a temporary name, journalled first; marked in its
metadata as the root disk stackferry made), and the server boots from it, deleted with the
server as its local disk would have been. That volume is the server's (``claims``): no
volume of the source, never compared as one; the server reads back as ``boot: new-volume``.

A destination server carries stackferry's marker in its tags (given in the create call), so a
re-run recognises it and finishes it instead of booting another. The source is never
deleted; it is left SHUTOFF, and started again when the destination could not be built.
"""

from __future__ import annotations

import uuid
from typing import Any

from openstack import exceptions
from openstack.connection import Connection

from stackferry.cloud import catalog, nova, sdk
from stackferry.cloud.connection import rest
from stackferry.cloud.glance import Glance
from stackferry.cloud.retry import is_transient
from stackferry.data.volumes import GIB, timeout_for, wait_image_active, wait_volume
from stackferry.engine.context import Context, KeyedLocks
from stackferry.engine.formats import NAME
from stackferry.engine.kind import (
    MARKER_TAG,
    Field,
    Kind,
    RefSpec,
    has_marker,
    records,
    without_marker,
)
from stackferry.engine.model import Resource, identity_key
from stackferry.engine.temporaries import undoes
from stackferry.kinds import cutover
from stackferry.kinds.image import stream_to_temporary_image

TMP_PREFIX = "stackferry-tmp-"
BUILD_SECONDS = 600.0
ATTACH_MICROVERSION = "2.85"  # PUT os-volume_attachments with delete_on_termination
TAGS_MICROVERSION = "2.26"  # servers' tags API
# In the metadata of a root volume made by --boot-from-volume: the source server's ID.
ROOT_VOLUME_KEY = "stackferry_root_disk_of"
# One public key at a time under a name for the operator.
_key_lock = KeyedLocks()


@undoes("operator_keypair")
def _delete_operator_keypair(conn: Any, spec: dict[str, Any]) -> None:
    conn.compute.delete_keypair(spec["name"], ignore_missing=True, user_id=spec["user_id"])


def nics(server: Any) -> list[dict[str, Any]]:
    """The server's ports, as port identities (network, MAC), in the order nova gives its
    NICs: ``addresses`` follows the server's network info, grouped by network (the
    interface list follows neutron's order instead)."""
    out: list[dict[str, Any]] = []
    for network, addresses in (server.addresses or {}).items():
        for address in addresses:
            port = {"network": network, "mac_address": address.get("OS-EXT-IPS-MAC:mac_addr")}
            if port["mac_address"] and port not in out:
                out.append(port)
    return out


def _device_order(device: str) -> tuple[int, str]:
    """/dev/vdb before /dev/vdaa: the order the guest enumerates its disks in."""
    return (len(device), device)


def volumes_by_server(ctx: Context) -> tuple[dict[str, list[tuple[str, str]]], set[str]]:
    """(device, volume ID) of each server's attached volumes, from cinder's attachments
    (nova's list names the volumes but not their order); and the IDs of the root volumes
    that --boot-from-volume made."""
    if not ctx.conn.has_service("block-storage"):
        return {}, set()
    attached: dict[str, list[tuple[str, str]]] = {}
    roots: set[str] = set()
    bs = sdk.block_storage(ctx.conn)
    for volume in bs.volumes(details=True, all_projects=True, project_id=ctx.project_id):
        if (volume.metadata or {}).get(ROOT_VOLUME_KEY):
            roots.add(str(volume.id))
        for attachment in volume.attachments or []:
            server_id = attachment.get("server_id")
            if server_id:
                device = str(attachment.get("device") or "")
                attached.setdefault(server_id, []).append((device, str(volume.id)))
    ordered = {
        sid: sorted(found, key=lambda d: _device_order(d[0])) for sid, found in attached.items()
    }
    return ordered, roots


@undoes("root_volume_named")
def _delete_unattached_volumes_named(conn: Connection, spec: dict[str, Any]) -> None:
    """A root volume made for a server that was never built; one a server holds is that
    server's now (nova deletes it with the server)."""
    bs = sdk.block_storage(conn)
    for volume in list(bs.volumes(details=True, all_projects=True, name=spec["name"])):
        if not volume.attachments and volume.status not in ("reserved", "attaching", "in-use"):
            wait_volume(conn, str(volume.id), {"available", "error"}, f"volume {spec['name']}",
                        timeout_for(int(volume.size or 1)))  # fmt: skip
            bs.delete_volume(str(volume.id), force=True)


VOLUMES_SCHEMA = records(
    {"volume": {"type": "object"}, "delete_on_termination": {"type": "boolean"}},
    {"boot_index": {"type": ["integer", "null"]}},
)


class Server(Kind):
    name = "server"
    plural = "servers"
    description = (
        "Nova servers: root disk by snapshot, same ports (MAC, IPs), keypair, group, "
        "power state; the source stopped for the cutover"
    )
    identity_schema = {"name": {**NAME, "minLength": 1}}
    fields = (
        Field("description", {"type": ["string", "null"], "maxLength": 255}),
        Field(
            "flavor",
            {"type": "object"},
            attr=None,
            wire=None,
            ref="flavor",
            required=True,
            immutable=True,
        ),
        # Where the root disk lives: the hypervisor's local disk (from an image), a volume
        # (migrated), or a new volume holding the image-backed root disk (--boot-from-volume).
        Field(
            "boot",
            {"enum": ["image", "volume", "new-volume"]},
            attr=None,
            wire=None,
            immutable=True,
        ),
        # The NICs, in the order the guest sees them (kept: no ``order``).
        Field(
            "ports",
            {"type": "array", "items": {"type": "object"}},
            attr=None,
            wire=None,
            ref="port",
            many=True,
            immutable=True,
        ),
        # Attached volumes in device order; a boot-from-volume server's first has boot_index 0.
        Field("volumes", VOLUMES_SCHEMA, attr=None, wire=None, default=[]),
        Field("key_name", {"type": ["string", "null"]}, immutable=True),
        # Whose key it is (the user who booted it): used to boot, never shown back by nova.
        Field(
            "keypair",
            {"type": ["object", "null"]},
            attr=None,
            wire=None,
            ref="keypair",
            write_only=True,
        ),
        Field(
            "server_group",
            {"type": ["object", "null"]},
            attr=None,
            wire=None,
            ref="server_group",
            immutable=True,
        ),
        Field(
            "metadata",
            {"type": "object", "additionalProperties": {"type": "string"}},
            default={},
            convert=dict,
        ),
        Field(
            "tags",
            {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 60}},
            attr=None,
            wire=None,
            default=[],
            order=str,
        ),
        Field(
            "user_data",
            {"type": ["string", "null"]},
            wire=None,
            immutable=True,
            secret=True,
        ),
        Field(
            "config_drive",
            {"type": "boolean"},
            attr="has_config_drive",
            wire=None,
            default=False,
            convert=lambda value: str(value).lower() == "true",
            immutable=True,
        ),
        # The zone the server was asked for (nova 2.96), not where it landed.
        Field(
            "availability_zone",
            {"type": ["string", "null"]},
            attr="pinned_availability_zone",
            wire=None,
            mapping="availability_zones",
            immutable=True,
        ),
        Field(
            "power_state",
            {"enum": ["running", "shutoff"]},
            attr=None,
            wire=None,
            default="running",
        ),
    )
    nested_refs = (RefSpec("volumes[].volume", "volume"),)
    moves_data = True
    mapped_facts = ("addresses", "key_owner", "booted_by", "devices")
    ready_timeout = BUILD_SECONDS
    claims = ("volume",)  # the root volume --boot-from-volume made
    remapped_by = frozenset({"boot_from_volume"})
    retire = True

    def remap_params(
        self, before: dict[str, Any], resource: Resource, switches: frozenset[str]
    ) -> None:
        if "boot_from_volume" in switches and resource.params.get("boot") == "image":
            resource.params["boot"] = "new-volume"

    def claimed(self, resource: Resource) -> set[str]:
        root = resource.facts.get("root_volume")
        return {str(root)} if root else set()

    # --- reading -----------------------------------------------------------------------

    def read(self, ctx: Context) -> list[Resource]:
        compute, out = ctx.conn.compute, []
        # Nova names a server's group in GET only, not in the list: the groups name members.
        group_of = {
            member: g.id
            for g in compute.server_groups(all_projects=True)
            if g.project_id == ctx.project_id
            for member in g.member_ids or []
        }
        attached, roots = volumes_by_server(ctx)
        for s in compute.servers(details=True, all_projects=True, project_id=ctx.project_id):
            if (s.name or "").startswith(TMP_PREFIX):
                continue
            ports = nics(s)
            boot = "image" if s.image and s.image.id else "volume"
            devices = attached.get(str(s.id), [])
            root = devices[0][1] if boot == "volume" and devices else None
            if root in roots:
                boot, devices = "new-volume", devices[1:]
            else:
                root = None
            volumes = self._volumes(ctx, s, devices, boot)
            group = group_of.get(s.id)
            keypair = None
            if s.key_name:
                keypair = ctx.ids.identity("keypair", f"{s.user_id}/{s.key_name}")
            power = cutover.power_state(s)
            before = ctx.source_changes.before(self.name, str(s.id))
            if before is not None:  # stackferry stopped it for the cutover: as it was
                power = before["power_state"]
            params = {
                **self.params_of(ctx, s),
                "flavor": {"name": s.flavor.original_name or s.flavor.name},
                "boot": boot,
                "ports": ports,
                "volumes": volumes,
                "keypair": keypair,
                "server_group": ctx.ref("server_group", group) if group else None,
                "tags": without_marker(s.tags),
                "power_state": power,
            }
            out.append(
                self.resource(
                    {"name": s.name},
                    params,
                    str(s.id),
                    ctx,
                    ours=has_marker(s.tags),
                    status=s.status,
                    task_state=s.task_state,
                    key_owner=keypair["user"].get("name") if keypair else None,
                    booted_by=s.user_id,
                    image_id=s.image.id if s.image else None,
                    size=int(s.flavor.disk or 0) * GIB,
                    addresses={
                        net: sorted(a["addr"] for a in addrs)
                        for net, addrs in (s.addresses or {}).items()
                    },
                    devices=[device for device, _ in attached.get(str(s.id), [])],
                    root_volume=root,
                )
            )
        return out

    @staticmethod
    def _volumes(
        ctx: Context, server: Any, attached: list[tuple[str, str]], boot: str
    ) -> list[dict[str, Any]]:
        keep = {
            str(v.get("id")): bool(v.get("delete_on_termination"))
            for v in server.attached_volumes or []
        }
        return [
            {
                "volume": ctx.ref("volume", volume_id),
                "delete_on_termination": keep.get(volume_id, False),
                "boot_index": 0 if boot == "volume" and i == 0 else None,
            }
            for i, (_, volume_id) in enumerate(attached)
        ]

    def ready(self, current: Resource) -> bool:
        return current.facts.get("status") != "BUILD" and not current.facts.get("task_state")

    def check(self, ctx: Context, resource: Resource) -> list[str]:
        p, problems = resource.params, []
        if p.get("boot") == "volume" and not any(
            v.get("boot_index") == 0 for v in p.get("volumes", [])
        ):
            problems.append("it boots from a volume, but names no boot volume (boot_index 0)")
        if p.get("boot") == "new-volume" and not ctx.conn.has_service("block-storage"):
            problems.append("--boot-from-volume needs a block storage service (cinder)")
        if p.get("key_name") and not p.get("keypair"):
            problems.append(
                f"its keypair {p['key_name']!r} is not among the tenant users' keypairs "
                "(deleted, or its owner is not a member): nova would refuse the name"
            )
        zone = p.get("availability_zone")
        if zone:
            zones = catalog.compute_zones(ctx.conn, ctx.cache)
            if zone not in zones:
                problems.append(
                    catalog.missing("availability zone", zone, zones, "availability_zones")
                )
        return problems

    def explain(self, ctx: Context, resource: Resource) -> str:
        size = int(resource.facts.get("size") or 0)
        volumes = len(resource.params.get("volumes", []))
        if resource.params.get("boot") == "volume":
            disk = f"boots from its migrated volume, {volumes} volume(s) in all"
        elif resource.params.get("boot") == "new-volume":
            disk = f"root disk by snapshot onto a new volume of {max(1, size // GIB)} GiB"
            disk += f", {volumes} volume(s) attached" if volumes else ""
        else:
            disk = f"root disk by snapshot ({size / GIB:.0f} GiB at most)" if size else "root disk"
            disk += f", {volumes} volume(s) attached" if volumes else ""
        status = resource.facts.get("status")
        if cutover.mode(ctx) == "live":
            return f"{disk}, copied while running (crash-consistent); the source keeps running"
        if status == "SHUTOFF":
            return f"{disk}; the source is SHUTOFF already"
        start = "its volumes' copy" if volumes else "its snapshot"
        return (
            f"{disk}; the source is stopped from {start} until the destination is ACTIVE,"
            " and left SHUTOFF"
        )

    # --- creating ----------------------------------------------------------------------

    def create(self, ctx: Context, resource: Resource) -> str:
        temporaries = ctx.temporaries
        if temporaries is None:
            raise RuntimeError("servers are only created by apply, which records temporaries")
        tmp = f"{TMP_PREFIX}{uuid.uuid4().hex[:12]}"
        stopped = cutover.stop_source(ctx, resource.cloud_id, resource.label)
        try:
            image_id = root_id = None
            if resource.params.get("boot") != "volume":
                image_id = self._root_disk(ctx, resource, tmp)
            if resource.params.get("boot") == "new-volume":
                assert image_id is not None
                root_id, image_id = self._root_volume(ctx, resource, image_id, tmp), None
            server_id = self._boot(ctx, resource, image_id, tmp, root_id)
            self._settle(ctx, resource, server_id)
            if root_id:
                self._name_root(ctx, resource, root_id, tmp)
        except Exception as exc:
            if stopped and not is_transient(exc):
                cutover.restart_source(ctx, resource.cloud_id, resource.label)
            raise
        finally:
            for suffix in (":src-image", ":dst-image", ":keypair", ":root-volume"):
                temporaries.undo(tmp + suffix)
        return server_id

    def _root_disk(self, ctx: Context, resource: Resource, tmp: str) -> str:
        """The source's root disk as a temporary image in the destination tenant."""
        assert ctx.temporaries is not None
        source, what = ctx.data.source_conn(), f"server {resource.label}"
        wait = timeout_for(max(1, int(resource.facts.get("size") or 0) // GIB))
        ctx.temporaries.record(f"{tmp}:src-image", f"{what}: snapshot {tmp}", "image_named",
                               {"name": tmp}, cloud="source")  # fmt: skip
        snapshot_id = source.compute.get_server(resource.cloud_id).create_image(
            source.compute, tmp, None
        )
        src_image = wait_image_active(source, str(snapshot_id), f"{what}: snapshot", wait)
        _, image_id = stream_to_temporary_image(
            ctx, resource, src_image, f"{tmp}:dst-image", "servers"
        )
        return image_id

    def _root_volume(self, ctx: Context, resource: Resource, image_id: str, tmp: str) -> str:
        """--boot-from-volume: the root disk's image onto a new volume of the flavor's disk
        size (the image's, when larger), in the tenant, marked as this server's root disk."""
        assert ctx.temporaries is not None
        what, name = f"server {resource.label}", f"{tmp}-root"
        image = Glance(ctx.conn).get(image_id)
        image_bytes = max(int(image.get("virtual_size") or 0), int(image.get("size") or 0))
        size = max(1, -(-int(resource.facts.get("size") or 0) // GIB), -(-image_bytes // GIB))
        ctx.temporaries.record(f"{tmp}:root-volume", f"{what}: root volume {name}",
                               "root_volume_named", {"name": name})  # fmt: skip
        volume = sdk.block_storage(ctx.project_conn()).create_volume(
            name=name, size=size, image_id=image_id,
            metadata={ROOT_VOLUME_KEY: str(resource.cloud_id)},
        )  # fmt: skip
        wait_volume(ctx.conn, str(volume.id), {"available"}, f"{what}: root volume from its disk",
                    timeout_for(size))  # fmt: skip
        return str(volume.id)

    @staticmethod
    def _name_root(ctx: Context, resource: Resource, root_id: str, tmp: str) -> None:
        """The server stands and holds its root volume: named after it, no temporary now."""
        assert ctx.temporaries is not None
        sdk.block_storage(ctx.conn).update_volume(root_id, name=f"{resource.identity['name']}-root")
        ctx.temporaries.keep(f"{tmp}:root-volume")

    def _boot(
        self,
        ctx: Context,
        resource: Resource,
        image_id: str | None,
        tmp: str,
        root_id: str | None = None,
    ) -> str:
        p = resource.params
        body: dict[str, Any] = {
            "name": resource.identity["name"],
            "flavorRef": ctx.resolve("flavor", p["flavor"]),
            "networks": [{"port": ctx.resolve("port", port)} for port in p.get("ports", [])]
            or "none",
            "metadata": p.get("metadata") or {},
            "tags": [*p.get("tags", []), MARKER_TAG],
            "config_drive": bool(p.get("config_drive")),
        }
        if image_id:
            body["imageRef"] = image_id
        devices = self._block_devices(ctx, p, image_id, root_id)
        if devices:
            body["block_device_mapping_v2"] = devices
        if p.get("description"):
            body["description"] = p["description"]
        if p.get("user_data"):
            body["user_data"] = p["user_data"]
        if p.get("availability_zone"):
            body["availability_zone"] = p["availability_zone"]
        if p.get("server_group"):
            body["scheduler_hints"] = {"group": ctx.resolve("server_group", p["server_group"])}
        compute = ctx.project_conn().compute
        if not p.get("key_name"):
            return str(compute.create_server(**body).id)
        body["key_name"] = p["key_name"]
        with _key_lock(str(p["key_name"])):
            self._lend_key(ctx, resource, tmp)
            try:
                return str(compute.create_server(**body).id)
            finally:
                assert ctx.temporaries is not None
                ctx.temporaries.undo(f"{tmp}:keypair")

    @staticmethod
    def _block_devices(
        ctx: Context, params: dict[str, Any], image_id: str | None, root_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The root disk (from the image, the boot volume, or the new root volume, which goes
        with the server like a local disk) and the volumes in their order; no migrated volume
        is deleted with the server until it is ACTIVE (see the module's docstring)."""
        volumes = params.get("volumes", [])
        if not volumes and not root_id:
            return []
        devices: list[dict[str, Any]] = []
        if root_id:
            devices.append(
                {"boot_index": 0, "uuid": root_id, "source_type": "volume",
                 "destination_type": "volume", "delete_on_termination": True}
            )  # fmt: skip
        if image_id:
            devices.append(
                {"boot_index": 0, "uuid": image_id, "source_type": "image",
                 "destination_type": "local", "delete_on_termination": True}
            )  # fmt: skip
        for volume in volumes:
            devices.append(
                {"boot_index": volume.get("boot_index"),
                 "uuid": ctx.resolve("volume", volume["volume"]),
                 "source_type": "volume", "destination_type": "volume",
                 "delete_on_termination": False}
            )  # fmt: skip
        return devices

    def _lend_key(self, ctx: Context, resource: Resource, tmp: str) -> None:
        """The owner's public key under the operator's user, named as nova will look it up."""
        assert ctx.temporaries is not None
        p = resource.params
        name, operator = str(p["key_name"]), str(ctx.conn.current_user_id)
        owner_id, _, _ = str(ctx.resolve("keypair", p["keypair"])).partition("/")
        if owner_id == operator:
            return
        compute = ctx.conn.compute
        public_key = compute.get_keypair(name, user_id=owner_id).public_key
        try:
            mine = compute.get_keypair(name, user_id=operator)
        except exceptions.NotFoundException:
            mine = None
        if mine is not None:
            if mine.public_key.strip() == public_key.strip():
                return  # the operator holds that very key already
            raise RuntimeError(
                f"server {resource.label}: your own user has a keypair named {name!r} with "
                "another key; nova would give the server that one: rename or delete yours"
            )
        ctx.temporaries.record(
            f"{tmp}:keypair",
            f"server {resource.label}: keypair {name} lent to the operator",
            "operator_keypair",
            {"name": name, "user_id": operator},
        )
        compute.create_keypair(name=name, public_key=public_key, user_id=operator)

    def _settle(self, ctx: Context, resource: Resource, server_id: str) -> None:
        """Wait for the build; a server nova could not build is removed (it is ours)."""
        what = f"server {resource.label}"
        try:
            nova.wait_server(ctx.conn, server_id, {"ACTIVE"}, f"{what}: build", BUILD_SECONDS)
        except RuntimeError:
            nova.delete_server(ctx.conn, server_id, f"{what}: removing the failed build",
                               BUILD_SECONDS)  # fmt: skip
            raise
        self._keep_volumes(ctx, server_id, resource.params.get("volumes", []))
        if resource.params.get("power_state") == "shutoff":
            self._power(ctx, resource, server_id, "shutoff")

    @staticmethod
    def _keep_volumes(ctx: Context, server_id: str, volumes: list[dict[str, Any]]) -> None:
        """delete_on_termination as the source has it, now that the server stands."""
        compute = ctx.conn.compute
        server = compute.get_server(server_id)
        now = {str(v.get("id")): bool(v.get("delete_on_termination"))
               for v in server.attached_volumes or []}  # fmt: skip
        for volume in volumes:
            volume_id = str(ctx.resolve("volume", volume["volume"]))
            want = bool(volume.get("delete_on_termination"))
            if volume_id in now and now[volume_id] != want:
                rest(
                    compute, "put", f"/servers/{server_id}/os-volume_attachments/{volume_id}",
                    json={"volumeAttachment": {"volumeId": volume_id,
                                               "delete_on_termination": want}},
                    microversion=ATTACH_MICROVERSION,
                )  # fmt: skip

    # --- bringing an existing one in line ---------------------------------------------

    def converge(self, ctx: Context, resource: Resource, current: Resource, made_here: bool) -> str:
        if current.facts.get("status") == "ERROR":  # ours, never finished: made again
            nova.delete_server(ctx.conn, current.cloud_id, f"server {resource.label}",
                               BUILD_SECONDS)  # fmt: skip
            return self.create(ctx, resource)
        return super().converge(ctx, resource, current, made_here)

    def update(
        self, ctx: Context, resource: Resource, current: Resource, changed: set[str]
    ) -> None:
        compute, p, server_id = ctx.conn.compute, resource.params, current.cloud_id
        if "description" in changed:
            compute.update_server(server_id, description=p.get("description"))
        if "metadata" in changed:
            want, old = p.get("metadata") or {}, current.params.get("metadata") or {}
            gone = [k for k in old if k not in want]
            if gone:
                compute.delete_server_metadata(server_id, gone)
            if want:
                compute.set_server_metadata(server_id, **want)
        if "tags" in changed:
            compute.get_server(server_id).set_tags(compute, [*p.get("tags", []), MARKER_TAG])
        if "volumes" in changed:
            self._attach_missing(ctx, resource, current)
            self._keep_volumes(ctx, server_id, p.get("volumes", []))
        if "power_state" in changed:
            self._power(ctx, resource, server_id, p["power_state"])

    @staticmethod
    def _attach_missing(ctx: Context, resource: Resource, current: Resource) -> None:
        """Data volumes the destination server lacks are attached (a run killed between the
        build and an attachment); one it has beyond the source's is the operator's to judge:
        verify reports it."""
        have = {identity_key("volume", v["volume"]) for v in current.params.get("volumes", [])}
        for volume in resource.params.get("volumes", []):
            if identity_key("volume", volume["volume"]) in have or volume.get("boot_index") == 0:
                continue
            volume_id = str(ctx.resolve("volume", volume["volume"]))
            ctx.conn.compute.create_volume_attachment(current.cloud_id, volume_id=volume_id)
            wait_volume(ctx.conn, volume_id, {"in-use"},
                        f"server {resource.label}: attaching a volume", timeout_for(1))  # fmt: skip

    def _power(self, ctx: Context, resource: Resource, server_id: str, state: str) -> None:
        compute, what = ctx.conn.compute, f"server {resource.label}"
        if state == "shutoff":
            compute.stop_server(server_id)
            nova.wait_server(ctx.conn, server_id, {"SHUTOFF"}, f"{what}: stopping", 600)
        else:
            compute.start_server(server_id)
            nova.wait_server(ctx.conn, server_id, {"ACTIVE"}, f"{what}: starting", 600)

    def delete(self, ctx: Context, current: Resource) -> None:
        nova.delete_server(ctx.conn, current.cloud_id, f"server {current.label}", BUILD_SECONDS)

    def marked(self, current: Resource) -> bool:
        return bool(current.facts.get("ours"))

    def unmark(self, ctx: Context, current: Resource) -> None:
        """Nova's tags API (2.26): our tag off, the server's own left."""
        rest(ctx.conn.compute, "delete", f"/servers/{current.cloud_id}/tags/{MARKER_TAG}",
             microversion=TAGS_MICROVERSION)  # fmt: skip
