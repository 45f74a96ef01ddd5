"""NAS for EPS, TS 24.301: EMM (§8.2) and ESM (§8.3) messages carried in S1AP NAS-PDUs.

A NAS-PDU is a plain message (§9.1: security header type 0 + EMM protocol discriminator, or an ESM
message), a security-protected one (§9.1.1: header type 1-5, MAC, sequence number, then the plain
message), or the SERVICE REQUEST (header type 12, §8.2.25). Nobody on a probe holds the NAS keys, so
for the ciphered header types (2, 4) we do what Wireshark's ``nas-eps.null_decipher`` preference (on
by default) does for networks running EEA0: when the first octet after the sequence number is a
plain EMM header (0x07) or an ESM header with a valid EPS bearer identity (0 or 5-15, §9.3.2), and
the message type is one of Tables 9.8.1/9.8.2, the message is decoded; otherwise it becomes a record
``msg="ciphered", ciphered=True`` (tshark's "Ciphered message"), as does a null-ciphered candidate
that then fails to decode.

Only the facts sigloc needs are read: identities (EPS mobile identity §9.9.3.12, mobile identity
TS 24.008 §10.5.1.4), the GUTI a network assigns, the last visited TAI, attach/update/detach/service
types, EMM causes (§9.9.3.9). ESM messages inside an EMM message's ESM message container (§9.9.3.15)
become records of their own, after their EMM message.
"""

from capture.errors import DecodeError, Malformed, Truncated
from decoders.identity import eps_mobile_identity, mobile_identity, plmn

PD_ESM, PD_EMM = 0x2, 0x7             # TS 24.007 §11.2.3.1.1 protocol discriminator
SECURITY_HEADER_SERVICE_REQUEST = 12  # §9.3.1: 12, and 13-15 "shall be interpreted as" 12
_PROTECTED_HEADER = 6                 # §9.1.1: security header + PD, MAC (4), sequence number

UL, DL, BOTH = True, False, None      # direction of a message type when the carrier does not say

# Table 9.8.1: Message types for EPS mobility management -> (name, direction)
EMM_MESSAGES = {
    0x41: ("attach_request", UL),
    0x42: ("attach_accept", DL),
    0x43: ("attach_complete", UL),
    0x44: ("attach_reject", DL),
    0x45: ("detach_request", BOTH),
    0x46: ("detach_accept", BOTH),
    0x48: ("tracking_area_update_request", UL),
    0x49: ("tracking_area_update_accept", DL),
    0x4A: ("tracking_area_update_complete", UL),
    0x4B: ("tracking_area_update_reject", DL),
    0x4C: ("extended_service_request", UL),
    0x4D: ("control_plane_service_request", UL),
    0x4E: ("service_reject", DL),
    0x4F: ("service_accept", DL),
    0x50: ("guti_reallocation_command", DL),
    0x51: ("guti_reallocation_complete", UL),
    0x52: ("authentication_request", DL),
    0x53: ("authentication_response", UL),
    0x54: ("authentication_reject", DL),
    0x55: ("identity_request", DL),
    0x56: ("identity_response", UL),
    0x5C: ("authentication_failure", UL),
    0x5D: ("security_mode_command", DL),
    0x5E: ("security_mode_complete", UL),
    0x5F: ("security_mode_reject", UL),
    0x60: ("emm_status", BOTH),
    0x61: ("emm_information", DL),
    0x62: ("downlink_nas_transport", DL),
    0x63: ("uplink_nas_transport", UL),
    0x64: ("cs_service_notification", DL),
    0x68: ("downlink_generic_nas_transport", DL),
    0x69: ("uplink_generic_nas_transport", UL),
}

# Table 9.8.2: Message types for EPS session management -> (name, direction)
ESM_MESSAGES = {
    0xC1: ("activate_default_eps_bearer_context_request", DL),
    0xC2: ("activate_default_eps_bearer_context_accept", UL),
    0xC3: ("activate_default_eps_bearer_context_reject", UL),
    0xC5: ("activate_dedicated_eps_bearer_context_request", DL),
    0xC6: ("activate_dedicated_eps_bearer_context_accept", UL),
    0xC7: ("activate_dedicated_eps_bearer_context_reject", UL),
    0xC9: ("modify_eps_bearer_context_request", DL),
    0xCA: ("modify_eps_bearer_context_accept", UL),
    0xCB: ("modify_eps_bearer_context_reject", UL),
    0xCD: ("deactivate_eps_bearer_context_request", DL),
    0xCE: ("deactivate_eps_bearer_context_accept", UL),
    0xD0: ("pdn_connectivity_request", UL),
    0xD1: ("pdn_connectivity_reject", DL),
    0xD2: ("pdn_disconnect_request", UL),
    0xD3: ("pdn_disconnect_reject", DL),
    0xD4: ("bearer_resource_allocation_request", UL),
    0xD5: ("bearer_resource_allocation_reject", DL),
    0xD6: ("bearer_resource_modification_request", UL),
    0xD7: ("bearer_resource_modification_reject", DL),
    0xD9: ("esm_information_request", DL),
    0xDA: ("esm_information_response", UL),
    0xDB: ("notification", DL),
    0xDC: ("esm_dummy_message", BOTH),
    0xE8: ("esm_status", BOTH),
    0xE9: ("remote_ue_report", UL),
    0xEA: ("remote_ue_report_response", DL),
    0xEB: ("esm_data_transport", BOTH),
}

# §9.9.3.11 EPS attach type; 0, 4 and 5 "are unused and shall be interpreted as EPS attach", 7 is reserved.
ATTACH_TYPES = {0: "eps", 1: "eps", 2: "combined", 3: "rlos", 4: "eps", 5: "eps", 6: "emergency", 7: "reserved"}
# §9.9.3.14 EPS update type; 4 and 5 "shall be interpreted as TA updating", 6 and 7 are reserved.
UPDATE_TYPES = {0: "ta_updating", 1: "combined", 2: "combined_imsi_attach", 3: "periodic",
                4: "ta_updating", 5: "ta_updating", 6: "reserved", 7: "reserved"}
# §9.9.3.7 detach type, UE to network: other values than these and the reserved 6, 7 "are interpreted
# as combined EPS/IMSI detach"; bit 4 is the switch-off flag.
DETACH_TYPES_UE = {1: "eps", 2: "imsi", 3: "combined", 6: "reserved", 7: "reserved"}
# §9.9.3.7 detach type, network to UE: other values "are interpreted as re-attach not required".
DETACH_TYPES_NETWORK = {1: "re_attach_required", 2: "re_attach_not_required", 3: "imsi_detach",
                        6: "reserved", 7: "reserved"}
# §9.9.3.27 service type of the EXTENDED SERVICE REQUEST.
# Service type (§9.9.3.27): the unused values 3, 4 and 9-11 are read as the network must read them.
SERVICE_TYPES = {0: "mo_csfb", 1: "mt_csfb", 2: "mo_csfb_emergency", 3: "mo_csfb", 4: "mo_csfb",
                 8: "packet_services_via_s1", 9: "packet_services_via_s1", 10: "packet_services_via_s1",
                 11: "packet_services_via_s1"}

# Optional IEIs (§8.2 message tables) read here.
IEI_GUTI, IEI_LAST_VISITED_TAI, IEI_MS_IDENTITY, IEI_EMM_CAUSE = 0x50, 0x52, 0x23, 0x53
IEI_IMEISV, IEI_ESM_CONTAINER = 0x23, 0x78
# Type 3 (TV, full-octet IEI) optional IEs of the EMM messages whose optional part is walked, with their
# total length: every other IEI below 0x80 is a TLV, or a TLV-E when it is 0x7x (TS 24.007 §11.2.4).
_TV_LENGTHS = {
    0x13: 6,  # old / location area identification
    0x17: 2,  # T3402 value (accepts); additional information requested (attach request)
    0x19: 4,  # old P-TMSI signature
    0x46: 2,  # local time zone
    0x47: 8,  # universal time and local time zone
    0x52: 6,  # last visited registered TAI
    0x53: 2,  # EMM cause
    0x55: 5,  # NonceUE / replayed NonceUE
    0x56: 5,  # NonceMME
    0x59: 2,  # T3423 value
    0x5A: 2,  # T3412 value
    0x5B: 2,  # T3442 value
    0x5C: 3,  # DRX parameter
}


def decode_nas(pdu: bytes, uplink: bool | None = None) -> list[dict]:
    """Decode one NAS-PDU into records: the EMM or ESM message, then any ESM message it contains.

    ``uplink`` is the direction of the S1AP message carrying it (the NAS direction is the same); when
    None, a message type's own direction is used. Header damage raises a DecodeError; damage after
    the message type leaves a record with the fields read so far and ``error`` set.
    """
    if not pdu:
        raise Truncated("nas_eps.empty")
    first = pdu[0]
    pd, header = first & 0x0F, first >> 4
    if pd == PD_ESM:  # a plain ESM message: the high nibble is the EPS bearer identity
        return _plain(pdu, 0, uplink)
    if pd != PD_EMM:
        return [{"proto": "nas-eps", "msg": f"unknown_pd_{pd}", "uplink": uplink}]
    if header == 0:
        return _plain(pdu, 0, uplink)
    if header >= SECURITY_HEADER_SERVICE_REQUEST:
        if len(pdu) < 4:
            raise Truncated("nas_eps.service_request_too_short")
        return [{"proto": "nas-eps", "msg": "service_request", "uplink": UL if uplink is None else uplink}]
    if header > 5:
        raise Malformed("nas_eps.reserved_security_header", str(header))
    if len(pdu) <= _PROTECTED_HEADER:
        raise Truncated("nas_eps.protected_too_short")
    if header in (2, 4):
        return _null_deciphered(pdu, uplink)
    if pdu[_PROTECTED_HEADER] >> 4 and pdu[_PROTECTED_HEADER] & 0x0F == PD_EMM:
        raise Malformed("nas_eps.nested_security_header")
    return _plain(pdu, _PROTECTED_HEADER, uplink)


def _null_deciphered(pdu: bytes, uplink: bool | None) -> list[dict]:
    """Security header types 2 and 4: decode only what looks like EEA0 output (see module docstring)."""
    first = pdu[_PROTECTED_HEADER]
    if len(pdu) > _PROTECTED_HEADER + 1:
        if first == PD_EMM:
            known = pdu[_PROTECTED_HEADER + 1] in EMM_MESSAGES
        elif first & 0x0F == PD_ESM and not 1 <= first >> 4 <= 4 and len(pdu) > _PROTECTED_HEADER + 2:
            known = pdu[_PROTECTED_HEADER + 2] in ESM_MESSAGES
        else:
            known = False
        if known:
            try:
                records = _plain(pdu, _PROTECTED_HEADER, uplink)
            except DecodeError:
                records = None
            if records and not any(r.get("error") for r in records):
                return records
    return [{"proto": "nas-eps", "msg": "ciphered", "ciphered": True, "uplink": uplink}]


def _plain(pdu: bytes, pos: int, uplink: bool | None) -> list[dict]:
    """A plain NAS message at ``pos`` (§9.1): EMM (security header 0, PD 7, type) or ESM (EBI, PD 2,
    procedure transaction identity, type)."""
    pd = pdu[pos] & 0x0F
    if pd == PD_ESM:
        return [_esm(pdu, pos, uplink)]
    if pd != PD_EMM:
        return [{"proto": "nas-eps", "msg": f"unknown_pd_{pd}", "uplink": uplink}]
    if pos + 2 > len(pdu):
        raise Truncated("nas_eps.emm_header_truncated")
    code = pdu[pos + 1]
    entry = EMM_MESSAGES.get(code)
    if entry is None:
        return [{"proto": "nas-eps", "msg": f"unknown_emm_{code}", "uplink": uplink}]
    name, direction = entry
    if uplink is None:
        uplink = direction
    record = {"proto": "nas-eps", "msg": name, "uplink": uplink}
    records = [record]
    body = _BODIES.get(code)
    if body is not None:
        try:
            esm = body(pdu, pos + 2, record, uplink)
        except IndexError:
            record["error"] = "nas_eps.ie_truncated"
        except DecodeError as err:
            record["error"] = err.reason
        else:
            if esm is not None:
                try:
                    records.append(_esm(esm, 0, uplink))
                except DecodeError as err:
                    records.append({"proto": "nas-eps", "msg": "malformed", "error": err.reason, "uplink": uplink})
    return records


def _esm(pdu: bytes, pos: int, uplink: bool | None) -> dict:
    """A plain ESM message (§8.3): EPS bearer identity + PD, procedure transaction identity, type."""
    if pos + 3 > len(pdu):
        raise Truncated("nas_eps.esm_header_truncated")
    if pdu[pos] & 0x0F != PD_ESM:
        raise Malformed("nas_eps.esm_container_not_esm", str(pdu[pos] & 0x0F))
    code = pdu[pos + 2]
    name, direction = ESM_MESSAGES.get(code, (f"unknown_esm_{code}", BOTH))
    return {"proto": "nas-eps", "msg": name, "uplink": direction if uplink is None else uplink}


# -- information elements ---------------------------------------------------------------------------------

def _lv(pdu: bytes, pos: int) -> tuple[bytes, int]:
    end = pos + 1 + pdu[pos]
    if end > len(pdu):
        raise Truncated("nas_eps.ie_truncated")
    return pdu[pos + 1:end], end


def _lv_e(pdu: bytes, pos: int) -> tuple[bytes, int]:
    """A two-octet length (TS 24.007 §11.2.1.1.4, type 6), e.g. the ESM message container §9.9.3.15."""
    end = pos + 2 + (pdu[pos] << 8 | pdu[pos + 1])
    if end > len(pdu):
        raise Truncated("nas_eps.ie_truncated")
    return pdu[pos + 2:end], end


def _optional(pdu: bytes, pos: int, wanted: frozenset[int]) -> dict[int, bytes]:
    """Walk the optional part of a message (TS 24.007 §11.2.4) and return the values of ``wanted`` IEIs:
    a TV's value octets, or a TLV's / TLV-E's value."""
    found = {}
    end = len(pdu)
    while pos < end:
        iei = pdu[pos]
        if iei & 0x80:  # type 1 (half-octet IEI + value) or type 2 (IEI only): one octet
            pos += 1
            continue
        size = _TV_LENGTHS.get(iei)
        if size is not None:
            value, next_pos = pdu[pos + 1:pos + size], pos + size
            if next_pos > end:
                raise Truncated("nas_eps.ie_truncated")
        elif iei & 0xF0 == 0x70:
            value, next_pos = _lv_e(pdu, pos + 1)
        else:
            value, next_pos = _lv(pdu, pos + 1)
        if iei in wanted:
            found[iei] = value
            if len(found) == len(wanted):
                break
        pos = next_pos
    return found


def _set_identity(record: dict, value: bytes) -> None:
    """An EPS mobile identity (§9.9.3.12): IMSI, IMEI, or a GUTI (its PLMN becomes the record's)."""
    kind, identity = eps_mobile_identity(value)
    if kind == "guti":
        record["mcc"], record["mnc"] = identity["mcc"], identity["mnc"]
        record["mmec"], record["m_tmsi"] = identity["mmec"], identity["m_tmsi"]
    else:
        record[kind] = identity


def _set_mobile_identity(record: dict, value: bytes) -> None:
    """A TS 24.008 mobile identity: IMSI, IMEI, IMEISV, or the TMSI of a combined attach."""
    kind, identity = mobile_identity(value)
    if kind in ("imsi", "imei", "imeisv", "tmsi"):
        record[kind] = identity


def _set_tai(record: dict, value: bytes) -> None:
    """§9.9.3.32 tracking area identity: PLMN + TAC; the PLMN only when no GUTI gave one."""
    if len(value) < 5:
        raise Truncated("nas_eps.tai_too_short")
    mcc, mnc = plmn(value)
    record.setdefault("mcc", mcc)
    record.setdefault("mnc", mnc)
    record["tac"] = value[3] << 8 | value[4]


def _cause(record: dict, value: int) -> None:
    record["cause"] = value
    record["cause_group"] = "emm"


# -- message bodies (§8.2): each reads from the octet after the message type, returns an ESM message or None ---

def _attach_request(pdu: bytes, pos: int, record: dict, uplink) -> bytes:
    """§8.2.4: EPS attach type + NAS KSI, EPS mobile identity, UE network capability, ESM container,
    then optional IEs up to the last visited registered TAI."""
    record["update_type"] = ATTACH_TYPES[pdu[pos] & 0x07]
    identity, pos = _lv(pdu, pos + 1)
    _set_identity(record, identity)
    _, pos = _lv(pdu, pos)
    esm, pos = _lv_e(pdu, pos)
    tai = _optional(pdu, pos, frozenset((IEI_LAST_VISITED_TAI,))).get(IEI_LAST_VISITED_TAI)
    if tai is not None:
        _set_tai(record, tai)
    return esm


def _assigned_identities(record: dict, found: dict[int, bytes]) -> None:
    """The new GUTI, the CS TMSI / IMSI and the EMM cause of an ATTACH or TRACKING AREA UPDATE ACCEPT."""
    if IEI_GUTI in found:
        _set_identity(record, found[IEI_GUTI])
    if IEI_MS_IDENTITY in found:
        _set_mobile_identity(record, found[IEI_MS_IDENTITY])
    if IEI_EMM_CAUSE in found:
        if not found[IEI_EMM_CAUSE]:
            raise Truncated("nas_eps.ie_truncated")
        _cause(record, found[IEI_EMM_CAUSE][0])


_ACCEPT_IEIS = frozenset((IEI_GUTI, IEI_MS_IDENTITY, IEI_EMM_CAUSE))


def _attach_accept(pdu: bytes, pos: int, record: dict, uplink) -> bytes:
    """§8.2.1: attach result, T3412, TAI list, ESM container, then optional IEs (GUTI first)."""
    _, pos = _lv(pdu, pos + 2)
    esm, pos = _lv_e(pdu, pos)
    _assigned_identities(record, _optional(pdu, pos, _ACCEPT_IEIS))
    return esm


def _attach_complete(pdu: bytes, pos: int, record: dict, uplink) -> bytes:
    """§8.2.2: the ESM container only."""
    return _lv_e(pdu, pos)[0]


def _attach_reject(pdu: bytes, pos: int, record: dict, uplink) -> bytes | None:
    """§8.2.3: EMM cause, then an optional ESM container (IEI 0x78) with the ESM reject."""
    _cause(record, pdu[pos])
    return _optional(pdu, pos + 1, frozenset((IEI_ESM_CONTAINER,))).get(IEI_ESM_CONTAINER)


def _detach_request(pdu: bytes, pos: int, record: dict, uplink) -> None:
    """§8.2.11: UE originating (§8.2.11.1: switch-off + detach type, EPS mobile identity) or network
    originating (§8.2.11.2: detach type, optional EMM cause)."""
    octet = pdu[pos]
    if uplink is False:
        record["update_type"] = DETACH_TYPES_NETWORK.get(octet & 0x07, "re_attach_not_required")
        found = _optional(pdu, pos + 1, frozenset((IEI_EMM_CAUSE,)))
        if found.get(IEI_EMM_CAUSE):
            _cause(record, found[IEI_EMM_CAUSE][0])
        return
    kind = DETACH_TYPES_UE.get(octet & 0x07, "combined")
    record["update_type"] = "switch_off_" + kind if octet & 0x08 else kind
    identity, _ = _lv(pdu, pos + 1)
    _set_identity(record, identity)


def _tracking_area_update_request(pdu: bytes, pos: int, record: dict, uplink) -> None:
    """§8.2.29: EPS update type (+ active flag) + NAS KSI, old GUTI, optional IEs up to the last TAI."""
    record["update_type"] = UPDATE_TYPES[pdu[pos] & 0x07]
    identity, pos = _lv(pdu, pos + 1)
    _set_identity(record, identity)
    tai = _optional(pdu, pos, frozenset((IEI_LAST_VISITED_TAI,))).get(IEI_LAST_VISITED_TAI)
    if tai is not None:
        _set_tai(record, tai)


def _tracking_area_update_accept(pdu: bytes, pos: int, record: dict, uplink) -> None:
    """§8.2.26: EPS update result, then optional IEs (T3412, GUTI, TAI list, ...)."""
    _assigned_identities(record, _optional(pdu, pos + 1, _ACCEPT_IEIS))


def _emm_cause(pdu: bytes, pos: int, record: dict, uplink) -> None:
    """Messages whose first IE is the EMM cause (§9.9.3.9): the rejects, authentication failure, EMM status."""
    _cause(record, pdu[pos])


def _extended_service_request(pdu: bytes, pos: int, record: dict, uplink) -> None:
    """§8.2.15: service type + NAS KSI, the M-TMSI as a TS 24.008 TMSI mobile identity (§9.9.3.28)."""
    service = SERVICE_TYPES.get(pdu[pos] & 0x0F)
    if service is not None:
        record["update_type"] = service
    value, _ = _lv(pdu, pos + 1)
    kind, identity = mobile_identity(value)
    if kind != "tmsi":
        raise Malformed("nas_eps.m_tmsi_not_tmsi", kind)
    record["m_tmsi"] = identity


def _guti_reallocation_command(pdu: bytes, pos: int, record: dict, uplink) -> None:
    """§8.2.16: the new GUTI."""
    _set_identity(record, _lv(pdu, pos)[0])


def _identity_response(pdu: bytes, pos: int, record: dict, uplink) -> None:
    """§8.2.19: mobile identity (TS 24.008 §10.5.1.4)."""
    _set_mobile_identity(record, _lv(pdu, pos)[0])


def _security_mode_complete(pdu: bytes, pos: int, record: dict, uplink) -> None:
    """§8.2.21: optional IMEISV (IEI 0x23), requested by the Security Mode Command."""
    value = _optional(pdu, pos, frozenset((IEI_IMEISV,))).get(IEI_IMEISV)
    if value is not None:
        _set_mobile_identity(record, value)


_BODIES = {
    0x41: _attach_request,
    0x42: _attach_accept,
    0x43: _attach_complete,
    0x44: _attach_reject,
    0x45: _detach_request,
    0x48: _tracking_area_update_request,
    0x49: _tracking_area_update_accept,
    0x4B: _emm_cause,
    0x4C: _extended_service_request,
    0x4E: _emm_cause,
    0x50: _guti_reallocation_command,
    0x56: _identity_response,
    0x5C: _emm_cause,
    0x5E: _security_mode_complete,
    0x5F: _emm_cause,
    0x60: _emm_cause,
}
