"""M2UA (RFC 3331): the MTP3 MSU of a MAUP DATA message (§3.3.1.1).

Common header (§3.1.1): version 1, spare, message class, message type, length (with the header); parameters are
tag-length-value padded to 4 octets (§3.1.5). A DATA message carries the interface identifier, then the MSU in
Protocol Data 1 (SIO, routing label, user part) or Protocol Data 2 (the TTC format: one octet of priority before
the SIO). Link state, management, ASP and interface identifier messages return None and are not counted.
"""

import struct

from capture.errors import Malformed, Truncated

VERSION = 1
CLASS_MAUP, TYPE_DATA = 6, 1                                                       # §3.1.2, §3.1.3
TAG_INTERFACE_ID_INTEGER, TAG_INTERFACE_ID_TEXT = 0x0001, 0x0003                   # §3.1.5
TAG_PROTOCOL_DATA_1, TAG_PROTOCOL_DATA_2, TAG_CORRELATION_ID = 0x0300, 0x0301, 0x0013  # §3.3.1.1

_HEADER = struct.Struct("!BBBBI")
_PARAMETER = struct.Struct("!HH")


def msu(msg: memoryview) -> tuple[bytes, memoryview] | None:
    """(interface identifier as sent, MSU) of an M2UA DATA message; None for every other message."""
    if len(msg) < 8:
        raise Truncated("m2ua.header_too_short")
    version, _, msg_class, msg_type, length = _HEADER.unpack_from(msg)
    if version != VERSION:
        raise Malformed("m2ua.bad_version", str(version))
    if msg_class != CLASS_MAUP or msg_type != TYPE_DATA:
        return None
    if length < 8:
        raise Malformed("m2ua.bad_length")
    # A length beyond the chunk is seen in real captures whose parameters are complete: walk what is there.
    length = min(length, len(msg))
    off, interface = 8, b""
    while off + 4 <= length:
        tag, size = _PARAMETER.unpack_from(msg, off)
        if size < 4 or off + size > length:
            raise Malformed("m2ua.bad_parameter_length")
        if tag in (TAG_INTERFACE_ID_INTEGER, TAG_INTERFACE_ID_TEXT):
            interface = bytes(msg[off + 4:off + size])
        elif tag == TAG_PROTOCOL_DATA_1:
            return interface, msg[off + 4:off + size]
        elif tag == TAG_PROTOCOL_DATA_2:
            if size < 5:
                raise Truncated("m2ua.protocol_data_too_short")
            return interface, msg[off + 5:off + size]
        off += size + (-size & 3)
    raise Malformed("m2ua.no_protocol_data")
