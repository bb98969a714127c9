"""Server groups migrate with policy and rules; stackferry's temporary project role is gone
afterwards, even after a run that was killed while holding it."""

from __future__ import annotations

import json

from devcloud.layout import DESTINATION
from devcloud.seed import connect
from stackferry.cloud import sdk
from stackferry.engine.journal import Journal
from tests.cloud.migration import Migration


def _admin_roles_on(conn, project_id: str) -> list[str]:
    admin_id = conn.current_user_id
    return [
        a.role["id"]
        for a in sdk.identity(conn).role_assignments(scope_project_id=project_id, user_id=admin_id)
    ]


def test_server_groups_and_temporary_role(migration: Migration) -> None:
    tenant = migration.source.conn.compute
    tenant.create_server_group(
        name="spread", policy="anti-affinity", rules={"max_server_per_host": 2}
    )
    tenant.create_server_group(name="together", policy="affinity")

    first = migration.migrate("--only", "server_groups")
    assert first.exit_code == 0, first.output
    assert migration.last_report("verify")["equal"] is True

    c2 = connect(migration.clouds_yaml, DESTINATION.name)
    project = next(iter(sdk.identity(c2).projects(name=migration.source.project_name)))
    groups = {
        g.name: g for g in c2.compute.server_groups(all_projects=True) if g.project_id == project.id
    }
    assert sorted(groups) == ["spread", "together"]
    assert groups["spread"].policy == "anti-affinity"
    assert groups["spread"].rules == {"max_server_per_host": 2}
    assert _admin_roles_on(c2, project.id) == []  # the temporary member role was taken away

    # A run killed while it held the role leaves it recorded in the journal: the next run
    # (even one with nothing to do) takes it away.
    member = sdk.identity(c2).find_role("member", ignore_missing=False)
    journal = Journal(migration.workdir / "journal.sqlite")
    journal.temporary_recorded(
        "project_role:left-behind",
        "member role left by a killed run",
        json.dumps(
            {
                "type": "project_role",
                "project_id": project.id,
                "user_id": c2.current_user_id,
                "role_id": member.id,
            }
        ),
    )
    journal.close()
    admin_id = str(c2.current_user_id)
    sdk.identity(c2).assign_project_role_to_user(project.id, admin_id, member.id)
    assert _admin_roles_on(c2, project.id) == [member.id]

    second = migration.migrate("--only", "server_groups")
    assert second.exit_code == 0, second.output
    assert migration.last_report("apply")["write_calls"] == 1  # the one DELETE of that role
    assert _admin_roles_on(c2, project.id) == []
    groups_after = [
        g.name for g in c2.compute.server_groups(all_projects=True) if g.project_id == project.id
    ]
    assert sorted(groups_after) == ["spread", "together"]
