"""Faults between stackferry and the destination: errors, 429 with Retry-After, dropped
connections, lost answers and delays, injected by a loopback proxy in front of every service.

At 10% (and with the answer to each kind of write lost once) a migration completes in one
run, leaving exactly one of everything, kept; at 30% it completes or stops cleanly, and a run
without faults then completes. Nothing is ever duplicated."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devcloud.demo import seed_tenant
from devcloud.lab import Lab
from devcloud.layout import DESTINATION, SOURCE
from devcloud.seed import connect
from devcloud.tenants import Tenant, create_tenant, purge_tenant
from stackferry.cloud import sdk
from tests.cloud.faults import ALL_KINDS, FaultProxy, Rule
from tests.cloud.migration import Migration, leftovers, run_cli

MIB = 1024 * 1024
FAULTY = "c2-faulty"
# Where the random faults fall: another seed explores other placements (e.g. to find a race).
SEED = int(os.environ.get("STACKFERRY_FAULT_SEED", "0"))


def _seed(tenant: Tenant, volume: bool = True) -> None:
    """Networks, subnets, a router, groups with rules, ports, floating IPs and keypairs;
    an image, and a volume made from it (random bytes)."""
    seed_tenant(tenant.admin, tenant.project_id, 1, tenant.user_id)
    image = sdk.image(tenant.conn).create_image(
        name="img", data=os.urandom(4 * MIB), disk_format="raw", container_format="bare",
        wait=True, os_distro="cirros",
    )  # fmt: skip
    if volume:
        bs = sdk.block_storage(tenant.conn)
        made = bs.create_volume(name="vol", size=1, image_id=image.id, metadata={"k": "v"})
        bs.wait_for_status(made, "available", wait=300)


def _migrate(clouds: Path, migration: Migration, dst: str, *extra: str) -> Any:
    return run_cli(
        clouds, "migrate", "--src", SOURCE.name, "--dst", dst,
        "--project", migration.source.project_name, "--workdir", str(migration.workdir),
        "--skip", "flavors", "-q", *extra,
    )  # fmt: skip


def _destination_names(clouds: Path, project_name: str) -> dict[str, Counter[str]]:
    """Every resource of the destination project, by kind and name, to find duplicates."""
    admin = connect(clouds, DESTINATION.name)
    project = sdk.identity(admin).find_project(project_name, domain_id="default")
    assert project is not None
    pid, net = project.id, admin.network
    images = admin.image.get("/images", params={"owner": pid, "visibility": "all"}).json()
    return {
        "network": Counter(n.name for n in net.networks(project_id=pid)),
        "subnet": Counter(s.cidr for s in net.subnets(project_id=pid)),
        "security_group": Counter(g.name for g in net.security_groups(project_id=pid)),
        "rule": Counter(
            f"{g.name} {r['direction']} {r['ethertype']} {r['protocol']} {r['port_range_min']} "
            f"{r['remote_ip_prefix']} {r['remote_group_id']}"
            for g in net.security_groups(project_id=pid)
            for r in g.security_group_rules
        ),
        "router": Counter(r.name for r in net.routers(project_id=pid)),
        "port": Counter(p.mac_address for p in net.ports(project_id=pid, device_owner="")),
        "floating_ip": Counter(
            t for f in net.ips(project_id=pid) for t in f.tags if t.startswith("stackferry-src:")
        ),
        "image": Counter(i["name"] for i in images["images"]),
        "volume": Counter(
            v.name for v in sdk.block_storage(admin).volumes(all_projects=True, project_id=pid)
        ),
    }


def assert_no_duplicates(clouds: Path, project_name: str) -> dict[str, Counter[str]]:
    names = _destination_names(clouds, project_name)
    for kind, counts in names.items():
        twice = {name: n for name, n in counts.items() if n > 1}
        assert not twice, f"duplicate {kind}: {twice}"
    return names


def _verify(migration: Migration) -> None:
    """Against the real destination, not through the proxy."""
    result = migration.verify("--skip", "flavors")
    assert result.exit_code == 0, result.output


def test_at_thirty_percent_faults_it_ends_cleanly_and_a_clean_rerun_completes(
    lab: Lab, migration: Migration, tmp_path: Path
) -> None:
    _seed(migration.source, volume=False)
    with FaultProxy(DESTINATION, rate=0.30, seed=30 + SEED, delay=0.5, hard_stop=1800) as proxy:
        clouds = proxy.clouds_yaml(lab.paths.clouds_yaml, tmp_path / "clouds.yaml", FAULTY)
        result = _migrate(clouds, migration, FAULTY)
        print(f"30% faults: {proxy.summary()}; exit {result.exit_code}")
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code in (0, 1), result.output
    if result.exit_code == 1:  # it says what did not succeed, in the cloud's or our words
        assert "failed" in result.output or "error:" in result.output, result.output
    assert_no_duplicates(lab.paths.clouds_yaml, migration.source.project_name)

    again = _migrate(lab.paths.clouds_yaml, migration, DESTINATION.name)
    assert again.exit_code == 0, again.output
    _verify(migration)
    assert_no_duplicates(lab.paths.clouds_yaml, migration.source.project_name)
    assert leftovers(lab.paths.clouds_yaml) == []


@pytest.fixture
def member_projects(lab: Lab) -> Iterator[tuple[Tenant, Tenant]]:
    """A project in each cloud to share an image with (the source's is mapped to the other)."""
    source_other = create_tenant(lab.paths.clouds_yaml, SOURCE)
    destination_other = create_tenant(lab.paths.clouds_yaml, DESTINATION)
    yield source_other, destination_other
    purge_tenant(source_other)
    purge_tenant(destination_other)


# One lost answer for each kind of write that makes or fills something, once each.
LOST_ANSWERS = [
    Rule("POST", r"^/v3/users$", "lost"),
    Rule("POST", r"^/v3/projects$", "lost-502"),
    Rule("POST", r"/os-keypairs$", "lost"),
    Rule("POST", r"^/v2\.0/networks$", "lost-502"),
    Rule("PUT", r"^/v2\.0/networks/[^/]+/tags$", "lost"),
    Rule("POST", r"^/v2\.0/subnets$", "lost"),
    Rule("POST", r"^/v2\.0/security-groups$", "lost"),
    Rule("POST", r"^/v2\.0/security-group-rules$", "lost"),
    Rule("POST", r"^/v2\.0/routers$", "lost"),
    Rule("PUT", r"^/v2\.0/routers/[^/]+/add_router_interface$", "lost"),
    Rule("POST", r"^/v2\.0/ports$", "lost-502"),
    Rule("POST", r"^/v2\.0/floatingips$", "lost"),
    Rule("POST", r"^/v2/images$", "lost"),
    Rule("PUT", r"^/v2/images/[^/]+/file$", "lost"),
    Rule("POST", r"^/v2/images/[^/]+/members$", "lost"),
    Rule("PUT", r"^/v2/images/[^/]+/members/[^/]+$", "lost-502"),
    Rule("POST", r"/volumes$", "lost"),
    Rule("POST", r"/volumes/[^/]+/action$", "lost"),
]


def test_at_ten_percent_faults_and_every_kind_of_write_losing_its_answer_once_it_completes(
    lab: Lab, migration: Migration, member_projects: tuple[Tenant, Tenant], tmp_path: Path
) -> None:
    """In one run: 10% of the destination's requests fail (every kind of fault in turn), and
    the answer to each kind of write that makes or fills something is lost once. Exactly one
    of everything, each kept, verify equal, no temporaries left."""
    source = migration.source
    _seed(source)
    source_other, destination_other = member_projects
    shared = sdk.image(source.conn).create_image(
        name="shared", data=os.urandom(2 * MIB), disk_format="raw", container_format="bare",
        visibility="shared", wait=True,
    )  # fmt: skip
    sdk.image(source.conn).add_member(shared, member_id=source_other.project_id)
    source.admin.image.put(
        f"/images/{shared.id}/members/{source_other.project_id}", json={"status": "accepted"}
    )
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        yaml.safe_dump({"projects": {source_other.project_name: destination_other.project_name}})
    )
    # Keystone grants answer 204; openstacksdk's grant calls take any other answer for a
    # refusal without raising. One grant to the tenant's user is refused with a 500 keystone
    # never sees, and one to stackferry's own user (to make the volume) with a 503.
    me = str(connect(lab.paths.clouds_yaml, DESTINATION.name).current_user_id)
    grants = [
        Rule("PUT", rf"^/v3/projects/[^/]+/users/(?!{me})[^/]+/roles/[^/]+$", "500"),
        Rule("PUT", rf"^/v3/projects/[^/]+/users/{me}/roles/[^/]+$", "503"),
    ]
    rules = [Rule(r.method, r.path, r.fault) for r in LOST_ANSWERS] + grants
    with FaultProxy(
        DESTINATION, rate=0.10, rules=rules, seed=10 + SEED, delay=1.0, hard_stop=1800
    ) as proxy:
        clouds = proxy.clouds_yaml(lab.paths.clouds_yaml, tmp_path / "clouds.yaml", FAULTY)
        result = _migrate(clouds, migration, FAULTY, "--mapping", str(mapping))
        print(f"10% faults and {len(rules)} lost answers: {proxy.summary()}")
    assert "Traceback" not in result.output
    assert result.exit_code == 0, result.output + "\n" + "\n".join(proxy.log)
    missed = [f"{r.method} {r.path}" for r in rules if r.hits != 1]
    assert not missed, f"rules that met no request: {missed}"
    random = proxy.faults - len(rules)
    assert random >= 10 and set(proxy.counts) == set(ALL_KINDS), proxy.summary()

    names = assert_no_duplicates(lab.paths.clouds_yaml, source.project_name)
    assert names["image"] == Counter({"img": 1, "shared": 1})
    assert names["volume"] == Counter({"vol": 1})
    result = migration.verify("--skip", "flavors", "--mapping", str(mapping))
    assert result.exit_code == 0, result.output
    assert leftovers(lab.paths.clouds_yaml) == []

    # What apply reported done is there at its end: the images and the volume by their IDs.
    report = migration.last_report("apply")
    dst = connect(lab.paths.clouds_yaml, DESTINATION.name)
    for step in report["steps"]:
        if step["result"] == "done" and step["kind"] == "image":
            image = dst.image.get(f"/images/{step['destination_id']}").json()
            assert image["status"] == "active", step
        if step["result"] == "done" and step["kind"] == "volume":
            volume = sdk.block_storage(dst).get_volume(step["destination_id"])
            assert volume.name == "vol" and volume.status == "available"
    members = dst.image.get("/images", params={"name": "shared", "visibility": "all"}).json()[
        "images"
    ]
    assert len(members) == 1
    listed = dst.image.get(f"/images/{members[0]['id']}/members").json()["members"]
    assert [(m["member_id"], m["status"]) for m in listed] == [
        (destination_other.project_id, "accepted")
    ]
