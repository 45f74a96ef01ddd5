"""Layer 3 messages of the A interface: what DTAP and the Complete Layer 3 Information carry.

TS 24.007 §11.2.3 (protocol discriminator, skip indicator / transaction identifier, message type whose bits
7-8 carry N(SD) from the phone), §11.2.4 (IEI bit 8 = 1: a one-octet element);
TS 24.008 §9.2 and table 10.2 (MM), §9.3 and table 10.3 (CC), table 10.4 (GMM, names only), §10.5 (elements);
TS 44.018 §9.1 and table 10.4.1 (RR: the Paging Response is an initial layer 3 message);
TS 24.011 §7-8 (SMS CP and RP) with TS 23.040 §9.1.2.5 / §9.2.2 (the TP-DA of an SMS-SUBMIT, the TP-OA of an
SMS-DELIVER) and TS 23.038 §6.2.1 (alphanumeric addresses); TS 24.080 §2 (SS names); TS 44.068 / TS 44.069
§9.3 (GSM-R group and broadcast call control names).

``decode_l3`` returns one record; only a message too short for its header or of an unknown protocol or type
raises. Damage inside a message's elements leaves the fields read so far and ``error`` set.
"""

from capture.errors import DecodeError, Truncated, Unsupported
from decoders.identity import lai, mobile_identity, tbcd

# TS 24.007 §11.2.3.1.1 protocol discriminators.
PD_GCC, PD_BCC, PD_CC, PD_MM, PD_RR, PD_GMM, PD_SMS, PD_SS = 0x0, 0x1, 0x3, 0x5, 0x6, 0x8, 0x9, 0xB

# Message types by protocol: code -> (name, sender) where sender is True for the phone, False for the
# network and None where the specification lets both send it.

# TS 24.008 table 10.2 (MM).
MM_MESSAGES = {
    0x01: ("imsi_detach_indication", True),
    0x02: ("location_updating_accept", False),
    0x04: ("location_updating_reject", False),
    0x08: ("location_updating_request", True),
    0x11: ("authentication_reject", False),
    0x12: ("authentication_request", False),
    0x14: ("authentication_response", True),
    0x1C: ("authentication_failure", True),
    0x18: ("identity_request", False),
    0x19: ("identity_response", True),
    0x1A: ("tmsi_reallocation_command", False),
    0x1B: ("tmsi_reallocation_complete", True),
    0x21: ("cm_service_accept", False),
    0x22: ("cm_service_reject", False),
    0x23: ("cm_service_abort", True),
    0x24: ("cm_service_request", True),
    0x25: ("cm_service_prompt", False),
    0x28: ("cm_reestablishment_request", True),
    0x29: ("abort", False),
    0x30: ("mm_null", True),
    0x31: ("mm_status", None),
    0x32: ("mm_information", False),
}

# TS 24.008 table 10.3 (CC).
CC_MESSAGES = {
    0x01: ("alerting", None),
    0x08: ("call_confirmed", True),
    0x02: ("call_proceeding", False),
    0x07: ("connect", None),
    0x0F: ("connect_acknowledge", None),
    0x0E: ("emergency_setup", True),
    0x03: ("progress", False),
    0x04: ("cc_establishment", False),
    0x06: ("cc_establishment_confirmed", True),
    0x0B: ("recall", False),
    0x09: ("start_cc", True),
    0x05: ("setup", None),
    0x17: ("modify", None),
    0x1F: ("modify_complete", None),
    0x13: ("modify_reject", None),
    0x10: ("user_information", None),
    0x18: ("hold", True),
    0x19: ("hold_acknowledge", False),
    0x1A: ("hold_reject", False),
    0x1C: ("retrieve", True),
    0x1D: ("retrieve_acknowledge", False),
    0x1E: ("retrieve_reject", False),
    0x25: ("disconnect", None),
    0x2D: ("release", None),
    0x2A: ("release_complete", None),
    0x39: ("congestion_control", None),
    0x3E: ("notify", None),
    0x3D: ("status", None),
    0x34: ("status_enquiry", None),
    0x35: ("start_dtmf", True),
    0x31: ("stop_dtmf", True),
    0x32: ("stop_dtmf_acknowledge", False),
    0x36: ("start_dtmf_acknowledge", False),
    0x37: ("start_dtmf_reject", False),
    0x3A: ("facility", None),
}

# TS 44.018 table 10.4.1 (RR).
RR_MESSAGES = {
    0x3B: ("additional_assignment", False),
    0x3F: ("immediate_assignment", False),
    0x39: ("immediate_assignment_extended", False),
    0x3A: ("immediate_assignment_reject", False),
    0x48: ("dtm_assignment_failure", True),
    0x49: ("dtm_reject", False),
    0x4A: ("dtm_request", True),
    0x4B: ("packet_assignment", False),
    0x4C: ("dtm_assignment_command", False),
    0x4D: ("dtm_information", False),
    0x4E: ("packet_notification", False),
    0x35: ("ciphering_mode_command", False),
    0x32: ("ciphering_mode_complete", True),
    0x30: ("configuration_change_command", False),
    0x31: ("configuration_change_acknowledge", True),
    0x33: ("configuration_change_reject", True),
    0x2E: ("assignment_command", False),
    0x29: ("assignment_complete", True),
    0x2F: ("assignment_failure", True),
    0x2B: ("handover_command", False),
    0x2C: ("handover_complete", True),
    0x28: ("handover_failure", True),
    0x2D: ("physical_information", False),
    0x08: ("rr_cell_change_order", False),
    0x23: ("pdch_assignment_command", False),
    0x0D: ("channel_release", False),
    0x0A: ("partial_release", False),
    0x0F: ("partial_release_complete", True),
    0x21: ("paging_request_type_1", False),
    0x22: ("paging_request_type_2", False),
    0x24: ("paging_request_type_3", False),
    0x27: ("paging_response", True),
    0x20: ("notification_nch", False),
    0x26: ("notification_response", True),
    0x60: ("utran_classmark_change", True),
    0x62: ("cdma2000_classmark_change", True),
    0x63: ("inter_system_to_utran_handover_command", False),
    0x64: ("inter_system_to_cdma2000_handover_command", False),
    0x18: ("system_information_type_8", False),
    0x19: ("system_information_type_1", False),
    0x1A: ("system_information_type_2", False),
    0x1B: ("system_information_type_3", False),
    0x1C: ("system_information_type_4", False),
    0x1D: ("system_information_type_5", False),
    0x1E: ("system_information_type_6", False),
    0x1F: ("system_information_type_7", False),
    0x02: ("system_information_type_2bis", False),
    0x03: ("system_information_type_2ter", False),
    0x07: ("system_information_type_2quater", False),
    0x05: ("system_information_type_5bis", False),
    0x06: ("system_information_type_5ter", False),
    0x04: ("system_information_type_9", False),
    0x00: ("system_information_type_13", False),
    0x3D: ("system_information_type_16", False),
    0x3E: ("system_information_type_17", False),
    0x40: ("system_information_type_18", False),
    0x41: ("system_information_type_19", False),
    0x42: ("system_information_type_20", False),
    0x46: ("system_information_type_21", False),
    0x10: ("channel_mode_modify", False),
    0x12: ("rr_status", None),
    0x17: ("channel_mode_modify_acknowledge", True),
    0x14: ("frequency_redefinition", False),
    0x15: ("measurement_report", True),
    0x16: ("classmark_change", True),
    0x13: ("classmark_enquiry", False),
    0x36: ("extended_measurement_report", True),
    0x37: ("extended_measurement_order", False),
    0x34: ("gprs_suspension_request", True),
    0x09: ("vgcs_uplink_grant", False),
    0x0E: ("uplink_release", None),
    0x2A: ("uplink_busy", False),
    0x11: ("talker_indication", True),
    0x38: ("application_information", None),
}

# TS 24.008 table 10.4 (GMM): names only, GPRS mobility management does not travel on the A interface.
GMM_MESSAGES = {
    0x01: ("attach_request", True),
    0x02: ("attach_accept", False),
    0x03: ("attach_complete", True),
    0x04: ("attach_reject", False),
    0x05: ("detach_request", None),
    0x06: ("detach_accept", None),
    0x08: ("routing_area_update_request", True),
    0x09: ("routing_area_update_accept", False),
    0x0A: ("routing_area_update_complete", True),
    0x0B: ("routing_area_update_reject", False),
    0x0C: ("service_request", True),
    0x0D: ("service_accept", False),
    0x0E: ("service_reject", False),
    0x10: ("p_tmsi_reallocation_command", False),
    0x11: ("p_tmsi_reallocation_complete", True),
    0x12: ("authentication_and_ciphering_request", False),
    0x13: ("authentication_and_ciphering_response", True),
    0x14: ("authentication_and_ciphering_reject", False),
    0x1C: ("authentication_and_ciphering_failure", True),
    0x15: ("identity_request", False),
    0x16: ("identity_response", True),
    0x20: ("gmm_status", None),
    0x21: ("gmm_information", False),
}

# TS 24.011 §8.1.3 (CP messages; the RP message inside a CP-DATA gives its direction).
SMS_MESSAGES = {0x01: ("cp_data", None), 0x04: ("cp_ack", None), 0x10: ("cp_error", None)}

# TS 24.080 §3.4 (non-call-related SS).
SS_MESSAGES = {0x2A: ("release_complete", None), 0x3A: ("facility", None), 0x3B: ("register", None)}

# TS 44.069 §9.3 (BCC) and TS 44.068 §9.3 (GCC, the same codes without Immediate Setup 2). Named with their
# protocol: a GSM-R broadcast or group call's Setup/Connect is no CC call (events.py reads "setup" as one).
BCC_MESSAGES = {
    0x31: ("bcc_immediate_setup", True),
    0x32: ("bcc_setup", True),
    0x33: ("bcc_connect", False),
    0x34: ("bcc_termination", False),
    0x35: ("bcc_termination_request", True),
    0x36: ("bcc_termination_reject", False),
    0x38: ("bcc_status", None),
    0x39: ("bcc_get_status", False),
    0x3A: ("bcc_set_parameter", False),
    0x3B: ("bcc_immediate_setup_2", True),
}
GCC_MESSAGES = {code: ("gcc_" + name.removeprefix("bcc_"), uplink)
                for code, (name, uplink) in BCC_MESSAGES.items() if code != 0x3B}

# TS 24.008 §10.5.3.5 location updating type (bits 2-1) and §10.5.3.3 CM service type.
LOCATION_UPDATING_TYPES = {0: "normal", 1: "periodic", 2: "imsi_attach"}
CM_SERVICE_TYPES = {1: "mo_call", 2: "emergency", 4: "sms", 8: "ss", 9: "vgcs", 10: "vbs", 11: "lcs"}

# Element identifiers (TS 24.008 §9.2-9.3, TS 44.018 §9.1.11).
IEI_MOBILE_IDENTITY = 0x17
IEI_CAUSE, IEI_CALLING_PARTY_BCD_NUMBER, IEI_CALLED_PARTY_BCD_NUMBER = 0x08, 0x5C, 0x5E
# CC type 3 (TV) elements that may precede the ones read here: Signal (§10.5.4.23), Keypad facility (§10.5.4.17).
_CC_TV_LENGTHS = {0x34: 2, 0x2C: 2}

# TS 24.011 §8.2.2 RP-MTI and TS 23.040 §9.2.3.1 TP-MTI.
RP_DATA_MS_TO_NETWORK, RP_DATA_NETWORK_TO_MS, RP_ERROR_MS_TO_NETWORK, RP_ERROR_NETWORK_TO_MS = 0, 1, 4, 5
TP_MTI_SMS_DELIVER, TP_MTI_SMS_SUBMIT = 0, 1   # as sent by the service centre / by the phone
TON_ALPHANUMERIC = 5                           # TS 23.040 §9.1.2.5 type of number

# TS 23.038 §6.2.1 default alphabet and its extension table (after the escape 0x1B).
GSM7_DEFAULT_ALPHABET = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
                         "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXTENSION = {0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "[", 0x3D: "~", 0x3E: "]",
                  0x40: "|", 0x65: "€"}

# Mobile identity kinds that are record fields of the same name.
_RECORDED_IDENTITIES = frozenset({"imsi", "imei", "imeisv", "tmsi"})


def decode_l3(l3: bytes, uplink: bool | None) -> dict:
    """One record for a layer 3 message; ``uplink`` None takes the direction the message type implies."""
    if len(l3) < 2:
        raise Truncated("dtap.short", l3.hex())
    pd = l3[0] & 0x0F
    protocol = _PROTOCOLS.get(pd)
    if protocol is None:
        raise Unsupported("dtap.unsupported_protocol", str(pd))
    messages, type_mask, has_ti, bodies = protocol
    pos = 1
    if has_ti and l3[0] & 0x70 == 0x70:  # TI value 7: the TI extension octet follows (TS 24.007 §11.2.3.1.3)
        pos = 2
        if len(l3) < 3:
            raise Truncated("dtap.short", l3.hex())
    code = l3[pos] & type_mask
    entry = messages.get(code)
    if entry is None:
        raise Unsupported("dtap.unknown_message_type", f"pd {pd} type {code:#04x}")
    name, sender = entry
    record = {"proto": "dtap", "msg": name, "uplink": sender if uplink is None else uplink}
    body = bodies.get(code)
    if body is not None:
        try:
            body(l3, pos + 1, record)
        except DecodeError as err:
            record["error"] = err.reason
    return record


def put_identity(value: bytes, record: dict) -> None:
    """Set the record field a Mobile Identity value (TS 24.008 §10.5.1.4) names: imsi, imei, imeisv or tmsi."""
    kind, identity = mobile_identity(value)
    if kind in _RECORDED_IDENTITIES:
        record[kind] = identity


# -- element access ------------------------------------------------------------------------------------------

def _fixed(l3: bytes, pos: int, size: int, what: str) -> bytes:
    if pos + size > len(l3):
        raise Truncated(f"dtap.{what}_truncated")
    return l3[pos:pos + size]


def _lv(l3: bytes, pos: int, what: str) -> tuple[bytes, int]:
    """The value of the LV element at ``pos`` and the position after it."""
    if pos >= len(l3):
        raise Truncated(f"dtap.{what}_missing")
    end = pos + 1 + l3[pos]
    if end > len(l3):
        raise Truncated(f"dtap.{what}_truncated")
    return l3[pos + 1:end], end


def _optional(l3: bytes, pos: int, tv_lengths: dict[int, int]):
    """(IEI, value) of each TLV among the optional elements from ``pos`` (TS 24.007 §11.2.4)."""
    end = len(l3)
    while pos < end:
        iei = l3[pos]
        if iei & 0x80:  # type 1 (half-octet IEI) or type 2 (IEI alone)
            pos += 1
            continue
        size = tv_lengths.get(iei)
        if size:
            pos += size
            continue
        if pos + 2 > end:
            raise Truncated("dtap.optional_element_truncated", f"{iei:#04x}")
        stop = pos + 2 + l3[pos + 1]
        if stop > end:
            raise Truncated("dtap.optional_element_truncated", f"{iei:#04x}")
        yield iei, l3[pos + 2:stop]
        pos = stop


def _first_optional(l3: bytes, pos: int, iei: int, tv_lengths: dict[int, int]) -> bytes | None:
    for found, value in _optional(l3, pos, tv_lengths):
        if found == iei:
            return value
    return None


# -- MM (TS 24.008 §9.2) and the RR initial message ---------------------------------------------------------

def _mm_cause(l3: bytes, pos: int, record: dict) -> None:
    """Reject cause (§10.5.3.6) right after the message type."""
    record["cause"], record["cause_group"] = _fixed(l3, pos, 1, "reject_cause")[0], "mm"


def _location_updating_request(l3: bytes, pos: int, record: dict) -> None:
    """§9.2.15: CKSN | location updating type, the LAI the phone last registered in, classmark 1, identity."""
    head = _fixed(l3, pos, 7, "location_updating_request")
    record["update_type"] = LOCATION_UPDATING_TYPES.get(head[0] & 0x03)
    record["mcc"], record["mnc"], record["lac"] = lai(head[1:6])
    put_identity(_lv(l3, pos + 7, "mobile_identity")[0], record)


def _location_updating_accept(l3: bytes, pos: int, record: dict) -> None:
    """§9.2.13: the LAI, then optionally the new TMSI (or the IMSI, when the TMSI is deleted)."""
    record["mcc"], record["mnc"], record["lac"] = lai(_fixed(l3, pos, 5, "lai"))
    identity = _first_optional(l3, pos + 5, IEI_MOBILE_IDENTITY, {})
    if identity is not None:
        put_identity(identity, record)


def _tmsi_reallocation_command(l3: bytes, pos: int, record: dict) -> None:
    """§9.2.17: LAI, then the new identity."""
    record["mcc"], record["mnc"], record["lac"] = lai(_fixed(l3, pos, 5, "lai"))
    put_identity(_lv(l3, pos + 5, "mobile_identity")[0], record)


def _imsi_detach_indication(l3: bytes, pos: int, record: dict) -> None:
    """§9.2.12: classmark 1, identity."""
    put_identity(_lv(l3, pos + 1, "mobile_identity")[0], record)


def _identity_response(l3: bytes, pos: int, record: dict) -> None:
    """§9.2.11."""
    put_identity(_lv(l3, pos, "mobile_identity")[0], record)


def _classmark2_then_identity(l3: bytes, pos: int, record: dict) -> None:
    """A one-octet head (CKSN with a type or spare), classmark 2 (LV), identity (LV): TS 24.008 §9.2.4
    CM Re-establishment Request and TS 44.018 §9.1.25 Paging Response."""
    _fixed(l3, pos, 1, "ciphering_key_sequence_number")
    _, pos = _lv(l3, pos + 1, "classmark_2")
    put_identity(_lv(l3, pos, "mobile_identity")[0], record)


def _cm_service_request(l3: bytes, pos: int, record: dict) -> None:
    """§9.2.9: CKSN | CM service type, classmark 2, identity."""
    record["update_type"] = CM_SERVICE_TYPES.get(_fixed(l3, pos, 1, "cm_service_type")[0] & 0x0F)
    _classmark2_then_identity(l3, pos, record)


def _ciphering_mode_complete(l3: bytes, pos: int, record: dict) -> None:
    """TS 44.018 §9.1.11: the IMEISV when the network asked for it."""
    identity = _first_optional(l3, pos, IEI_MOBILE_IDENTITY, {})
    if identity is not None:
        put_identity(identity, record)


# -- CC (TS 24.008 §9.3) ---------------------------------------------------------------------------------------

def _bcd_number(value: bytes) -> str:
    """§10.5.4.7 / §10.5.4.9: type of number and plan, octet 3a when octet 3's extension bit is 0, BCD digits."""
    if not value:
        raise Truncated("dtap.bcd_number_empty")
    return tbcd(value[1 if value[0] & 0x80 else 2:])


def _cc_cause_value(value: bytes) -> int:
    """§10.5.4.11: coding standard and location, octet 3a when octet 3's extension bit is 0, the cause value."""
    at = 1 if value and value[0] & 0x80 else 2
    if len(value) <= at:
        raise Truncated("dtap.cause_truncated")
    return value[at] & 0x7F


def _setup(l3: bytes, pos: int, record: dict) -> None:
    """§9.3.23: called party (mobile originating), calling party (mobile terminating) BCD numbers."""
    for iei, value in _optional(l3, pos, _CC_TV_LENGTHS):
        if iei == IEI_CALLED_PARTY_BCD_NUMBER:
            record["called"] = _bcd_number(value)
        elif iei == IEI_CALLING_PARTY_BCD_NUMBER:
            record["calling"] = _bcd_number(value)


def _cc_cause(l3: bytes, pos: int, record: dict) -> None:
    """Mandatory Cause (LV) right after the message type: Disconnect §9.3.7, Status §9.3.27, rejects."""
    record["cause"], record["cause_group"] = _cc_cause_value(_lv(l3, pos, "cause")[0]), "cc"


def _cc_optional_cause(l3: bytes, pos: int, record: dict) -> None:
    """The first optional Cause (IEI 0x08): Release §9.3.18, Release Complete §9.3.19, Call Confirmed §9.3.2."""
    value = _first_optional(l3, pos, IEI_CAUSE, _CC_TV_LENGTHS)
    if value is not None:
        record["cause"], record["cause_group"] = _cc_cause_value(value), "cc"


def _modify_reject(l3: bytes, pos: int, record: dict) -> None:
    """§9.3.15: bearer capability (LV), then Cause (LV)."""
    _, pos = _lv(l3, pos, "bearer_capability")
    _cc_cause(l3, pos, record)


# -- SMS (TS 24.011, TS 23.040) --------------------------------------------------------------------------------

def _cp_data(l3: bytes, pos: int, record: dict) -> None:
    """§7.2.1: CP-User data (LV) holds the RPDU (§7.3): RP-MTI, message reference, then per type."""
    rpdu = _lv(l3, pos, "cp_user_data")[0]
    if len(rpdu) < 2:
        raise Truncated("dtap.rp_truncated")
    mti = rpdu[0] & 0x07
    if record["uplink"] is None and mti < 7:  # even RP-MTIs are sent by the phone (§8.2.2)
        record["uplink"] = not mti & 1
    if mti in (RP_DATA_MS_TO_NETWORK, RP_DATA_NETWORK_TO_MS):
        _, at = _lv(rpdu, 2, "rp_originator_address")
        _, at = _lv(rpdu, at, "rp_destination_address")
        _tpdu(_lv(rpdu, at, "rp_user_data")[0], mti == RP_DATA_MS_TO_NETWORK, record)
    elif mti in (RP_ERROR_MS_TO_NETWORK, RP_ERROR_NETWORK_TO_MS):
        cause = _lv(rpdu, 2, "rp_cause")[0]  # §8.2.5.4: cause value, optional diagnostic
        if not cause:
            raise Truncated("dtap.rp_cause_truncated")
        record["cause"], record["cause_group"] = cause[0] & 0x7F, "rp"


def _cp_error(l3: bytes, pos: int, record: dict) -> None:
    """§7.2.3: CP-Cause (§8.1.4.2)."""
    record["cause"], record["cause_group"] = _fixed(l3, pos, 1, "cp_cause")[0], "cp"


def _tpdu(tpdu: bytes, from_phone: bool, record: dict) -> None:
    """TS 23.040 §9.2.2.2 SMS-SUBMIT: TP-DA after TP-MR; §9.2.2.1 SMS-DELIVER: TP-OA after the first octet."""
    if not tpdu:
        raise Truncated("dtap.tpdu_empty")
    mti = tpdu[0] & 0x03
    if from_phone and mti == TP_MTI_SMS_SUBMIT:
        record["called"] = _tp_address(tpdu, 2)
    elif not from_phone and mti == TP_MTI_SMS_DELIVER:
        record["calling"] = _tp_address(tpdu, 1)


def _tp_address(tpdu: bytes, pos: int) -> str:
    """§9.1.2.5: length in semi-octets, type of address, then BCD digits or packed 7-bit text (alphanumeric)."""
    if pos + 2 > len(tpdu):
        raise Truncated("dtap.tp_address_truncated")
    semi_octets, type_of_address = tpdu[pos], tpdu[pos + 1]
    value = tpdu[pos + 2:pos + 2 + (semi_octets + 1) // 2]
    if len(value) < (semi_octets + 1) // 2:
        raise Truncated("dtap.tp_address_truncated")
    if (type_of_address >> 4) & 0x07 == TON_ALPHANUMERIC:
        return gsm7_text(value, semi_octets * 4 // 7)
    return tbcd(value)[:semi_octets]


def gsm7_text(packed: bytes, septets: int) -> str:
    """TS 23.038 §6.1.2.1.1 packing (least significant bit first) in the default alphabet with its extension."""
    bits = int.from_bytes(packed, "little")
    out, escaped = [], False
    for i in range(septets):
        code = bits >> (7 * i) & 0x7F
        if escaped:
            out.append(GSM7_EXTENSION.get(code, " "))  # §6.2.1.1: an unknown extension shows as a space
            escaped = False
        elif code == 0x1B:
            escaped = True
        else:
            out.append(GSM7_DEFAULT_ALPHABET[code])
    return "".join(out)


# -- dispatch -----------------------------------------------------------------------------------------------

# PD -> (message table, message type mask, has a transaction identifier, body decoders by message type).
# The mask clears N(SD), bits 7-8 of the type for MM, CC, SS, GCC and BCC (TS 24.007 §11.2.3.2.3).
_PROTOCOLS = {
    PD_MM: (MM_MESSAGES, 0x3F, False, {
        0x01: _imsi_detach_indication, 0x02: _location_updating_accept, 0x04: _mm_cause,
        0x08: _location_updating_request, 0x1C: _mm_cause, 0x19: _identity_response,
        0x1A: _tmsi_reallocation_command, 0x22: _mm_cause, 0x24: _cm_service_request,
        0x28: _classmark2_then_identity, 0x29: _mm_cause, 0x31: _mm_cause}),
    PD_CC: (CC_MESSAGES, 0x3F, True, {
        0x05: _setup, 0x25: _cc_cause, 0x2D: _cc_optional_cause, 0x2A: _cc_optional_cause,
        0x08: _cc_optional_cause, 0x3D: _cc_cause, 0x1A: _cc_cause, 0x1E: _cc_cause, 0x37: _cc_cause,
        0x13: _modify_reject}),
    PD_RR: (RR_MESSAGES, 0xFF, False, {0x27: _classmark2_then_identity, 0x32: _ciphering_mode_complete}),
    PD_SMS: (SMS_MESSAGES, 0xFF, True, {0x01: _cp_data, 0x10: _cp_error}),
    PD_GMM: (GMM_MESSAGES, 0xFF, False, {}),
    PD_SS: (SS_MESSAGES, 0x3F, True, {}),
    PD_BCC: (BCC_MESSAGES, 0x3F, True, {}),
    PD_GCC: (GCC_MESSAGES, 0x3F, True, {}),
}
