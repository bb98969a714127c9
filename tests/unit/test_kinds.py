"""Every kind's pure logic, without a cloud: its declarations agree, openstacksdk's objects
become the params the workdir holds, and params become the bodies the APIs take."""

from __future__ import annotations

import ast
import inspect
import textwrap
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest

from stackferry.engine.context import Context, Tenant
from stackferry.engine.kind import MARKER_TAG, Field, Kind, Ownership, RefSpec
from stackferry.engine.model import Resource
from stackferry.kinds.catalog import ALL_KINDS, registry
from stackferry.kinds.flavor import Flavor
from stackferry.kinds.identity import Domain, Project
from stackferry.kinds.image import Image
from stackferry.kinds.keypair import Keypair
from stackferry.kinds.network import Network
from stackferry.kinds.port import Port
from stackferry.kinds.security_group import SecurityGroup, SecurityGroupRule
from stackferry.kinds.subnet import Subnet
from stackferry.kinds.user import User
from stackferry.kinds.volume import Volume


def ctx_with(**ids: dict[str, dict[str, Any]]) -> Context:
    """A context whose ID index knows these (kind -> {id: identity})."""
    ctx = Context(conn=None, tenant=Tenant("t", "d", id="tenant-id"))  # type: ignore[arg-type]
    for kind, known in ids.items():
        for cloud_id, identity in known.items():
            ctx.ids.add(kind, cloud_id, identity)
    return ctx


@pytest.mark.parametrize("kind", ALL_KINDS, ids=[k.name for k in ALL_KINDS])
def test_every_kinds_declarations_agree(kind: type[Kind]) -> None:
    reg = registry()
    jsonschema.Draft202012Validator.check_schema(kind.params_schema)
    declared = set(kind.params_schema.get("properties", {}))
    assert kind.immutable <= declared and kind.replaceable <= kind.immutable
    assert all(r.kind in reg for r in kind.refs), kind.refs
    assert all(table for _, table in kind.mapped_values)
    assert kind.description, "each kind says what it is (stackferry kinds lists it)"
    if kind.defines_tenant:
        assert kind().tenant_named(kind().tenant_identity("p", "d")) == Tenant("p", "d")


def test_a_kind_that_contradicts_itself_is_refused_when_defined() -> None:
    with pytest.raises(TypeError, match="prune_within"):

        class Rule(Kind):  # a part to prune, but no delete
            name, plural = "rule", "rules"
            fields = (Field("group", {"type": "object"}, ref="group"),)
            prune_within = "group"

    with pytest.raises(TypeError, match="data_params"):

        class Blob(Kind):
            name, plural = "blob", "blobs"
            fields = (Field("bytes", {"type": "object"}),)
            data_params = frozenset({"bytes"})

    with pytest.raises(TypeError, match="replaceable"):

        class Thing(Kind):
            name, plural = "thing", "things"
            fields = (Field("size", {"type": "integer"}, immutable=True),)
            replaceable = frozenset({"size"})


def test_fields_derive_the_schema_refs_mappings_and_bodies() -> None:
    class Widget(Kind):
        name, plural = "widget", "widgets"
        description = "a test kind"
        fields = (
            Field("colour", {"type": "string"}, default="red"),
            Field("enabled", {"type": "boolean"}, attr="is_enabled", wire="is_enabled"),
            Field("box", {"type": "object"}, attr="box_id", wire="box_id", ref="box"),
            Field("zones", {"type": "array"}, many=True, mapping="availability_zones"),
            Field("size", {"type": "integer"}, immutable=True, create_only=True),
            Field("note", {"type": ["string", "null"]}, omit_empty=True),
        )
        nested_refs = (RefSpec("parts[].box", "box"),)

    assert Widget.refs == (RefSpec("box", "box"), RefSpec("parts[].box", "box"))
    assert Widget.mapped_values == (("zones[]", "availability_zones"),)
    assert Widget.immutable == frozenset({"size"})
    assert Widget.params_schema["additionalProperties"] is False
    ctx = ctx_with(box={"b-1": {"name": "big"}})
    obj = SimpleNamespace(
        colour=None, is_enabled=True, box_id="b-1", zones=["z1"], size=3, note=None
    )
    params = Widget().params_of(ctx, obj)
    assert params == {
        "colour": "red",
        "enabled": True,
        "box": {"name": "big"},
        "zones": ["z1"],
        "size": 3,
        "note": None,
    }
    assert Widget().create_body(ctx, params) == {
        "colour": "red",
        "is_enabled": True,
        "box_id": "b-1",
        "zones": ["z1"],
        "size": 3,
    }
    assert Widget().update_body(ctx, params, {"size", "enabled"}) == {"is_enabled": True}


def _network(**attrs: Any) -> SimpleNamespace:
    base = dict(
        id="n-1", name="net1", description=None, is_admin_state_up=True, mtu=1400,
        is_port_security_enabled=False, is_shared=False, is_router_external=False,
        tags=["blue", MARKER_TAG], availability_zone_hints=["b", "a"],
        provider_network_type="vlan", provider_physical_network="phys",
        provider_segmentation_id=42, status="ACTIVE", created_at="t",
    )  # fmt: skip
    return SimpleNamespace(**{**base, **attrs})


def test_network_read_and_write() -> None:
    ctx = ctx_with()
    r = Network().resource_of(ctx, _network())
    assert r.identity == {"name": "net1"} and r.facts["ours"] is True
    assert r.params["tags"] == ["blue"]  # our marker is never exported
    assert r.params["availability_zone_hints"] == ["a", "b"]
    assert r.params["provider"] == {
        "network_type": "vlan",
        "physical_network": "phys",
        "segmentation_id": 42,
    }
    body = Network().create_body(ctx, r.params)
    assert body["router:external"] is False and body["mtu"] == 1400
    assert "tags" not in body and "provider" not in body  # tags after the POST
    more = Network().more_body(ctx, r, {"provider"}, creating=True)
    assert more == {
        "provider:network_type": "vlan",
        "provider:physical_network": "phys",
        "provider:segmentation_id": 42,
    }
    vxlan = Network().resource_of(ctx, _network(provider_network_type="vxlan", mtu=None, tags=[]))
    assert vxlan.params["provider"] is None and vxlan.facts["ours"] is False
    assert "mtu" not in Network().create_body(ctx, vxlan.params)  # the destination chooses
    assert Network().update_body(ctx, r.params, {"external", "availability_zone_hints"}) == {
        "router:external": False
    }


def test_subnet_sends_no_gateway_explicitly_and_names_its_network() -> None:
    ctx = ctx_with(network={"n-1": {"name": "net1"}})
    obj = SimpleNamespace(
        id="s-1", network_id="n-1", name=None, description="", cidr="10.0.0.0/24",
        ip_version=4, gateway_ip=None, is_dhcp_enabled=False, dns_nameservers=["10.0.0.53"],
        host_routes=[{"destination": "10.9.0.0/16", "nexthop": "10.0.0.1"}],
        allocation_pools=[{"start": "10.0.0.9", "end": "10.0.0.20"},
                          {"start": "10.0.0.2", "end": "10.0.0.5"}],
        ipv6_ra_mode=None, ipv6_address_mode=None, tags=[],
    )  # fmt: skip
    r = Subnet().resource_of(ctx, obj)
    assert r.identity == {"network": "net1", "cidr": "10.0.0.0/24"}
    assert [p["start"] for p in r.params["allocation_pools"]] == ["10.0.0.2", "10.0.0.9"]
    body = Subnet().create_body(ctx, r.params)
    assert body["gateway_ip"] is None and body["network_id"] == "n-1"
    assert body["enable_dhcp"] is False
    assert "ipv6_ra_mode" not in body and "ipv6_address_mode" not in body
    assert Subnet().update_body(ctx, r.params, {"cidr", "name"}) == {"name": ""}


def test_port_resolves_groups_and_leaves_slaac_addresses_to_neutron() -> None:
    ctx = ctx_with(
        network={"n-1": {"name": "net1"}},
        subnet={"s-4": {"network": "net1", "cidr": "10.0.0.0/24"},
                "s-6": {"network": "net1", "cidr": "fd00::/64"}},
        security_group={"g-1": {"name": "web"}, "g-2": {"name": "db"}},
    )  # fmt: skip
    mac = "fa:16:3e:12:34:56"
    obj = SimpleNamespace(
        id="p-1", network_id="n-1", name="vip", description="", mac_address=mac,
        fixed_ips=[{"subnet_id": "s-4", "ip_address": "10.0.0.10"},
                   {"subnet_id": "s-6", "ip_address": "fd00::f816:3eff:fe12:3456"}],
        allowed_address_pairs=[{"ip_address": "10.0.0.11", "mac_address": mac}],
        is_port_security_enabled=True, security_group_ids=["g-1", "g-2"],
        is_admin_state_up=True, tags=[], status="DOWN",
    )  # fmt: skip
    r = Port().resource_of(ctx, obj)
    assert r.identity == {"network": "net1", "mac_address": mac}
    assert r.params["security_groups"] == [{"name": "db"}, {"name": "web"}]  # compared sorted
    body = {**Port().create_body(ctx, r.params), **Port().more_body(ctx, r, {"fixed_ips"}, True)}
    assert sorted(body["security_group_ids"]) == ["g-1", "g-2"]
    assert body["fixed_ips"] == [
        {"subnet_id": "s-4", "ip_address": "10.0.0.10"},
        {"subnet_id": "s-6"},  # EUI-64 of the MAC: neutron derives it and refuses to be told
    ]
    assert Port().naming(r) == {"mac_address": mac}


def test_the_default_group_is_the_projects_and_rules_keep_their_exact_prefix() -> None:
    default = Resource("security_group", {"name": "default"}, {}, {"id": "g", "ours": False})
    web = Resource("security_group", {"name": "web"}, {}, {"id": "g2", "ours": False})
    assert SecurityGroup().ownership(default) is Ownership.WITH_TENANT
    assert SecurityGroup().ownership(web) is Ownership.UNKNOWN

    rule = SecurityGroupRule()
    anywhere = {"security_group": {"name": "web"}, "remote_group": None, "description": ""}
    want = {**anywhere, "remote_ip_prefix": "0.0.0.0/0"}
    have = {**anywhere, "remote_ip_prefix": None}
    changed = rule.changed_fields(want, have)
    assert changed == {"remote_ip_prefix"} and changed <= rule.replaceable
    assert rule.changed_fields(anywhere, have) == set()  # an older workdir says nothing


def test_image_fields_from_glance_json_and_to_its_body() -> None:
    ctx = ctx_with()
    image = {
        "id": "i-1", "name": "cirros", "disk_format": "qcow2", "container_format": "bare",
        "min_disk": None, "min_ram": 64, "protected": True, "os_hidden": True,
        "visibility": "private", "tags": ["x", MARKER_TAG], "os_distro": "cirros",
    }  # fmt: skip
    params = Image().params_of(ctx, image)
    assert params == {
        "disk_format": "qcow2",
        "container_format": "bare",
        "min_disk": 0,
        "min_ram": 64,
        "protected": True,
        "hidden": True,
        "visibility": "private",
        "tags": ["x"],
    }
    body = Image().create_body(ctx, params)
    assert body == {
        "disk_format": "qcow2",
        "container_format": "bare",
        "min_disk": 0,
        "min_ram": 64,
        "os_hidden": True,
        "visibility": "private",
    }  # protected only once the bytes verified; tags with our marker, by the kind
    assert Image.replaceable == {"disk_format", "container_format", "data"}


def test_volume_bootable_flag_and_a_create_body_without_empty_type_or_zone() -> None:
    ctx = ctx_with()
    obj = SimpleNamespace(
        description=None, size=2, volume_type=None, availability_zone="nova",
        is_bootable="true", metadata={"k": "v"},
    )  # fmt: skip
    params = Volume().params_of(ctx, obj)
    assert params["bootable"] is True and params["metadata"] == {"k": "v"}
    body = Volume().create_body(ctx, params)
    assert body == {
        "description": None,
        "size": 2,
        "availability_zone": "nova",
        "metadata": {"k": "v"},
    }


@pytest.mark.parametrize(
    ("kind", "obj", "want_params", "want_body"),
    [
        (
            Domain(),
            SimpleNamespace(description=None, is_enabled=False),
            {"description": "", "enabled": False},
            {"description": "", "is_enabled": False},
        ),
        (
            Project(),
            SimpleNamespace(description="d", is_enabled=True, tags=["b", "a"]),
            {"description": "d", "enabled": True, "tags": ["a", "b"]},
            {"description": "d", "is_enabled": True, "tags": ["a", "b"], "parent_id": None},
        ),
        (
            User(),
            SimpleNamespace(description=None, email=None, is_enabled=True),
            {"description": "", "email": None, "enabled": True},
            {"description": "", "is_enabled": True},  # no email, no default project
        ),
        (
            Flavor(),
            SimpleNamespace(
                vcpus=2,
                ram=512,
                disk=1,
                ephemeral=None,
                swap=None,
                rxtx_factor=None,
                is_public=False,
                description=None,
                extra_specs={"hw:x": 1},
            ),
            {
                "vcpus": 2,
                "ram": 512,
                "disk": 1,
                "ephemeral": 0,
                "swap": 0,
                "rxtx_factor": 1.0,
                "is_public": False,
                "description": "",
                "extra_specs": {"hw:x": "1"},
            },
            {
                "vcpus": 2,
                "ram": 512,
                "disk": 1,
                "ephemeral": 0,
                "swap": 0,
                "rxtx_factor": 1.0,
                "is_public": False,
            },
        ),
    ],
    ids=["domain", "project", "user", "flavor"],
)
def test_keystone_and_nova_fields(
    kind: Kind, obj: Any, want_params: dict[str, Any], want_body: dict[str, Any]
) -> None:
    ctx = ctx_with()
    params = kind.params_of(ctx, obj)
    assert params == want_params
    assert kind.create_body(ctx, params) == want_body


def test_keypair_belongs_to_its_user() -> None:
    ctx = ctx_with(user={"u-1": {"name": "alice", "domain": "Default"}})
    params = {"user": {"name": "alice", "domain": "Default"}, "public_key": "ssh-ed25519 AAAA"}
    assert Keypair().create_body(ctx, params) == {
        "user_id": "u-1",
        "public_key": "ssh-ed25519 AAAA",
        "type": "ssh",
    }


def _kinds_named_by_lookups(kind: type[Kind]) -> set[str]:
    """The kinds a kind's code looks up by ``ctx.ref("k", ...)`` or ``ctx.resolve("k", ...)``."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(kind)))
    named: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("ref", "resolve")
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "ctx"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            named.add(str(node.args[0].value))
    return named


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.name)
def test_every_kind_its_code_looks_up_is_a_declared_dependency(kind: type[Kind]) -> None:
    """A lookup the declarations do not name is a missing edge: the engine would run the two
    kinds' writes side by side and the lookup would fail on a fresh destination."""
    tenant_kinds = {k.name for k in ALL_KINDS if k.defines_tenant}
    undeclared = _kinds_named_by_lookups(kind) - kind.depends_on() - tenant_kinds - {kind.name}
    assert not undeclared, f"{kind.name} looks up {sorted(undeclared)} but does not declare it"
