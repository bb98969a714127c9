"""Glance images of the tenant: metadata, members, and their bytes, streamed cloud to cloud.

Params are what a user set (formats, limits, visibility, tags, every custom property,
members) plus ``data``: glance's own fingerprint of the bytes (size, md5, os_hash), so plan
and verify compare content as well as metadata. A destination image that is not active (an
upload interrupted by a kill) has ``data: null``; if it carries our marker tag it is
replaced, otherwise it is a conflict, as is an active image with other bytes.

The image is created with ``protected: false`` and protected only once its bytes verified,
so a failed transfer can always delete what it made.
"""

from __future__ import annotations

import uuid
from typing import Any

from stackferry.cloud import sdk
from stackferry.cloud.connection import rest
from stackferry.data.stream import Fingerprint, TransferError, get_image
from stackferry.data.transfer import transfer
from stackferry.engine.context import Context
from stackferry.engine.formats import NAME
from stackferry.engine.kind import Kind, records, with_marker, without_marker
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
PAGE = 200


def list_images(conn: Any, **query: str) -> list[dict[str, Any]]:
    """Every image matching ``query``, one call per page of PAGE."""
    out: list[dict[str, Any]] = []
    marker = None
    while True:
        params = {**query, "limit": str(PAGE), **({"marker": marker} if marker else {})}
        page = rest(conn.image, "get", "/images", params=params).json()["images"]
        out.extend(page)
        if len(page) < PAGE:
            return out
        marker = page[-1]["id"]


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
    rest(conn.image, "delete", f"/images/{spec['id']}")


@undoes("image_named")
def _delete_images_named(conn: Any, spec: dict[str, Any]) -> None:
    """Temporary images whose ID is known only after their create (a volume's copies)."""
    for image in list_images(conn, name=spec["name"], visibility="all"):
        rest(conn.image, "delete", f"/images/{image['id']}")


class Image(Kind):
    name = "image"
    plural = "images"
    description = "Glance images owned by the tenant, with their bytes and members"
    identity_schema = {"name": NAME}
    params_schema = {
        "type": "object",
        "required": ["disk_format", "container_format", "visibility", "data"],
        "properties": {
            "disk_format": {"enum": [*DISK_FORMATS, None]},
            "container_format": {"enum": [*CONTAINER_FORMATS, None]},
            "min_disk": {"type": "integer", "minimum": 0},
            "min_ram": {"type": "integer", "minimum": 0},
            "protected": {"type": "boolean"},
            "hidden": {"type": "boolean"},
            "visibility": {"enum": ["public", "community", "shared", "private"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "properties": {"type": "object"},
            "members": records(
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
            "data": {
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
        },
        "additionalProperties": False,
    }
    # Glance forbids changing the formats of an image that has data; other bytes need a new image.
    immutable = frozenset({"disk_format", "container_format", "data"})
    mapped_values = (
        ("members[].project.name", "projects"),
        ("members[].project.domain", "domains"),
    )
    mapped_facts = ("checksum",)
    moves_data = True
    data_params = frozenset({"data"})  # other bytes: a new upload

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
        out = []
        for image in list_images(ctx.conn, owner=ctx.project_id, visibility="all"):
            members = []
            if image.get("visibility") == "shared":
                for member in rest(ctx.conn.image, "get", f"/images/{image['id']}/members").json()[
                    "members"
                ]:
                    members.append(
                        {
                            "project": project_identity(ctx, member["member_id"]),
                            "status": member["status"],
                        }
                    )
            active = image.get("status") == "active"
            params = {
                "disk_format": image.get("disk_format"),
                "container_format": image.get("container_format"),
                "min_disk": image.get("min_disk") or 0,
                "min_ram": image.get("min_ram") or 0,
                "protected": bool(image.get("protected")),
                "hidden": bool(image.get("os_hidden")),
                "visibility": image.get("visibility"),
                "tags": without_marker(image.get("tags")),
                "properties": custom_properties(image),
                "members": sorted(
                    members, key=lambda m: (m["project"]["domain"], m["project"]["name"])
                ),
                "data": Fingerprint.of(image).as_params() if active else None,
            }
            out.append(
                self.resource(
                    {"name": image.get("name") or ""},
                    params,
                    image["id"],
                    ctx,
                    status=image.get("status"),
                    size=image.get("size") or 0,
                    checksum=image.get("checksum"),
                    ours="stackferry" in (image.get("tags") or []),
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

    def conflicting(self, changed: set[str], current: Resource) -> set[str]:
        if current.params.get("data") is None and current.facts.get("ours"):
            return set()  # our own upload, interrupted: it is replaced
        return changed & self.immutable

    def create(self, ctx: Context, resource: Resource) -> str:
        """The image gets an ID chosen here and is recorded as a temporary before it exists:
        whatever interrupts it (an error, a kill), the half-made image is deleted, by this
        run or the next. It is kept once its bytes verified, and protected only after that."""
        if ctx.temporaries is None:
            raise RuntimeError("images are only created by apply, which records temporaries")
        p = resource.params
        image_id = str(uuid.uuid4())
        body: dict[str, Any] = {
            **p.get("properties", {}),
            "id": image_id,
            "name": resource.identity["name"],
            "disk_format": p.get("disk_format"),
            "container_format": p.get("container_format"),
            "min_disk": p.get("min_disk", 0),
            "min_ram": p.get("min_ram", 0),
            "visibility": p["visibility"],
            "os_hidden": p.get("hidden", False),
            "tags": with_marker(p),
            "owner": ctx.project_id,
        }
        key = temporary_key(image_id)
        ctx.temporaries.record(
            key, f"image {resource.label} until verified", "image_id", {"id": image_id}
        )
        rest(ctx.conn.image, "post", "/images", json=body)
        try:
            if p.get("data") is not None:
                self._transfer(ctx, resource, image_id)
            self._set_members(ctx, image_id, p.get("members", []), [])
        except TransferError:
            ctx.temporaries.undo(key)  # the bad copy goes now, not at the end of the run
            raise
        ctx.temporaries.keep(key)
        if p.get("protected"):
            self._patch(ctx, image_id, [{"op": "replace", "path": "/protected", "value": True}])
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
            kind="image",
            name=resource.identity["name"],
            source_id=resource.id,
            disk_format=disk_format,
        )

    def converge(self, ctx: Context, resource: Resource, current: Resource, made_here: bool) -> str:
        """An image brought in line (its bytes equal the source's, or it was replaced) is the
        real one: the end of the run must not delete it as a temporary, whichever answer was
        lost on the way (the upload's, the members', ...)."""
        image_id = super().converge(ctx, resource, current, made_here)
        if ctx.temporaries is not None:
            ctx.temporaries.keep(temporary_key(image_id))
        return image_id

    def update(
        self, ctx: Context, resource: Resource, current: Resource, changed: set[str]
    ) -> None:
        if "data" in changed:
            # An interrupted upload of ours (see ``conflicting``): start the image again.
            image_id = current.cloud_id
            if get_image(ctx.conn, image_id).get("protected"):
                unprotect = [{"op": "replace", "path": "/protected", "value": False}]
                self._patch(ctx, image_id, unprotect)
            rest(ctx.conn.image, "delete", f"/images/{image_id}")
            new_id = self.create(ctx, resource)
            ctx.ids.add(self.name, new_id, resource.identity)
            return
        p, have = resource.params, current.params
        ops: list[dict[str, Any]] = []
        simple = {"min_disk": "min_disk", "min_ram": "min_ram", "visibility": "visibility",
                  "hidden": "os_hidden", "protected": "protected"}  # fmt: skip
        for param, attr in simple.items():
            if param in changed:
                ops.append({"op": "replace", "path": f"/{attr}", "value": p.get(param)})
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
        if ops:
            self._patch(ctx, current.cloud_id, ops)
        if "members" in changed:
            self._set_members(ctx, current.cloud_id, p.get("members", []), have.get("members", []))

    def _patch(self, ctx: Context, image_id: str, ops: list[dict[str, Any]]) -> None:
        rest(
            ctx.conn.image,
            "patch",
            f"/images/{image_id}",
            json=ops,
            headers={"Content-Type": "application/openstack-images-v2.1-json-patch"},
        )

    def _set_members(
        self,
        ctx: Context,
        image_id: str,
        want: list[dict[str, Any]],
        have: list[dict[str, Any]],
    ) -> None:
        had = {project_id_of(ctx, m["project"]): m["status"] for m in have}
        wanted = {project_id_of(ctx, m["project"]): m["status"] for m in want}
        for project_id in sorted(set(had) - set(wanted)):
            rest(ctx.conn.image, "delete", f"/images/{image_id}/members/{project_id}")
        for project_id, status in sorted(wanted.items()):
            if project_id not in had:
                rest(
                    ctx.conn.image,
                    "post",
                    f"/images/{image_id}/members",
                    json={"member": project_id},
                )
            if had.get(project_id, "pending") != status:
                rest(
                    ctx.conn.image,
                    "put",
                    f"/images/{image_id}/members/{project_id}",
                    json={"status": status},
                )


def temporary_key(image_id: str) -> str:
    """The journal key of an image recorded as a temporary until its bytes verified."""
    return f"image:{image_id}"


def safe_name(resource: Resource, extension: str) -> str:
    """An archive file name: the resource's name made file-safe, and its source ID, since
    names may hold any character and two names may clean up alike."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in resource.label)
    return f"{cleaned.strip('.') or 'unnamed'}__{resource.id}.{extension}"
