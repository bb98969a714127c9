"""An in-memory 'cloud' and two tiny kinds, for testing the engine's pure logic.

Only the engine's own behaviour is tested with these; every kind is tested on the real lab.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from openstack import exceptions

from stackferry.engine.context import Context, Tenant
from stackferry.engine.kind import Kind, RefSpec
from stackferry.engine.model import Resource


class FakeCloud:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}  # id -> {"kind", "identity", "params"}
        self.ids = itertools.count(1)
        self.lock = threading.Lock()
        self.writes = 0
        self.fail_create: set[str] = set()  # names whose create raises
        self.transient_once: set[str] = set()  # names whose first create raises 503 after creating

    def add(
        self, kind: str, identity: dict[str, Any], params: dict[str, Any], ours: bool = True
    ) -> str:
        """An object; ``ours=False`` for one the operator made (no stackferry marker on it)."""
        with self.lock:
            new_id = f"id-{next(self.ids)}"
            self.objects[new_id] = {
                "kind": kind,
                "identity": identity,
                "params": params,
                "ours": ours,
            }
            return new_id

    def of_kind(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        return [(i, o) for i, o in self.objects.items() if o["kind"] == kind]


class FakeKind(Kind):
    in_project = False
    immutable = frozenset({"size"})

    def __init__(self, cloud: FakeCloud, barrier: threading.Barrier | None = None) -> None:
        self.cloud = cloud
        self.barrier = barrier

    def read(self, ctx: Context) -> list[Resource]:
        return [
            self.resource(o["identity"], dict(o["params"]), i, ctx, ours=o["ours"])
            for i, o in self.cloud.of_kind(self.name)
        ]

    def create(self, ctx: Context, resource: Resource) -> str:
        for ref in self.refs:
            value = resource.params.get(ref.path)
            if value is not None:
                ctx.resolve(ref.kind, value)  # raises if the dependency does not exist yet
        if self.barrier is not None:
            self.barrier.wait(timeout=10)
        name = resource.identity["name"]
        if name in self.cloud.fail_create:
            raise RuntimeError(f"cannot create {name}")
        self.cloud.writes += 1
        new_id = self.cloud.add(self.name, resource.identity, dict(resource.params))
        if name in self.cloud.transient_once:
            self.cloud.transient_once.discard(name)
            raise exceptions.HttpException(
                message="503 after the object was created", http_status=503
            )
        return new_id

    def update(
        self, ctx: Context, resource: Resource, current: Resource, changed: set[str]
    ) -> None:
        self.cloud.writes += 1
        self.cloud.objects[current.cloud_id]["params"] = dict(resource.params)

    def delete(self, ctx: Context, current: Resource) -> None:
        self.cloud.writes += 1
        del self.cloud.objects[current.cloud_id]


class Box(FakeKind):
    name = "box"
    plural = "boxes"
    params_schema = {
        "type": "object",
        "properties": {"size": {"type": "integer"}, "colour": {"type": "string"}},
    }


class Item(FakeKind):
    """Lives in a box; destination-only items inside a migrated box are pruned."""

    name = "item"
    plural = "items"
    identity_fields = ("box", "name")
    params_schema = {"type": "object", "properties": {"box": {"type": "object"}}}
    refs = (RefSpec("box", "box"),)
    prune_within = "box"


def context(cloud: FakeCloud) -> Context:
    del cloud
    return Context(conn=None, tenant=Tenant("t", "d"))  # type: ignore[arg-type]


class ConnKind(Kind):
    """A kind whose cloud is the context's connection (a FakeCloud), so that one registry
    reads two clouds, as verify and finish --retire-source do. Its resources carry the
    marker while ``ours``; ``delete`` of one that is gone says 404, as the clouds do."""

    in_project = False

    @staticmethod
    def cloud_of(ctx: Context) -> FakeCloud:
        return ctx.conn  # type: ignore[return-value]

    def read(self, ctx: Context) -> list[Resource]:
        return [
            self.resource(o["identity"], dict(o["params"]), i, ctx, ours=o["ours"])
            for i, o in self.cloud_of(ctx).of_kind(self.name)
        ]

    def delete(self, ctx: Context, current: Resource) -> None:
        cloud = self.cloud_of(ctx)
        with cloud.lock:
            if current.cloud_id not in cloud.objects:
                raise exceptions.NotFoundException(message="gone", http_status=404)
            cloud.writes += 1
            del cloud.objects[current.cloud_id]

    def marked(self, current: Resource) -> bool:
        return bool(current.facts.get("ours"))

    def unmark(self, ctx: Context, current: Resource) -> None:
        cloud = self.cloud_of(ctx)
        cloud.writes += 1
        cloud.objects[current.cloud_id]["ours"] = False
