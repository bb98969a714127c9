"""The server kind's pure logic: what it reads from nova's server, what it refuses before
writing, what the plan says, and that secrets and write-only params stay out of comparisons."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from stackferry.engine.context import Context, SourceChanges, Tenant
from stackferry.engine.journal import Journal
from stackferry.engine.kind import MARKER_TAG
from stackferry.engine.model import Resource
from stackferry.kinds.server import ROOT_VOLUME_KEY, Server, nics

GIB = 1024**3


def _server(**attrs: Any) -> SimpleNamespace:
    base = {
        "id": "srv-1",
        "name": "web",
        "description": None,
        "flavor": SimpleNamespace(original_name="m1.small", name=None, disk=2),
        "image": SimpleNamespace(id="img-1"),
        "addresses": {
            "front": [
                {"addr": "10.0.0.5", "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:01"},
                {"addr": "fd00::5", "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:01"},
            ],
            "back": [{"addr": "10.1.0.5", "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:02"}],
        },
        "key_name": "k1",
        "user_id": "u-1",
        "metadata": {"role": "web"},
        "tags": ["tier-1", MARKER_TAG],
        "user_data": "c2VjcmV0",
        "has_config_drive": "",
        "pinned_availability_zone": None,
        "status": "SHUTOFF",
        "task_state": None,
        "attached_volumes": [],
    }
    return SimpleNamespace(**{**base, **attrs})


class _Compute:
    def __init__(self, servers: list[Any], groups: list[Any]) -> None:
        self._servers, self._groups = servers, groups

    def servers(self, **_: Any) -> list[Any]:
        return self._servers

    def server_groups(self, **_: Any) -> list[Any]:
        return self._groups


class _Volumes:
    def __init__(self, volumes: list[Any]) -> None:
        self._volumes = volumes

    def volumes(self, **_: Any) -> list[Any]:
        return self._volumes


def _ctx(
    server: Any, changes: SourceChanges | None = None, volumes: list[Any] | None = None
) -> Context:
    group = SimpleNamespace(id="g-1", project_id="p-1", member_ids=[server.id])
    conn = SimpleNamespace(
        compute=_Compute([server], [group]),
        block_storage=_Volumes(volumes or []),
        has_service=lambda service: True,
    )
    ctx = Context(conn=conn, tenant=Tenant("t", "d", id="p-1"))  # type: ignore[arg-type]
    for volume in volumes or []:
        ctx.ids.add("volume", volume.id, {"name": volume.name})
    ctx.ids.add("server_group", "g-1", {"name": "apart"})
    ctx.ids.add("keypair", "u-1/k1", {"user": {"name": "alice", "domain": "Default"}, "name": "k1"})
    if changes is not None:
        ctx.source_changes = changes
    return ctx


def test_nics_follow_novas_addresses_one_port_per_mac() -> None:
    assert nics(_server()) == [
        {"network": "front", "mac_address": "fa:16:3e:00:00:01"},
        {"network": "back", "mac_address": "fa:16:3e:00:00:02"},
    ]


def test_read_gives_portable_params_and_the_facts_for_the_report() -> None:
    (resource,) = Server().read(_ctx(_server()))
    p = resource.params
    assert p["flavor"] == {"name": "m1.small"} and p["boot"] == "image"
    assert [port["network"] for port in p["ports"]] == ["front", "back"]
    assert p["server_group"] == {"name": "apart"}
    assert p["keypair"]["user"]["name"] == "alice" and p["key_name"] == "k1"
    assert p["tags"] == ["tier-1"]  # the marker is stackferry's, not the server's
    assert p["power_state"] == "shutoff" and p["config_drive"] is False
    assert resource.facts["ours"] is True and resource.facts["key_owner"] == "alice"
    assert resource.facts["size"] == 2 * GIB


def test_a_boot_from_volume_server_reads_its_volumes_in_device_order() -> None:
    """Cinder's attachments give the order (nova's list does not); nova's list gives whether
    each is deleted with the server; the first of a boot-from-volume server boots it."""

    def volume(vid: str, name: str, device: str) -> SimpleNamespace:
        return SimpleNamespace(
            id=vid, name=name, metadata={}, attachments=[{"server_id": "srv-1", "device": device}]
        )

    volumes = [volume("v-2", "logs", "/dev/vdaa"), volume("v-1", "data", "/dev/vdb"),
               volume("v-0", "root", "/dev/vda")]  # fmt: skip
    server = _server(
        image=SimpleNamespace(id=None),
        attached_volumes=[{"id": "v-0", "delete_on_termination": True}, {"id": "v-1"},
                          {"id": "v-2", "delete_on_termination": False}],
    )  # fmt: skip
    (resource,) = Server().read(_ctx(server, volumes=volumes))
    assert resource.params["boot"] == "volume"
    assert resource.params["volumes"] == [
        {"volume": {"name": "root"}, "delete_on_termination": True, "boot_index": 0},
        {"volume": {"name": "data"}, "delete_on_termination": False, "boot_index": None},
        {"volume": {"name": "logs"}, "delete_on_termination": False, "boot_index": None},
    ]
    assert resource.facts["devices"] == ["/dev/vda", "/dev/vdb", "/dev/vdaa"]
    assert "boots from its migrated volume, 3 volume(s)" in Server().explain(_ctx(server), resource)


def test_boot_from_volume_reads_back_as_the_image_backed_server_it_converted() -> None:
    """--boot-from-volume: the destination boots from a new root volume stackferry marked;
    that volume is the server's (claimed, not listed among its volumes), the server reads as
    boot new-volume, and the switch turns the source's image-backed server into just that,
    so verify and re-runs find them equal. Without the switch they differ."""
    root = SimpleNamespace(
        id="v-root", name="web-root", metadata={ROOT_VOLUME_KEY: "srv-src"},
        attachments=[{"server_id": "srv-1", "device": "/dev/vda"}],
    )  # fmt: skip
    data = SimpleNamespace(
        id="v-data", name="data", metadata={},
        attachments=[{"server_id": "srv-1", "device": "/dev/vdb"}],
    )  # fmt: skip
    converted = _server(
        image=SimpleNamespace(id=None),
        attached_volumes=[{"id": "v-root", "delete_on_termination": True}, {"id": "v-data"}],
    )  # fmt: skip
    kind = Server()
    (current,) = kind.read(_ctx(converted, volumes=[root, data]))
    assert current.params["boot"] == "new-volume"
    assert current.params["volumes"] == [
        {"volume": {"name": "data"}, "delete_on_termination": False, "boot_index": None}
    ]
    assert kind.claimed(current) == {"v-root"}

    source_data = SimpleNamespace(
        id="v-data", name="data", metadata={},
        attachments=[{"server_id": "srv-1", "device": "/dev/vdb"}],
    )  # fmt: skip
    (source,) = kind.read(_ctx(_server(attached_volumes=[{"id": "v-data"}]), volumes=[source_data]))
    assert source.params["boot"] == "image" and kind.claimed(source) == set()
    assert kind.changed_fields(source.params, current.params) == {"boot"}
    kind.remap_params(source.identity, source, frozenset({"new_macs"}))
    assert source.params["boot"] == "image", "another switch changes nothing here"
    kind.remap_params(source.identity, source, frozenset({"boot_from_volume"}))
    assert kind.changed_fields(source.params, current.params) == set()
    assert "onto a new volume of 2 GiB" in kind.explain(_ctx(converted), source)


def test_a_server_stackferry_stopped_is_exported_as_it_was(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    changes = SourceChanges(journal=journal)
    assert changes.changing("server", "srv-1", {"power_state": "running"}) == {
        "power_state": "running"
    }
    # A second record (a re-run that sees the server off) does not replace the first.
    assert changes.changing("server", "srv-1", {"power_state": "shutoff"}) == {
        "power_state": "running"
    }
    recorded = SourceChanges(Journal.source_changes_at(journal.path))
    (resource,) = Server().read(_ctx(_server(), recorded))
    assert resource.params["power_state"] == "running"
    changes.restored("server", "srv-1")
    assert Journal.source_changes_at(journal.path) == {}


def test_the_key_owner_is_used_to_boot_but_never_compared_and_user_data_never_shown() -> None:
    kind = Server()
    want = {"keypair": {"name": "k1", "user": {"name": "alice"}}, "user_data": "c2VjcmV0"}
    have = {"keypair": None, "user_data": "b3RoZXI="}
    assert kind.changed_fields(want, have) == {"user_data"}
    assert "c2VjcmV0" not in str(kind.shown("user_data", want["user_data"]))
    assert kind.shown("key_name", "k1") == "k1"


def test_what_the_plan_refuses_and_what_it_says() -> None:
    kind = Server()
    ctx = _ctx(_server())
    bfv = Resource("server", {"name": "db"}, {"boot": "volume", "volumes": []}, {"id": "s"})
    assert any("names no boot volume" in p for p in kind.check(ctx, bfv))
    keyless = Resource("server", {"name": "x"}, {"boot": "image", "key_name": "gone"}, {})
    assert any("keypair 'gone'" in p for p in kind.check(ctx, keyless))
    running = Resource("server", {"name": "web"}, {}, {"size": 2 * GIB, "status": "ACTIVE"})
    assert "stopped" in kind.explain(ctx, running) and "2 GiB" in kind.explain(ctx, running)
    ctx.options["cutover"] = "live"
    assert "keeps running" in kind.explain(ctx, running)
