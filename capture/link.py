"""Link layers below IP: where in a frame the IPv4/IPv6 packet starts.

Link types are the tcpdump.org LINKTYPE_ values: Ethernet II (IEEE 802.3 with 802.1Q / 802.1ad QinQ tags), Linux
cooked capture SLL and SLL2, BSD null/loopback (address family in host resp. network byte order), and raw IP
(101, 228, 229, and 12/14, which some BSDs wrote for DLT_RAW). Frames that carry no IP (ARP, LLDP, 802.3 with LLC,
STP) return None: they are not damage, just not signaling. The MTP link types of E1 signaling taps (139-141) carry
no IP: capture.mtp2 reads them.
"""

import struct

from capture.errors import Truncated, Unsupported

LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_LOOP = 0, 1, 108
LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6 = 101, 228, 229
LINKTYPE_DLT_RAW_OPENBSD, LINKTYPE_DLT_RAW_BSDOS = 12, 14
LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2 = 113, 276

ETHERTYPE_IPV4, ETHERTYPE_IPV6 = 0x0800, 0x86DD
ETHERTYPE_VLAN = (0x8100, 0x88A8, 0x9100)  # 802.1Q, 802.1ad, pre-standard QinQ
MAX_VLAN_TAGS = 4
# BSD address families: AF_INET is 2 everywhere; AF_INET6 is 10 (Linux), 24 (NetBSD/OpenBSD), 28 (FreeBSD),
# 30 (macOS).
AF_INET, AF_INET6 = 2, (10, 24, 28, 30)

_ETHERTYPES = {ETHERTYPE_IPV4: 4, ETHERTYPE_IPV6: 6}


def ip_start(linktype: int, data: memoryview) -> int | None:
    """Offset of the IP header in a frame of ``linktype``; None if the frame does not carry IP."""
    if linktype == LINKTYPE_ETHERNET:
        return _after_ethertype(data, 12)
    if linktype == LINKTYPE_LINUX_SLL:
        # packet type, ARPHRD type, address length, 8 octets of address, protocol (an Ethertype)
        return _after_ethertype(data, 14)
    if linktype == LINKTYPE_LINUX_SLL2:
        # protocol first, then reserved, interface index, ARPHRD type, packet type, address length, address
        if len(data) < 20:
            raise Truncated("link.sll2_too_short")
        kind = struct.unpack_from("!H", data)[0]
        return 20 if kind in _ETHERTYPES else None
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if len(data) < 4:
            raise Truncated("link.null_too_short")
        family = struct.unpack_from(">I" if linktype == LINKTYPE_LOOP else "<I", data)[0]
        if family > 0xFFFF:  # NULL is in the writing host's byte order: a big-endian host wrote this one
            family = struct.unpack_from(">I", data)[0]
        return 4 if family == AF_INET or family in AF_INET6 else None
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_DLT_RAW_OPENBSD, LINKTYPE_DLT_RAW_BSDOS):
        return 0
    raise Unsupported("link.unsupported_linktype", str(linktype))


def _after_ethertype(data: memoryview, at: int) -> int | None:
    """Skip VLAN tags from the Ethertype at ``at``; the IP header follows the last Ethertype."""
    for _ in range(MAX_VLAN_TAGS + 1):
        if len(data) < at + 2:
            raise Truncated("link.frame_too_short")
        kind = struct.unpack_from("!H", data, at)[0]
        if kind in _ETHERTYPES:
            return at + 2
        if kind not in ETHERTYPE_VLAN:
            return None
        at += 4
    raise Unsupported("link.too_many_vlan_tags")
