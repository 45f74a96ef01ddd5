"""Identities shared by the A and S1 decoders: TBCD digits, PLMN, LAI, mobile identities.

TS 24.008 §10.5.1.3 (Location Area Identification), §10.5.1.4 (Mobile Identity),
TS 24.301 §9.9.3.12 (EPS mobile identity), TS 23.003 §6.2.1 (IMEI check digit).
"""

from capture.errors import Malformed, Truncated

# Mobile identity type, TS 24.008 table 10.5.4 (octet 3 bits 3-1).
IDENTITY_TYPES = {0: "none", 1: "imsi", 2: "imei", 3: "imeisv", 4: "tmsi", 5: "tmgi"}
# EPS mobile identity type, TS 24.301 table 9.9.3.12.1.
EPS_IDENTITY_TYPES = {1: "imsi", 3: "imei", 6: "guti"}

_DIGITS = "0123456789*#abcf"  # index 15 is the filler nibble


def tbcd(data: bytes, skip_first_nibble: bool = False) -> str:
    """Telephony BCD: low nibble first, 0xF is filler and ends the number (TS 29.002 TBCD-STRING)."""
    nibbles = [n for octet in data for n in (octet & 0x0F, octet >> 4)]
    out = []
    for nibble in nibbles[1:] if skip_first_nibble else nibbles:
        if nibble == 0xF:
            break
        out.append(_DIGITS[nibble])
    return "".join(out)


def plmn(data: bytes) -> tuple[str, str]:
    """MCC and MNC from the 3-octet PLMN identity; MNC keeps its 2 or 3 digits ("00" vs "001")."""
    if len(data) < 3:
        raise Truncated("identity.plmn_short")
    b0, b1, b2 = data[0], data[1], data[2]
    digits = (b0 & 0xF, b0 >> 4, b1 & 0xF, b2 & 0xF, b2 >> 4)
    mnc3 = b1 >> 4
    if max(digits) > 9 or (mnc3 > 9 and mnc3 != 0xF):
        raise Malformed("identity.plmn_not_bcd", data[:3].hex())
    mcc = f"{digits[0]}{digits[1]}{digits[2]}"
    mnc = f"{digits[3]}{digits[4]}" + ("" if mnc3 == 0xF else str(mnc3))
    return mcc, mnc


def lai(data: bytes) -> tuple[str, str, int]:
    """(mcc, mnc, lac) from a 5-octet Location Area Identification, TS 24.008 §10.5.1.3."""
    if len(data) < 5:
        raise Truncated("identity.lai_short")
    mcc, mnc = plmn(data)
    return mcc, mnc, int.from_bytes(data[3:5], "big")


# An IMEI digit's Luhn weight at an odd (doubled) position, as a bytes.translate table over ASCII digits.
_DOUBLED = bytes.maketrans(b"0123456789", bytes(2 * d - 9 if d > 4 else 2 * d for d in range(10)))


def imei_check_digit(imei14: str) -> int:
    """Luhn check digit over the first 14 IMEI digits, TS 23.003 Annex B (ValueError on a non-digit)."""
    digits = imei14.encode("ascii")
    if not digits.isdigit() and digits:
        raise ValueError(f"not a digit string: {imei14!r}")
    even = digits[0::2]
    return (10 - (sum(even) - 48 * len(even) + sum(digits[1::2].translate(_DOUBLED))) % 10) % 10


def mobile_identity(value: bytes) -> tuple[str, str | int]:
    """Decode the value part of a Mobile Identity IE (TS 24.008 §10.5.1.4).

    Returns ``(kind, identity)``: kind is one of IDENTITY_TYPES; IMSI/IMEI/IMEISV are digit strings,
    a TMSI is an int. Digits are returned as on the wire (as Wireshark shows them); an IMEI whose
    check digit is neither the Luhn digit nor the spare 0 (§10.5.1.4) is Malformed.
    """
    if not value:
        raise Truncated("identity.empty")
    kind = IDENTITY_TYPES.get(value[0] & 0x07)
    if kind is None:
        raise Malformed("identity.unknown_type", str(value[0] & 0x07))
    if kind == "none":
        return kind, ""
    if kind == "tmsi":
        if len(value) < 5:
            raise Truncated("identity.tmsi_short")
        return kind, int.from_bytes(value[1:5], "big")
    if kind == "tmgi":
        return kind, value[1:].hex()
    digits = [_DIGITS[n] for octet in value for n in (octet & 0x0F, octet >> 4)][1:]
    if not value[0] & 0x08:  # even number of digits: the last high nibble is the 0xF filler
        digits.pop()
    number = "".join(digits)
    if not number.isdigit():
        raise Malformed(f"identity.{kind}_not_digits", value.hex())
    if kind == "imei" and len(number) == 15 and number[14] not in ("0", str(imei_check_digit(number[:14]))):
        raise Malformed("identity.imei_check_digit", number)
    return kind, number


def eps_mobile_identity(value: bytes) -> tuple[str, str | dict]:
    """Decode an EPS mobile identity value (TS 24.301 §9.9.3.12).

    IMSI and IMEI are coded as in TS 24.008; a GUTI becomes
    ``{"mcc", "mnc", "mmegi", "mmec", "m_tmsi"}``.
    """
    if not value:
        raise Truncated("identity.empty")
    type_code = value[0] & 0x07
    kind = EPS_IDENTITY_TYPES.get(type_code)
    if kind is None:
        raise Malformed("identity.unknown_eps_type", str(type_code))
    if kind == "imei":  # same digit layout as TS 24.008, where the IMEI type code is 2
        return mobile_identity(bytes([(value[0] & 0xF8) | 2]) + value[1:])
    if kind == "imsi":
        return mobile_identity(value)
    if len(value) < 11:
        raise Truncated("identity.guti_short")
    mcc, mnc = plmn(value[1:4])
    return kind, {
        "mcc": mcc,
        "mnc": mnc,
        "mmegi": int.from_bytes(value[4:6], "big"),
        "mmec": value[6],
        "m_tmsi": int.from_bytes(value[7:11], "big"),
    }
