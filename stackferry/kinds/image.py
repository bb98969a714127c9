"""Glance images of the tenant: metadata, members, and their bytes, streamed cloud to cloud.

Params are what a user set (formats, limits, visibility, hidden, tags, every custom
property, members) plus ``data``: glance's own fingerprint of the bytes (size, md5, os_hash),
so plan and verify compare content as well as metadata. A destination image that is not
active (an upload interrupted by a kill) has ``data: null``. One stackferry made with other
bytes (or none) is a ``replace`` in the plan; one it did not make is a conflict.

The image is created with ``protected: false`` and protected only once its bytes verified,
so a failed transfer can always delete what it made.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

from openstack import exceptions

from stackferry.cloud import sdk
from stackferry.cloud.glance import Glance
from stackferry.data.stream import Digests, Fingerprint, TransferError, glance_download
from stackferry.data.transfer import SourceBytes, transfer
from stackferry.engine.context import Context
from stackferry.engine.formats import NAME
from stackferry.engine.kind import (
    MARKER_TAG,
    Field,
    Kind,
    has_marker,
    records,
    with_marker,
    without_marker,
)
from stackferry.engine.model import Params, Resource
from stackferry.engine.temporaries import undoes

# Fields glance manages or that name the image in one cloud only: never custom properties.
CORE = frozenset(
    {
        "id", "name", "status", "visibility", "protected", "checksum", "os_hash_algo",
        "os_hash_value", "size", "virtual_size", "disk_format", "container_format", "min_disk",
        "min_ram", "owner", "created_at", "updated_at", "tags", "file", "schema", "self",
        "direct_url", "locations", "os_hidden", "stores",
    }
)  # fmt: skip
DISK_FORMATS = ["ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"]
CONTAINER_FORMATS = ["ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"]


def custom_properties(image: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in image.items() if k not in CORE and not k.startswith("os_glance_")}


def project_identity(ctx: Context, project_id: str) -> dict[str, str]:
    """{name, domain} of any project (image members are other tenants)."""
    cache = ctx.cache.setdefault("project_identity", {})
    if project_id not in cache:
        idn = sdk.identity(ctx.conn)
        project = idn.get_project(project_id)
        domain = idn.get_domain(project.domain_id)
        cache[project_id] = {"name": project.name, "domain": domain.name}
    return dict(cache[project_id])


def project_id_of(ctx: Context, identity: dict[str, str]) -> str:
    cache = ctx.cache.setdefault("project_id", {})
    key = (identity["name"], identity["domain"])
    if key not in cache:
        idn = sdk.identity(ctx.conn)
        domain = idn.find_domain(identity["domain"], ignore_missing=True)
        project = (
            idn.find_project(identity["name"], domain_id=domain.id, ignore_missing=True)
            if domain
            else None
        )
        if project is None:
            raise LookupError(
                f"image member project {identity['name']} (domain {identity['domain']}) does "
                "not exist in this cloud: create it, or map it in the mapping file's projects"
            )
        cache[key] = project.id
    return str(cache[key])


@undoes("image_id")
def _delete_image(conn: Any, spec: dict[str, Any]) -> None:
    Glance(conn).delete(spec["id"])


@undoes("image_named")
def _delete_images_named(conn: Any, spec: dict[str, Any]) -> None:
    """Temporary images whose ID is known only after their create (a volume's copies)."""
    glance = Glance(conn)
    for image in glance.images(name=spec["name"], visibility="all"):
        glance.delete(image["id"])


class Image(Kind):
    name = "image"
    plural = "images"
    description = "Glance images owned by the tenant, with their bytes and members"
    identity_schema = {"name": NAME}
    fields = (
        Field("disk_format", {"enum": [*DISK_FORMATS, None]}, required=True, immutable=True),
        Field(
            "container_format",
            {"enum": [*CONTAINER_FORMATS, None]},
            required=True,
            immutable=True,
        ),
        Field("min_disk", {"type": "integer", "minimum": 0}, default=0),
        Field("min_ram", {"type": "integer", "minimum": 0}, default=0),
        # Protected only once its bytes verified, so that a failed copy can be deleted.
        Field("protected", {"type": "boolean"}, wire=None, default=False, convert=bool),
        Field("hidden", {"type": "boolean"}, attr="os_hidden", wire="os_hidden", default=False),
        Field(
            "visibility",
            {"enum": ["public", "community", "shared", "private"]},
            required=True,
        ),
        Field(
            "tags",
            {"type": "array", "items": {"type": "string"}},
            wire=None,  # with our marker
            default=[],
            convert=without_marker,
        ),
        Field("properties", {"type": "object"}, attr=None, wire=None),  # every custom one
        Field(
            "members",
            records(
                {
                    "project": {
                        "type": "object",
                        "required": ["name", "domain"],
                        "properties": {"name": {"type": "string"}, "domain": {"type": "string"}},
                        "additionalProperties": False,
                    },
                    "status": {"enum": ["pending", "accepted", "rejected"]},
                }
            ),
            attr=None,
            wire=None,
            order=lambda m: (m["project"]["domain"], m["project"]["name"]),
        ),
        Field(
            "data",
            {
                "oneOf": [
                    {"type": "null"},
                    {
                        "type": "object",
                        "required": ["size", "checksum", "os_hash_algo", "os_hash_value"],
                        "properties": {
                            "size": {"type": "integer", "minimum": 0},
                            "checksum": {"type": ["string", "null"]},
                            "os_hash_algo": {"type": ["string", "null"]},
                            "os_hash_value": {"type": ["string", "null"]},
                        },
                        "additionalProperties": False,
                    },
                ]
            },
            attr=None,
            wire=None,
            required=True,
            immutable=True,
        ),
    )
    nested_mappings = (
        ("members[].project.name", "projects"),
        ("members[].project.domain", "domains"),
    )
    # Glance forbids changing the formats of an image that has data; other bytes need a new
    # upload: a new image, for one stackferry made (an upload cut short, or the source's
    # bytes changed since).
    replaceable = frozenset({"disk_format", "container_format", "data"})
    mapped_facts = ("checksum",)
    service = "image"
    optional_service = True  # a cloud without glance has no images to move
    moves_data = True
    data_params = frozenset({"data"})
    retire = True

    def check(self, ctx: Context, resource: Resource) -> list[str]:
        """Member projects must exist in the destination (under their mapped names)."""
        problems = []
        for member in resource.params.get("members", []):
            try:
                project_id_of(ctx, member["project"])
            except LookupError as exc:
                problems.append(str(exc))
        return problems

    def read(self, ctx: Context) -> list[Resource]:
        glance = Glance(ctx.conn)
        out = []
        for image in glance.images(owner=ctx.project_id, visibility="all"):
            members = []
            if image.get("visibility") == "shared":
                try:
                    listed = glance.members(image["id"])
                except exceptions.NotFoundException:
                    continue  # deleted since it was listed (e.g. a run's stale temporary)
                members = [
                    {"project": project_identity(ctx, m["member_id"]), "status": m["status"]}
                    for m in listed
                ]
            active = image.get("status") == "active"
            params = {
                **self.params_of(ctx, image),
                "properties": custom_properties(image),
                "members": members,
                "data": Fingerprint.of(image).as_params() if active else None,
            }
            out.append(
                self.resource(
                    {"name": image.get("name") or ""},
                    self.normalise(params),
                    image["id"],
                    ctx,
                    status=image.get("status"),
                    size=image.get("size") or 0,
                    checksum=image.get("checksum"),
                    ours=has_marker(image.get("tags")),
                )
            )
        return out

    def changed_fields(self, desired: Params, current: Params) -> set[str]:
        changed = super().changed_fields(desired, current)
        if "data" in changed and desired.get("data") and current.get("data"):
            want, have = Fingerprint(**desired["data"]), Fingerprint(**current["data"])
            if not want.mismatches(have):  # e.g. the clouds hash with different algorithms
                changed.discard("data")
        return changed

    def create(self, ctx: Context, resource: Resource) -> str:
        """The image gets an ID chosen here and is recorded as a temporary before it exists:
        whatever interrupts it (an error, a kill), the half-made image is deleted, by this
        run or the next. It is kept once its bytes verified, and protected only after that."""
        if ctx.temporaries is None:
            raise RuntimeError("images are only created by apply, which records temporaries")
        p, glance = resource.params, Glance(ctx.conn)
        image_id = str(uuid.uuid4())
        body: dict[str, Any] = {
            **p.get("properties", {}),
            **self.create_body(ctx, p),
            "id": image_id,
            "name": resource.identity["name"],
            "tags": with_marker(p),
            "owner": ctx.project_id,
        }
        key = temporary_key(image_id)
        ctx.temporaries.record(
            key, f"image {resource.label} until verified", "image_id", {"id": image_id}
        )
        glance.create(body)
        try:
            if p.get("data") is not None:
                self._transfer(ctx, resource, image_id)
            self._set_members(ctx, image_id, p.get("members", []), [])
        except TransferError:
            ctx.temporaries.undo(key)  # the bad copy goes now, not at the end of the run
            raise
        ctx.temporaries.keep(key)
        if p.get("protected"):
            glance.set(image_id, protected=True)
        return image_id

    def _transfer(self, ctx: Context, resource: Resource, image_id: str) -> None:
        disk_format = resource.params.get("disk_format") or "img"
        transfer(
            ctx.data,
            f"image {resource.label}",
            f"images/{safe_name(resource, disk_format)}",
            resource.cloud_id,
            ctx.conn,
            image_id,
            Fingerprint(**resource.params["data"]),
            resource.bytes_member,
            kind="image",
            name=resource.identity["name"],
            source_id=resource.id,
            disk_format=disk_format,
        )

    @contextlib.contextmanager
    def _bytes(self, ctx: Context, resource: Resource) -> Iterator[SourceBytes]:
        with glance_download(ctx.conn, str(resource.cloud_id)) as chunks:
            yield SourceBytes(chunks, Fingerprint(**resource.params["data"]))

    def source_bytes(
        self, ctx: Context, resource: Resource
    ) -> contextlib.AbstractContextManager[SourceBytes] | None:
        """The image's own bytes, checked against glance's record of them as they go."""
        return self._bytes(ctx, resource) if resource.params.get("data") else None

    def converge(self, ctx: Context, resource: Resource, current: Resource, made_here: bool) -> str:
        """An image brought in line (its bytes equal the source's) is the real one: the end
        of the run must not delete it as a temporary, whichever answer was lost on the way
        (the upload's, the members', ...)."""
        image_id = super().converge(ctx, resource, current, made_here)
        if ctx.temporaries is not None:
            ctx.temporaries.keep(temporary_key(image_id))
        return image_id

    def delete(self, ctx: Context, current: Resource) -> None:
        """For a replace (protection first taken off: stackferry set it), and to retire the
        source's image."""
        glance = Glance(ctx.conn)
        if glance.get(current.cloud_id).get("protected"):
            glance.set(current.cloud_id, protected=False)
        glance.delete(current.cloud_id)

    def retirable(self, resource: Resource) -> str:
        visibility = resource.params.get("visibility")
        if visibility in ("public", "community"):
            return f"{visibility}: other projects may boot from it"
        if resource.params.get("members"):
            return "shared with other projects (its members)"
        return ""

    def marked(self, current: Resource) -> bool:
        return bool(current.facts.get("ours"))

    def unmark(self, ctx: Context, current: Resource) -> None:
        Glance(ctx.conn).remove_tag(current.cloud_id, MARKER_TAG)

    def update(
        self, ctx: Context, resource: Resource, current: Resource, changed: set[str]
    ) -> None:
        p, have, glance = resource.params, current.params, Glance(ctx.conn)
        body = self.update_body(ctx, p, changed)
        if "protected" in changed:
            body["protected"] = p.get("protected", False)
        ops = [{"op": "replace", "path": f"/{k}", "value": v} for k, v in body.items()]
        if "tags" in changed:
            ops.append({"op": "replace", "path": "/tags", "value": with_marker(p)})
        if "properties" in changed:
            want, old = p.get("properties", {}), have.get("properties", {})
            for key in sorted(set(old) - set(want)):
                ops.append({"op": "remove", "path": f"/{key}"})
            for key in sorted(want):
                if old.get(key) != want[key]:
                    op = "replace" if key in old else "add"
                    ops.append({"op": op, "path": f"/{key}", "value": want[key]})
        glance.patch(current.cloud_id, ops)
        if "members" in changed:
            self._set_members(ctx, current.cloud_id, p.get("members", []), have.get("members", []))

    def _set_members(
        self,
        ctx: Context,
        image_id: str,
        want: list[dict[str, Any]],
        have: list[dict[str, Any]],
    ) -> None:
        glance = Glance(ctx.conn)
        had = {project_id_of(ctx, m["project"]): m["status"] for m in have}
        wanted = {project_id_of(ctx, m["project"]): m["status"] for m in want}
        for project_id in sorted(set(had) - set(wanted)):
            glance.remove_member(image_id, project_id)
        for project_id, status in sorted(wanted.items()):
            if project_id not in had:
                glance.add_member(image_id, project_id)
            if had.get(project_id, "pending") != status:
                glance.set_member(image_id, project_id, status)


def temporary_key(image_id: str) -> str:
    """The journal key of an image recorded as a temporary until its bytes verified."""
    return f"image:{image_id}"


def safe_name(resource: Resource, extension: str) -> str:
    """An archive file name: the resource's name made file-safe, and its source ID, since
    names may hold any character and two names may clean up alike."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in resource.label)
    return f"{cleaned.strip('.') or 'unnamed'}__{resource.id}.{extension}"


def stream_to_temporary_image(
    ctx: Context, resource: Resource, src_image: dict[str, Any], key: str, folder: str
) -> tuple[Digests, str]:
    """A source image (a volume's upload, a server's snapshot; or its record in a bundle,
    which then gives the bytes) streamed into a new temporary image of the destination
    tenant, named like the source one, journalled under ``key`` before it exists: a new one
    for each try (glance takes one upload per image). Returns the digests of the bytes and
    the new image's ID."""
    assert ctx.temporaries is not None
    name, what = str(src_image["name"]), f"{resource.kind} {resource.label}"
    disk_format = src_image.get("disk_format") or "raw"
    ctx.temporaries.record(key, f"{what}: destination image {name}", "image_named",
                           {"name": name})  # fmt: skip
    image_id = str(
        Glance(ctx.conn).create(
            {
                "name": name,
                "disk_format": disk_format,
                "container_format": src_image.get("container_format") or "bare",
                "visibility": "private",
                "owner": ctx.project_id,
                "tags": [MARKER_TAG],
            }
        )["id"]
    )
    digests = transfer(
        ctx.data,
        what,
        f"{folder}/{safe_name(resource, disk_format)}",
        str(src_image["id"]),
        ctx.conn,
        image_id,
        Fingerprint.of(src_image),
        resource.bytes_member,
        kind=resource.kind,
        name=resource.identity["name"],
        source_id=resource.id,
    )
    return digests, image_id
