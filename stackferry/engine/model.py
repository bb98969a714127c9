"""What the engine moves around: resources named by portable identities, never by source IDs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

Params = dict[str, Any]


def identity_key(kind: str, identity: dict[str, Any]) -> str:
    """A stable, human-readable key: ``network:{"domain":"lab","name":"net1","project":"demo"}``."""
    return f"{kind}:{json.dumps(identity, sort_keys=True, separators=(',', ':'))}"


@dataclass
class Resource:
    """One resource as a kind describes it.

    ``identity`` names it portably (names of itself, its project and domain...); ``params`` is
    the desired, portable state that is compared for idempotence, with references to other
    resources written as their identities; ``facts`` are source-only details (IDs, timestamps,
    addresses) that are reported but never compared or written to the destination.
    """

    kind: str
    identity: dict[str, Any]
    params: Params = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return identity_key(self.kind, self.identity)

    @property
    def label(self) -> str:
        """Short name for tables and messages."""

        def text(value: Any) -> str:
            if isinstance(value, dict):
                return str(value.get("name", "/".join(str(v) for v in value.values())))
            return str(value)

        return "/".join(text(v) for v in self.identity.values() if v not in (None, ""))

    @property
    def bytes_member(self) -> str:
        """Where a bundle keeps this resource's bytes: by kind and source ID, which are
        unique and never need escaping."""
        return f"data/{self.kind}/{self.id}"

    @property
    def id(self) -> str | None:
        """The resource's ID in the cloud it was read from (destination or source)."""
        value = self.facts.get("id")
        return str(value) if value is not None else None

    @property
    def cloud_id(self) -> str:
        """The ID of a resource that was read from a cloud (always has one)."""
        if self.id is None:
            raise ValueError(f"{self.key} has no ID: it was not read from a cloud")
        return self.id
