"""MTP2 (ITU-T Q.703 §2.2-2.3): the signal unit an E1 signaling tap records, to the MSU's SIO.

A signal unit is BSN + BIB, FSN + FIB, the length indicator (bits 1-6 of the third octet: 0 fill-in, 1-2 link
status, 3 or more a message signal unit, 63 for every MSU longer than 62 octets), then the SIO and SIF. With the
Q.703 Annex A extended sequence numbers (high-speed 2 Mbit/s links) each of the three fields is two octets and the
length indicator is 9 bits. FISUs and LSSUs are link maintenance, not signaling payloads: they return None
uncounted.

Link types (tcpdump.org LINKTYPE_ values): 140 MTP2 (the signal unit), 139 MTP2_WITH_PHDR (a 4-octet pseudo-header
first: sent, Annex A used, link number little-endian, as libpcap's ``struct mtp2_phdr``), 141 MTP3 (the MSU only).
Neither carries the FCS.
"""

from capture.errors import Truncated

LINKTYPE_MTP2_WITH_PHDR, LINKTYPE_MTP2, LINKTYPE_MTP3 = 139, 140, 141
MTP_LINKTYPES = frozenset((LINKTYPE_MTP2_WITH_PHDR, LINKTYPE_MTP2, LINKTYPE_MTP3))

PSEUDO_HEADER = 4
HEADER, HEADER_ANNEX_A = 3, 6            # BSN/BIB, FSN/FIB, LI (+ spare) octets before the SIO
LI_MSU_MIN = 3                           # Q.703 §2.3.3: 0 FISU, 1 or 2 LSSU
ANNEX_A_USED = 1                         # pseudo-header annex_a_used: 0 not used, 1 used, 2 unknown


def msu(linktype: int, data: memoryview) -> tuple[int, int] | None:
    """(link number, offset of the SIO) of a frame of an MTP link type; None for a FISU or LSSU."""
    if linktype == LINKTYPE_MTP3:
        return 0, 0
    link, at, annex_a = 0, 0, False
    if linktype == LINKTYPE_MTP2_WITH_PHDR:
        if len(data) < PSEUDO_HEADER:
            raise Truncated("mtp2.pseudo_header_too_short")
        annex_a, link, at = data[1] == ANNEX_A_USED, data[2] | (data[3] << 8), PSEUDO_HEADER
    if annex_a:
        if len(data) < at + HEADER_ANNEX_A:
            raise Truncated("mtp2.header_too_short")
        li = (data[at + 4] | (data[at + 5] << 8)) & 0x1FF
        at += HEADER_ANNEX_A
    else:
        if len(data) < at + HEADER:
            raise Truncated("mtp2.header_too_short")
        li = data[at + 2] & 0x3F
        at += HEADER
    if li < LI_MSU_MIN:
        return None
    if len(data) <= at:
        raise Truncated("mtp2.msu_too_short")
    return link, at
