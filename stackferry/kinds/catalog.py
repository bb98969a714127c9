"""Every resource kind stackferry knows. The engine takes this list
and knows none of them by name."""

from stackferry.engine.kind import Kind
from stackferry.engine.registry import Registry
from stackferry.kinds.address_group import AddressGroup
from stackferry.kinds.flavor import Flavor
from stackferry.kinds.floating_ip import FloatingIP
from stackferry.kinds.identity import Domain, Project
from stackferry.kinds.image import Image
from stackferry.kinds.keypair import Keypair
from stackferry.kinds.network import ExternalNetwork, Network
from stackferry.kinds.port import Port
from stackferry.kinds.qos_policy import QosPolicy
from stackferry.kinds.quota import Quota
from stackferry.kinds.role_assignment import Role, RoleAssignment
from stackferry.kinds.router import Router
from stackferry.kinds.security_group import SecurityGroup, SecurityGroupRule
from stackferry.kinds.server import Server
from stackferry.kinds.server_group import ServerGroup
from stackferry.kinds.subnet import Subnet
from stackferry.kinds.user import User
from stackferry.kinds.volume import Volume

ALL_KINDS: tuple[type[Kind], ...] = (
    Domain,
    Project,
    User,
    Role,
    RoleAssignment,
    Keypair,
    Flavor,
    Quota,
    ServerGroup,
    ExternalNetwork,
    QosPolicy,
    Network,
    Subnet,
    AddressGroup,
    SecurityGroup,
    SecurityGroupRule,
    Router,
    Port,
    FloatingIP,
    Image,
    Volume,
    Server,
)


def registry() -> Registry:
    return Registry(kind() for kind in ALL_KINDS)
