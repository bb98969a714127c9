"""The workdir: readable, editable YAML, one file per kind, versioned and schema-checked.

Layout::

    WORKDIR/stackferry.yaml         format version, the tenant, where and when it was exported
    WORKDIR/resources/<kind>.yaml   the resources of one kind: identity, params, facts
    WORKDIR/journal.sqlite          what apply did (see journal.py)
    WORKDIR/reports/                plan, apply and verify reports

``params`` is the desired, portable state (compared for idempotence; edit it to change what
is created); ``facts`` are source-only details kept for the reports. Files are written
atomically with mode 0600. A file from an older format is upgraded on load; a file from a
newer stackferry is refused with a message saying so.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from stackferry.engine.context import Tenant
from stackferry.engine.formats import CHECKER
from stackferry.engine.kind import Kind
from stackferry.engine.model import Resource
from stackferry.engine.registry import Registry
from stackferry.errors import WorkdirError
from stackferry.files import write_atomic

FORMAT = 1
# Upgrades from an older format N to N+1, applied in order on load: {N: function(document)}.
UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}

MANIFEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["format", "tenant"],
    "properties": {
        "format": {"type": "integer", "minimum": 1},
        "tenant": {
            "type": "object",
            "required": ["name", "domain"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "domain": {"type": "string", "minLength": 1},
            },
        },
        "exported_from": {"type": "string"},
        "exported_at": {"type": "string"},
        "kinds": {"type": "array", "items": {"type": "string"}},
    },
}


def kind_file_schema(kind: Kind) -> dict[str, Any]:
    identity = {
        "type": "object",
        "required": list(kind.identity_fields),
        "properties": {
            f: kind.identity_schema.get(f, {"type": ["string", "object", "integer", "null"]})
            for f in kind.identity_fields
        },
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "required": ["format", "kind", "resources"],
        "properties": {
            "format": {"type": "integer", "minimum": 1},
            "kind": {"const": kind.name},
            "resources": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["identity", "params"],
                    "properties": {
                        "identity": identity,
                        "params": kind.params_schema,
                        "facts": {"type": "object"},
                    },
                    "additionalProperties": False,
                },
            },
        },
    }


def published_schema(registry: Registry) -> dict[str, Any]:
    """The JSON Schema of every workdir file, as ``stackferry schema`` prints it."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"stackferry workdir, format {FORMAT}",
        "manifest": MANIFEST_SCHEMA,
        "kinds": {k.plural: kind_file_schema(k) for k in registry.ordered if not k.lookup_only},
    }


class _PlainDumper(yaml.SafeDumper):
    """No ``&id001`` anchors: every value is written out where it is, for people to read."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _dump(document: dict[str, Any]) -> str:
    return yaml.dump(
        document, Dumper=_PlainDumper, sort_keys=False, default_flow_style=False, width=100
    )


def ensure_folder(root: Path, create: bool = True) -> None:
    """A workdir is a folder: a file in its place is named, not met as NotADirectoryError."""
    if root.exists() and not root.is_dir():
        raise WorkdirError(f"--workdir {root} is a file, not a folder: give a folder's path")
    if not create and not root.exists():
        raise WorkdirError(f"--workdir {root} does not exist (run `stackferry export` first?)")


@dataclass
class Workdir:
    root: Path
    tenant: Tenant | None = None
    resources: dict[str, list[Resource]] = field(default_factory=dict)
    # Files in resources/ that are no kind's of this workdir: ignored, and said so.
    unknown_files: list[str] = field(default_factory=list)

    @property
    def manifest_path(self) -> Path:
        return self.root / "stackferry.yaml"

    def kind_path(self, kind: Kind) -> Path:
        return self.root / "resources" / f"{kind.plural}.yaml"

    @property
    def journal_path(self) -> Path:
        return self.root / "journal.sqlite"

    @property
    def reports(self) -> Path:
        path = self.root / "reports"
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    def save(
        self, registry: Registry, tenant: Tenant, exported_from: str, kinds: list[Kind]
    ) -> None:
        """Write every kind file first and the manifest last: a workdir with a manifest is whole."""
        try:
            self._save(tenant, exported_from, kinds)
        except OSError as exc:
            raise WorkdirError(
                f"cannot write the workdir {self.root}: {exc.strerror or exc}"
                + (f" ({exc.filename})" if exc.filename else "")
            ) from None

    def check_writable(self) -> None:
        """Refuse before anything is done in a cloud if the journal and reports cannot be
        written: apply records each step before making it."""
        ensure_folder(self.root)
        probe = self.root / f".stackferry-probe-{os.getpid()}"
        try:
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise WorkdirError(
                f"the workdir {self.root} cannot be written ({exc.strerror}): apply records "
                "every step there before making it; give a --workdir on a writable file system"
            ) from None

    def _save(self, tenant: Tenant, exported_from: str, kinds: list[Kind]) -> None:
        ensure_folder(self.root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        for kind in kinds:
            if kind.lookup_only:
                continue
            items = [
                {"identity": r.identity, "params": r.params, "facts": r.facts}
                for r in self.resources.get(kind.name, [])
            ]
            write_atomic(
                self.kind_path(kind),
                _dump({"format": FORMAT, "kind": kind.name, "resources": items}),
            )
        manifest = {
            "format": FORMAT,
            "tenant": {"name": tenant.name, "domain": tenant.domain},
            "exported_from": exported_from,
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "kinds": [k.name for k in kinds if not k.lookup_only],
        }
        write_atomic(self.manifest_path, _dump(manifest))
        self.tenant = tenant

    @classmethod
    def load(cls, root: Path, registry: Registry) -> Workdir:
        """Read and validate everything; every problem is reported with file, resource, field."""
        ensure_folder(root, create=False)
        manifest = _load_document(root / "stackferry.yaml", MANIFEST_SCHEMA)
        workdir = cls(root, Tenant(manifest["tenant"]["name"], manifest["tenant"]["domain"]))
        problems: list[str] = []
        for name in manifest.get("kinds", []):
            if name not in registry:
                problems.append(f"{root / 'stackferry.yaml'}: unknown kind {name!r}")
                continue
            kind = registry[name]
            path = workdir.kind_path(kind)
            try:
                document = _load_document(path, kind_file_schema(kind))
            except WorkdirError as exc:
                problems.append(str(exc))
                continue
            seen: dict[str, int] = {}
            resources = []
            for i, item in enumerate(document["resources"]):
                resource = Resource(
                    kind.name, item["identity"], item["params"], item.get("facts") or {}
                )
                if resource.key in seen:
                    problems.append(
                        f"{path}: resources[{i}] has the same identity "
                        f"{resource.identity} as resources[{seen[resource.key]}]"
                    )
                seen[resource.key] = i
                resources.append(resource)
            workdir.resources[kind.name] = resources
        if problems:
            raise WorkdirError("invalid workdir:\n  " + "\n  ".join(problems))
        known = {workdir.kind_path(registry[n]).name for n in manifest.get("kinds", [])}
        folder = root / "resources"
        workdir.unknown_files = sorted(
            str(p) for p in (folder.iterdir() if folder.is_dir() else []) if p.name not in known
        )
        return workdir


def _load_document(path: Path, schema: dict[str, Any]) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkdirError(f"{path}: missing (run `stackferry export` first?)") from None
    except NotADirectoryError:
        raise WorkdirError(f"{path}: a folder on the way is a file, not a workdir") from None
    except UnicodeDecodeError as exc:
        raise WorkdirError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
            "workdir files are YAML in UTF-8: restore the file or export again"
        ) from None
    except OSError as exc:
        raise WorkdirError(f"{path}: cannot be read: {exc.strerror}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise WorkdirError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise WorkdirError(f"{path}: expected a mapping at the top level")
    version = document.get("format")
    if isinstance(version, int) and version > FORMAT:
        raise WorkdirError(
            f"{path}: written in workdir format {version} by a newer stackferry; this one "
            f"reads formats 1 to {FORMAT}. Upgrade stackferry to read it."
        )
    while isinstance(version, int) and version < FORMAT:
        document = UPGRADES[version](document)
        version = document["format"] = version + 1
    errors = sorted(
        jsonschema.Draft202012Validator(schema, format_checker=CHECKER).iter_errors(document),
        key=lambda e: list(e.absolute_path),
    )
    if errors:
        lines = []
        for error in errors[:20]:
            where = _describe_path(document, list(error.absolute_path))
            lines.append(f"{path}: {where}: {error.message}")
        raise WorkdirError("\n".join(lines))
    return dict(document)


def _describe_path(document: dict[str, Any], path: list[Any]) -> str:
    """``resources[3] (network {'name': 'net1'}) params.mtu`` rather than a bare JSON path."""
    if len(path) >= 2 and path[0] == "resources" and isinstance(path[1], int):
        item = document["resources"][path[1]]
        identity = item.get("identity") if isinstance(item, dict) else None
        rest = ".".join(str(p) for p in path[2:]) or "(the resource)"
        return f"resources[{path[1]}] ({document.get('kind')} {identity}) {rest}"
    return ".".join(str(p) for p in path) or "(top level)"
