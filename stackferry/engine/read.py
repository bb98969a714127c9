"""Reading one cloud: every kind of a set, in dependency order, the one way export, plan and
verify read. The tenant's ID is learnt from its kind as soon as that is read; kinds whose
service the cloud lacks are refused or, when optional, left out with a note; what a kind
``claims`` is taken out of the kinds it claims from."""

from __future__ import annotations

from stackferry.engine.context import Context
from stackferry.engine.kind import Kind
from stackferry.engine.model import Resource
from stackferry.errors import StackferryError


def read_cloud(
    kinds: list[Kind], ctx: Context, desired: dict[str, list[Resource]] | None = None
) -> dict[str, list[Resource]]:
    """Every resource of ``kinds`` in ctx's cloud; and, for ``desired`` resources the
    tenant-wide read does not see, whatever exists under their identity (``Kind.find``)."""
    where = f"cloud {ctx.label}" if ctx.label else "the cloud"
    found: dict[str, list[Resource]] = {}
    for kind in kinds:
        found[kind.name] = []
        if kind.in_project and ctx.tenant.id is None:
            continue  # the tenant does not exist here (yet): nothing of it can
        if kind.service and not ctx.conn.has_service(kind.service):
            if not kind.optional_service:
                raise StackferryError(
                    f"{where} has no {kind.service} service, which {kind.plural} need: "
                    f"--skip {kind.plural}"
                )
            ctx.notes.append(f"{where} has no {kind.service} service: {kind.plural} left out")
            continue
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
        found[kind.name] = items
        if kind.defines_tenant:
            ctx.tenant.id = ctx.ids.id(
                kind.name, kind.tenant_identity(ctx.tenant.name, ctx.tenant.domain)
            )
    for kind in kinds:
        for other in kind.claims:
            owned = {i for r in found.get(kind.name, []) for i in kind.claimed(r)}
            if owned and other in found:
                found[other] = [r for r in found[other] if r.id not in owned]
    return found
