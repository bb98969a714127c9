"""Reading one cloud: every kind of a set, the one way export, plan and verify read.

Kinds are read concurrently, each as soon as the kinds it depends on are read (their IDs are
what it translates its references with). The tenant's ID is learnt from its kind as soon as
that is read; kinds whose service the cloud lacks are refused or, when optional, left out with
a note; what a kind ``claims`` is taken out of the kinds it claims from."""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from stackferry.engine.context import Context
from stackferry.engine.kind import Kind
from stackferry.engine.model import Resource
from stackferry.engine.registry import Registry
from stackferry.errors import StackferryError

# Listings at once: a tenant's reads are a few dozen GETs, each mostly waiting on the cloud.
READERS = 8


def read_cloud(
    kinds: list[Kind], ctx: Context, desired: dict[str, list[Resource]] | None = None
) -> dict[str, list[Resource]]:
    """Every resource of ``kinds`` in ctx's cloud; and, for ``desired`` resources the
    tenant-wide read does not see, whatever exists under their identity (``Kind.find``)."""
    order = Registry(kinds)
    found: dict[str, list[Resource]] = {}
    waiting = list(order.ordered)
    with ThreadPoolExecutor(READERS, thread_name_prefix="read") as pool:
        reading: dict[Future[list[Resource]], Kind] = {}
        while waiting or reading:
            for kind in [k for k in waiting if order.dependencies(k) <= found.keys()]:
                waiting.remove(kind)
                reading[pool.submit(_read_kind, kind, ctx, desired or {})] = kind
            finished, _ = wait(reading, return_when=FIRST_COMPLETED)
            for future in finished:
                kind = reading.pop(future)
                try:
                    found[kind.name] = future.result()
                except BaseException:
                    waiting.clear()
                    for pending in reading:
                        pending.cancel()
                    raise
    for kind in kinds:
        for other in kind.claims:
            owned = {i for r in found.get(kind.name, []) for i in kind.claimed(r)}
            if owned and other in found:
                found[other] = [r for r in found[other] if r.id not in owned]
    return {k.name: found.get(k.name, []) for k in kinds}


def _read_kind(kind: Kind, ctx: Context, desired: dict[str, list[Resource]]) -> list[Resource]:
    where = f"cloud {ctx.label}" if ctx.label else "the cloud"
    if kind.in_project and ctx.tenant.id is None:
        return []  # the tenant does not exist here (yet): nothing of it can
    if kind.service and not ctx.conn.has_service(kind.service):
        if not kind.optional_service:
            raise StackferryError(
                f"{where} has no {kind.service} service, which {kind.plural} need: "
                f"--skip {kind.plural}"
            )
        ctx.notes.append(f"{where} has no {kind.service} service: {kind.plural} left out")
        return []
    try:
        items = kind.read(ctx)
    except LookupError as exc:
        raise StackferryError(
            f"reading {kind.plural} in {where}: {exc}: it references something outside "
            f"the tenant that stackferry does not move; --skip {kind.plural} or --exclude it"
        ) from None
    seen = {r.key for r in items}
    unseen = [r for r in desired.get(kind.name, []) if r.key not in seen]
    if unseen:
        items += [r for r in kind.find(ctx, unseen) if r.key not in seen]
    if kind.defines_tenant:  # before any kind of the tenant starts: they wait for this one
        ctx.tenant.id = ctx.ids.id(
            kind.name, kind.tenant_identity(ctx.tenant.name, ctx.tenant.domain)
        )
    return items
