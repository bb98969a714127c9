"""Temporary things a run makes and must take away again, even if it is killed.

Each is written to the journal *before* it is made, with what is needed to undo it (and in
which cloud); at the end of every run (including the run after a kill) everything recorded
and not yet undone is undone. Things whose ID is only known after the create call (images,
volumes, snapshots) are recorded by a unique name and undone by that name. Undo steps are
registered by type (``@undoes``) by the module that makes such things - the engine's own
temporary role here, a kind's temporaries in the kind - and looked up by type, so a later
process can carry them out.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

from openstack import exceptions
from openstack.connection import Connection

from stackferry.cloud.retry import OPERATIONS
from stackferry.cloud.roles import revoke_project_role
from stackferry.engine.journal import Journal

Undo = Callable[[Connection, dict[str, Any]], None]
UNDO: dict[str, Undo] = {}
SETTLE_SECONDS = 300  # how long an undo waits for a resource to leave a busy state


def undoes(kind: str) -> Callable[[Undo], Undo]:
    def register(func: Undo) -> Undo:
        UNDO[kind] = func
        return func

    return register


@undoes("project_role")
def _revoke_project_role(conn: Connection, spec: dict[str, Any]) -> None:
    revoke_project_role(conn, spec["project_id"], spec["user_id"], spec["role_id"])


class Temporaries:
    def __init__(self, journal: Journal, conns: dict[str, Connection]) -> None:
        self.journal, self.conns = journal, conns
        self.left: list[str] = []  # what could not be undone (yet): reported, retried next run

    def record(
        self,
        key: str,
        description: str,
        undo_type: str,
        spec: dict[str, Any],
        cloud: str = "destination",
    ) -> None:
        """Call before making the temporary thing."""
        if undo_type not in UNDO:
            raise ValueError(f"no undo for {undo_type}")
        self.journal.temporary_recorded(
            key, description, json.dumps({"type": undo_type, "cloud": cloud, **spec})
        )

    def keep(self, key: str) -> None:
        """The temporary thing became a permanent one (e.g. a volume got its real name)."""
        self.journal.temporary_removed(key)

    def release(self, ids: set[str]) -> None:
        """Keep whatever is recorded under one of these IDs: they are what steps reported
        done, which the end of the run must never remove (e.g. an image whose create was
        retried after its upload's answer was lost, and found complete)."""
        for key, _, spec_text in self.journal.temporaries_pending():
            if json.loads(spec_text).get("id") in ids:
                self.keep(key)

    def undo(self, key: str) -> None:
        """Undo one temporary now (it has served its purpose). If that fails it stays
        recorded, for ``clean`` at the end of the run: the work it served is not undone."""
        for pending_key, _, spec_text in self.journal.temporaries_pending():
            if pending_key == key:
                with contextlib.suppress(Exception):
                    self._undo(key, json.loads(spec_text))

    def clean(self) -> list[str]:
        """Undo everything recorded and not yet undone; returns the descriptions undone.
        What cannot be undone now stays recorded (see ``left``) for the next run."""
        undone = []
        self.left = []
        # Newest first: a volume made from a snapshot goes before the snapshot.
        for key, description, spec_text in reversed(self.journal.temporaries_pending()):
            spec = json.loads(spec_text)
            try:
                self._undo(key, spec)
            except Exception as exc:
                self.left.append(f"{description}: {exc}")
                continue
            undone.append(description)
        return undone

    def _undo(self, key: str, spec: dict[str, Any]) -> None:
        conn = self.conns.get(spec.get("cloud", "destination"))
        if conn is None:
            raise LookupError(f"needs a connection to the {spec.get('cloud')} cloud")
        with contextlib.suppress(exceptions.NotFoundException):  # gone already: fine
            OPERATIONS.run(lambda: UNDO[spec["type"]](conn, spec), f"removing {key}")
        self.journal.temporary_removed(key)
