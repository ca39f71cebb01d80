"""The MQTT v5 PUBLISH properties of a summary, packed once by hand.

paho's generic `Properties.pack()` walks every property name there is on every call, which costs
about 70 µs a message (as much as the rest of a publish). A summary carries the same three properties
each time (content type, user properties `msg_id` and `late`), so they are encoded here directly
(MQTT 5.0 sections 1.5.4, 1.5.5, 1.5.7, 3.3.2.3); tests/agent/test_mqtt_properties.py checks the bytes
against paho's own encoding.
"""

from __future__ import annotations

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

CONTENT_TYPE_ID = 0x03
USER_PROPERTY_ID = 0x26
JSON = b"application/json"


def _utf8(text: str) -> bytes:
    data = text.encode("utf-8")
    if len(data) > 0xFFFF:
        raise ValueError(f"MQTT strings are at most 65535 bytes, got {len(data)}")
    return len(data).to_bytes(2, "big") + data


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


_CONTENT_TYPE = bytes([CONTENT_TYPE_ID]) + _utf8(JSON.decode())
_LATE = {flag: bytes([USER_PROPERTY_ID]) + _utf8("late") + _utf8(str(flag).lower()) for flag in (False, True)}
_MSG_ID_KEY = bytes([USER_PROPERTY_ID]) + _utf8("msg_id")


def encode_summary_properties(msg_id: str, late: bool) -> bytes:
    """Property length, then content type and the user properties, in the order paho would write them."""
    body = _CONTENT_TYPE + _MSG_ID_KEY + _utf8(msg_id) + _LATE[late]
    return _varint(len(body)) + body


_TEMPLATE = Properties(PacketTypes.PUBLISH)


class SummaryProperties(Properties):
    """PUBLISH properties whose bytes are computed once; paho only ever calls `pack()` on them."""

    packed: bytes

    def __init__(self, msg_id: str, late: bool) -> None:
        # Properties.__init__ rebuilds its name tables for every instance (14 µs); these share one set.
        for name in ("packetType", "types", "names", "properties"):
            object.__setattr__(self, name, getattr(_TEMPLATE, name))
        object.__setattr__(self, "packed", encode_summary_properties(msg_id, late))  # not an MQTT property

    def pack(self) -> bytes:
        return self.packed
