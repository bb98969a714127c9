"""Temporary things a run makes and must take away again, even if it is killed.

Each is written to the journal *before* it is made, with what is needed to undo it; at the
end of every run (including the run after a kill) everything recorded and not yet undone is
undone. Undo steps are looked up by type here, so a later process can carry them out.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

from openstack import exceptions
from openstack.connection import Connection

from stackferry import sdk
from stackferry.engine.journal import Journal

Undo = Callable[[Connection, dict[str, Any]], None]
UNDO: dict[str, Undo] = {}


def undoes(kind: str) -> Callable[[Undo], Undo]:
    def register(func: Undo) -> Undo:
        UNDO[kind] = func
        return func

    return register


@undoes("project_role")
def _revoke_project_role(conn: Connection, spec: dict[str, Any]) -> None:
    sdk.identity(conn).unassign_project_role_from_user(
        spec["project_id"], spec["user_id"], spec["role_id"]
    )


class Temporaries:
    def __init__(self, journal: Journal, conn: Connection) -> None:
        self.journal, self.conn = journal, conn

    def record(self, key: str, description: str, undo_type: str, spec: dict[str, Any]) -> None:
        """Call before making the temporary thing."""
        if undo_type not in UNDO:
            raise ValueError(f"no undo for {undo_type}")
        self.journal.temporary_recorded(key, description, json.dumps({"type": undo_type, **spec}))

    def clean(self) -> list[str]:
        """Undo everything recorded and not yet undone; returns the descriptions undone."""
        undone = []
        for key, description, spec_text in self.journal.temporaries_pending():
            spec = json.loads(spec_text)
            with contextlib.suppress(exceptions.NotFoundException):  # gone already: fine
                UNDO[spec["type"]](self.conn, spec)
            self.journal.temporary_removed(key)
            undone.append(description)
        return undone
