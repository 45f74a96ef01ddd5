"""The simulator's capture read by pycrate, a second oracle beside tshark, and compared with our records field by field.

tshark and our decoders were written against the same specifications by different people; pycrate is a third,
independent reading (its own APER codec of the §9.3 ASN.1, its own TS 24.008 / 24.301 / 24.011 / 48.008 codecs).
Every payload ``read_payloads`` finds in the ``city`` capture is decoded by ``decode_s1ap`` / ``decode_bssap`` and by
the compiled batch path (``decode_batch``), and by pycrate; each record's fields are then set from pycrate's values
(its PLMN, BCD and mobile-identity decoders; at most its sub-fields put together as a record keeps them, e.g. a
cause's class and value) and compared with ours, all fields of MESSAGE_SCHEMA but the transport's. The direction
comes from the wire (what the MME or the MSC sends is downlink), not from either decoder. A last test does the same
on messages the simulator's encoders can write but the city's morning does not.
"""

import re
from collections import Counter, defaultdict
from dataclasses import dataclass

import pytest

from capture.mtp3 import point_code
from capture.payloads import PROTO_BSSAP, PROTO_S1AP
from capture.stack import read_payloads
from decoders.bssmap import decode_bssap
from decoders.decode import DecodeState, decode_batch
from decoders.records import MESSAGE_SCHEMA
from decoders.s1ap import decode_s1ap
from simulator.scenario import MME_IP, MSC_PC
from test_s1ap import S1AP_PORT, _cause_index, spec_message_names

# Every record field but the transport's (frame, time, interface, association, connection): each must be pycrate's.
FIELDS = tuple(n for n in MESSAGE_SCHEMA.names if n not in ("frame", "ts", "iface", "assoc", "conn", "error"))
DOWNLINK_SENDERS = {f"{MME_IP}:{S1AP_PORT}", f"pc:{point_code(MSC_PC, 'itu')}"}
PDU_KINDS = ("initiatingMessage", "successfulOutcome", "unsuccessfulOutcome")


@dataclass(frozen=True)
class Payload:
    frame: int
    proto: int
    uplink: bool
    data: bytes


@pytest.fixture(scope="module")
def payloads(city) -> list[Payload]:
    return [Payload(int(b.frame[i]), int(b.proto[i]), b.endpoints[b.src[i]] not in DOWNLINK_SENDERS, b.payload(i))
            for b in read_payloads(city / "capture.pcap") for i in range(len(b))]


# -- pycrate's view of a payload: the records it says we should write ---------------------------------------------


class Pycrate:
    """pycrate's codecs, imported when a test needs them rather than when pytest collects the module."""

    def __init__(self):
        from pycrate_asn1dir import S1AP
        from pycrate_mobile import TS24008_IE, TS24301_IE
        from pycrate_mobile.NAS import parse_NAS_MO, parse_NAS_MT
        from pycrate_mobile.TS48008_BSSMAP import BSSMAP_SE, _BSSMAPType_dict
        self.pdu = S1AP.S1AP_PDU_Descriptions.S1AP_PDU
        self.parse = {True: parse_NAS_MO, False: parse_NAS_MT}
        self.plmn, self.bcd, self.element, self.bssmap_types = TS24008_IE.PLMN, TS24008_IE.BufBCD, BSSMAP_SE, \
            _BSSMAPType_dict
        self.ids = {TS24008_IE.IDTYPE_IMSI: "imsi", TS24008_IE.IDTYPE_IMEI: "imei",
                    TS24008_IE.IDTYPE_IMEISV: "imeisv", TS24008_IE.IDTYPE_TMSI: "tmsi"}
        self.eps_ids = {TS24301_IE.IDTYPE_IMSI: "imsi", TS24301_IE.IDTYPE_IMEISV: "imeisv"}
        self.guti = TS24301_IE.IDTYPE_GUTI

    def mcc_mnc(self, octets: bytes) -> tuple[str, str]:
        return _split(self.plmn(val=octets).decode())


def _split(plmn: str) -> tuple[str, str]:
    """pycrate's PLMN digits ("46000") as MCC and MNC."""
    return plmn[:3], plmn[3:]


# pycrate's message type descriptions (after any "Category - " prefix, snake_cased) where ours differ.
RENAMES = {"complete_layer_3_information": "complete_layer3_information", "sms_cp_data": "cp_data",
           "sms_cp_ack": "cp_ack", "sms_cp_error": "cp_error"}
# pycrate's descriptions of the values a record keeps in ``update_type`` -> ours.
TA_UPDATING = 'unused; shall be interpreted as "TA updating", if received by the network.'
UPDATE_TYPES = {
    "EPS Attach": "eps", "combined EPS / IMSI attach": "combined", "EPS emergency attach": "emergency",  # attach
    "TA updating": "ta_updating", TA_UPDATING: "ta_updating", "combined TA/LA updating": "combined",   # TAU
    "combined TA/LA updating with IMSI attach": "combined_imsi_attach", "periodic updating": "periodic",
    "EPS detach": "eps", "IMSI detach": "imsi", "combined EPS/IMSI detach": "combined",                # UE detach
    "Normal location updating": "normal", "Periodic updating": "periodic", "IMSI attach": "imsi_attach",  # LU
    "Mobile originating call / packet mode connection": "mo_call", "Emergency call": "emergency",     # CM service
    "SMS": "sms", "Supplementary service": "ss",
    "mobile originating CS fallback or 1xCS fallback": "mo_csfb",                                      # extended
    "mobile terminating CS fallback or 1xCS fallback": "mt_csfb",                                      # service
    'unused; shall be interpreted as "mobile originating CS fallback or 1xCS fallback", if received by the network':
        "mo_csfb",
    "packet services via S1": "packet_services_via_s1",
    'unused; shall be interpreted as "packet services via S1", if received by the network': "packet_services_via_s1",
}
NETWORK_DETACH_TYPES = {"re-attach required": "re_attach_required", "re-attach not required": "re_attach_not_required",
                        "IMSI detach": "imsi_detach"}


def _spec_name(header) -> str:
    """The message type's description in pycrate's header, snake_cased: "Registration - LOCATION UPDATING ACCEPT"
    -> location_updating_accept."""
    return _snake(_described(header["Type"]).split(" - ")[-1])


def _snake(description: str) -> str:
    name = re.sub(r"[^a-z0-9]+", "_", description.lower()).strip("_")
    return RENAMES.get(name, name)


def _described(value, field: str | None = None) -> str:
    """A coded value's description in pycrate's table (of its ``field`` when pycrate splits the value)."""
    if field in getattr(value, "_by_name", ()):
        value = value[field]
    return value._dic[value.get_val()]


def _ie(message, name: str):
    """The value part of the IE ``name`` of a pycrate message, None when the message lacks it."""
    if name not in message._by_name or message[name].get_trans():
        return None
    return message[name][-1]  # a TLV's T and L come first; its V takes the name of its IE once decoded


def s1ap_view(pc: Pycrate, payload: Payload) -> list[dict | None]:
    """The S1AP record and its NAS-PDUs' records, from pycrate's APER decode of the PDU."""
    pc.pdu.from_aper(payload.data)
    kind, content = pc.pdu.get_val()
    record = {"proto": "s1ap", "msg": spec_message_names()[content["procedureCode"], PDU_KINDS.index(kind)],
              "uplink": payload.uplink}
    nas, tai_plmn = [], None
    for ie in content["value"][1]["protocolIEs"]:
        ie_id, (_, value) = ie["id"], ie["value"]
        if ie_id in (0, 88):  # MME-UE-S1AP-ID, SourceMME-UE-S1AP-ID (Path Switch Request)
            record["mme_ue_id"] = value
        elif ie_id == 8:
            record["enb_ue_id"] = value
        elif ie_id == 99:
            if value[0] == "uE-S1AP-ID-pair":
                record["mme_ue_id"], record["enb_ue_id"] = value[1]["mME-UE-S1AP-ID"], value[1]["eNB-UE-S1AP-ID"]
            else:
                record["mme_ue_id"] = value[1]
        elif ie_id == 2:
            record["cause_group"], record["cause"] = _cause_index(value)
        elif ie_id == 67 or ie_id == 46 and len(value) == 1:  # TAI, Paging's TAI List when it holds one TAI
            tai = value if ie_id == 67 else value[0]["value"][1]["tAI"]
            tai_plmn = pc.mcc_mnc(tai["pLMNidentity"])
            record["tac"] = int.from_bytes(tai["tAC"], "big")
        elif ie_id == 100:
            record["mcc"], record["mnc"] = pc.mcc_mnc(value["pLMNidentity"])
            record["eci"] = value["cell-ID"][0]
        elif ie_id == 96:
            record["mmec"], record["m_tmsi"] = (int.from_bytes(value[k], "big") for k in ("mMEC", "m-TMSI"))
        elif ie_id == 43:
            if value[0] == "s-TMSI":
                record["mmec"], record["m_tmsi"] = (int.from_bytes(value[1][k], "big") for k in ("mMEC", "m-TMSI"))
            else:
                record["imsi"] = pc.bcd(val=value[1]).decode()
        elif ie_id == 26:
            nas.append(value)
        elif ie_id == 24:
            nas += [item["value"][1]["nAS-PDU"] for item in value if "nAS-PDU" in item["value"][1]]
    if tai_plmn is not None and "mcc" not in record:  # the cell's PLMN names the network when both are there
        record["mcc"], record["mnc"] = tai_plmn
    return [record] + [r for pdu in nas for r in nas_view(pc, pdu, payload.uplink)]


def nas_view(pc: Pycrate, pdu: bytes, uplink: bool) -> list[dict | None]:
    """An EMM or ESM message (then the ESM message in its container) from parse_NAS_MO / parse_NAS_MT. pycrate
    opens an integrity-protected message itself; a ciphered one (security header 2, 4) counts as plain when its
    content parses as a plain EMM or ESM message (EEA0), as decode_nas and Wireshark's null_decipher do."""
    message, err = pc.parse[uplink](pdu)
    if err:
        return [None]
    if message._name == "EMMSecProtNASMessage":
        message = message[3]
        if message._name == "NASMessage":  # ciphered: pycrate leaves it as octets
            message, err = pc.parse[uplink](message.get_val())
            if err or not (message._name.startswith("ESM") or message[0]["SecHdr"].get_val() == 0):
                return [{"proto": "nas-eps", "msg": "ciphered", "ciphered": True, "uplink": uplink}]
    record = {"proto": "nas-eps", "uplink": uplink}
    if message._name == "EMMServiceRequest":  # security header 12: no message type octet
        return [{**record, "msg": "service_request"}]
    record["msg"] = _spec_name(message[0])
    for name in ("EPSID", "OldGUTI", "GUTI"):
        identity = _ie(message, name)
        if identity is not None:
            typ, *value = identity.decode()
            if typ == pc.guti:
                plmn, _, record["mmec"], record["m_tmsi"] = value
                record["mcc"], record["mnc"] = _split(plmn)
            else:
                record[pc.eps_ids[typ]] = value[0]
    for name in ("ID", "IMEISV", "MTMSI"):  # TS 24.008 mobile identities
        identity = _ie(message, name)
        if identity is not None:
            typ, value = identity.decode()
            record["m_tmsi" if name == "MTMSI" else pc.ids[typ]] = value
    tai = _ie(message, "OldTAI")
    if tai is not None:
        plmn, record["tac"] = tai.decode()
        for field, value in zip(("mcc", "mnc"), _split(plmn)):
            record.setdefault(field, value)
    cause = _ie(message, "EMMCause")
    if cause is not None:
        record["cause"], record["cause_group"] = cause.to_bytes()[0], "emm"
    kind = _ie(message, "EPSAttachType") or _ie(message, "EPSUpdateType") or _ie(message, "ServiceType")
    if kind is not None:
        record["update_type"] = UPDATE_TYPES[_described(kind, "Value")]
    detach = _ie(message, "EPSDetachType")
    if detach is not None:
        if uplink:
            kind = UPDATE_TYPES[_described(detach, "Type")]
            record["update_type"] = "switch_off_" + kind if detach["SwitchOff"].get_val() else kind
        else:
            record["update_type"] = NETWORK_DETACH_TYPES[_described(detach, "Type")]
    records = [record]
    container = _ie(message, "ESMContainer")
    if container is not None:
        records.append({"proto": "nas-eps", "msg": _spec_name(container[0]), "uplink": uplink})
    return records


def bssap_view(pc: Pycrate, payload: Payload) -> list[dict | None]:
    """A DTAP message through parse_NAS_MO / parse_NAS_MT, or a BSSMAP message through TS48008_BSSMAP's elements
    (then the layer 3 message it carries, from the phone)."""
    data = payload.data
    if data[0] == 1:  # DTAP: discriminator, DLCI, length, then layer 3 (TS 48.006 §9.3)
        return [l3_view(pc, data[3:3 + data[2]], payload.uplink)]
    body = data[2:2 + data[1]]
    record = {"proto": "bssmap", "msg": _snake(pc.bssmap_types[body[0]]), "uplink": payload.uplink}
    records = [record]
    for element in _bssmap_elements(pc, body[1:]):
        name, value = element._name, element["Val"]
        if name == "Cause" and "cause" not in record:
            record["cause"], record["cause_group"] = value.to_bytes()[0], "bssmap"
        elif name == "CellIdentifier" or name == "CellIdentifierList" and "lac" not in record:
            # the last Cell Identifier wins (a handover's target), a list's first cell unless there is one
            record.update(_cell((value["CellID"] if name == "CellIdentifier" else value["CellIDs"][0]).get_alt()))
        elif name in ("IMSI", "IMEI", "MobileIdentity"):
            typ, identity = value.decode()
            record[pc.ids[typ]] = identity
        elif name == "TMSI":
            record["tmsi"] = value.get_val()
        elif element["ID"].get_val() == 23:  # Layer 3 Information: pycrate keeps the octets
            records.append(l3_view(pc, value.get_val(), True))
    return records


def _cell(cell) -> dict:
    """The PLMN, LAC and CI that pycrate finds in a cell of a Cell Identifier (List), None for those the
    discriminator leaves out."""
    if cell._name == "CI":
        return {"mcc": None, "mnc": None, "lac": None, "ci": cell.get_val()}
    mcc, mnc = _split(cell["PLMN"].decode()) if "PLMN" in cell._by_name else (None, None)
    return {"mcc": mcc, "mnc": mnc, **{f: cell[f.upper()].get_val() if f.upper() in cell._by_name else None
                                       for f in ("lac", "ci")}}


def _bssmap_elements(pc: Pycrate, elements: bytes):
    """pycrate's TS 48.008 elements one by one, each decoded from its own octets: parsed as a whole message
    (TS48008_BSSMAP.BSSMAP), pycrate 0.8.1's IMSI value runs past its length over the elements after it."""
    while elements:
        element = pc.element()
        element.from_bytes(elements)
        size = 2 + element["Len"].get_val() if not element["Len"].get_trans() else 1 + element._get_selen()
        element = pc.element()
        element.from_bytes(elements[:size])
        yield element
        elements = elements[size:]


def l3_view(pc: Pycrate, l3: bytes, uplink: bool) -> dict | None:
    """An MM, CC, RR or SMS message."""
    message, err = pc.parse[uplink](l3)
    if err:
        return None
    record = {"proto": "dtap", "msg": _spec_name(message[0]), "uplink": uplink}
    lai = _ie(message, "LAI")
    if lai is not None:
        plmn, record["lac"] = lai.decode()
        record["mcc"], record["mnc"] = _split(plmn)
    identity = _ie(message, "ID")
    if identity is not None:
        typ, value = identity.decode()
        if typ in pc.ids:
            record[pc.ids[typ]] = value
    for name in ("LocUpdateType", "Service"):
        kind = _ie(message, name)
        if kind is not None:
            record["update_type"] = UPDATE_TYPES[_described(kind, "Type")]
    for name, field in (("CalledPartyBCDNumber", "called"), ("CallingPartyBCDNumber", "calling")):
        number = _ie(message, name)
        if number is not None:
            record[field] = number["Num"].decode()
    cause = _ie(message, "Cause")
    if cause is not None:
        record["cause"], record["cause_group"] = cause["Class"].get_val() << 4 | cause["Value"].get_val(), "cc"
    cause = _ie(message, "RejectCause")
    if cause is not None:
        record["cause"], record["cause_group"] = cause.get_val(), "mm"
    rp = _ie(message, "CPUserData")
    if rp is not None:
        tpdu = _ie(rp, "RPUserData")
        if tpdu is not None and tpdu._name == "SMS_SUBMIT":
            record["called"] = tpdu["TP_DA"]["Num"].decode()
        elif tpdu is not None and tpdu._name == "SMS_DELIVER":
            record["calling"] = tpdu["TP_OA"]["Num"].decode()
        cause = _ie(rp, "RPCause")
        if cause is not None:
            record["cause"], record["cause_group"] = cause.to_bytes()[0] & 0x7F, "rp"
    return record


# -- the comparison -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def expected(payloads) -> dict[int, list[dict | None]]:
    """{frame: pycrate's records of its payloads, in order}; None where pycrate cannot parse a message."""
    pc = Pycrate()
    by_frame = defaultdict(list)
    for payload in payloads:
        view = s1ap_view if payload.proto == PROTO_S1AP else bssap_view
        by_frame[payload.frame] += view(pc, payload)
    return by_frame


def _python_records(payloads) -> dict[int, list[dict]]:
    by_frame = defaultdict(list)
    for p in payloads:
        by_frame[p.frame] += decode_s1ap(p.data) if p.proto == PROTO_S1AP else decode_bssap(p.data, p.uplink)
    return by_frame


def _compiled_records(path) -> dict[int, list[dict]]:
    state, by_frame = DecodeState(), defaultdict(list)
    for batch in read_payloads(path):
        for record in decode_batch(batch, state).to_pylist():
            by_frame[record["frame"]].append(record)
    return by_frame


def disagreements(ours: dict[int, list[dict]], theirs: dict[int, list[dict | None]]) -> tuple[list, Counter]:
    """(frame, message, field, ours, pycrate's) for every difference, and the messages compared per protocol."""
    problems, compared = [], Counter()
    for frame in sorted(set(ours) | set(theirs)):
        got, want = ours.get(frame, []), theirs.get(frame, [])
        if len(got) != len(want):
            problems.append((frame, None, "records", [r["msg"] for r in got], [w and w["msg"] for w in want]))
            continue
        for record, view in zip(got, want):
            if view is None:
                continue
            compared[view["proto"], view["msg"]] += 1
            problems += [(frame, view["msg"], f, record.get(f), view.get(f)) for f in FIELDS + ("error",)
                         if record.get(f) != view.get(f)]
    return problems, compared


# What the city's procedures put on the wire (attach, TAU, service request, detach, identity; location update, IMSI
# detach, calls, SMS, paging, assignment, handover, clear): each must be among the messages compared.
SIMULATED = {
    "s1ap": {"initial_ue_message", "uplink_nas_transport", "downlink_nas_transport", "initial_context_setup_request",
             "initial_context_setup_response", "ue_context_release_command", "ue_context_release_complete"},
    "nas-eps": {"attach_request", "attach_accept", "attach_complete", "tracking_area_update_request",
                "tracking_area_update_accept", "service_request", "detach_request", "identity_request",
                "identity_response", "pdn_connectivity_request", "activate_default_eps_bearer_context_request"},
    "bssmap": {"complete_layer3_information", "paging", "assignment_request", "assignment_complete",
               "handover_performed", "clear_command", "clear_complete"},
    "dtap": {"location_updating_request", "location_updating_accept", "imsi_detach_indication", "cm_service_request",
             "paging_response", "identity_response", "setup", "alerting", "connect", "disconnect", "release",
             "release_complete", "cp_data", "cp_ack"},
}


def _check(ours: dict[int, list[dict]], expected: dict[int, list[dict | None]]) -> None:
    """No disagreement, at least 99 % of each protocol's messages compared, every simulated message type among them."""
    problems, compared = disagreements(ours, expected)
    assert not problems, f"{len(problems)} disagreements (frame, msg, field, ours, pycrate's), e.g. {problems[:8]}"
    messages = Counter(r["proto"] for records in ours.values() for r in records)
    for proto, names in SIMULATED.items():
        done = sum(n for (p, _), n in compared.items() if p == proto)
        assert done >= 0.99 * messages[proto], f"{proto}: pycrate compared {done} of {messages[proto]} messages"
        missing = names - {msg for p, msg in compared if p == proto}
        assert not missing, f"{proto}: never compared {sorted(missing)}"


def test_python_decoders_agree_with_pycrate(payloads, expected):
    _check(_python_records(payloads), expected)


def test_compiled_path_agrees_with_pycrate(city, expected):
    """decode_batch: the compiled S1AP and BSSAP passes, with DTAP's direction from the SCCP connection."""
    _check(_compiled_records(city / "capture.pcap"), expected)


# -- the simulator's encoders beyond what the city's morning runs --------------------------------------------------

def _encoded() -> list[Payload]:
    """A message of each kind the simulator can write that the city capture lacks: pycrate's view of these takes
    the branches (paging identities, MM and BSSMAP causes, CS fallback, GUTI reallocation, ...) the city leaves."""
    from simulator import bssap_encode as a
    from simulator import nas_encode as nas
    from simulator import s1ap_encode as s1
    guti, tai, cell = ("460", "00", 0x8001, 1, 0x12345678), ("460", "00", 0x5101), ("460", "00", 0x5101, 0x1A01B02)
    imsi, imei = "460001234567890", "35693803564380" + a.luhn_digit("35693803564380")
    s1ap = [
        (False, s1.paging(5, s_tmsi=(1, 0xC0FFEE01), tais=[tai])),
        (False, s1.paging(6, imsi=imsi, tais=[tai, ("460", "00", 0x5102)])),
        (True, s1.handover_notify(1400, 33, *cell)),
        (True, s1.path_switch_request(34, 1400, *cell)),
        (False, s1.path_switch_request_acknowledge(1401, 34)),
        (True, s1.s1_setup_request(0x1A01B, "enb-1", "460", "00", [0x5101, 0x5102])),
        (False, s1.s1_setup_response("mme-1", "460", "00", 0x8001, 1)),
        (True, s1.ue_context_release_request(1400, 33)),
        (False, s1.downlink_nas_transport(1400, 33, nas.guti_reallocation_command(guti, [tai]))),
        (False, s1.downlink_nas_transport(1400, 33, nas.detach_accept())),
        (False, s1.downlink_nas_transport(1400, 33, nas.protect(nas.tracking_area_update_accept(guti, [tai]), 2, 7))),
        *((True, s1.initial_ue_message(35, nas.extended_service_request(0x12345678, service), *cell,
                                       s_tmsi=(1, 0x12345678))) for service in (1, 4, 8, 11)),  # 4 and 8 were misread
        (True, s1.initial_ue_message(36, nas.detach_request_ue(imsi=imsi, switch_off=False, detach_type="eps"), *cell)),
        (True, s1.uplink_nas_transport(1400, 33, nas.protect(nas.identity_response(imei=imei), 1, 3), *cell)),
        (True, s1.uplink_nas_transport(1400, 33, nas.identity_response(imeisv=imei[:14] + "01"), *cell)),
        # ciphered for real (security header 2): no plain EMM or ESM header after the sequence number
        (True, s1.uplink_nas_transport(1400, 33, nas.protect(bytes.fromhex("8f13579bdf"), 2, 9), *cell)),
        # EMM messages it has no encoder for (TS 24.301 §8.2): Attach Reject, cause 15 (no suitable cells in TA);
        # TAU Reject, cause 10; network Detach Request, re-attach not required (2), EMM cause IE (0x53) 11.
        *((False, s1.downlink_nas_transport(1400, 33, bytes.fromhex(emm))) for emm in ("07440f", "074b0a",
                                                                                      "074502530b")),
    ]
    sms_centre, sender = a.bcd_number("8613800571500", a.TON_INTERNATIONAL), "8613905756022"
    deliver = (b"\x04" + bytes((len(sender),)) + a.bcd_number(sender, a.TON_INTERNATIONAL)  # TS 23.040 §9.2.2.1
               + bytes(9) + b"\x02" + a.gsm7_pack(a.gsm7_septets("hi")))  # PID, DCS, time stamp, UDL, text
    rp_data_mt = bytes((1, 9, len(sms_centre))) + sms_centre + b"\x00" + bytes((len(deliver),)) + deliver
    rp_error_mt = bytes((5, 9, 1, 0x1B))  # TS 24.011 §7.3.4: RP-MTI 5, reference, RP-Cause 27
    bssap = [
        (True, a.clear_request(0x14)),
        (True, a.handover_required(0x0B, [(0x1100, 0x340), (0x1101, 0x341)])),
        (False, a.cipher_mode_command()),
        (True, a.cipher_mode_complete()),
        (False, a.reset(0)),
        (True, a.reset_ack()),
        (True, a.complete_layer3("460", "00", 0x1100, 0x33F, a.paging_response(tmsi=0x7C4746F2), cgi=False)),
        (False, a.dtap(a.location_updating_reject(11))),
        (False, a.dtap(a.tmsi_reallocation_command(("460", "00", 0x1100), 0x1234ABCD))),
        (True, a.dtap(a.identity_response(imei=imei))),
        (False, a.dtap(a.cp_data(1, rp_data_mt, from_originator=True), dlci=3)),
        (False, a.dtap(a.cp_data(1, rp_error_mt, from_originator=False), dlci=3)),
    ]
    return [Payload(frame, proto, uplink, data) for frame, (proto, (uplink, data)) in enumerate(
        [(PROTO_S1AP, m) for m in s1ap] + [(PROTO_BSSAP, m) for m in bssap], start=1)]


def test_the_simulators_other_messages_agree_with_pycrate():
    payloads, pc = _encoded(), Pycrate()
    expected = {p.frame: (s1ap_view if p.proto == PROTO_S1AP else bssap_view)(pc, p) for p in payloads}
    problems, compared = disagreements(_python_records(payloads), expected)
    assert not problems, f"{len(problems)} disagreements (frame, msg, field, ours, pycrate's), e.g. {problems[:8]}"
    assert sum(compared.values()) == sum(len(views) for views in expected.values()), compared
