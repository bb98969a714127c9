"""The mapping file: what is named differently in the destination cloud.

    projects: {old-name: new-name}
    domains: {old-name: new-name}
    users: {old-user-id-or-name: new-name}    # identity backend changed
    external_networks: {old-name: new-name}
    availability_zones: {old: new}
    volume_types: {old: new}
    flavors: {old: new}
    adopt: [KIND, KIND:NAME-PATTERN, ...]     # like --adopt: destination resources that
                                              # stackferry did not make, to manage anyway

Kinds say which of their names a category renames (``mapping_category`` for a kind's own
name, ``mapped_values`` for plain params); identities' ``project`` and ``domain`` fields are
renamed everywhere. The engine applies it to the workdir's resources before planning.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from stackferry.engine.model import Resource
from stackferry.engine.registry import Registry
from stackferry.errors import WorkdirError
from stackferry.kinds.base import Tenant, get_ref, iter_ref_values, set_ref

CATEGORIES = (
    "projects",
    "domains",
    "users",
    "external_networks",
    "availability_zones",
    "volume_types",
    "flavors",
)
MAPPING_SCHEMA = {
    "type": "object",
    "properties": {
        **{c: {"type": "object", "additionalProperties": {"type": "string"}} for c in CATEGORIES},
        "adopt": {"type": "array", "items": {"type": "string", "minLength": 1}},
    },
    "additionalProperties": False,
}


class Mapping:
    def __init__(self, tables: dict[str, Any] | None = None) -> None:
        self.tables: dict[str, dict[str, str]] = {
            c: dict((tables or {}).get(c, {})) for c in CATEGORIES
        }
        self.adopt: list[str] = list((tables or {}).get("adopt", []))

    @classmethod
    def load(cls, path: Path | None) -> Mapping:
        if path is None:
            return cls()
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise WorkdirError(f"mapping file {path}: {exc}") from None
        errors = list(jsonschema.Draft202012Validator(MAPPING_SCHEMA).iter_errors(document))
        if errors:
            raise WorkdirError(
                "\n".join(
                    f"mapping file {path}: {'.'.join(map(str, e.absolute_path)) or 'top level'}: "
                    f"{e.message}"
                    for e in errors
                )
            )
        return cls(document)

    def rename(self, category: str, value: Any, *aliases: str | None) -> Any:
        table = self.tables[category]
        for key in (value, *aliases):
            if isinstance(key, str) and key in table:
                return table[key]
        return value

    def tenant(self, tenant: Tenant) -> Tenant:
        return Tenant(self.rename("projects", tenant.name), self.rename("domains", tenant.domain))

    def apply(
        self, registry: Registry, resources: dict[str, list[Resource]]
    ) -> dict[str, list[Resource]]:
        """Renamed copies of the workdir's resources, as they should be in the destination."""
        # A user may be mapped by its source ID: turn those keys into names first.
        user_kind = next(
            (k for k in registry.ordered if getattr(k, "mapping_category", None) == "users"), None
        )
        if user_kind:
            for user in resources.get(user_kind.name, []):
                new = self.tables["users"].get(str(user.facts.get("id")))
                if new is not None:
                    self.tables["users"].setdefault(user.identity["name"], new)
        out: dict[str, list[Resource]] = {}
        for kind_name, items in resources.items():
            kind = registry[kind_name]
            mapped = []
            for resource in items:
                r = Resource(
                    kind_name,
                    self._identity(kind_name, registry, copy.deepcopy(resource.identity)),
                    copy.deepcopy(resource.params),
                    dict(resource.facts),
                )
                category = getattr(kind, "mapping_category", None)
                # Projects and domains are created under their new names; anything else mapped
                # (users, flavors...) is one the destination already has: used, not managed.
                if category not in (None, "projects", "domains") and r.identity.get(
                    "name"
                ) != resource.identity.get("name"):
                    r.facts["mapped_from"] = resource.identity.get("name")
                for ref in kind.refs:
                    for container, key in list(iter_ref_values(r.params, ref.path)):
                        value = get_ref(container, key)
                        if isinstance(value, dict):
                            set_ref(container, key, self._identity(ref.kind, registry, value))
                for path, category in getattr(kind, "mapped_values", ()):
                    for container, key in list(iter_ref_values(r.params, path)):
                        set_ref(container, key, self.rename(category, get_ref(container, key)))
                mapped.append(r)
            out[kind_name] = mapped
        return out

    def _identity(
        self, kind_name: str, registry: Registry, identity: dict[str, Any]
    ) -> dict[str, Any]:
        category = (
            getattr(registry[kind_name], "mapping_category", None)
            if kind_name in registry
            else None
        )
        for field, value in list(identity.items()):
            if isinstance(value, dict):
                target = {
                    "user": "user",
                    "group": "group",
                    "project": "project",
                    "domain": "domain",
                }.get(field, "")
                identity[field] = self._identity(target, registry, value)
            elif field == "domain":
                identity[field] = self.rename("domains", value)
            elif field == "project":
                identity[field] = self.rename("projects", value)
            elif field == "name" and category:
                identity[field] = self.rename(category, value)
        return identity
