"""BSSAP on the A interface and BSSAP-LE on Lb: one record per BSSMAP message, plus one per layer 3 message inside.

TS 48.006 §9.3 (discrimination octet: 0 BSSMAP with a length, 1 DTAP with DLCI and length);
TS 48.008 §3.2.1 (messages and who sends them), §3.2.2.1 (message types), §3.2.2 (element identifiers and
codings: Cause §3.2.2.5, Cell Identifier §3.2.2.17, Cell Identifier List §3.2.2.27, Layer 3 Information
§3.2.2.24, Layer 3 Message Contents §3.2.2.35, APDU §3.2.2.68);
TS 49.031 §9-10 (BSSMAP-LE: every element TLV, the APDU with a two-octet length);
TS 48.071 §4.2.2 / §5 (the BSSLAP TA Response an APDU carries names the serving cell).

A message's elements are walked once with a precomputed table of element lengths; only those that carry a
record field are looked at. The layer 3 messages go to ``decoders.dtap``.
"""

from capture.errors import DecodeError, Malformed, Truncated, Unsupported
from decoders.dtap import decode_l3, put_identity
from decoders.identity import plmn

BSSMAP_DISCRIMINATOR, DTAP_DISCRIMINATOR = 0x00, 0x01  # TS 48.006 §9.3.1

# TS 48.008 §3.2.2.1 message types: code -> (name, sender) where sender is True for the BSS, False for the
# MSC (TS 48.008 §3.2.1) and None where both send it or the message is obsolete.
MESSAGE_TYPES = {
    0x01: ("assignment_request", False),
    0x02: ("assignment_complete", True),
    0x03: ("assignment_failure", True),
    0x04: ("vgcs_vbs_setup", False),
    0x05: ("vgcs_vbs_setup_ack", True),
    0x06: ("vgcs_vbs_setup_refuse", True),
    0x07: ("vgcs_vbs_assignment_request", False),
    0x08: ("channel_modify_request", True),
    0x10: ("handover_request", False),
    0x11: ("handover_required", True),
    0x12: ("handover_request_acknowledge", True),
    0x13: ("handover_command", False),
    0x14: ("handover_complete", True),
    0x15: ("handover_succeeded", False),
    0x16: ("handover_failure", True),
    0x17: ("handover_performed", True),
    0x18: ("handover_candidate_enquire", False),
    0x19: ("handover_candidate_response", True),
    0x1A: ("handover_required_reject", False),
    0x1B: ("handover_detect", True),
    0x1C: ("vgcs_vbs_assignment_result", True),
    0x1D: ("vgcs_vbs_assignment_failure", True),
    0x1E: ("vgcs_vbs_queuing_indication", True),
    0x1F: ("uplink_request", True),
    0x20: ("clear_command", False),
    0x21: ("clear_complete", True),
    0x22: ("clear_request", True),
    0x25: ("sapi_n_reject", True),
    0x26: ("confusion", None),
    0x27: ("uplink_request_acknowledge", False),
    0x28: ("suspend", True),
    0x29: ("resume", True),
    0x2A: ("connection_oriented_information", None),
    0x2B: ("perform_location_request", False),
    0x2C: ("lsa_information", False),
    0x2D: ("perform_location_response", True),
    0x2E: ("perform_location_abort", False),
    0x2F: ("common_id", False),
    0x30: ("reset", None),
    0x31: ("reset_acknowledge", None),
    0x32: ("overload", None),
    0x34: ("reset_circuit", None),
    0x35: ("reset_circuit_acknowledge", None),
    0x36: ("msc_invoke_trace", False),
    0x37: ("bss_invoke_trace", True),
    0x3A: ("connectionless_information", None),
    0x3B: ("vgcs_vbs_assignment_status", True),
    0x3C: ("vgcs_vbs_area_cell_info", None),
    0x3D: ("reset_ip_resource", None),
    0x3E: ("reset_ip_resource_acknowledge", None),
    0x40: ("block", True),
    0x41: ("blocking_acknowledge", False),
    0x42: ("unblock", True),
    0x43: ("unblocking_acknowledge", False),
    0x44: ("circuit_group_block", True),
    0x45: ("circuit_group_blocking_acknowledge", False),
    0x46: ("circuit_group_unblock", True),
    0x47: ("circuit_group_unblocking_acknowledge", False),
    0x48: ("unequipped_circuit", None),
    0x49: ("uplink_request_confirmation", True),
    0x4A: ("uplink_release_indication", True),
    0x4B: ("uplink_reject_command", False),
    0x4C: ("uplink_release_command", False),
    0x4D: ("uplink_seized_command", False),
    0x4E: ("change_circuit", None),
    0x4F: ("change_circuit_acknowledge", None),
    0x50: ("resource_request", False),
    0x51: ("resource_indication", True),
    0x52: ("paging", False),
    0x53: ("cipher_mode_command", False),
    0x54: ("classmark_update", None),
    0x55: ("cipher_mode_complete", True),
    0x56: ("queuing_indication", True),
    0x57: ("complete_layer3_information", True),
    0x58: ("classmark_request", False),
    0x59: ("cipher_mode_reject", True),
    0x5A: ("load_indication", None),
    0x60: ("vgcs_additional_information", False),
    0x61: ("vgcs_sms", False),
    0x62: ("notification_data", False),
    0x63: ("uplink_application_data", True),
    0x70: ("internal_handover_required", True),
    0x71: ("internal_handover_required_reject", False),
    0x72: ("internal_handover_command", False),
    0x73: ("internal_handover_enquiry", False),
    0x74: ("lcls_connect_control", False),
    0x75: ("lcls_connect_control_ack", True),
    0x76: ("lcls_notification", True),
    0x78: ("reroute_command", False),
    0x79: ("reroute_complete", True),
}

# TS 49.031 §10 (table 10.1) BSSMAP-LE message types; sender True for the BSC, False for the SMLC.
LE_MESSAGE_TYPES = {
    0x2B: ("perform_location_request", True),
    0x2D: ("perform_location_response", False),
    0x2E: ("perform_location_abort", True),
    0x2F: ("perform_location_information", None),
    0x2A: ("connection_oriented_information", None),
    0x3A: ("connectionless_information", None),
    0x30: ("reset", None),
    0x31: ("reset_acknowledge", None),
}

# TS 48.008 §3.2.2 element identifiers read here.
IE_CAUSE, IE_CELL_IDENTIFIER, IE_IMSI, IE_TMSI = 0x04, 0x05, 0x08, 0x09
IE_LAYER3_INFORMATION, IE_CELL_IDENTIFIER_LIST, IE_LAYER3_MESSAGE_CONTENTS = 0x17, 0x1A, 0x20
IE_MOBILE_IDENTITY, IE_LCS_CAUSE, IE_APDU, IE_IMEI = 0x29, 0x47, 0x49, 0x68
# TS 49.031 §10 element identifiers that differ from TS 48.008 (Cause, Cell Identifier, LCS Cause and APDU
# keep the TS 48.008 codes).
LE_IE_IMSI, LE_IE_IMEI = 0x00, 0x80

# TS 48.008 elements that are not TLV, by total length (identifier included): T (1) and TV elements, as each
# element's §3.2.2.x "coding" section gives them. 0xF0/0xF1 are Osmocom's Osmux elements, which open-source
# BSCs send. Every other identifier, also those a later release adds, is TLV with a one-octet length, except
# the APDU, whose length takes two octets.
FIXED_LENGTH_ELEMENTS = {
    0x01: 3, 0x03: 21, 0x0C: 2, 0x0D: 2, 0x0E: 2, 0x14: 2, 0x15: 2, 0x18: 2, 0x19: 2, 0x1B: 1, 0x1C: 2, 0x1D: 2,
    0x21: 2, 0x22: 5, 0x23: 2, 0x24: 2, 0x25: 2, 0x27: 3, 0x2B: 2, 0x2C: 2, 0x2D: 2, 0x2F: 2, 0x31: 2, 0x32: 2,
    0x33: 2, 0x35: 1, 0x36: 1, 0x38: 2, 0x39: 2, 0x3F: 2, 0x40: 2, 0x67: 2, 0x6A: 2, 0x6B: 1, 0x7F: 5, 0x81: 2,
    0x83: 17, 0x85: 1, 0x86: 2, 0x87: 2, 0x88: 2, 0x8A: 2, 0x8B: 2, 0x8C: 1, 0x8D: 2, 0x8E: 1, 0x8F: 1, 0x90: 1,
    0x92: 1, 0x94: 4, 0x95: 4, 0x96: 6, 0x97: 1, 0x98: 4, 0x99: 4, 0x9A: 4, 0xF0: 1, 0xF1: 2,
}
_TLV16 = -1  # layout marker: TLV with a two-octet length


def _layout(fixed: dict[int, int], tlv16: tuple[int, ...]) -> list[int]:
    """Per identifier: total length of a fixed-length element, 0 for TLV, _TLV16 for a two-octet length."""
    layout = [0] * 256
    for iei, size in fixed.items():
        layout[iei] = size
    for iei in tlv16:
        layout[iei] = _TLV16
    return layout


_BSSMAP_LAYOUT = _layout(FIXED_LENGTH_ELEMENTS, (IE_APDU,))
_LE_LAYOUT = _layout({}, (IE_APDU,))

# TS 48.008 §3.2.2.17 cell identification discriminator -> (octets per cell, has PLMN, has LAC, has CI).
# 3 (no cell) and 6 (all cells of the BSS) have no cell; 9 (RNC-ID) and 12 (LAC, RNC-ID, CI for load
# information, §3.2.2.17 note) are not a GSM serving cell.
CELL_DISCRIMINATORS = {
    0x0: (7, True, True, True),    # CGI: PLMN, LAC, CI
    0x1: (4, False, True, True),   # LAC, CI
    0x2: (2, False, False, True),  # CI
    0x4: (5, True, True, False),   # LAI
    0x5: (2, False, True, False),  # LAC
    0x8: (7, True, True, False),   # PLMN, LAC, RNC-ID (handover to UTRAN)
    0xA: (4, False, True, False),  # LAC, RNC-ID
    0xB: (7, True, True, False),   # SAI: PLMN, LAC, SAC
}

# TS 48.071: the BSSLAP APDU (TS 49.031 §10.3 protocol identifier 1) TA Response starts with the serving cell.
APDU_PROTOCOL_BSSLAP, BSSLAP_TA_RESPONSE, BSSLAP_IE_CELL_IDENTITY = 0x01, 0x02, 0x09


def decode_bssap(payload: bytes, uplink: bool | None) -> list[dict]:
    """Records of one A-interface BSSAP PDU: a BSSMAP message (and the layer 3 messages it carries) or a DTAP one.

    ``uplink`` is the direction the SCCP connection says (None when unknown): a BSSMAP message takes it, or else
    the direction its type implies; DTAP takes it, or else what its message type implies.
    """
    if len(payload) < 2:
        raise Truncated("bssap.short", payload.hex())
    discriminator = payload[0]
    if discriminator == BSSMAP_DISCRIMINATOR:
        return decode_bssmap(_counted(payload, 2, payload[1], "bssap.bssmap_length_exceeds_payload"), uplink)
    if discriminator == DTAP_DISCRIMINATOR:
        if len(payload) < 3:
            raise Truncated("bssap.short", payload.hex())
        return [decode_l3(_counted(payload, 3, payload[2], "bssap.dtap_length_exceeds_payload"), uplink)]
    raise Malformed("bssap.unknown_discriminator", f"{discriminator:#04x}")


def decode_bssap_le(payload: bytes, uplink: bool | None) -> list[dict]:
    """The record of one Lb BSSAP-LE PDU (TS 49.031 §9: discriminator 0 then length, BSSMAP-LE only)."""
    if len(payload) < 2:
        raise Truncated("bssap_le.short", payload.hex())
    if payload[0] != BSSMAP_DISCRIMINATOR:
        raise Malformed("bssap_le.unknown_discriminator", f"{payload[0]:#04x}")
    message = _counted(payload, 2, payload[1], "bssap_le.length_exceeds_payload")
    record = _message(message, uplink, LE_MESSAGE_TYPES, "bssmap-le", _LE_LAYOUT, _LE_READERS, [])
    return [record]


def decode_bssmap(message: bytes, uplink: bool | None) -> list[dict]:
    """Records of one BSSMAP message (message type and elements, TS 48.008 §3.2.1), then of its layer 3 messages.

    The layer 3 message of a Complete Layer 3 Information is the phone's (uplink True); one handed over in a
    Handover Request Acknowledge or Cipher Mode Complete takes the direction of its own message type.
    """
    nested: list[bytes] = []
    record = _message(message, uplink, MESSAGE_TYPES, "bssmap", _BSSMAP_LAYOUT, _READERS, nested)
    records = [record]
    l3_uplink = True if record["msg"] == "complete_layer3_information" else None
    for l3 in nested:
        try:
            records.append(decode_l3(l3, l3_uplink))
        except Unsupported as err:  # the BSSMAP facts stand; what is not decoded is counted on its record
            record.setdefault("error", err.reason)
        except DecodeError as err:
            records.append({"proto": "dtap", "msg": "malformed", "uplink": l3_uplink, "error": err.reason})
    return records


def _counted(payload: bytes, start: int, length: int, reason: str) -> bytes:
    if start + length > len(payload):
        raise Truncated(reason, f"{length} octets announced, {len(payload) - start} present")
    return payload[start:start + length]


def _message(message: bytes, uplink: bool | None, types: dict, proto: str, layout: list[int], readers: dict,
             nested: list[bytes]) -> dict:
    """The record of a message type octet and its elements; damaged elements leave ``error`` set."""
    prefix = proto.replace("-", "_")
    if not message:
        raise Truncated(f"{prefix}.empty")
    entry = types.get(message[0])
    if entry is None:
        raise Unsupported(f"{prefix}.unknown_message_type", f"{message[0]:#04x}")
    name, sender = entry
    record = {"proto": proto, "msg": name, "uplink": sender if uplink is None else uplink}
    try:
        _read_elements(message, layout, readers, record, nested, prefix)
    except DecodeError as err:
        record.setdefault("error", err.reason)
    return record


def _read_elements(message: bytes, layout: list[int], readers: dict, record: dict, nested: list[bytes],
                   prefix: str) -> None:
    pos, end = 1, len(message)
    while pos < end:
        iei = message[pos]
        size = layout[iei]
        if size > 0:  # none of the fixed-length elements carries a record field
            pos += size
            if pos > end:
                raise Truncated(f"{prefix}.element_truncated", f"{iei:#04x}")
            continue
        start = pos + (2 if size == 0 else 3)
        if start > end:
            raise Truncated(f"{prefix}.element_truncated", f"{iei:#04x}")
        stop = start + int.from_bytes(message[pos + 1:start], "big")
        if stop > end:
            raise Truncated(f"{prefix}.element_truncated", f"{iei:#04x}")
        pos = stop
        reader = readers.get(iei)
        if reader is not None:
            try:
                reader(message[start:stop], record, nested)
            except DecodeError as err:  # a damaged value is delimited: the elements after it still count
                record.setdefault("error", err.reason)


# -- element readers: (value, record, nested layer 3 messages) -------------------------------------------------

def _cause(value: bytes, record: dict, nested: list) -> None:
    """§3.2.2.5: one octet (extension bit 0: class and value in bits 7-1), or with the extension bit set two
    octets, reported as bits 7-1 of the first followed by the second."""
    if "cause" in record:  # the first Cause is the message's own
        return
    if not value:
        raise Truncated("bssmap.cause_empty")
    if value[0] & 0x80:
        if len(value) < 2:
            raise Truncated("bssmap.cause_truncated")
        record["cause"] = (value[0] & 0x7F) << 8 | value[1]
    else:
        record["cause"] = value[0]
    record["cause_group"] = "bssmap"


def _lcs_cause(value: bytes, record: dict, nested: list) -> None:
    """TS 48.008 §3.2.2.66 / TS 49.031 §10.13: the cause value, then an optional diagnostic."""
    if not value:
        raise Truncated("bssmap.lcs_cause_empty")
    record["cause"], record["cause_group"] = value[0], "lcs"


def _cell(value: bytes, record: dict) -> None:
    """A cell identification discriminator (low nibble of ``value[0]``) and the cell after it; each distinct
    value is decoded once (a BSC names the same few cells all day), the cache bounded against random input."""
    cell = _CELLS.get(value)
    if cell is None:
        form = CELL_DISCRIMINATORS.get(value[0] & 0x0F)
        if form is None:
            return
        size, has_plmn, has_lac, has_ci = form
        if len(value) <= size:
            raise Truncated("bssmap.cell_identifier_truncated", value[1:].hex())
        mcc = mnc = lac = ci = None
        at = 1
        if has_plmn:
            mcc, mnc = plmn(value[1:])
            at = 4
        if has_lac:
            lac = int.from_bytes(value[at:at + 2], "big")
            at += 2
        if has_ci:
            ci = int.from_bytes(value[at:at + 2], "big")
        if len(_CELLS) >= _CELLS_MAX:
            _CELLS.clear()
        cell = _CELLS[value] = (mcc, mnc, lac, ci)
    record["mcc"], record["mnc"], record["lac"], record["ci"] = cell


_CELLS: dict[bytes, tuple] = {}  # Cell Identifier (List) value -> (mcc, mnc, lac, ci)
_CELLS_MAX = 1 << 16


def _cell_identifier(value: bytes, record: dict, nested: list) -> None:
    """§3.2.2.17; the last one wins: a Handover Request names the serving cell first, then the target."""
    if not value:
        raise Truncated("bssmap.cell_identifier_empty")
    _cell(value, record)


def _cell_identifier_list(value: bytes, record: dict, nested: list) -> None:
    """§3.2.2.27: one discriminator, then the cells; the first is reported unless the message has a cell already.

    A Cell Identifier (Handover Candidate Enquire has both, §3.2.1.14) overrides the list in either order.
    """
    if not value:
        raise Truncated("bssmap.cell_identifier_list_empty")
    if "lac" not in record:
        _cell(value, record)


def _identity(value: bytes, record: dict, nested: list) -> None:
    """IMSI §3.2.2.6, IMEI §3.2.2.86, Mobile Identity §3.2.2.41: the value part of TS 24.008 §10.5.1.4."""
    put_identity(value, record)


def _tmsi(value: bytes, record: dict, nested: list) -> None:
    """§3.2.2.7: the four TMSI octets."""
    if len(value) != 4:
        raise Malformed("bssmap.tmsi_length", str(len(value)))
    record["tmsi"] = int.from_bytes(value, "big")


def _layer3(value: bytes, record: dict, nested: list) -> None:
    nested.append(value)


def _apdu(value: bytes, record: dict, nested: list) -> None:
    """TS 49.031 §10.3: protocol identifier, then the embedded message; a BSSLAP TA Response's serving cell."""
    if len(value) >= 2 and value[0] == APDU_PROTOCOL_BSSLAP and value[1] == BSSLAP_TA_RESPONSE:
        if len(value) < 5 or value[2] != BSSLAP_IE_CELL_IDENTITY:
            raise Malformed("bsslap.ta_response_without_cell_identity", value.hex())
        record["ci"] = int.from_bytes(value[3:5], "big")


_READERS = {
    IE_CAUSE: _cause, IE_CELL_IDENTIFIER: _cell_identifier, IE_IMSI: _identity, IE_TMSI: _tmsi,
    IE_LAYER3_INFORMATION: _layer3, IE_CELL_IDENTIFIER_LIST: _cell_identifier_list,
    IE_LAYER3_MESSAGE_CONTENTS: _layer3, IE_MOBILE_IDENTITY: _identity, IE_LCS_CAUSE: _lcs_cause,
    IE_APDU: _apdu, IE_IMEI: _identity,
}
_LE_READERS = {
    LE_IE_IMSI: _identity, LE_IE_IMEI: _identity, IE_CAUSE: _cause, IE_CELL_IDENTIFIER: _cell_identifier,
    IE_LCS_CAUSE: _lcs_cause, IE_APDU: _apdu,
}
