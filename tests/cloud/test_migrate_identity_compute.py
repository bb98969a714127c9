"""Users, role assignments, keypairs, flavors and quotas migrate; passwords never do; a user
mapped to an existing destination user gets the source user's roles and keypairs and is not
itself modified; a re-run writes nothing."""

from __future__ import annotations

import datetime
import secrets
from pathlib import Path
from typing import Any

import openstack
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.x509.oid import NameOID
from keystoneauth1 import exceptions as ksa_exceptions
from keystoneauth1 import session as ksa_session
from keystoneauth1.identity import v3

from devcloud.layout import DESTINATION, SOURCE, Cloud
from devcloud.seed import connect
from devcloud.tenants import create_tenant, purge_project_named, purge_tenant, unique_name
from stackferry.cloud import sdk
from tests.cloud.migration import Migration

Connection = openstack.connection.Connection

COMPUTE_QUOTAS: dict[str, Any] = {"cores": 7, "instances": 3, "ram": 4096, "key_pairs": 21}
NETWORK_QUOTAS = {"networks": 7, "ports": 77, "routers": 3, "security_groups": 12}
# This test's kinds (and the tenant's), so that kinds under development elsewhere stay out.
KINDS = ("domains", "projects", "users", "role_assignments", "keypairs", "flavors", "quotas")
ONLY = tuple(arg for kind in KINDS for arg in ("--only", kind))
VOLUME_QUOTAS = {"volumes": 4, "gigabytes": 44, "snapshots": 6, "gigabytes___DEFAULT__": 30}


def ssh_rsa() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


def ssh_ed25519() -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


def x509_certificate() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, unique_name("cert"))])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def can_log_in(cloud: Cloud, name: str, password: str) -> bool:
    auth = v3.Password(
        auth_url=cloud.keystone_url, username=name, password=password, user_domain_id="default"
    )
    try:
        ksa_session.Session(auth=auth).get_token()
    except ksa_exceptions.Unauthorized:
        return False
    return True


def roles_on(conn: Connection, project_id: str) -> set[tuple[str, str]]:
    """(user name, role name) of the direct user assignments on a project."""
    return {
        (a.user["name"], a.role["name"])
        for a in sdk.identity(conn).role_assignments(
            scope_project_id=project_id, include_names=True
        )
        if a.user
    }


def fingerprints(conn: Connection, user_id: str) -> dict[str, tuple[str, str]]:
    return {k.name: (k.fingerprint, k.type) for k in conn.compute.keypairs(user_id=user_id)}


def limits(conn: Connection, project_id: str) -> dict[str, dict[str, Any]]:
    def ints(values: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in values.items() if isinstance(v, int) and k != "check_limit"}

    return {
        "compute": ints(conn.compute.get_quota_set(project_id).to_dict(computed=False)),
        "network": ints(conn.network.get_quota(project_id).to_dict(computed=False)),
        "block-storage": ints(
            sdk.block_storage(conn).get_quota_set(project_id).to_dict(computed=False)
        ),
    }


def flavor_named(conn: Connection, name: str) -> Any:
    found = [f for f in conn.compute.flavors(is_public=None) if f.name == name]
    assert len(found) == 1, f"{len(found)} flavors named {name}"
    return found[0]


def delete_users_named(conn: Connection, names: list[str]) -> None:
    idn = sdk.identity(conn)
    for name in names:
        for user in idn.users(name=name, domain_id="default"):
            for keypair in conn.compute.keypairs(user_id=user.id):
                conn.compute.delete_keypair(keypair, user_id=user.id)
            idn.delete_user(user.id, ignore_missing=True)


def delete_flavors_named(conn: Connection, names: list[str]) -> None:
    for flavor in list(conn.compute.flavors(is_public=None)):
        if flavor.name in names:
            conn.compute.delete_flavor(flavor.id)


@pytest.fixture
def destination(migration: Migration) -> Connection:
    return connect(migration.clouds_yaml, DESTINATION.name)


def test_identity_and_compute_kinds_migrate_with_user_mapping(
    migration: Migration, destination: Connection, tmp_path: Path
) -> None:
    src, c1, c2 = migration.source, migration.source.admin, destination
    idn1, idn2 = sdk.identity(c1), sdk.identity(c2)
    roles1 = {r.name: r for r in idn1.roles()}
    alice, bob, mapped = unique_name("sf-alice"), unique_name("sf-bob"), unique_name("sf-map")
    private, public = unique_name("sf-priv"), unique_name("sf-pub")
    users = [alice, bob, mapped]
    try:
        # Source: two more users with roles on the tenant, three keypairs each.
        a = idn1.create_user(
            name=alice,
            domain_id="default",
            password=secrets.token_urlsafe(12),
            default_project_id=src.project_id,
            description="alice of ops",
            email="alice@example.org",
        )
        b = idn1.create_user(
            name=bob,
            domain_id="default",
            password=secrets.token_urlsafe(12),
            description="bob, away",
            is_enabled=False,
        )
        idn1.assign_project_role_to_user(src.project_id, a.id, roles1["member"].id)
        idn1.assign_project_role_to_user(src.project_id, a.id, roles1["reader"].id)
        idn1.assign_project_role_to_user(src.project_id, b.id, roles1["reader"].id)
        keys = {
            a.id: [("a-rsa", ssh_rsa(), "ssh"), ("a-ed", ssh_ed25519(), "ssh")],
            b.id: [("b-rsa", ssh_rsa(), "ssh"), ("b-ed", ssh_ed25519(), "ssh")],
        }
        keys[a.id].append(("a-cert", x509_certificate(), "x509"))
        keys[b.id].append(("b-ed2", ssh_ed25519(), "ssh"))
        for user_id, pairs in keys.items():
            for name, public_key, key_type in pairs:
                c1.compute.create_keypair(
                    name=name, public_key=public_key, type=key_type, user_id=user_id
                )

        # Flavors: a private one shared with the tenant, a public one; both with extra specs.
        priv = c1.compute.create_flavor(
            name=private,
            vcpus=2,
            ram=1024,
            disk=5,
            ephemeral=1,
            swap=128,
            is_public=False,
            description="private to the tenant",
        )
        c1.compute.create_flavor_extra_specs(
            priv, {"hw:cpu_policy": "dedicated", "trait:CUSTOM_FAST": "required"}
        )
        c1.compute.flavor_add_tenant_access(priv.id, src.project_id)
        pub = c1.compute.create_flavor(name=public, vcpus=1, ram=512, disk=1)
        c1.compute.create_flavor_extra_specs(pub, {"hw:watchdog_action": "reset"})

        # Quotas different from the defaults, for the three services.
        c1.compute.update_quota_set(src.project_id, **COMPUTE_QUOTAS)
        c1.network.update_quota(src.project_id, **NETWORK_QUOTAS)
        sdk.block_storage(c1).update_quota_set(src.project_id, **VOLUME_QUOTAS)

        # Destination: a private flavor of the same name and sizes, not shared with the tenant
        # (e.g. left by a run whose journal was lost): found, never duplicated, and - since
        # nothing says stackferry made it - changed only because the operator adopts it.
        stale = c2.compute.create_flavor(
            name=private,
            vcpus=2,
            ram=1024,
            disk=5,
            ephemeral=1,
            swap=128,
            is_public=False,
            description="stale",
        )
        c2.compute.create_flavor_extra_specs(stale, {"stale:key": "1"})

        # Destination: alice's identity backend changed; she is `mapped` there already.
        mapped_password = secrets.token_urlsafe(12)
        m = idn2.create_user(
            name=mapped,
            domain_id="default",
            password=mapped_password,
            description="set by the destination",
        )
        mapping = tmp_path / "mapping.yaml"
        mapping.write_text(yaml.safe_dump({"users": {a.id: mapped}}))  # by source ID

        refused = migration.migrate("--mapping", str(mapping), *ONLY)
        assert refused.exit_code == 2 and "1 conflict" in refused.output, refused.output
        first = migration.migrate("--mapping", str(mapping), "--adopt", f"flavors:{private}", *ONLY)
        assert first.exit_code == 0, first.output
        verify = migration.last_report("verify")
        assert verify["equal"] is True, verify["differences"]
        # Only public flavors other tests made in the destination may be extra.
        assert [d for d in verify["differences"] if d["kind"] != "flavor"] == []
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for entry in verify["id_map"]:
            by_kind.setdefault(entry["kind"], []).append(entry)
        assert sorted(e["identity"]["name"] for e in by_kind["user"]) == sorted(
            [src.user_name, mapped, bob]
        )
        assert len(by_kind["role_assignment"]) == 4
        assert len(by_kind["keypair"]) == 6
        assert sorted(e["identity"]["service"] for e in by_kind["quota"]) == [
            "block-storage",
            "compute",
            "network",
        ]
        flavors = {e["identity"]["name"] for e in by_kind["flavor"]}
        assert {private, public, "m1.tiny"} <= flavors
        for entry in by_kind["keypair"]:
            assert entry["fingerprint"]["source"] == entry["fingerprint"]["destination"]
        exported = yaml.safe_load((migration.workdir / "resources" / "users.yaml").read_text())
        assert {r["facts"]["password"] for r in exported["resources"]} == {
            "not migrated: set one or use federation"
        }
        exported = yaml.safe_load((migration.workdir / "resources" / "flavors.yaml").read_text())
        private_exported = {
            r["identity"]["name"] for r in exported["resources"] if not r["params"]["is_public"]
        }
        assert private_exported == {private}  # not the cloud's other private flavors

        # In the destination, directly.
        project2 = next(iter(idn2.projects(name=src.project_name, domain_id="default")))
        users2 = {u.name: u for u in idn2.users(domain_id="default") if u.name in users}
        users2.update({src.user_name: next(iter(idn2.users(name=src.user_name)))})
        assert alice not in users2  # she became `mapped`, nobody was created under her name
        assert users2[mapped].id == m.id
        # A mapped user belongs to the destination's identity backend: used, never modified.
        assert users2[mapped].default_project_id is None
        assert users2[mapped].description == "set by the destination"
        assert users2[mapped].email is None
        assert users2[bob].is_enabled is False and users2[bob].description == "bob, away"
        assert users2[bob].default_project_id is None
        assert users2[src.user_name].default_project_id == project2.id

        # Passwords: none migrated; the mapped user's own is untouched.
        assert can_log_in(SOURCE, src.user_name, src.password)
        assert not can_log_in(DESTINATION, src.user_name, src.password)
        assert not can_log_in(DESTINATION, src.user_name, "")
        assert can_log_in(DESTINATION, mapped, mapped_password)

        rename = {alice: mapped}
        assert roles_on(c2, project2.id) == {
            (rename.get(user, user), role) for user, role in roles_on(c1, src.project_id)
        }
        assert (mapped, "reader") in roles_on(c2, project2.id)
        assert fingerprints(c2, m.id) == fingerprints(c1, a.id)
        assert fingerprints(c2, users2[bob].id) == fingerprints(c1, b.id)
        assert len(fingerprints(c2, m.id)) == 3 and fingerprints(c2, m.id)["a-cert"][1] == "x509"

        priv2, pub2 = flavor_named(c2, private), flavor_named(c2, public)
        assert priv2.id == stale.id
        assert priv2.extra_specs == {"hw:cpu_policy": "dedicated", "trait:CUSTOM_FAST": "required"}
        assert pub2.extra_specs == {"hw:watchdog_action": "reset"}
        assert (priv2.vcpus, priv2.ram, priv2.disk, priv2.ephemeral, priv2.swap) == (
            2,
            1024,
            5,
            1,
            128,
        )
        assert priv2.is_public is False and pub2.is_public is True
        assert priv2.description == "private to the tenant"
        assert [x["tenant_id"] for x in c2.compute.get_flavor_access(priv2)] == [project2.id]

        source_limits, destination_limits = limits(c1, src.project_id), limits(c2, project2.id)
        assert destination_limits == source_limits
        assert COMPUTE_QUOTAS.items() <= destination_limits["compute"].items()
        assert NETWORK_QUOTAS.items() <= destination_limits["network"].items()
        assert VOLUME_QUOTAS.items() <= destination_limits["block-storage"].items()

        second = migration.migrate("--mapping", str(mapping), *ONLY)
        assert second.exit_code == 0, second.output
        report = migration.last_report("apply")
        assert report["write_calls"] == 0
        assert set(report["summary"]) == {"unchanged"}

        # Drift in the destination: apply alone (same workdir) puts it back.
        c2.compute.update_quota_set(project2.id, cores=99)
        sdk.block_storage(c2).update_quota_set(project2.id, gigabytes___DEFAULT__=99)
        c2.compute.create_flavor_extra_specs(priv2.id, {"drift": "1"})
        idn2.update_user(users2[bob].id, description="edited in the destination")
        reader = next(r for r in idn2.roles() if r.name == "reader")
        idn2.unassign_project_role_from_user(project2.id, m.id, reader.id)
        c2.compute.delete_keypair("b-ed", user_id=users2[bob].id)
        fixed = migration.apply("--mapping", str(mapping), *ONLY)
        assert fixed.exit_code == 0, fixed.output
        steps = migration.last_report("apply")["steps"]
        changed = sorted(
            (s["kind"], s["action"], sorted(s["changes"]))
            for s in steps
            if s["action"] != "unchanged"
        )
        assert changed == [
            ("flavor", "update", ["extra_specs"]),
            ("keypair", "create", []),
            ("quota", "update", ["cores"]),
            ("quota", "update", ["volume_types"]),
            ("role_assignment", "create", []),
            ("user", "update", ["description"]),
        ]
        assert {s["result"] for s in steps} == {"done", "unchanged"}
        assert limits(c2, project2.id) == source_limits
        assert flavor_named(c2, private).extra_specs == priv2.extra_specs
        assert idn2.get_user(users2[bob].id).description == "bob, away"
        assert roles_on(c2, project2.id) == {
            (rename.get(user, user), role) for user, role in roles_on(c1, src.project_id)
        }
        assert fingerprints(c2, users2[bob].id) == fingerprints(c1, b.id)

        # Quotas are selected by service name, like any resource by its name.
        exported_only = migration.export("--only", "quotas", "--exclude", "^network$")
        assert exported_only.exit_code == 0, exported_only.output
        quotas = yaml.safe_load((migration.workdir / "resources" / "quotas.yaml").read_text())
        assert sorted(r["identity"]["service"] for r in quotas["resources"]) == [
            "block-storage",
            "compute",
        ]
    finally:
        delete_users_named(c1, users)
        delete_users_named(c2, [*users, src.user_name])
        for conn in (c1, c2):
            delete_flavors_named(conn, [private, public])


def test_two_projects_sharing_a_user_need_one_run_each(
    migration: Migration, destination: Connection, tmp_path: Path
) -> None:
    """The second project's plan finds the user (and its keypairs) the first one made, though
    the user has no role on the second project in the destination yet: no 409, no rerun."""
    src = migration.source
    other = create_tenant(migration.clouds_yaml, SOURCE)
    second = Migration(migration.clouds_yaml, other, tmp_path / "second")
    try:
        idn = sdk.identity(src.admin)
        idn.assign_project_role_to_user(
            other.project_id, src.user_id, idn.find_role("member", ignore_missing=False).id
        )
        for name in ("shared-a", "shared-b"):
            src.admin.compute.create_keypair(
                name=name, public_key=ssh_ed25519(), user_id=src.user_id
            )
        first = migration.migrate(*ONLY)
        assert first.exit_code == 0, first.output
        result = second.migrate(*ONLY)
        assert result.exit_code == 0, result.output
        steps = {
            (s["kind"], s["identity"].get("name")): s["action"]
            for s in second.last_report("apply")["steps"]
        }
        assert steps[("user", src.user_name)] == "unchanged"
        assert steps[("keypair", "shared-a")] == steps[("keypair", "shared-b")] == "unchanged"
        users = list(sdk.identity(destination).users(name=src.user_name, domain_id="default"))
        assert len(users) == 1
        keys = sorted(k.name for k in destination.compute.keypairs(user_id=users[0].id))
        assert keys == ["shared-a", "shared-b"]
    finally:
        purge_project_named(migration.clouds_yaml, DESTINATION, other.project_name)
        purge_tenant(other)
