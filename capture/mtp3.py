"""MTP3 (ITU-T Q.704 §2.2-2.3): service information octet and routing label of an MSU.

The SIO holds the service indicator (bits 1-4; 3 = SCCP) and the network indicator (bits 7-8). The routing label
is ITU (Q.704 §2.2: 14-bit DPC, 14-bit OPC, 4-bit SLS in 4 octets, least significant bit first) or, in Chinese
networks (YD/T 1127, ANSI T1.111 layout), 24-bit DPC and OPC and an SLS octet (7 octets). Nothing in an MSU says
which; ``MtpStandards`` picks it per link in ``auto`` mode from which layout gives a user part that parses. The
same choice sets the point-code size in SCCP addresses, which is all that is ambiguous on an M3UA link.
"""

from collections.abc import Callable
from typing import NamedTuple

from capture.errors import Truncated

SI_SCCP = 3                                        # Q.704 §14.2.1 service indicator
STANDARD_ITU, STANDARD_CHINESE, STANDARD_AUTO = "itu", "chinese", "auto"
STANDARDS = (STANDARD_ITU, STANDARD_CHINESE, STANDARD_AUTO)
LABEL_LENGTH = {STANDARD_ITU: 4, STANDARD_CHINESE: 7}
POINT_CODE_OCTETS = {STANDARD_ITU: 2, STANDARD_CHINESE: 3}  # in SCCP addresses (Q.713 §3.4.2.1)
SETTLE_AFTER = 256  # SCCP messages that fit both layouts before an undecided link is taken for ITU


class Msu(NamedTuple):
    """Q.704 §14.2 service information octet (SI, NI) and §2.2 routing label of one MSU, then its user part."""

    si: int
    ni: int
    opc: int
    dpc: int
    sls: int
    user_data: memoryview


def routing_label(msu: memoryview, standard: str) -> Msu:
    """SIO and routing label in the given layout ("itu" or "chinese")."""
    label = LABEL_LENGTH[standard]
    if len(msu) < 1 + label:
        raise Truncated("mtp3.msu_too_short")
    sio = msu[0]
    if standard == STANDARD_ITU:
        word = int.from_bytes(msu[1:5], "little")
        return Msu(sio & 0x0F, sio >> 6, (word >> 14) & 0x3FFF, word & 0x3FFF, word >> 28, msu[5:])
    return Msu(sio & 0x0F, sio >> 6, int.from_bytes(msu[4:7], "little"), int.from_bytes(msu[1:4], "little"),
               msu[7] & 0x0F, msu[8:])


def point_code(pc: int, standard: str) -> str:
    """Q.708 notation: ITU 3-8-3 (zone-area-signalling point), 24-bit codes 8-8-8."""
    if standard == STANDARD_ITU and pc <= 0x3FFF:
        return f"{pc >> 11}-{(pc >> 3) & 0xFF}-{pc & 7}"
    return f"{pc >> 16}-{(pc >> 8) & 0xFF}-{pc & 0xFF}"


class MtpStandards:
    """The point-code layout of each link: fixed, or in ``auto`` mode learnt from the first decisive message."""

    def __init__(self, standard: str):
        if standard not in STANDARDS:
            raise ValueError(f"mtp3_standard must be one of {', '.join(STANDARDS)}, not {standard!r}")
        self.standard = standard
        self._links: dict[object, str] = {}
        self._ambiguous: dict[object, int] = {}

    def known(self, link: object) -> str | None:
        """The layout of ``link`` if fixed or already learnt (the fast path: no trial parse)."""
        return self._links.get(link) if self.standard == STANDARD_AUTO else self.standard

    def learnt(self) -> int:
        """How many links have a layout learnt (only grows: callers cache what depends on ``known``)."""
        return len(self._links)

    def of(self, link: object, fits: Callable[[str], bool]) -> str:
        """The layout of ``link``. Undecided, a message that ``fits`` exactly one layout decides the link; until
        then (traffic that fits both, or neither: not SCCP, or damaged) ITU is used without deciding. A link whose
        first ``SETTLE_AFTER`` SCCP messages all fit both (addresses without point codes) is settled as ITU: the
        layouts differ for it in nothing sigloc reads, and trying both costs two parses a message."""
        if self.standard != STANDARD_AUTO:
            return self.standard
        known = self._links.get(link)
        if known:
            return known
        itu, chinese = fits(STANDARD_ITU), fits(STANDARD_CHINESE)
        if itu != chinese:
            known = self._links[link] = STANDARD_ITU if itu else STANDARD_CHINESE
            self._ambiguous.pop(link, None)
        elif itu:
            self._ambiguous[link] = seen = self._ambiguous.get(link, 0) + 1
            if seen >= SETTLE_AFTER:
                self._links[link] = STANDARD_ITU
                del self._ambiguous[link]
        return known or STANDARD_ITU
