"""The set of kinds a run works with, in dependency order."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Sequence

from stackferry.engine.context import Tenant
from stackferry.engine.kind import Kind
from stackferry.engine.model import Resource, identity_key
from stackferry.errors import StackferryError


class Registry:
    def __init__(self, kinds: Iterable[Kind]) -> None:
        self._kinds = {k.name: k for k in kinds}
        self.ordered: list[Kind] = self._topological()

    def __getitem__(self, name: str) -> Kind:
        return self._kinds[name]

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    @property
    def tenant_kind(self) -> Kind | None:
        """The kind whose resource is the tenant (the project), if this set has one."""
        return next((k for k in self.ordered if k.defines_tenant), None)

    def tenant_key(self, tenant: Tenant) -> str | None:
        kind = self.tenant_kind
        return (
            identity_key(kind.name, kind.tenant_identity(tenant.name, tenant.domain))
            if kind
            else None
        )

    def mapping_tables(self) -> list[str]:
        """Every table of the mapping file some kind uses."""
        return sorted({t for k in self._kinds.values() for t in k.mapping_tables()})

    @property
    def names(self) -> list[str]:
        return [k.name for k in self.ordered]

    def by_plural(self, plural: str) -> Kind | None:
        return next((k for k in self.ordered if k.plural == plural), None)

    def dependencies(self, kind: Kind) -> set[str]:
        """Declared dependencies, plus the tenant's kind for every kind living in the tenant."""
        tenant_kinds = {k.name for k in self._kinds.values() if k.defines_tenant}
        extra = tenant_kinds - {kind.name} if kind.in_project else set()
        return (kind.depends_on() | extra) & self._kinds.keys()

    def _topological(self) -> list[Kind]:
        declared = list(self._kinds.values())
        done: list[Kind] = []
        placed: set[str] = set()
        while len(done) < len(declared):
            ready = [k for k in declared if k.name not in placed and self.dependencies(k) <= placed]
            if not ready:
                cycle = sorted(k.name for k in declared if k.name not in placed)
                raise StackferryError(f"kinds depend on each other in a cycle: {cycle}")
            for kind in ready:
                done.append(kind)
                placed.add(kind.name)
        return done

    def select(self, only: Sequence[str] = (), skip: Sequence[str] = ()) -> list[Kind]:
        """Kinds chosen with --only/--skip (names or plurals), plus the lookups they need;
        ``KIND:PATTERN`` chooses its kind for --only and leaves it in for --skip (see
        ``selected_resources``).
        The tenant itself (and what it needs, its domain) comes along with --only, so that a
        selection can still be applied to a destination where the tenant does not exist yet;
        --skip leaves it out explicitly."""
        only, skip = [_kind_of(n) for n in only], [n for n in skip if ":" not in n]
        unknown = [n for n in [*only, *skip] if n not in self._kinds and not self.by_plural(n)]
        if unknown:
            raise StackferryError(
                f"unknown kind(s) {', '.join(unknown)}; known: {', '.join(self.names)}"
            )

        def norm(names: Sequence[str]) -> set[str]:
            return {n if n in self._kinds else self.by_plural(n).name for n in names}  # type: ignore[union-attr]

        both = sorted(norm(only) & norm(skip))
        if both:
            raise StackferryError(
                f"{', '.join(both)} given to both --only and --skip: say which one you mean"
            )

        chosen = norm(only) if only else set(self._kinds)
        if only:
            for kind in self._kinds.values():
                if kind.defines_tenant:
                    chosen |= {kind.name} | self.dependencies(kind)
        chosen -= norm(skip)
        return [k for k in self.ordered if k.name in chosen or k.lookup_only]

    def selected_resources(
        self, only: Sequence[str] = (), skip: Sequence[str] = ()
    ) -> Callable[[Resource], bool]:
        """Which resources of the chosen kinds stay: ``--only KIND:PATTERN`` keeps those of
        KIND whose name matches (shell wildcards; e.g. ``quotas:compute``: one service's
        limits), ``--skip KIND:PATTERN`` leaves them out; other kinds keep all."""
        self.select(only, skip)  # unknown kinds are refused as for --only/--skip

        def patterns(entries: Sequence[str], plain_means_all: bool) -> dict[str, list[str]]:
            found: dict[str, list[str]] = {}
            whole = {self._name(_kind_of(e)) for e in entries if ":" not in e}
            for entry in entries:
                kind, _, pattern = entry.partition(":")
                name = self._name(kind)
                if pattern and not (plain_means_all and name in whole):
                    found.setdefault(name, []).append(pattern)
            return found

        keep_only, leave = patterns(only, True), patterns(skip, False)

        def keeps(resource: Resource) -> bool:
            label = resource.label
            wanted = keep_only.get(resource.kind)
            if wanted and not any(fnmatch.fnmatchcase(label, p) for p in wanted):
                return False
            return not any(fnmatch.fnmatchcase(label, p) for p in leave.get(resource.kind, []))

        return keeps

    def _name(self, name_or_plural: str) -> str:
        kind = self._kinds.get(name_or_plural) or self.by_plural(name_or_plural)
        return kind.name if kind else name_or_plural


def _kind_of(entry: str) -> str:
    """The kind of a --only/--skip entry: ``quotas`` or ``quotas:compute``."""
    return entry.partition(":")[0]
