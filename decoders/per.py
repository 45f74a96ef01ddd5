"""The aligned-PER (ITU-T X.691, ALIGNED variant) reading S1AP needs, and nothing more.

No ASN.1 object tree: ``open_type`` reads the octet-aligned framing (length determinant, §11.9.3.6-8,
then the open type's octets, §11.2) that S1AP's PDU and ProtocolIE-Containers are made of, and
``BitReader`` reads the few IE values whose fields are narrower than an octet: constrained whole
numbers (§11.5.7), normally small numbers (§11.6), extension and presence bits (§19.1-19.7),
CHOICE (§23) and ENUMERATED (§14) indexes, fixed and constrained bit and octet strings (§16, §17).
"""

from capture.errors import Malformed, Truncated, Unsupported

_FRAGMENT = 16384  # §11.9.3.8: a fragmented length counts in units of 16K


def open_type(data: bytes, pos: int) -> tuple[bytes, int]:
    """An octet-aligned open type (or unconstrained OCTET STRING) at octet ``pos``: (value, next pos).

    The length determinant is §11.9.3.6 (one octet, 0..127), §11.9.3.7 (two octets, 10 + 14 bits,
    up to 16383) or §11.9.3.8 (fragments of m x 16K, m = 1..4, then a final length of 0..16383).
    """
    try:
        first = data[pos]
        if first < 0x80:
            end = pos + 1 + first
            if end > len(data):
                raise Truncated("per.open_type_truncated")
            return data[pos + 1:end], end
        if first < 0xC0:
            start = pos + 2
            end = start + ((first & 0x3F) << 8 | data[pos + 1])
            if end > len(data):
                raise Truncated("per.open_type_truncated")
            return data[start:end], end
    except IndexError:
        raise Truncated("per.length_truncated") from None
    return _fragmented(data, pos)


def _fragmented(data: bytes, pos: int) -> tuple[bytes, int]:
    """§11.9.3.8: fragments of 16K, 32K, 48K or 64K octets, each with its own header octet, until a
    length below 16K (possibly 0) ends the value."""
    parts = []
    while True:
        if pos >= len(data):
            raise Truncated("per.length_truncated")
        first = data[pos]
        if first < 0xC0:
            value, pos = open_type(data, pos)
            parts.append(value)
            return b"".join(parts), pos
        multiple = first & 0x3F
        if not 1 <= multiple <= 4:
            raise Malformed("per.fragment_size", str(multiple))
        end = pos + 1 + multiple * _FRAGMENT
        if end > len(data):
            raise Truncated("per.open_type_truncated")
        parts.append(data[pos + 1:end])
        pos = end


class BitReader:
    """Reads an aligned-PER value bit by bit from ``data`` (one IE value, so it starts octet-aligned)."""

    __slots__ = ("data", "pos", "limit")

    def __init__(self, data: bytes, pos: int = 0):
        self.data = data
        self.pos = pos * 8          # in bits
        self.limit = len(data) * 8

    def bits(self, n: int) -> int:
        """An n-bit unsigned field, not aligned (a bit-field, §10.5.7.1 / §11.5.7.2)."""
        start = self.pos
        end = start + n
        if end > self.limit:
            raise Truncated("per.bits_truncated")
        self.pos = end
        last = (end + 7) >> 3
        value = int.from_bytes(self.data[start >> 3:last], "big") >> ((last << 3) - end)
        return value & ((1 << n) - 1)

    def bit(self) -> bool:
        """An extension bit (§19.1, §23.5) or a presence bit of an OPTIONAL component (§19.2)."""
        return bool(self.bits(1))

    def align(self) -> None:
        """Skip padding to the next octet boundary (ALIGNED variant, §10.7.2)."""
        self.pos = (self.pos + 7) & ~7

    def octets(self, n: int) -> bytes:
        """n aligned octets: an OCTET STRING of fixed size > 2 octets, or the value octets of an integer."""
        self.align()
        start = self.pos >> 3
        end = start + n
        if end * 8 > self.limit:
            raise Truncated("per.octets_truncated")
        self.pos = end * 8
        return self.data[start:end]

    def constrained(self, lb: int, ub: int) -> int:
        """A constrained whole number lb..ub (§11.5.7): a minimal bit-field for a range up to 255, one
        aligned octet for 256, two for up to 64K, and past that the indefinite-length form (§11.5.7.4):
        the octet count - 1 as a bit-field, then the aligned octets."""
        span = ub - lb
        if span == 0:
            return lb
        if span < 255:
            return lb + self.bits(span.bit_length())
        if span < 65536:
            return lb + int.from_bytes(self.octets(1 if span == 255 else 2), "big")
        count = 1 + self.bits((((span.bit_length() + 7) >> 3) - 1).bit_length())
        return lb + int.from_bytes(self.octets(count), "big")

    def small_number(self) -> int:
        """A normally small non-negative whole number (§11.6): an extension index, an ENUMERATED
        extension value. Values from 64 on take a length-prefixed form no S1AP value needs."""
        if self.bits(1):
            raise Unsupported("per.large_small_number")
        return self.bits(6)

    def enumerated(self, root: int) -> int:
        """An extensible ENUMERATED with ``root`` root values (§14.2-14.3): its index in the full list,
        an extension value counting on after the root ones."""
        if self.bits(1):
            return root + self.small_number()
        return self.bits((root - 1).bit_length())

    def choice(self, root: int) -> int:
        """The alternative index of an extensible CHOICE with ``root`` root alternatives (§23.6-23.8);
        an extension alternative is Unsupported by the caller (its open type follows)."""
        if self.bits(1):
            return root + self.small_number()
        return self.bits((root - 1).bit_length())

    def length(self, lb: int, ub: int) -> int:
        """A constrained length determinant lb..ub with ub < 64K (§11.9.4.1 -> §11.5.7)."""
        return self.constrained(lb, ub)

    def bit_string(self, size: int) -> int:
        """A fixed-size BIT STRING as an int (§16.9-16.10): unaligned up to 16 bits, else aligned."""
        if size > 16:
            self.align()
        return self.bits(size)

    def unconstrained_length(self) -> int:
        """An unconstrained or semi-constrained length determinant (§11.9.3.6-7), e.g. the bit count of an
        extended BIT STRING; a fragmented one (§11.9.3.8) is Unsupported outside an open type."""
        self.align()
        first = self.bits(8)
        if first < 0x80:
            return first
        if first < 0xC0:
            return (first & 0x3F) << 8 | self.bits(8)
        raise Unsupported("per.fragmented_length")

    def open_type(self) -> bytes:
        """An open type or unconstrained OCTET STRING inside a value (§11.2): align, then as ``open_type``."""
        self.align()
        value, end = open_type(self.data, self.pos >> 3)
        self.pos = end * 8
        return value
