"""Reading one cloud: every kind of a set, each once what it references is read, many at
once, the one way export, plan and verify read. The tenant's ID is learnt from its kind as
soon as that is read; kinds whose service the cloud lacks are refused or, when optional,
left out with a note; what a kind ``claims`` is taken out of the kinds it claims from."""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from stackferry.engine.context import Context
from stackferry.engine.kind import Kind
from stackferry.engine.model import Resource
from stackferry.errors import StackferryError

READ_CONCURRENCY = 8  # list calls in flight at once against one cloud


def read_cloud(
    kinds: list[Kind], ctx: Context, desired: dict[str, list[Resource]] | None = None
) -> dict[str, list[Resource]]:
    """Every resource of ``kinds`` in ctx's cloud; and, for ``desired`` resources the
    tenant-wide read does not see, whatever exists under their identity (``Kind.find``).

    Each kind is read as soon as the kinds it references are (their IDs are in ``ctx.ids``
    then, and the tenant's ID once its kind is read), up to READ_CONCURRENCY at once: the
    wall time follows the depth of the dependencies, not the number of kinds."""
    where = f"cloud {ctx.label}" if ctx.label else "the cloud"
    names = {k.name for k in kinds}
    tenant_kinds = {k.name for k in kinds if k.defines_tenant}
    needs = {
        k.name: (k.depends_on() | (tenant_kinds - {k.name} if k.in_project else set())) & names
        for k in kinds
    }
    found: dict[str, list[Resource]] = {k.name: [] for k in kinds}
    done: set[str] = set()
    waiting = list(kinds)
    running: dict[Future[list[Resource]], Kind] = {}
    with ThreadPoolExecutor(READ_CONCURRENCY, thread_name_prefix="read") as pool:
        try:
            while waiting or running:
                ready = [k for k in waiting if needs[k.name] <= done]
                for kind in ready:
                    waiting.remove(kind)
                    if _readable(kind, ctx, where):
                        running[pool.submit(_read_kind, kind, ctx, where, desired)] = kind
                    else:
                        done.add(kind.name)
                if not running:
                    if not ready:
                        raise RuntimeError(f"kinds wait on each other: {needs}")
                    continue  # what was ready was not readable: more may be ready now
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    kind = running.pop(future)
                    found[kind.name] = future.result()
                    done.add(kind.name)
                    if kind.defines_tenant:
                        ctx.tenant.id = ctx.ids.id(
                            kind.name, kind.tenant_identity(ctx.tenant.name, ctx.tenant.domain)
                        )
        except BaseException:
            for future in running:
                future.cancel()
            raise
    for kind in kinds:
        for other in kind.claims:
            owned = {i for r in found.get(kind.name, []) for i in kind.claimed(r)}
            if owned and other in found:
                found[other] = [r for r in found[other] if r.id not in owned]
    return found


def _readable(kind: Kind, ctx: Context, where: str) -> bool:
    """Whether this cloud can have the kind's resources: the tenant exists here, and the
    service (refused when missing, left out with a note when optional)."""
    if kind.in_project and ctx.tenant.id is None:
        return False  # the tenant does not exist here (yet): nothing of it can
    if kind.service and not ctx.conn.has_service(kind.service):
        if not kind.optional_service:
            raise StackferryError(
                f"{where} has no {kind.service} service, which {kind.plural} need: "
                f"--skip {kind.plural}"
            )
        ctx.notes.append(f"{where} has no {kind.service} service: {kind.plural} left out")
        return False
    return True


def _read_kind(
    kind: Kind, ctx: Context, where: str, desired: dict[str, list[Resource]] | None
) -> list[Resource]:
    try:
        items = kind.read(ctx)
    except LookupError as exc:
        raise StackferryError(
            f"reading {kind.plural} in {where}: {exc}: it references something outside "
            f"the tenant that stackferry does not move; --skip {kind.plural} or --exclude it"
        ) from None
    seen = {r.key for r in items}
    unseen = [r for r in (desired or {}).get(kind.name, []) if r.key not in seen]
    if unseen:
        items += [r for r in kind.find(ctx, unseen) if r.key not in seen]
    return items
