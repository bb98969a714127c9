from stackferry.kinds.port import _is_eui64

MAC = "fa:16:3e:cf:c1:e3"


def test_slaac_address_is_recognised_as_derived_from_the_mac() -> None:
    assert _is_eui64("fd00:0:1:0:f816:3eff:fecf:c1e3", MAC)
    assert _is_eui64("2001:db8::f816:3eff:fecf:c1e3", MAC)  # any prefix
    assert not _is_eui64("fd00:0:1:0:f816:3eff:fecf:c1e4", MAC)
    assert not _is_eui64("fd00::5", MAC)
    assert not _is_eui64("10.0.0.5", MAC)
    assert not _is_eui64("fd00:0:1:0:f816:3eff:fecf:c1e3", None)
