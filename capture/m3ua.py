"""M3UA (RFC 4666): the MTP3 user data of a Transfer DATA message (§3.3.1).

The common header and parameters are those of capture.sigtran (§3.1, §3.2). Protocol Data (§3.3.1) carries the
MTP3 routing label as OPC, DPC (32-bit fields), SI, NI, MP and SLS, then the user part (SCCP for SI 3). ASP state
and traffic maintenance, MGMT, SSNM and RKM messages are not signaling payloads: they return None, not counted.
"""

import struct
from typing import NamedTuple

from capture import sigtran
from capture.errors import Malformed, Truncated

CLASS_TRANSFER, TYPE_DATA = 1, 1                          # §3.1.2, §3.1.3
TAG_NETWORK_APPEARANCE, TAG_ROUTING_CONTEXT, TAG_PROTOCOL_DATA, TAG_CORRELATION_ID = 0x0200, 0x0006, 0x0210, 0x0013

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
    params = sigtran.parameters(msg, "m3ua", CLASS_TRANSFER, TYPE_DATA)
    if params is None:
        return None
    for tag, value in params:
        if tag == TAG_PROTOCOL_DATA:
            if len(value) < 12:
                raise Truncated("m3ua.protocol_data_too_short")
            opc, dpc, si, ni, _, sls = _PROTOCOL_DATA.unpack_from(value)
            return ProtocolData(opc, dpc, si, ni, sls, value[12:])
    raise Malformed("m3ua.no_protocol_data")
