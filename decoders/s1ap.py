"""S1AP, TS 36.413: the S1-MME messages between eNodeB and MME, and the NAS-PDUs they carry.

Every S1AP PDU has the same octet-aligned frame (§9.3.2, §9.3.5, X.691 aligned PER): the S1AP-PDU
CHOICE (initiatingMessage / successfulOutcome / unsuccessfulOutcome) in the first octet, the
procedure code (§9.3.7), the criticality, then an open type holding the message SEQUENCE: an
extension bit and a ProtocolIE-Container (a 16-bit count, then per IE its id, criticality and an
open type). We walk that container and decode only the IEs below by id; the rest are skipped by
their length, so there is no ASN.1 object tree.

A record gets: the message name (the §9.1 spec name in snake_case, by procedure code and PDU kind),
``uplink`` (True for what the eNodeB sends), the UE S1AP IDs, the cell (EUTRAN-CGI, §9.2.1.38) and
tracking area (TAI, §9.2.3.16; the PLMN is the cell's when both are present), or both from User
Location Information (§9.2.1.93), the S-TMSI (§9.2.3.6), Paging's UE identity (§9.2.3.13) and
single-TAI list, the Cause (§9.2.1.3: ``cause_group`` is the CHOICE alternative, ``cause`` the
enumeration index; without a Cause IE, the first listed E-RAB's), the UE IDs of a Reset of exactly one
UE-associated connection and, for Handover Required / Handover Request of an intra-LTE handover, the
*target* cell (Target ID's selected TAI, §9.2.1.6, and the Source eNB to Target eNB Transparent
Container's target cell, §9.2.1.56). Each NAS-PDU (§9.2.3.5), at the top level or inside an E-RAB
list item, follows as its own records (``decoders.nas_eps``).
"""

from capture.errors import DecodeError, Malformed, Truncated, Unsupported
from decoders.identity import plmn, tbcd
from decoders.nas_eps import decode_nas
from decoders.per import BitReader, open_type

INITIATING, SUCCESSFUL, UNSUCCESSFUL = 0, 1, 2   # S1AP-PDU CHOICE index, §9.3.2
ENB, MME, EITHER = "enb", "mme", None            # who sends the initiating message of a procedure

# §9.3.7 procedure codes, §9.1 messages: code -> (initiating, successful outcome, unsuccessful outcome, initiator)
PROCEDURES = {
    0: ("handover_required", "handover_command", "handover_preparation_failure", ENB),            # HandoverPreparation
    1: ("handover_request", "handover_request_acknowledge", "handover_failure", MME),             # HandoverResourceAllocation
    2: ("handover_notify", None, None, ENB),                                                      # HandoverNotification
    3: ("path_switch_request", "path_switch_request_acknowledge", "path_switch_request_failure", ENB),
    4: ("handover_cancel", "handover_cancel_acknowledge", None, ENB),
    5: ("e_rab_setup_request", "e_rab_setup_response", None, MME),
    6: ("e_rab_modify_request", "e_rab_modify_response", None, MME),
    7: ("e_rab_release_command", "e_rab_release_response", None, MME),
    8: ("e_rab_release_indication", None, None, ENB),
    9: ("initial_context_setup_request", "initial_context_setup_response", "initial_context_setup_failure", MME),
    10: ("paging", None, None, MME),
    11: ("downlink_nas_transport", None, None, MME),
    12: ("initial_ue_message", None, None, ENB),
    13: ("uplink_nas_transport", None, None, ENB),
    14: ("reset", "reset_acknowledge", None, EITHER),
    15: ("error_indication", None, None, EITHER),
    16: ("nas_non_delivery_indication", None, None, ENB),
    17: ("s1_setup_request", "s1_setup_response", "s1_setup_failure", ENB),
    18: ("ue_context_release_request", None, None, ENB),
    19: ("downlink_s1_cdma2000_tunnelling", None, None, MME),
    20: ("uplink_s1_cdma2000_tunnelling", None, None, ENB),
    21: ("ue_context_modification_request", "ue_context_modification_response", "ue_context_modification_failure",
         MME),
    22: ("ue_capability_info_indication", None, None, ENB),
    23: ("ue_context_release_command", "ue_context_release_complete", None, MME),                 # UEContextRelease
    24: ("enb_status_transfer", None, None, ENB),
    25: ("mme_status_transfer", None, None, MME),
    26: ("deactivate_trace", None, None, MME),
    27: ("trace_start", None, None, MME),
    28: ("trace_failure_indication", None, None, ENB),
    29: ("enb_configuration_update", "enb_configuration_update_acknowledge", "enb_configuration_update_failure", ENB),
    30: ("mme_configuration_update", "mme_configuration_update_acknowledge", "mme_configuration_update_failure", MME),
    31: ("location_reporting_control", None, None, MME),
    32: ("location_reporting_failure_indication", None, None, ENB),
    33: ("location_report", None, None, ENB),
    34: ("overload_start", None, None, MME),
    35: ("overload_stop", None, None, MME),
    36: ("write_replace_warning_request", "write_replace_warning_response", None, MME),
    37: ("enb_direct_information_transfer", None, None, ENB),
    38: ("mme_direct_information_transfer", None, None, MME),
    39: ("private_message", None, None, EITHER),
    40: ("enb_configuration_transfer", None, None, ENB),
    41: ("mme_configuration_transfer", None, None, MME),
    42: ("cell_traffic_trace", None, None, ENB),
    43: ("kill_request", "kill_response", None, MME),
    44: ("downlink_ue_associated_lppa_transport", None, None, MME),
    45: ("uplink_ue_associated_lppa_transport", None, None, ENB),
    46: ("downlink_non_ue_associated_lppa_transport", None, None, MME),
    47: ("uplink_non_ue_associated_lppa_transport", None, None, ENB),
    48: ("ue_radio_capability_match_request", "ue_radio_capability_match_response", None, MME),
    49: ("pws_restart_indication", None, None, ENB),
    50: ("e_rab_modification_indication", "e_rab_modification_confirm", None, ENB),
    51: ("pws_failure_indication", None, None, ENB),
    52: ("reroute_nas_request", None, None, ENB),
    53: ("ue_context_modification_indication", "ue_context_modification_confirm", None, ENB),
    54: ("connection_establishment_indication", None, None, MME),
    55: ("ue_context_suspend_request", "ue_context_suspend_response", None, ENB),
    56: ("ue_context_resume_request", "ue_context_resume_response", "ue_context_resume_failure", ENB),
    57: ("nas_delivery_indication", None, None, ENB),
    58: ("retrieve_ue_information", None, None, ENB),
    59: ("ue_information_transfer", None, None, MME),
    60: ("enb_cp_relocation_indication", None, None, ENB),
    61: ("mme_cp_relocation_indication", None, None, MME),
    62: ("secondary_rat_data_usage_report", None, None, ENB),
    63: ("ue_radio_capability_id_mapping_request", "ue_radio_capability_id_mapping_response", None, ENB),
    64: ("handover_success", None, None, ENB),
    65: ("enb_early_status_transfer", None, None, ENB),
    66: ("mme_early_status_transfer", None, None, MME),
}

# §9.3.7 protocol IE ids decoded here (every other IE is skipped by its length).
ID_MME_UE_S1AP_ID, ID_HANDOVER_TYPE, ID_CAUSE, ID_TARGET_ID, ID_ENB_UE_S1AP_ID = 0, 1, 2, 4, 8
ID_E_RAB_TO_BE_SETUP_LIST_BEARER_SU_REQ, ID_E_RAB_TO_BE_SETUP_ITEM_BEARER_SU_REQ = 16, 17
ID_E_RAB_TO_BE_SETUP_LIST_CTXT_SU_REQ, ID_E_RAB_TO_BE_SETUP_ITEM_CTXT_SU_REQ = 24, 52
ID_E_RAB_TO_BE_MODIFIED_LIST_BEARER_MOD_REQ, ID_E_RAB_TO_BE_MODIFIED_ITEM_BEARER_MOD_REQ = 30, 36
ID_NAS_PDU, ID_UE_PAGING_ID, ID_TAI_LIST, ID_TAI_ITEM, ID_TAI = 26, 43, 46, 47, 67
ID_SOURCE_MME_UE_S1AP_ID, ID_UE_ASSOCIATED_LOGICAL_S1_CONNECTION_ITEM, ID_RESET_TYPE = 88, 91, 92
ID_UE_ASSOCIATED_LOGICAL_S1_CONNECTION_LIST_RES_ACK, ID_S_TMSI, ID_UE_S1AP_IDS, ID_EUTRAN_CGI = 93, 96, 99, 100
ID_SOURCE_TO_TARGET_TRANSPARENT_CONTAINER, ID_E_RAB_ITEM, ID_E_RAB_FAILED_TO_SETUP_ITEM_HO_REQ_ACK = 104, 35, 21
ID_USER_LOCATION_INFORMATION = 189

# §9.3.7 ids of the E-RAB lists whose items carry a cause (E-RAB List, §9.2.1.36) -> the item's id.
E_RAB_CAUSE_LISTS = {
    13: ID_E_RAB_ITEM,   # id-E-RABtoReleaseListHOCmd
    19: ID_E_RAB_FAILED_TO_SETUP_ITEM_HO_REQ_ACK,  # id-E-RABFailedToSetupListHOReqAck
    29: ID_E_RAB_ITEM,   # id-E-RABFailedToSetupListBearerSURes
    32: ID_E_RAB_ITEM,   # id-E-RABFailedToModifyList
    33: ID_E_RAB_ITEM,   # id-E-RABToBeReleasedList
    34: ID_E_RAB_ITEM,   # id-E-RABFailedToReleaseList
    48: ID_E_RAB_ITEM,   # id-E-RABFailedToSetupListCtxtSURes
    110: ID_E_RAB_ITEM,  # id-E-RABReleasedList
    205: ID_E_RAB_ITEM,  # id-E-RABFailedToModifyListBearerModConf
    210: ID_E_RAB_ITEM,  # id-E-RABToBeReleasedListBearerModConf
}

# §9.2.1.3 Cause: CHOICE alternatives in order, with the number of root values of each ENUMERATED.
CAUSE_GROUPS = ("radioNetwork", "transport", "nas", "protocol", "misc")
_CAUSE_ROOTS = (36, 2, 4, 7, 6)
_CAUSE_WIDTHS = tuple((root - 1).bit_length() for root in _CAUSE_ROOTS)
HANDOVER_TYPE_INTRA_LTE = 0   # §9.2.1.13 HandoverType ENUMERATED {intralte, ltetoutran, ltetogeran, ...}

_MME_UE_S1AP_ID_MAX, _ENB_UE_S1AP_ID_MAX = (1 << 32) - 1, (1 << 24) - 1  # §9.2.3.3, §9.2.3.4
_MAX_LIST = 256               # maxnoofE-RABs, maxnoofTAIs, maxnoofIndividualS1ConnectionsToReset


def _direction(initiator: str | None, kind: int) -> bool | None:
    return None if initiator is EITHER else (initiator is ENB) == (kind == INITIATING)


# procedure code << 2 | PDU kind -> (message name, uplink), so a PDU's header costs one look-up.
_HEADERS = {code << 2 | kind: (procedure[kind], _direction(procedure[3], kind))
            for code, procedure in PROCEDURES.items() for kind in (INITIATING, SUCCESSFUL, UNSUCCESSFUL)
            if procedure[kind] is not None}
# Location IE values seen before -> what they decode to: a probe sees the same few thousand cells all day.
_TAIS: dict[bytes, tuple[str, str, int]] = {}   # TAI value -> (mcc, mnc, tac)
_CGIS: dict[bytes, tuple[str, str, int]] = {}   # EUTRAN-CGI value -> (mcc, mnc, eci)
_CACHE_MAX = 1 << 16          # bounds each cache against a stream of damaged or random values


def decode_s1ap(pdu: bytes) -> list[dict]:
    """The S1AP message as a record, followed by the records of every NAS-PDU it carries.

    Damage to the PDU frame raises a DecodeError; damage inside one IE sets the record's ``error`` (the
    first one) and the walk goes on with the next IE, which its length still locates.
    """
    if len(pdu) < 4:
        raise Truncated("s1ap.pdu_too_short")
    first, code = pdu[0], pdu[1]
    if first & 0x80:
        raise Unsupported("s1ap.pdu_extension")
    kind = first >> 5
    if kind > UNSUCCESSFUL:
        raise Malformed("s1ap.pdu_kind", str(kind))
    header = _HEADERS.get(code << 2 | kind)
    if header is None:
        record = {"proto": "s1ap", "msg": f"unknown_procedure_{code}", "uplink": None}
    else:
        record = {"proto": "s1ap", "msg": header[0], "uplink": header[1]}
    value, _ = open_type(pdu, 3)
    if len(value) < 3:
        raise Truncated("s1ap.container_too_short")
    found = {}
    _walk(value, 3, value[1] << 8 | value[2], record, found)
    nas = found.get("nas")
    if nas is None:
        return [record]
    records = [record]
    uplink = record["uplink"]
    for nas_pdu in nas:
        try:
            records += decode_nas(nas_pdu, uplink)
        except DecodeError as err:
            records.append({"proto": "nas-eps", "msg": "malformed", "uplink": uplink, "error": err.reason})
    return records


def _walk(value: bytes, pos: int, count: int, record: dict, found: dict) -> None:
    """ProtocolIE-Container (§9.3.5): ``count`` fields of id (2 octets), criticality (1), open type.

    ``found`` carries what one IE tells the decoding of another: the NAS-PDUs, the handover type.
    The open type's length determinant is read inline (``per.open_type`` for a fragmented one), and an IE
    without a handler is skipped without copying its value."""
    end = len(value)
    handlers = _IE_HANDLERS
    for _ in range(count):
        if pos + 4 > end:
            record.setdefault("error", "s1ap.ie_truncated")
            return
        ie_id = value[pos] << 8 | value[pos + 1]
        first = value[pos + 3]
        field = value                        # the IE value is field[start:stop]
        if first < 0x80:
            start = pos + 4
            pos = stop = start + first
        elif first < 0xC0 and pos + 5 <= end:
            start = pos + 5
            pos = stop = start + ((first & 0x3F) << 8 | value[pos + 4])
        else:
            try:
                field, pos = open_type(value, pos + 3)
            except DecodeError:
                record.setdefault("error", "s1ap.ie_truncated")
                return
            start, stop = 0, len(field)
        if pos > end:
            record.setdefault("error", "s1ap.ie_truncated")
            return
        # A third of all IEs are these two: read in place, as ``_uint`` does (a tenth of the S1AP time), and
        # left to it (via the handler) when short or too long, so that the error is its own.
        if ie_id == ID_ENB_UE_S1AP_ID or ie_id == ID_MME_UE_S1AP_ID:
            if start < stop:
                id_end = start + (field[start] >> 6) + 2
                if id_end <= stop and (id_end - start <= 4 or ie_id == ID_MME_UE_S1AP_ID):
                    record["enb_ue_id" if ie_id == ID_ENB_UE_S1AP_ID else "mme_ue_id"] = int.from_bytes(
                        field[start + 1:id_end], "big")
                    continue
        handler = handlers.get(ie_id)
        if handler is not None:
            try:
                handler(field[start:stop], record, found)
            except IndexError:
                record.setdefault("error", "s1ap.ie_too_short")
            except DecodeError as err:
                record.setdefault("error", err.reason)


def _items(value: bytes, item_id: int):
    """An E-RAB / TAI / UE-associated list (SEQUENCE (SIZE(1..256)) OF ProtocolIE-SingleContainer): the
    count - 1 in one aligned octet, then ProtocolIE-Fields; yields the values of those with ``item_id``."""
    pos = 1
    for _ in range(value[0] + 1):
        if pos + 3 > len(value):
            raise Truncated("s1ap.list_truncated")
        ie_id = value[pos] << 8 | value[pos + 1]
        item, pos = open_type(value, pos + 3)
        if ie_id == item_id:
            yield item


def _uint(value: bytes, octets_max: int) -> int:
    """MME-UE-S1AP-ID / eNB-UE-S1AP-ID as a whole IE value (X.691 §11.5.7.4): the octet count - 1 in the
    top 2 bits of the first octet, then the value octets."""
    end = (value[0] >> 6) + 2
    if end > octets_max + 1:
        raise Malformed("s1ap.ue_s1ap_id_too_long")
    if end > len(value):
        raise Truncated("s1ap.ie_too_short")
    return int.from_bytes(value[1:end], "big")


def _skip_extensions(bits: BitReader) -> None:
    """ProtocolExtensionContainer (§9.3.5): SIZE(1..65535) fields of id, criticality, open type."""
    for _ in range(bits.constrained(1, 65535)):
        bits.octets(2)
        bits.bits(2)
        bits.open_type()


# -- IE values ----------------------------------------------------------------------------------------------------

def _mme_ue_s1ap_id(value: bytes, record: dict, found: dict) -> None:
    record["mme_ue_id"] = _uint(value, 4)


def _enb_ue_s1ap_id(value: bytes, record: dict, found: dict) -> None:
    record["enb_ue_id"] = _uint(value, 3)


def _ue_s1ap_ids(value: bytes, record: dict, found: dict) -> None:
    """§9.2.3.18 UE-S1AP-IDs: CHOICE {uE-S1AP-ID-pair (MME, eNB IDs), mME-UE-S1AP-ID, ...}.

    The first octet holds the CHOICE bits, the pair's two bits and the MME ID's octet count - 1 (each ID is
    a §11.5.7.4 indefinite-length integer), so a whole value is read by octets; anything short or
    extended goes through ``BitReader``, which raises exactly where the value breaks."""
    size = len(value)
    if size > 1:
        first = value[0]
        if first & 0xC0 == 0:
            mme_end = ((first >> 2) & 3) + 2
            if mme_end < size:
                enb_end = mme_end + 1 + (value[mme_end] >> 6) + 1
                if enb_end <= size:
                    record["mme_ue_id"] = int.from_bytes(value[1:mme_end], "big")
                    record["enb_ue_id"] = int.from_bytes(value[mme_end + 1:enb_end], "big")
                    return
        elif first & 0xC0 == 0x40:
            mme_end = ((first >> 4) & 3) + 2
            if mme_end <= size:
                record["mme_ue_id"] = int.from_bytes(value[1:mme_end], "big")
                return
    bits = BitReader(value)
    alternative = bits.choice(2)
    if alternative == 0:
        bits.bits(2)  # the pair's extension and iE-Extensions bits
        record["mme_ue_id"] = bits.constrained(0, _MME_UE_S1AP_ID_MAX)
        record["enb_ue_id"] = bits.constrained(0, _ENB_UE_S1AP_ID_MAX)
    elif alternative == 1:
        record["mme_ue_id"] = bits.constrained(0, _MME_UE_S1AP_ID_MAX)
    else:
        raise Unsupported("s1ap.ue_s1ap_ids_extension")


def _cause(value: bytes, record: dict, found: dict) -> None:
    """§9.2.1.3 Cause: extensible CHOICE of five extensible ENUMERATEDs. A root group and value fit in the
    first 11 bits (extension bit, 3-bit index, extension bit, the enumeration's bits); others via BitReader."""
    size = len(value)
    if size:
        first = value[0]
        group = first >> 4
        if group < 5 and not first & 0x08:
            width = _CAUSE_WIDTHS[group]
            if width <= 3 or size > 1:
                word = first << 8 | value[1] if size > 1 else first << 8
                record["cause"] = (word >> (11 - width)) & ((1 << width) - 1)
                record["cause_group"] = CAUSE_GROUPS[group]
                return
    _read_cause(BitReader(value), record)


def _read_cause(bits: BitReader, record: dict) -> None:
    group = bits.choice(5)
    if group >= 5:
        raise Unsupported("s1ap.cause_extension")
    record["cause"] = bits.enumerated(_CAUSE_ROOTS[group])
    record["cause_group"] = CAUSE_GROUPS[group]


def _e_rab_cause(item_id: int):
    """Lists of E-RABs with a cause each (E-RABItem, §9.2.1.36: e-RAB-ID then Cause): the first E-RAB's
    cause, when the message has no Cause IE of its own (its Cause IE, wherever it comes, wins)."""

    def handler(value: bytes, record: dict, found: dict) -> None:
        if "cause" in record:
            return
        for item in _items(value, item_id):
            bits = BitReader(item)
            bits.bits(2)                 # extension, iE-Extensions
            if bits.bit():               # e-RAB-ID INTEGER (0..15, ...): an extension value is unconstrained, §13.1
                bits.octets(bits.unconstrained_length())
            else:
                bits.bits(4)
            _read_cause(bits, record)
            return

    return handler


def _tai(value: bytes, record: dict, found: dict) -> None:
    """§9.2.3.16 TAI: extension + iE-Extensions bits (padded), PLMN (3 octets), TAC (2 octets)."""
    tai = _TAIS.get(value)
    if tai is None:
        if len(value) < 6:
            raise Truncated("s1ap.tai_too_short")
        tai = _remember(_TAIS, value, (*plmn(value[1:4]), value[4] << 8 | value[5]))
    if "eci" not in record:
        record["mcc"], record["mnc"] = tai[0], tai[1]
    record["tac"] = tai[2]


def _eutran_cgi(value: bytes, record: dict, found: dict) -> None:
    """§9.2.1.38 E-UTRAN CGI: two preamble bits (padded), PLMN, cell-ID BIT STRING (SIZE(28)) aligned."""
    cgi = _CGIS.get(value)
    if cgi is None:
        if len(value) < 8:
            raise Truncated("s1ap.eutran_cgi_too_short")
        cgi = _remember(_CGIS, value, (*plmn(value[1:4]), int.from_bytes(value[4:8], "big") >> 4))
    record["mcc"], record["mnc"], record["eci"] = cgi


def _remember(cache: dict, value: bytes, decoded: tuple) -> tuple:
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[value] = decoded
    return decoded


def _user_location_information(value: bytes, record: dict, found: dict) -> None:
    """§9.2.1.93 User Location Information (e.g. in UE Context Release Complete): the UE's last EUTRAN-CGI
    and TAI, each a SEQUENCE with extension and iE-Extensions bits, inside one with the same two bits."""
    bits = BitReader(value)
    bits.bits(2)
    bits.bit()
    has_extensions = bits.bit()
    record["mcc"], record["mnc"] = plmn(bits.octets(3))
    record["eci"] = bits.bit_string(28)
    if has_extensions:
        _skip_extensions(bits)
    bits.bits(2)
    bits.octets(3)
    record["tac"] = int.from_bytes(bits.octets(2), "big")


def _s_tmsi(value: bytes, record: dict, found: dict) -> None:
    """§9.2.3.6 S-TMSI: two preamble bits, MMEC as an unaligned 8-bit field (fixed size ≤ 2 octets,
    X.691 §17.6), then the aligned 4-octet M-TMSI."""
    if len(value) < 6:
        raise Truncated("s1ap.s_tmsi_too_short")
    record["mmec"] = (value[0] & 0x3F) << 2 | value[1] >> 6
    record["m_tmsi"] = int.from_bytes(value[2:6], "big")


def _ue_paging_id(value: bytes, record: dict, found: dict) -> None:
    """§9.2.3.13 UE Paging Identity: CHOICE {s-TMSI, iMSI (OCTET STRING (SIZE(3..8)), TBCD), ...}."""
    bits = BitReader(value)
    alternative = bits.choice(2)
    if alternative == 0:
        bits.bits(2)
        record["mmec"] = bits.bits(8)
        record["m_tmsi"] = int.from_bytes(bits.octets(4), "big")
    elif alternative == 1:
        imsi = tbcd(bits.octets(bits.length(3, 8)))
        if not imsi.isdigit():
            raise Malformed("s1ap.imsi_not_digits")
        record["imsi"] = imsi
    else:
        raise Unsupported("s1ap.ue_paging_id_extension")


def _tai_list(value: bytes, record: dict, found: dict) -> None:
    """§9.1.6 Paging's TAI List: the tracking area only when it is the single one listed (a TAIItem is
    extension + iE-Extensions bits, then the TAI)."""
    items = list(_items(value, ID_TAI_ITEM))
    if len(items) == 1:
        _tai(items[0], record, found)


def _nas_pdu(value: bytes, record: dict, found: dict) -> None:
    """§9.2.3.5 NAS-PDU: an unconstrained OCTET STRING."""
    _add_nas(found, open_type(value, 0)[0])


def _add_nas(found: dict, nas_pdu: bytes) -> None:
    nas = found.get("nas")
    if nas is None:
        found["nas"] = [nas_pdu]
    else:
        nas.append(nas_pdu)


def _e_rab_nas_pdus(skip_transport: bool, nas_optional: bool):
    """E-RAB list items whose SEQUENCE has a nAS-PDU after e-RAB-ID, E-RAB Level QoS Parameters
    (§9.2.1.15) and, in setup items, the transport layer address and GTP-TEID."""

    presence = 3 if nas_optional else 2   # the bits before e-RAB-ID: extension, [nAS-PDU,] iE-Extensions

    def item(value: bytes) -> bytes | None:
        # Without extensions, GBR information or an extended e-RAB-ID / address length, the fields before the
        # NAS-PDU sit at fixed octets: e-RAB-ID and QoS bits in octets 0-1, QCI 2, ARP 3, the address length
        # over octets 4-5. Any other shape, or one too short, is walked bit by bit.
        if len(value) > 5:
            head = value[0] << 8 | value[1]
            if not (head >> (15 - presence) & 1 or head >> (8 - presence) & 3 or value[3] & 0x40):
                if not skip_transport:
                    pos = 4
                elif value[4] & 0x80:                # an extended address length
                    pos = len(value) + 1
                else:                                # 1 + 8-bit address length, its octets, the GTP-TEID
                    pos = 10 + ((((value[4] & 0x7F) << 1 | value[5] >> 7) + 8) >> 3)
                if pos <= len(value):
                    has_nas = head >> 14 & 1 if nas_optional else True
                    return open_type(value, pos)[0] if has_nas else None
        bits = BitReader(value)
        bits.bit()                                   # extension
        has_nas = bits.bit() if nas_optional else True
        bits.bit()                                   # iE-Extensions
        if bits.bit():                               # e-RAB-ID INTEGER (0..15, ...), an extension value as
            bits.octets(bits.unconstrained_length())  # an unconstrained whole number (X.691 §13.1)
        else:
            bits.bits(4)
        bits.bit()                                   # QoS: extension
        has_gbr, has_qos_ext = bits.bit(), bits.bit()
        bits.octets(1)                               # QCI
        bits.bit()                                   # ARP: extension
        has_arp_ext = bits.bit()
        bits.bits(6)                                 # priority level, pre-emption capability, vulnerability
        if has_arp_ext:
            _skip_extensions(bits)
        if has_gbr:                                  # GBR QoS information (§9.2.1.18)
            bits.bit()
            has_gbr_ext = bits.bit()
            for _ in range(4):
                bits.constrained(0, 10_000_000_000)  # BitRate, §9.2.1.19
            if has_gbr_ext:
                _skip_extensions(bits)
        if has_qos_ext:
            _skip_extensions(bits)
        if skip_transport:                           # TransportLayerAddress (§9.2.2.1), GTP-TEID (§9.2.2.2)
            size = bits.unconstrained_length() if bits.bit() else bits.length(1, 160)
            bits.octets((size + 7) >> 3)
            bits.octets(4)
        return bits.open_type() if has_nas else None

    return item


_SETUP_CTXT_ITEM = _e_rab_nas_pdus(skip_transport=True, nas_optional=True)
_SETUP_BEARER_ITEM = _e_rab_nas_pdus(skip_transport=True, nas_optional=False)
_MODIFY_BEARER_ITEM = _e_rab_nas_pdus(skip_transport=False, nas_optional=False)


def _e_rab_list(item_id: int, item):
    def handler(value: bytes, record: dict, found: dict) -> None:
        for value_of_item in _items(value, item_id):
            nas_pdu = item(value_of_item)
            if nas_pdu is not None:
                _add_nas(found, nas_pdu)
    return handler


def _reset_type(value: bytes, record: dict, found: dict) -> None:
    """§9.1.8.1 RESET's Reset Type: CHOICE {s1-Interface (reset all), partOfS1-Interface (list), ...}; the UE IDs
    when exactly one UE-associated logical S1 connection is reset."""
    bits = BitReader(value)
    if bits.choice(2) != 1:
        return
    bits.align()
    _connection_items(value, bits.pos >> 3, record)


def _connection_list_ack(value: bytes, record: dict, found: dict) -> None:
    """Reset Acknowledge's UE-associated logical S1-connection list, as in the Reset Type."""
    _connection_items(value, 0, record)


def _connection_items(value: bytes, pos: int, record: dict) -> None:
    """UE-associatedLogicalS1-ConnectionItem (§9.3.4): optional MME and eNB UE S1AP IDs."""
    items = list(_items(value[pos:], ID_UE_ASSOCIATED_LOGICAL_S1_CONNECTION_ITEM))
    if len(items) != 1:
        return
    bits = BitReader(items[0])
    bits.bit()
    has_mme, has_enb = bits.bit(), bits.bit()
    bits.bit()
    if has_mme:
        record["mme_ue_id"] = bits.constrained(0, _MME_UE_S1AP_ID_MAX)
    if has_enb:
        record["enb_ue_id"] = bits.constrained(0, _ENB_UE_S1AP_ID_MAX)


def _handover_type(value: bytes, record: dict, found: dict) -> None:
    """§9.2.1.13 HandoverType ENUMERATED {intralte, ltetoutran, ...}: says how the container is coded."""
    found["handover_type"] = BitReader(value).enumerated(5)


def _target_id(value: bytes, record: dict, found: dict) -> None:
    """§9.2.1.6 Target ID: CHOICE {targeteNB-ID, targetRNC-ID, cGI, ...}; for an eNB, its selected TAI."""
    bits = BitReader(value)
    if bits.choice(3) != 0:
        return
    bits.bits(2)                       # TargeteNB-ID: extension, iE-Extensions
    bits.bit()                         # Global-ENB-ID (§9.2.1.37): extension
    has_extensions = bits.bit()
    bits.octets(3)                     # its PLMN identity
    alternative = bits.choice(2)       # eNB-ID: macroENB-ID (SIZE(20)), homeENB-ID (SIZE(28)), ...
    if alternative == 0:
        bits.bit_string(20)
    elif alternative == 1:
        bits.bit_string(28)
    else:                              # an extension alternative (short / long macro eNB ID) is an open type
        bits.open_type()
    if has_extensions:
        _skip_extensions(bits)
    bits.bits(2)                       # selected TAI: extension, iE-Extensions
    mcc, mnc = plmn(bits.octets(3))
    record.setdefault("mcc", mcc)
    record.setdefault("mnc", mnc)
    record["tac"] = int.from_bytes(bits.octets(2), "big")


def _source_to_target_container(value: bytes, record: dict, found: dict) -> None:
    """§9.2.1.56 Source eNB to Target eNB Transparent Container, inside the Source to Target Transparent
    Container OCTET STRING of an intra-LTE handover: its target cell (EUTRAN-CGI)."""
    if found.get("handover_type", HANDOVER_TYPE_INTRA_LTE) != HANDOVER_TYPE_INTRA_LTE:
        return
    bits = BitReader(open_type(value, 0)[0])
    bits.bit()                         # extension
    has_e_rabs = bits.bit()            # e-RABInformationList; then subscriberProfileIDforRFP, iE-Extensions
    bits.bits(2)
    bits.open_type()                   # rRC-Container
    if has_e_rabs:
        for _ in range(bits.constrained(1, _MAX_LIST)):
            bits.octets(2)
            bits.bits(2)
            bits.open_type()
    bits.bits(2)                       # targetCell-ID: extension, iE-Extensions
    record["mcc"], record["mnc"] = plmn(bits.octets(3))
    record["eci"] = bits.bit_string(28)


_IE_HANDLERS = {
    ID_MME_UE_S1AP_ID: _mme_ue_s1ap_id,
    ID_SOURCE_MME_UE_S1AP_ID: _mme_ue_s1ap_id,
    ID_ENB_UE_S1AP_ID: _enb_ue_s1ap_id,
    ID_UE_S1AP_IDS: _ue_s1ap_ids,
    ID_CAUSE: _cause,
    **{list_id: _e_rab_cause(item_id) for list_id, item_id in E_RAB_CAUSE_LISTS.items()},
    ID_TAI: _tai,
    ID_EUTRAN_CGI: _eutran_cgi,
    ID_USER_LOCATION_INFORMATION: _user_location_information,
    ID_S_TMSI: _s_tmsi,
    ID_UE_PAGING_ID: _ue_paging_id,
    ID_TAI_LIST: _tai_list,
    ID_NAS_PDU: _nas_pdu,
    ID_E_RAB_TO_BE_SETUP_LIST_CTXT_SU_REQ: _e_rab_list(ID_E_RAB_TO_BE_SETUP_ITEM_CTXT_SU_REQ, _SETUP_CTXT_ITEM),
    ID_E_RAB_TO_BE_SETUP_LIST_BEARER_SU_REQ: _e_rab_list(ID_E_RAB_TO_BE_SETUP_ITEM_BEARER_SU_REQ, _SETUP_BEARER_ITEM),
    ID_E_RAB_TO_BE_MODIFIED_LIST_BEARER_MOD_REQ: _e_rab_list(ID_E_RAB_TO_BE_MODIFIED_ITEM_BEARER_MOD_REQ,
                                                             _MODIFY_BEARER_ITEM),
    ID_RESET_TYPE: _reset_type,
    ID_UE_ASSOCIATED_LOGICAL_S1_CONNECTION_LIST_RES_ACK: _connection_list_ack,
    ID_HANDOVER_TYPE: _handover_type,
    ID_TARGET_ID: _target_id,
    ID_SOURCE_TO_TARGET_TRANSPARENT_CONTAINER: _source_to_target_container,
}
