"""A source server's cutover, shared by the kinds that read its disks (its volumes, itself).

``--cutover stop`` (the default): the server is stopped before its disks are read, its power
state journalled first, so the copy is consistent and the source can be put back as it was;
``--cutover live`` copies it running (crash-consistent). The server is left SHUTOFF once its
destination is up, and started again when the destination could not be built.
"""

from __future__ import annotations

from typing import Any

from stackferry.cloud import nova
from stackferry.engine.context import Context, KeyedLocks

SERVER = "server"  # the kind whose source changes these are: a server's power state
POWER = {"ACTIVE": "running", "SHUTOFF": "shutoff"}
POWER_SECONDS = 600.0
# A server's volumes are copied at once, and each stops the server first: one at a time.
_server_lock = KeyedLocks()


def mode(ctx: Context) -> str:
    """``--cutover``: stop (the default) or live."""
    return ctx.options.get("cutover", "stop")


def power_state(server: Any) -> str:
    return POWER.get(str(server.status), str(server.status).lower())


def stop_source(ctx: Context, server_id: str, label: str) -> bool:
    """Stop the source server (``--cutover stop``) after journalling its power state; returns
    whether it is stopped because of stackferry (by this call, or by an earlier step or run:
    waited for, never stopped twice; with ``--cutover live`` too, when a run before stopped it)."""
    if mode(ctx) == "live":
        return ctx.source_changes.before(SERVER, server_id) is not None
    with _server_lock(server_id):
        return _stop(ctx, server_id, label)


def _stop(ctx: Context, server_id: str, label: str) -> bool:
    source = ctx.data.source_conn()
    server = source.compute.get_server(server_id)
    recorded = ctx.source_changes.before(SERVER, server_id)
    if server.status == "SHUTOFF" and recorded is None:
        return False  # it was off already: nothing of it is changed
    if server.status not in ("ACTIVE", "SHUTOFF"):
        raise RuntimeError(
            f"source server {label} is {server.status}: it must be ACTIVE or SHUTOFF to be moved"
        )
    ctx.source_changes.changing(SERVER, server_id, {"power_state": power_state(server)})
    if server.status == "ACTIVE":
        source.compute.stop_server(server_id)
    nova.wait_server(source, server_id, {"SHUTOFF"}, f"stopping source {label}", POWER_SECONDS)
    return True


def restart_source(ctx: Context, server_id: str, label: str) -> None:
    """The destination cannot be had: the source goes back to how it was."""
    with _server_lock(server_id):
        before = ctx.source_changes.before(SERVER, server_id)
        if before is None:
            return  # put back already (another of its volumes failed too)
        source = ctx.data.source_conn()
        if before.get("power_state") == "running":
            if source.compute.get_server(server_id).status == "SHUTOFF":
                source.compute.start_server(server_id)
            nova.wait_server(
                source, server_id, {"ACTIVE"}, f"restarting source {label}", POWER_SECONDS
            )
        ctx.source_changes.restored(SERVER, server_id)
