"""The hand-packed summary properties are byte for byte what paho's generic encoder writes."""

from __future__ import annotations

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.pipeline.mqtt_properties import SummaryProperties, encode_summary_properties


def paho_packed(msg_id: str, late: bool) -> bytes:
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = "application/json"
    props.UserProperty = [("msg_id", msg_id), ("late", "true" if late else "false")]
    return bytes(props.pack())


@pytest.mark.parametrize(
    "msg_id",
    ["riverside/store-0042/footfall/hourly/2026-11-16T10:00:00Z/front", "", "ü-straße/店", "x" * 300],
)
@pytest.mark.parametrize("late", [False, True])
def test_the_packed_properties_equal_pahos_encoding(msg_id: str, late: bool) -> None:
    assert encode_summary_properties(msg_id, late) == paho_packed(msg_id, late)
    assert SummaryProperties(msg_id, late).pack() == paho_packed(msg_id, late)


def test_a_msg_id_longer_than_an_mqtt_string_is_refused() -> None:
    with pytest.raises(ValueError, match="65535"):
        encode_summary_properties("x" * 70_000, False)
