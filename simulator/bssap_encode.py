"""A-interface encoders: BSSMAP (TS 48.008), DTAP MM/RR/CC (TS 24.008, TS 44.018) and SMS (TS 24.011, TS 23.040).

Also home of the TS 24.008 codings the EPS encoders reuse: PLMN identity (§10.5.1.3), mobile identity
(§10.5.1.4) and BCD digits (§10.5.4.7). Every function returns the bytes of one message or information element;
the SCCP framing is in ``simulator.pcap``.
"""

import struct
from functools import lru_cache

from decoders.dtap import GSM7_DEFAULT_ALPHABET, GSM7_EXTENSION

# -- TS 24.008 common codings --------------------------------------------------------------------------------------

IDENTITY_TYPES = {"imsi": 1, "imei": 2, "imeisv": 3, "tmsi": 4}   # TS 24.008 §10.5.1.4 / §10.5.5.9
TON_INTERNATIONAL, TON_NATIONAL, TON_UNKNOWN = 1, 2, 0            # TS 24.008 §10.5.4.7, octet 3


def bcd(digits: str) -> bytes:
    """TBCD digits, two per octet, the first in the low nibble; an odd count ends with the 1111 filler."""
    if len(digits) % 2:
        digits += "?"  # ord("?") & 0xF == 0xF: the filler
    return bytes((ord(digits[i]) & 0xF) | (ord(digits[i + 1]) & 0xF) << 4 for i in range(0, len(digits), 2))


@lru_cache(maxsize=1024)
def plmn_identity(mcc: str, mnc: str) -> bytes:
    """TS 24.008 §10.5.1.3: MCC2 MCC1 | MNC3 MCC3 | MNC2 MNC1, MNC3 = 1111 for a two-digit MNC."""
    mnc3 = mnc[2] if len(mnc) == 3 else "?"
    return bcd(mcc[0] + mcc[1] + mcc[2] + mnc3 + mnc[0] + mnc[1])


def _lai(mcc: str, mnc: str, lac: int) -> bytes:
    """TS 24.008 §10.5.1.3 Location Area Identification value: PLMN, then LAC."""
    return plmn_identity(mcc, mnc) + lac.to_bytes(2, "big")


def luhn_digit(body: str) -> str:
    """TS 23.003 §6.2.1 / Annex B: the check digit of a 14-digit IMEI (Luhn over the body)."""
    total = 0
    for i, c in enumerate(reversed(body)):
        d = int(c) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str(-total % 10)


def mobile_identity(imsi: str | None = None, imei: str | None = None, imeisv: str | None = None,
                    tmsi: int | None = None) -> bytes:
    """TS 24.008 §10.5.1.4 value part: digit 1, odd/even flag, type; then the other digits as BCD.

    A 14-digit IMEI gets its Luhn check digit appended, so callers may give either form.
    """
    if tmsi is not None:
        return b"\xf4" + tmsi.to_bytes(4, "big")
    if imsi is not None:
        kind, digits = 1, imsi
    elif imei is not None:
        kind, digits = 2, imei + luhn_digit(imei) if len(imei) == 14 else imei
    elif imeisv is not None:
        kind, digits = 3, imeisv
    else:
        raise ValueError("mobile_identity needs one of imsi, imei, imeisv, tmsi")
    return bytes(((ord(digits[0]) & 0xF) << 4 | (len(digits) % 2) << 3 | kind,)) + bcd(digits[1:])


def _lv(value: bytes) -> bytes:
    return bytes((len(value),)) + value


def _tlv(iei: int, value: bytes) -> bytes:
    return bytes((iei, len(value))) + value


def bcd_number(digits: str, ton: int = TON_INTERNATIONAL) -> bytes:
    """TS 24.008 §10.5.4.7 / TS 24.011 §8.2.5.2 number value: ext=1, type of number, plan 1 (E.164), BCD digits."""
    return bytes((0x80 | ton << 4 | 1,)) + bcd(digits)


# -- BSSMAP, TS 48.008 §3.2 -----------------------------------------------------------------------------------------

BSSMAP_ASSIGNMENT_REQUEST, BSSMAP_ASSIGNMENT_COMPLETE = 0x01, 0x02    # TS 48.008 §3.2.2.1
BSSMAP_HANDOVER_REQUIRED, BSSMAP_HANDOVER_PERFORMED = 0x11, 0x17
BSSMAP_CLEAR_COMMAND, BSSMAP_CLEAR_COMPLETE, BSSMAP_CLEAR_REQUEST = 0x20, 0x21, 0x22
BSSMAP_RESET, BSSMAP_RESET_ACKNOWLEDGE = 0x30, 0x31
BSSMAP_PAGING, BSSMAP_CIPHER_MODE_COMMAND, BSSMAP_CIPHER_MODE_COMPLETE = 0x52, 0x53, 0x55
BSSMAP_COMPLETE_LAYER3_INFORMATION = 0x57

# TS 48.008 §3.2.2 element identifiers
IE_CIC, IE_CAUSE, IE_CELL_IDENTIFIER, IE_IMSI, IE_TMSI = 0x01, 0x04, 0x05, 0x08, 0x09
IE_ENCRYPTION_INFORMATION, IE_CHANNEL_TYPE, IE_RR_CAUSE, IE_LAYER3_INFORMATION = 0x0A, 0x0B, 0x15, 0x17
IE_CELL_IDENTIFIER_LIST, IE_CHOSEN_CHANNEL, IE_CHOSEN_ENCRYPTION_ALGORITHM = 0x1A, 0x21, 0x2C
IE_CIPHER_RESPONSE_MODE, IE_SPEECH_VERSION = 0x23, 0x40

A5_1 = 0x02          # §3.2.2.44 chosen algorithm "GSM A5/1"; §3.2.2.10 permitted-algorithms bit 2
_KC = bytes.fromhex("2e8f1d3c4b5a6978")  # any 64-bit ciphering key: nothing checks it


def bssmap(msg_type: int, *ies: bytes) -> bytes:
    """TS 48.008 §3.2.1 / TS 48.006 §9.2: discriminator 0 (BSSMAP), length, message type, elements."""
    body = bytes((msg_type,)) + b"".join(ies)
    return bytes((0x00, len(body))) + body


def dtap(l3: bytes, dlci: int = 0) -> bytes:
    """TS 48.006 §9.3: discriminator 1 (DTAP), DLCI (SAPI 3 = 0x03 for SMS), length, the layer 3 message."""
    return bytes((0x01, dlci, len(l3))) + l3


def _cause(cause: int) -> bytes:
    """TS 48.008 §3.2.2.5: single-octet cause value (class in bits 7-5)."""
    return _tlv(IE_CAUSE, bytes((cause & 0x7F,)))


def _cell(cell: tuple) -> tuple[int, bytes]:
    """TS 48.008 §3.2.2.17 identification: (mcc, mnc, lac, ci) → discriminator 0; (lac, ci) → discriminator 1."""
    if len(cell) == 4:
        mcc, mnc, lac, ci = cell
        return 0, _lai(mcc, mnc, lac) + ci.to_bytes(2, "big")
    lac, ci = cell
    return 1, struct.pack("!HH", lac, ci)


def cell_identifier(cell: tuple) -> bytes:
    """TS 48.008 §3.2.2.17 Cell Identifier element."""
    discriminator, value = _cell(cell)
    return _tlv(IE_CELL_IDENTIFIER, bytes((discriminator,)) + value)


def cell_identifier_list(cells: list[tuple]) -> bytes:
    """TS 48.008 §3.2.2.27 Cell Identifier List: one discriminator for all cells (all the same form)."""
    coded = [_cell(c) for c in cells]
    return _tlv(IE_CELL_IDENTIFIER_LIST, bytes((coded[0][0],)) + b"".join(v for _, v in coded))


def complete_layer3(mcc: str, mnc: str, lac: int, ci: int, l3: bytes, cgi: bool = True) -> bytes:
    """TS 48.008 §3.2.1.32 Complete Layer 3 Information: the serving cell (CGI, or LAC+CI) and the initial message."""
    cell = (mcc, mnc, lac, ci) if cgi else (lac, ci)
    return bssmap(BSSMAP_COMPLETE_LAYER3_INFORMATION, cell_identifier(cell), _tlv(IE_LAYER3_INFORMATION, l3))


def paging(imsi: str, tmsi: int | None, cells: list[tuple]) -> bytes:
    """TS 48.008 §3.2.1.19 Paging: IMSI, optional TMSI, the cells to page in."""
    ies = [_tlv(IE_IMSI, mobile_identity(imsi=imsi))]
    if tmsi is not None:
        ies.append(_tlv(IE_TMSI, tmsi.to_bytes(4, "big")))
    return bssmap(BSSMAP_PAGING, *ies, cell_identifier_list(cells))


def clear_command(cause: int) -> bytes:
    """TS 48.008 §3.2.1.21."""
    return bssmap(BSSMAP_CLEAR_COMMAND, _cause(cause))


def clear_complete() -> bytes:
    """TS 48.008 §3.2.1.22."""
    return bssmap(BSSMAP_CLEAR_COMPLETE)


def clear_request(cause: int) -> bytes:
    """TS 48.008 §3.2.1.20."""
    return bssmap(BSSMAP_CLEAR_REQUEST, _cause(cause))


def handover_performed(cause: int, mcc: str, mnc: str, lac: int, ci: int) -> bytes:
    """TS 48.008 §3.2.1.25: the BSC reports an internal handover and the new serving cell."""
    return bssmap(BSSMAP_HANDOVER_PERFORMED, _cause(cause), cell_identifier((mcc, mnc, lac, ci)))


def handover_required(cause: int, cells: list[tuple]) -> bytes:
    """TS 48.008 §3.2.1.9: Cause and the preferred target cells."""
    return bssmap(BSSMAP_HANDOVER_REQUIRED, _cause(cause), cell_identifier_list(cells))


def cipher_mode_command(algorithms: int = A5_1, key: bytes = _KC) -> bytes:
    """TS 48.008 §3.2.1.30: Encryption Information (permitted algorithms bitmap, Kc), Cipher Response Mode."""
    return bssmap(BSSMAP_CIPHER_MODE_COMMAND, _tlv(IE_ENCRYPTION_INFORMATION, bytes((algorithms,)) + key),
                  bytes((IE_CIPHER_RESPONSE_MODE, 0x00)))


def cipher_mode_complete(algorithm: int = A5_1) -> bytes:
    """TS 48.008 §3.2.1.31 with the Chosen Encryption Algorithm."""
    return bssmap(BSSMAP_CIPHER_MODE_COMPLETE, bytes((IE_CHOSEN_ENCRYPTION_ALGORITHM, algorithm)))


def assignment_request(cic: int = 1) -> bytes:
    """TS 48.008 §3.2.1.1: a full-rate speech channel (Channel Type §3.2.2.11: speech, TCH/F, FR1) on ``cic``."""
    return bssmap(BSSMAP_ASSIGNMENT_REQUEST, _tlv(IE_CHANNEL_TYPE, b"\x01\x08\x01"), struct.pack("!BH", IE_CIC, cic))


def assignment_complete(cic: int = 1) -> bytes:
    """TS 48.008 §3.2.1.2: RR cause normal, CIC, chosen channel (speech, TCH/F), A5/1, speech version FR1."""
    return bssmap(BSSMAP_ASSIGNMENT_COMPLETE, bytes((IE_RR_CAUSE, 0x00)), struct.pack("!BH", IE_CIC, cic),
                  bytes((IE_CHOSEN_CHANNEL, 0x98, IE_CHOSEN_ENCRYPTION_ALGORITHM, A5_1, IE_SPEECH_VERSION, 0x01)))


def reset(cause: int) -> bytes:
    """TS 48.008 §3.2.1.23."""
    return bssmap(BSSMAP_RESET, _cause(cause))


def reset_ack() -> bytes:
    """TS 48.008 §3.2.1.24."""
    return bssmap(BSSMAP_RESET_ACKNOWLEDGE)


# -- DTAP mobility management, TS 24.008 §9.2 (and the RR Paging Response, TS 44.018 §9.1.25) ------------------------

PD_CC, PD_MM, PD_RR, PD_SMS = 0x3, 0x5, 0x6, 0x9   # TS 24.007 §11.2.3.1.1

MM_IMSI_DETACH_INDICATION, MM_LOCATION_UPDATING_ACCEPT = 0x01, 0x02   # TS 24.008 §10.4, Table 10.2
MM_LOCATION_UPDATING_REJECT, MM_LOCATION_UPDATING_REQUEST = 0x04, 0x08
MM_IDENTITY_REQUEST, MM_IDENTITY_RESPONSE = 0x18, 0x19
MM_TMSI_REALLOCATION_COMMAND, MM_TMSI_REALLOCATION_COMPLETE = 0x1A, 0x1B
MM_CM_SERVICE_REQUEST = 0x24
RR_PAGING_RESPONSE = 0x27                           # TS 44.018 §10.4

LU_TYPES = {"normal": 0, "periodic": 1, "imsi_attach": 2}            # TS 24.008 §10.5.3.5
CM_SERVICE_TYPES = {"mo_call": 1, "emergency": 2, "sms": 4, "ss": 8}  # TS 24.008 §10.5.3.3
NO_KEY = 7                                                        # ciphering key sequence number: none available
IEI_MOBILE_IDENTITY = 0x17
_CLASSMARK1 = b"\x57"              # §10.5.1.5: R99+, A5/1, power class 4 (any plausible phone)
_CLASSMARK2 = b"\x03\x57\x58\xa6"  # §10.5.1.6 as LV


def _identity(imsi=None, tmsi=None, imei=None, imeisv=None) -> bytes:
    return _lv(mobile_identity(imsi=imsi, imei=imei, imeisv=imeisv, tmsi=tmsi))


def location_updating_request(lu_type: str, old_lai: tuple[str, str, int], imsi: str | None = None,
                              tmsi: int | None = None, cksn: int = NO_KEY) -> bytes:
    """TS 24.008 §9.2.15: LU type (low nibble) with CKSN, the LAI the phone last registered in, identity."""
    return (bytes((PD_MM, MM_LOCATION_UPDATING_REQUEST, cksn << 4 | LU_TYPES[lu_type])) + _lai(*old_lai)
            + _CLASSMARK1 + _identity(imsi, tmsi))


def location_updating_accept(lai: tuple[str, str, int], tmsi: int | None = None) -> bytes:
    """TS 24.008 §9.2.13: the new LAI, and a new TMSI in the optional Mobile Identity."""
    msg = bytes((PD_MM, MM_LOCATION_UPDATING_ACCEPT)) + _lai(*lai)
    return msg if tmsi is None else msg + _tlv(IEI_MOBILE_IDENTITY, mobile_identity(tmsi=tmsi))


def location_updating_reject(cause: int) -> bytes:
    """TS 24.008 §9.2.14: reject cause (§10.5.3.6)."""
    return bytes((PD_MM, MM_LOCATION_UPDATING_REJECT, cause))


def imsi_detach_indication(imsi: str | None = None, tmsi: int | None = None) -> bytes:
    """TS 24.008 §9.2.12."""
    return bytes((PD_MM, MM_IMSI_DETACH_INDICATION)) + _CLASSMARK1 + _identity(imsi, tmsi)


def cm_service_request(service: str, imsi: str | None = None, tmsi: int | None = None,
                       cksn: int = NO_KEY) -> bytes:
    """TS 24.008 §9.2.9: CM service type (low nibble) with CKSN, classmark 2, identity."""
    return (bytes((PD_MM, MM_CM_SERVICE_REQUEST, cksn << 4 | CM_SERVICE_TYPES[service])) + _CLASSMARK2
            + _identity(imsi, tmsi))


def identity_request(kind: str) -> bytes:
    """TS 24.008 §9.2.10: identity type (§10.5.3.4) in the low nibble."""
    return bytes((PD_MM, MM_IDENTITY_REQUEST, IDENTITY_TYPES[kind]))


def identity_response(imsi: str | None = None, imei: str | None = None, imeisv: str | None = None) -> bytes:
    """TS 24.008 §9.2.11."""
    return bytes((PD_MM, MM_IDENTITY_RESPONSE)) + _identity(imsi, imei=imei, imeisv=imeisv)


def tmsi_reallocation_command(lai: tuple[str, str, int], tmsi: int) -> bytes:
    """TS 24.008 §9.2.17."""
    return bytes((PD_MM, MM_TMSI_REALLOCATION_COMMAND)) + _lai(*lai) + _identity(tmsi=tmsi)


def tmsi_reallocation_complete() -> bytes:
    """TS 24.008 §9.2.18."""
    return bytes((PD_MM, MM_TMSI_REALLOCATION_COMPLETE))


def paging_response(imsi: str | None = None, tmsi: int | None = None, cksn: int = NO_KEY) -> bytes:
    """TS 44.018 §9.1.25: CKSN (low nibble), classmark 2, identity."""
    return bytes((PD_RR, RR_PAGING_RESPONSE, cksn)) + _CLASSMARK2 + _identity(imsi, tmsi)


# -- DTAP call control, TS 24.008 §9.3 --------------------------------------------------------------------------------

CC_ALERTING, CC_CALL_PROCEEDING, CC_SETUP, CC_CONNECT = 0x01, 0x02, 0x05, 0x07  # TS 24.008 §10.4, Table 10.3
CC_CONNECT_ACKNOWLEDGE, CC_DISCONNECT, CC_RELEASE_COMPLETE, CC_RELEASE = 0x0F, 0x25, 0x2A, 0x2D
IEI_BEARER_CAPABILITY, IEI_CAUSE, IEI_CALLING_PARTY, IEI_CALLED_PARTY = 0x04, 0x08, 0x5C, 0x5E
_SPEECH_BEARER = b"\xa0"   # §10.5.4.5 octet 3: full-rate speech, GSM coding, circuit mode


def _ti(ti: int, pd: int, from_originator: bool) -> int:
    """TS 24.007 §11.2.3.1.3: TI flag 0 from the side that allocated the TI, 1 towards it; TI value; PD."""
    return (0 if from_originator else 0x80) | (ti & 7) << 4 | pd


def _cc(ti: int, from_originator: bool, msg_type: int, body: bytes = b"") -> bytes:
    return bytes((_ti(ti, PD_CC, from_originator), msg_type)) + body


def _cc_cause(cause: int) -> bytes:
    """TS 24.008 §10.5.4.11 value: coding standard GSM, location user; ext=1, cause value."""
    return bytes((0xE0, 0x80 | cause))


def setup_mo(ti: int, called: str, ton: int = TON_INTERNATIONAL) -> bytes:
    """TS 24.008 §9.3.23.2 mobile originating Setup (MS allocated the TI): speech bearer, called party number."""
    return _cc(ti, True, CC_SETUP, _tlv(IEI_BEARER_CAPABILITY, _SPEECH_BEARER)
               + _tlv(IEI_CALLED_PARTY, bcd_number(called, ton)))


def setup_mt(ti: int, calling: str, ton: int = TON_INTERNATIONAL) -> bytes:
    """TS 24.008 §9.3.23.1 mobile terminating Setup (network allocated the TI): speech bearer, calling party number.

    Calling party octet 3a (presentation allowed, network provided) follows the type-of-number octet.
    """
    number = bcd_number(calling, ton)
    return _cc(ti, True, CC_SETUP, _tlv(IEI_BEARER_CAPABILITY, _SPEECH_BEARER)
               + _tlv(IEI_CALLING_PARTY, bytes((number[0] & 0x7F, 0x83)) + number[1:]))


def call_proceeding(ti: int, from_originator: bool = False) -> bytes:
    """TS 24.008 §9.3.3, network to the calling MS."""
    return _cc(ti, from_originator, CC_CALL_PROCEEDING)


def alerting(ti: int, from_originator: bool = False) -> bytes:
    """TS 24.008 §9.3.1, from the called side."""
    return _cc(ti, from_originator, CC_ALERTING)


def connect(ti: int, from_originator: bool = False) -> bytes:
    """TS 24.008 §9.3.5, from the called side."""
    return _cc(ti, from_originator, CC_CONNECT)


def connect_acknowledge(ti: int, from_originator: bool = True) -> bytes:
    """TS 24.008 §9.3.6, from the calling side."""
    return _cc(ti, from_originator, CC_CONNECT_ACKNOWLEDGE)


def disconnect(ti: int, cause: int, from_originator: bool = True) -> bytes:
    """TS 24.008 §9.3.7: mandatory Cause (LV)."""
    return _cc(ti, from_originator, CC_DISCONNECT, _lv(_cc_cause(cause)))


def release(ti: int, cause: int | None = None, from_originator: bool = False) -> bytes:
    """TS 24.008 §9.3.18, optional Cause."""
    return _cc(ti, from_originator, CC_RELEASE, b"" if cause is None else _tlv(IEI_CAUSE, _cc_cause(cause)))


def release_complete(ti: int, cause: int | None = None, from_originator: bool = True) -> bytes:
    """TS 24.008 §9.3.19, optional Cause."""
    return _cc(ti, from_originator, CC_RELEASE_COMPLETE,
               b"" if cause is None else _tlv(IEI_CAUSE, _cc_cause(cause)))


# -- SMS: CP (TS 24.011 §7.2), RP (§7.3), TP (TS 23.040 §9.2) ------------------------------------------------------

CP_DATA, CP_ACK = 0x01, 0x04            # TS 24.011 §8.1.3
RP_DATA_MS_TO_NETWORK = 0x00           # TS 24.011 §8.2.2
TP_MTI_SUBMIT, TP_VPF_RELATIVE = 0x01, 0x10   # TS 23.040 §9.2.3.1 / §9.2.3.3

# TS 23.038 §6.2.1 GSM 7-bit alphabet: the decoder's table, inverted.
_GSM7_CODE = {c: i for i, c in enumerate(GSM7_DEFAULT_ALPHABET)}
_GSM7_EXTENSION = {c: code for code, c in GSM7_EXTENSION.items()}


def gsm7_septets(text: str) -> list[int]:
    """Text in the default alphabet (TS 23.038 §6.2.1); characters outside it and its extension become '?'."""
    septets = []
    for c in text:
        if c in _GSM7_CODE:
            septets.append(_GSM7_CODE[c])
        elif c in _GSM7_EXTENSION:
            septets += (0x1B, _GSM7_EXTENSION[c])
        else:
            septets.append(_GSM7_CODE["?"])
    return septets


def gsm7_pack(septets: list[int]) -> bytes:
    """TS 23.038 §6.1.2.1.1: septets packed least significant bit first."""
    value = 0
    for i, s in enumerate(septets):
        value |= s << (7 * i)
    return value.to_bytes((7 * len(septets) + 7) // 8, "little")


def _sms(ti: int, from_originator: bool, msg_type: int, body: bytes = b"") -> bytes:
    return bytes((_ti(ti, PD_SMS, from_originator), msg_type)) + body


def cp_data(ti: int, rp: bytes, from_originator: bool = True) -> bytes:
    """TS 24.011 §7.2.1: CP-User data (LV) carrying the RPDU."""
    return _sms(ti, from_originator, CP_DATA, _lv(rp))


def cp_ack(ti: int, from_originator: bool = False) -> bytes:
    """TS 24.011 §7.2.2, from the side that received the CP-DATA."""
    return _sms(ti, from_originator, CP_ACK)


def rp_data_mo(mr: int, sc_address: str, tpdu: bytes, ton: int = TON_INTERNATIONAL) -> bytes:
    """TS 24.011 §7.3.1.2 RP-DATA MS→network: no originator address, the service centre as destination."""
    return bytes((RP_DATA_MS_TO_NETWORK, mr, 0)) + _lv(bcd_number(sc_address, ton)) + _lv(tpdu)


def tp_submit(mr: int, destination: str, text: str, ton: int = TON_INTERNATIONAL, validity: int = 0xA7) -> bytes:
    """TS 23.040 §9.2.2.2 SMS-SUBMIT: TP-DA (§9.1.2.5, length in digits), PID 0, DCS 0 (GSM 7-bit), relative VP."""
    septets = gsm7_septets(text)
    address = bytes((len(destination),)) + bcd_number(destination, ton)
    return (bytes((TP_MTI_SUBMIT | TP_VPF_RELATIVE, mr)) + address + bytes((0x00, 0x00, validity, len(septets)))
            + gsm7_pack(septets))
