"""M3UA (RFC 4666): the MTP3 user data of a Transfer DATA message (§3.3.1).

Common header (§3.1): version 1, reserved, message class, message type, length (with the header). Parameters are
tag-length-value, padded to 4 octets (§3.2). Protocol Data (§3.3.1) carries the MTP3 routing label as OPC, DPC
(32-bit fields), SI, NI, MP and SLS, then the user part (SCCP for SI 3). ASP state and traffic maintenance, MGMT,
SSNM and RKM messages are not signaling payloads: they return None and are not counted.
"""

import struct
from typing import NamedTuple

from capture.errors import Malformed, Truncated

VERSION = 1
CLASS_TRANSFER, TYPE_DATA = 1, 1                          # §3.1.2, §3.1.3
TAG_NETWORK_APPEARANCE, TAG_ROUTING_CONTEXT, TAG_PROTOCOL_DATA, TAG_CORRELATION_ID = 0x0200, 0x0006, 0x0210, 0x0013

_HEADER = struct.Struct("!BBBBI")
_PARAMETER = struct.Struct("!HH")
_PROTOCOL_DATA = struct.Struct("!IIBBBB")


class ProtocolData(NamedTuple):
    """RFC 4666 §3.3.1 Protocol Data: the MTP3 routing label and service information, then the user part."""

    opc: int
    dpc: int
    si: int
    ni: int
    sls: int
    user_data: memoryview


def protocol_data(msg: memoryview) -> ProtocolData | None:
    """The Protocol Data of an M3UA DATA message; None for every other message class or type."""
    if len(msg) < 8:
        raise Truncated("m3ua.header_too_short")
    version, _, msg_class, msg_type, length = _HEADER.unpack_from(msg)
    if version != VERSION:
        raise Malformed("m3ua.bad_version", str(version))
    if msg_class != CLASS_TRANSFER or msg_type != TYPE_DATA:
        return None
    if length < 8:
        raise Malformed("m3ua.bad_length")
    # A length beyond the chunk is seen in real captures whose parameters are complete: walk what is there.
    length = min(length, len(msg))
    off = 8
    while off + 4 <= length:
        tag, size = _PARAMETER.unpack_from(msg, off)
        if size < 4 or off + size > length:
            raise Malformed("m3ua.bad_parameter_length")
        if tag == TAG_PROTOCOL_DATA:
            if size < 16:
                raise Truncated("m3ua.protocol_data_too_short")
            opc, dpc, si, ni, _, sls = _PROTOCOL_DATA.unpack_from(msg, off + 4)
            return ProtocolData(opc, dpc, si, ni, sls, msg[off + 16:off + size])
        off += size + (-size & 3)
    raise Malformed("m3ua.no_protocol_data")
