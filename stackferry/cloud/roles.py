"""Granting and revoking a role of a user on a project, with keystone's answer checked.

openstacksdk's ``assign_project_role_to_user`` and ``unassign_project_role_from_user`` return
False on any answer but 204 instead of raising: a 500 or 503 to the PUT passes for success,
and a run would report an assignment that keystone never made. These say what keystone said,
as openstacksdk's exceptions, so the retry policy can judge it by its status code."""

from __future__ import annotations

from openstack.connection import Connection

from stackferry.cloud.connection import rest
from stackferry.cloud.retry import OPERATIONS


def _path(project_id: str, user_id: str, role_id: str) -> str:
    return f"/projects/{project_id}/users/{user_id}/roles/{role_id}"


def grant_project_role(conn: Connection, project_id: str, user_id: str, role_id: str) -> None:
    """Give the user the role on the project. Granting twice is harmless (keystone answers
    204 again), so a transient failure is simply tried again here."""
    path = _path(project_id, user_id, role_id)
    OPERATIONS.run(lambda: rest(conn.identity, "put", path), f"PUT {path}")


def revoke_project_role(conn: Connection, project_id: str, user_id: str, role_id: str) -> None:
    """Take the role away (one already gone raises NotFoundException: the caller decides)."""
    rest(conn.identity, "delete", _path(project_id, user_id, role_id))
