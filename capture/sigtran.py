"""The message frame M2UA (RFC 3331 §3.1) and M3UA (RFC 4666 §3.1) share: common header and parameters.

Common header: version 1, a spare/reserved octet, message class, message type, length (with the header).
Parameters: tag (2 octets), length (2 octets, with the tag and length, without padding), value padded to 4 octets.
"""

import struct

from capture.errors import Malformed, Truncated

VERSION = 1

_HEADER = struct.Struct("!BBBBI")
_PARAMETER = struct.Struct("!HH")


def parameters(msg: memoryview, protocol: str, msg_class: int, msg_type: int) -> list[tuple[int, memoryview]] | None:
    """(tag, value) of each parameter of a ``msg_class``/``msg_type`` message; None for any other message.

    Damage raises with ``protocol`` as the reason prefix (``m3ua.bad_parameter_length``).
    """
    if len(msg) < 8:
        raise Truncated(f"{protocol}.header_too_short")
    version, _, got_class, got_type, length = _HEADER.unpack_from(msg)
    if version != VERSION:
        raise Malformed(f"{protocol}.bad_version", str(version))
    if got_class != msg_class or got_type != msg_type:
        return None
    if length < 8:
        raise Malformed(f"{protocol}.bad_length")
    # A length beyond the chunk is seen in real captures whose parameters are complete: walk what is there.
    length = min(length, len(msg))
    off, found = 8, []
    while off + 4 <= length:
        tag, size = _PARAMETER.unpack_from(msg, off)
        if size < 4 or off + size > length:
            raise Malformed(f"{protocol}.bad_parameter_length")
        found.append((tag, msg[off + 4:off + size]))
        off += size + (-size & 3)
    return found
