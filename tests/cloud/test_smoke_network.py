"""Smoke: neutron networks, subnets, routers with gateway and interface, security groups, FIPs."""

from __future__ import annotations

import ipaddress

from devcloud.layout import CLOUDS
from devcloud.tenants import Tenant, unique_name


def test_network_router_security_group_floating_ip(tenant: Tenant) -> None:
    net = tenant.conn.network
    public = net.find_network("public")
    assert public is not None and public.is_router_external

    network = net.create_network(name=unique_name("net"))
    subnet = net.create_subnet(
        network_id=network.id,
        name=unique_name("sub"),
        ip_version=4,
        cidr="10.10.0.0/24",
        gateway_ip="10.10.0.1",
    )
    v6 = net.create_subnet(
        network_id=network.id,
        name=unique_name("sub6"),
        ip_version=6,
        cidr="fd00:10::/64",
        ipv6_ra_mode="slaac",
        ipv6_address_mode="slaac",
    )
    assert {s.id for s in net.subnets(network_id=network.id)} == {subnet.id, v6.id}

    router = net.create_router(
        name=unique_name("rt"), external_gateway_info={"network_id": public.id}
    )
    net.add_interface_to_router(router, subnet=subnet.id)
    router = net.get_router(router.id)
    assert router.external_gateway_info["network_id"] == public.id
    interfaces = list(net.ports(device_id=router.id, device_owner="network:router_interface"))
    assert [ip["subnet_id"] for p in interfaces for ip in p.fixed_ips] == [subnet.id]
    assert interfaces[0].fixed_ips[0]["ip_address"] == "10.10.0.1"

    web = net.create_security_group(name=unique_name("web"))
    db = net.create_security_group(name=unique_name("db"))
    net.create_security_group_rule(
        security_group_id=web.id,
        direction="ingress",
        ethertype="IPv4",
        protocol="tcp",
        port_range_min=443,
        port_range_max=443,
        remote_ip_prefix="0.0.0.0/0",
    )
    net.create_security_group_rule(
        security_group_id=db.id,
        direction="ingress",
        ethertype="IPv4",
        protocol="tcp",
        port_range_min=5432,
        port_range_max=5432,
        remote_group_id=web.id,
    )
    db_rules = list(net.security_group_rules(security_group_id=db.id, direction="ingress"))
    assert [(r.protocol, r.port_range_min, r.remote_group_id) for r in db_rules] == [
        ("tcp", 5432, web.id)
    ]

    port = net.create_port(
        network_id=network.id,
        name=unique_name("port"),
        security_group_ids=[web.id],
        fixed_ips=[{"subnet_id": subnet.id, "ip_address": "10.10.0.50"}],
    )
    fip = net.create_ip(floating_network_id=public.id)
    fip = net.update_ip(fip, port_id=port.id)
    cloud = next(c for c in CLOUDS if c.name == tenant.cloud.name)
    assert ipaddress.ip_address(fip.floating_ip_address) in ipaddress.ip_network(
        cloud.external_cidr
    )
    assert fip.port_id == port.id and fip.fixed_ip_address == "10.10.0.50"
