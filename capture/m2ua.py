"""M2UA (RFC 3331): the MTP3 MSU of a MAUP DATA message (§3.3.1.1).

The common header and parameters are those of capture.sigtran (§3.1.1, §3.1.5). A DATA message carries the interface identifier, then the MSU in
Protocol Data 1 (SIO, routing label, user part) or Protocol Data 2 (the TTC format: one octet of priority before
the SIO). Link state, management, ASP and interface identifier messages return None and are not counted.
"""

from capture import sigtran
from capture.errors import Malformed, Truncated

CLASS_MAUP, TYPE_DATA = 6, 1                                                       # §3.1.2, §3.1.3
TAG_INTERFACE_ID_INTEGER, TAG_INTERFACE_ID_TEXT = 0x0001, 0x0003                   # §3.1.5
TAG_PROTOCOL_DATA_1, TAG_PROTOCOL_DATA_2, TAG_CORRELATION_ID = 0x0300, 0x0301, 0x0013  # §3.3.1.1


def msu(msg: memoryview) -> tuple[bytes, memoryview] | None:
    """(interface identifier as sent, MSU) of an M2UA DATA message; None for every other message."""
    params = sigtran.parameters(msg, "m2ua", CLASS_MAUP, TYPE_DATA)
    if params is None:
        return None
    interface = b""
    for tag, value in params:
        if tag in (TAG_INTERFACE_ID_INTEGER, TAG_INTERFACE_ID_TEXT):
            interface = bytes(value)
        elif tag == TAG_PROTOCOL_DATA_1:
            return interface, value
        elif tag == TAG_PROTOCOL_DATA_2:
            if len(value) < 1:
                raise Truncated("m2ua.protocol_data_too_short")
            return interface, value[1:]
    raise Malformed("m2ua.no_protocol_data")
