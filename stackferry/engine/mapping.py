"""The mapping file: what is named differently in the destination cloud.

Its tables are the ones the kinds declare (``stackferry schema`` lists them); today:

    projects: {old-name: new-name}
    domains: {old-name: new-name}
    users: {old-name-or-source-ID: new-name}   # identity backend changed
    flavors: {old-name-or-source-ID: new-name}
    external_networks: {old-name: new-name}
    availability_zones: {old: new}
    volume_types: {old: new}
    adopt: [KIND, KIND:NAME-PATTERN, ...]     # like --adopt: destination resources that
                                              # stackferry did not make, to manage anyway
    new_macs: true                            # like --new-mac: ports get MAC addresses of
                                              # their own (one per source MAC, always the same)
    boot_from_volume: true                    # like --boot-from-volume: image-backed servers
                                              # boot from a new volume holding their root disk

A kind names the table that renames its own resources (``mapping_category``; a table's keys
may be names or the resources' source IDs) and the tables that rename its plain values
(fields' ``mapping``). An identity's field named like a kind ("domain", "project", "user")
is renamed with that kind's table. The engine applies all of it to the workdir's resources
before planning.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from stackferry.engine.context import Tenant
from stackferry.engine.kind import get_ref, iter_ref_values, set_ref
from stackferry.engine.model import Resource
from stackferry.engine.registry import Registry
from stackferry.errors import WorkdirError

# The mapping's switches: what they change is the kinds' (``Kind.remapped_by``).
SWITCHES = ("new_macs", "boot_from_volume")


def mapping_schema(registry: Registry) -> dict[str, Any]:
    """The mapping file's JSON Schema, from the tables the kinds declare."""
    table = {"type": "object", "additionalProperties": {"type": "string"}}
    return {
        "type": "object",
        "properties": {
            **{name: table for name in registry.mapping_tables()},
            "adopt": {"type": "array", "items": {"type": "string", "minLength": 1}},
            **{name: {"type": "boolean"} for name in SWITCHES},
        },
        "additionalProperties": False,
    }


class Mapping:
    def __init__(
        self,
        registry: Registry,
        tables: dict[str, Any] | None = None,
        switches: frozenset[str] = frozenset(),
    ) -> None:
        self.registry = registry
        self.tables: dict[str, dict[str, str]] = {
            c: dict((tables or {}).get(c, {})) for c in registry.mapping_tables()
        }
        self.adopt: list[str] = list((tables or {}).get("adopt", []))
        self.switches = switches | {s for s in SWITCHES if (tables or {}).get(s) is True}

    @classmethod
    def load(
        cls, path: Path | None, registry: Registry, switches: frozenset[str] = frozenset()
    ) -> Mapping:
        """The mapping file (none: nothing renamed), with switches given on the command line."""
        if path is None:
            return cls(registry, switches=switches)
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise WorkdirError(f"mapping file {path}: {exc}") from None
        validator = jsonschema.Draft202012Validator(mapping_schema(registry))
        errors = list(validator.iter_errors(document))
        if errors:
            raise WorkdirError(
                "\n".join(
                    f"mapping file {path}: {'.'.join(map(str, e.absolute_path)) or 'top level'}: "
                    f"{e.message}"
                    for e in errors
                )
            )
        return cls(registry, document, switches)

    def rename(self, category: str, value: Any, *aliases: str | None) -> Any:
        table = self.tables[category]
        for key in (value, *aliases):
            if isinstance(key, str) and key in table:
                return table[key]
        return value

    def tenant(self, tenant: Tenant) -> Tenant:
        kind = self.registry.tenant_kind
        if kind is None:
            return tenant
        identity = self._identity(kind.name, kind.tenant_identity(tenant.name, tenant.domain))
        return kind.tenant_named(identity)

    def apply(self, resources: dict[str, list[Resource]]) -> dict[str, list[Resource]]:
        """Renamed copies of the workdir's resources, as they should be in the destination."""
        registry = self.registry
        for kind_name, items in resources.items():
            category = registry[kind_name].mapping_category
            if category is None:
                continue
            table = self.tables[category]
            for resource in items:  # a table may name a resource by its source ID
                new = table.get(str(resource.facts.get("id")))
                if new is not None:
                    table.setdefault(resource.identity["name"], new)
        out: dict[str, list[Resource]] = {}
        for kind_name, items in resources.items():
            kind = registry[kind_name]
            mapped = []
            for resource in items:
                r = Resource(
                    kind_name,
                    self._identity(kind_name, copy.deepcopy(resource.identity)),
                    copy.deepcopy(resource.params),
                    dict(resource.facts),
                )
                renamed = r.identity.get("name") != resource.identity.get("name")
                if renamed and kind.renamed_exists:
                    # One the destination has already: used as it is, never managed.
                    r.facts["mapped_from"] = resource.identity.get("name")
                for ref in kind.refs:
                    for container, key in list(iter_ref_values(r.params, ref.path)):
                        value = get_ref(container, key)
                        if isinstance(value, dict):
                            set_ref(container, key, self._identity(ref.kind, value))
                for path, category in kind.mapped_values:
                    for container, key in list(iter_ref_values(r.params, path)):
                        set_ref(container, key, self.rename(category, get_ref(container, key)))
                if kind.remapped_by & self.switches:
                    kind.remap_params(resource.identity, r, self.switches)
                mapped.append(r)
            out[kind_name] = mapped
        return out

    def _identity(self, kind_name: str, identity: dict[str, Any]) -> dict[str, Any]:
        """An identity renamed: its name by its kind's table, and each field named like a
        kind by that kind's (recursively for references written as identities)."""
        registry = self.registry
        if kind_name in registry and registry[kind_name].remapped_by & self.switches:
            registry[kind_name].remap_identity(identity, self.switches)
        for field, value in list(identity.items()):
            target = kind_name if field == "name" else field
            if target not in registry:
                continue
            if isinstance(value, dict):
                identity[field] = self._identity(target, value)
                continue
            category = registry[target].mapping_category
            if category:
                identity[field] = self.rename(category, value)
        return identity
