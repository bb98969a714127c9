"""ML2 mechanism driver that binds every port on its first segment, and the QoS driver
that goes with it.

Without L2 agents every port ends in ``binding_failed`` and nova cannot boot a server. The
lab has no data plane, so binding is all that is needed for the control plane to behave.
Neutron's QoS service accepts a rule only if a loaded driver supports its type: this one
supports what the Open vSwitch driver does, so QoS policies and their rules behave as on an
OVS cloud (validated, stored, attached to networks and ports), without enforcing anything.
"""

from neutron.services.qos.drivers.openvswitch.driver import SUPPORTED_RULES
from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api
from neutron_lib.services.qos import base as qos_base


class BindAllQosDriver(qos_base.DriverBase):  # type: ignore[misc]
    @staticmethod
    def create() -> "BindAllQosDriver":
        return BindAllQosDriver(
            name="bind_all",
            vif_types=[portbindings.VIF_TYPE_OVS],
            vnic_types=[portbindings.VNIC_NORMAL],
            supported_rules=SUPPORTED_RULES,
            requires_rpc_notifications=False,
        )


class BindAllMechanismDriver(api.MechanismDriver):  # type: ignore[misc]
    def initialize(self) -> None:
        self.qos_driver = BindAllQosDriver.create()  # registers itself with the QoS plugin

    @property
    def connectivity(self) -> str:
        return str(portbindings.CONNECTIVITY_L2)

    def bind_port(self, context) -> None:  # type: ignore[no-untyped-def]
        for segment in context.segments_to_bind:
            context.set_binding(
                segment[api.ID],
                portbindings.VIF_TYPE_OVS,
                {portbindings.CAP_PORT_FILTER: True, portbindings.OVS_HYBRID_PLUG: False},
                status="ACTIVE",
            )
            return
