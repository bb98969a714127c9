"""Nova keypairs of the tenant's users: the public half only (nova keeps no private keys).

Read with one list call per user (``user_id``, admin) and created for that user (compute
microversion 2.10). A keypair cannot change in place: a different key under the same name
is a conflict.
"""

from __future__ import annotations

from urllib.parse import quote

from stackferry.cloud.connection import rest
from stackferry.engine.context import Context
from stackferry.engine.formats import NAME
from stackferry.engine.kind import Field, Kind
from stackferry.engine.model import Resource

MICROVERSION = "2.10"  # keypairs of other users (user_id)


class Keypair(Kind):
    name = "keypair"
    plural = "keypairs"
    description = "Nova keypairs (public keys) of the tenant's users"
    identity_fields = ("user", "name")
    identity_schema = {"user": {"type": "object"}, "name": {**NAME, "minLength": 1}}
    fields = (
        Field(
            "user",
            {"type": "object"},
            attr=None,
            wire="user_id",
            ref="user",
            required=True,
            immutable=True,
        ),
        Field(
            "public_key",
            {"type": "string", "format": "public-key"},
            required=True,
            immutable=True,
        ),
        Field("type", {"enum": ["ssh", "x509"]}, default="ssh", immutable=True),
    )
    in_project = False
    mapped_facts = ("fingerprint",)
    retire = True

    def read(self, ctx: Context) -> list[Resource]:
        out = []
        for user_id, user in sorted(ctx.ids.of_kind("user"), key=lambda u: u[0]):
            for k in ctx.conn.compute.keypairs(user_id=user_id):
                params = {**self.params_of(ctx, k), "user": dict(user)}
                out.append(
                    self.resource(
                        {"user": dict(user), "name": k.name},
                        params,
                        f"{user_id}/{k.name}",
                        ctx,
                        fingerprint=k.fingerprint,
                    )
                )
        return out

    def create(self, ctx: Context, resource: Resource) -> str:
        body = self.create_body(ctx, resource.params)
        keypair = ctx.conn.compute.create_keypair(name=resource.identity["name"], **body)
        return f"{body['user_id']}/{keypair.name}"

    def update(
        self, ctx: Context, resource: Resource, current: Resource, changed: set[str]
    ) -> None:
        raise NotImplementedError("keypairs cannot change in place")

    def delete(self, ctx: Context, current: Resource) -> None:
        """Another user's keypair, as an admin: by name and user (compute 2.10)."""
        user_id, _, name = current.cloud_id.partition("/")
        path = f"/os-keypairs/{quote(name, safe='')}?user_id={quote(user_id, safe='')}"
        rest(ctx.conn.compute, "delete", path, microversion=MICROVERSION)
