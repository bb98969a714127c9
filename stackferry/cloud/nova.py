"""Nova servers, as the tenant migration and the cold-migration room both wait on them."""

from __future__ import annotations

from typing import Any

from openstack import exceptions
from openstack.connection import Connection

from stackferry.cloud.retry import wait_until


def fault(server: Any) -> str | None:
    """The message of nova's fault on a server (set when a build or a move failed)."""
    found = getattr(server, "fault", None)
    if isinstance(found, dict):
        return str(found.get("message") or "") or None
    return None


def wait_server(conn: Connection, server_id: str, want: set[str], what: str, timeout: float) -> Any:
    """Wait until the server is in one of ``want`` with no task running; ERROR raises with
    nova's fault message."""
    return wait_until(
        lambda: conn.compute.get_server(server_id),
        lambda s: s.status in want and not s.task_state,
        what,
        timeout,
        failed=lambda s: (
            f"nova put it in ERROR: {fault(s) or 'no fault message'}"
            if s.status == "ERROR" and "ERROR" not in want
            else None
        ),
    )


def delete_server(conn: Connection, server_id: str, what: str, timeout: float) -> None:
    """Delete a server and wait until nova has let go of it (its ports are free again)."""
    try:
        conn.compute.delete_server(server_id, force=False)
        wait_until(
            lambda: conn.compute.get_server(server_id),
            lambda s: s.status == "DELETED",
            what,
            timeout,
        )
    except exceptions.NotFoundException:
        return
