"""Which servers: those named, or those on a host (and those migrating away from it); and
the checks made before anything moves."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import TypeVar

from openstack import exceptions as sdk_exceptions

from stackferry.cloud.connection import api_message
from stackferry.errors import StackferryError
from stackferry.ops.servers.decide import Goal
from stackferry.ops.servers.nova import (
    TARGET_HOST_MICROVERSION,
    Inventory,
    ServerView,
    with_migration,
)

POLICY_HINT = (
    "Cold migration is admin-only under nova's default policy: use admin credentials (an admin "
    "entry in clouds.yaml, --cloud/OS_CLOUD), or have the cloud's policy allow "
    "os_compute_api:os-migrate-server:migrate, os_compute_api:os-migrations:index and "
    "os_compute_api:servers:detail:get_all_tenants for this user."
)


# ---- planning: which servers ----------------------------------------------------------------


def preflight(nova: Inventory, cloud: str, goal: Goal, need_host: str | None = None) -> None:
    """Refuse, before anything is attempted, what cannot work: credentials the policy refuses,
    an unknown or unusable host, a target host on a nova too old to take one."""
    _forbidden_is_operator_error(cloud, nova.probe_admin)
    if goal.target_host and not nova.supports_target_host():
        raise StackferryError(
            f"cloud {cloud}: --to-host needs compute API microversion "
            f"{TARGET_HOST_MICROVERSION} (nova Queens or newer); this nova is older"
        )
    hosts = _forbidden_is_operator_error(cloud, nova.compute_hosts)
    known = ", ".join(sorted(hosts)) or "none"
    for name, role in ((need_host, "host"), (goal.target_host, "target host")):
        if name and name not in hosts:
            raise StackferryError(f"cloud {cloud}: no compute {role} {name}; hosts: {known}")
    if goal.target_host:
        if goal.target_host == goal.leave_host:
            raise StackferryError("--to-host is the host being drained")
        if hosts[goal.target_host]:
            raise StackferryError(
                f"cloud {cloud}: target host {goal.target_host} is "
                f"{hosts[goal.target_host]}: the scheduler would refuse it"
            )


T = TypeVar("T")


def _forbidden_is_operator_error(cloud: str, call: Callable[[], T]) -> T:
    """A listing the policy refuses means the credentials cannot do the job: exit 2, now."""
    try:
        return call()
    except sdk_exceptions.ForbiddenException as exc:
        raise StackferryError(f"cloud {cloud}: {api_message(exc)}. {POLICY_HINT}") from None


def servers_to_drain(
    nova: Inventory, cloud: str, host: str, project: str | None
) -> list[ServerView]:
    """Servers on ``host``, and servers still moving off it (whose new host nova may already
    report), in one project or all; those that already left are not listed."""

    def listing() -> list[ServerView]:
        project_id = nova.project_id(project) if project else None
        found = {v.id: v for v in nova.servers_on(host, project_id)}
        for record in nova.migrations_from(host):
            server_id = nova.migration_server_id(record)
            if not record.in_flight or server_id in found:
                continue
            try:
                view = nova.server(server_id)
            except sdk_exceptions.NotFoundException:
                continue  # deleted meanwhile
            if project_id is None or view.project_id == project_id:
                found[view.id] = with_migration(view, record)  # followed even if it ends meanwhile
        return sorted(found.values(), key=lambda v: (v.name, v.id))

    try:
        return _forbidden_is_operator_error(cloud, listing)
    except (sdk_exceptions.NotFoundException, sdk_exceptions.DuplicateResource) as exc:
        raise StackferryError(f"cloud {cloud}: project {project}: {api_message(exc)}") from None


def servers_named(nova: Inventory, cloud: str, refs: Sequence[str]) -> list[ServerView]:
    """The servers named (name or ID, any project); an unknown or ambiguous name is an error."""
    found: dict[str, ServerView] = {}
    for ref in refs:
        try:
            view = _forbidden_is_operator_error(cloud, partial(nova.find_server, ref))
        except sdk_exceptions.DuplicateResource:
            raise StackferryError(
                f"cloud {cloud}: several servers are named {ref!r}: give its ID"
            ) from None
        if view is None:
            raise StackferryError(f"cloud {cloud}: no server {ref!r} (by name or ID)")
        found.setdefault(view.id, view)
    return list(found.values())
