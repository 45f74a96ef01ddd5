"""decoders/s1ap.py (TS 36.413) against tshark on every S1AP PDU of every capture, plus hex-literal unit tests.

The differential test takes each frame's S1AP PDUs as tshark cuts them (``raw_layers``, so the capture stack
is not involved), decodes them, and compares per frame with tshark's fields: message (procedure code and PDU
kind, named after pycrate's copy of the §9.3 ASN.1), direction (the MME listens on SCTP port 36412), the UE
S1AP IDs, S-TMSI, cause, and the location. A record keeps one location per message while tshark lists every
TAC / cell / PLMN a frame mentions (S1 Setup's supported TAs, a handover's UE history), so ours must be among
tshark's; a frame where tshark shows a cell must give one, and a message whose TAI and EUTRAN-CGI IEs are
mandatory must show both. The NAS side of the
same frames is checked in test_nas_eps.py, which shares ``decoded`` and ``tshark_rows`` from here.
"""

import csv
import functools
import re
from collections import Counter

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from capture.errors import DecodeError, Malformed, Truncated, Unsupported
from conftest import SHARED_PCAPS
from decoders.per import BitReader, open_type
from decoders.s1ap import decode_s1ap
from tshark_oracle import fields, raw_layers

# Every field either test file compares, in one tuple so the oracle runs tshark once per capture.
FIELDS = (
    "sctp.srcport", "sctp.dstport", "s1ap.procedureCode", "s1ap.S1AP_PDU", "s1ap.ENB_UE_S1AP_ID", "s1ap.MME_UE_S1AP_ID",
    "s1ap.tAC", "s1ap.CellIdentity", "s1ap.m_TMSI", "s1ap.mMEC", "s1ap.iMSI",
    "s1ap.radioNetwork", "s1ap.transport", "s1ap.nas", "s1ap.protocol", "s1ap.misc",
    "e212.mcc", "e212.tai.mcc", "e212.ecgi.mcc", "e212.mnc", "e212.tai.mnc", "e212.ecgi.mnc", "e212.imsi",
    "nas_eps.emm.tai_tac",
    "nas_eps.security_header_type", "nas_eps.nas_msg_emm_type", "nas_eps.nas_msg_esm_type", "nas_eps.ciphered_msg",
    "nas_eps.emm.m_tmsi", "nas_eps.emm.mme_code", "gsm_a.imei", "nas_eps.emm.imei", "gsm_a.imeisv", "gsm_a.tmsi",
    "nas_eps.emm.eps_att_type", "nas_eps.emm.update_type_value", "nas_eps.emm.detach_type_ul",
    "nas_eps.emm.detach_type_dl", "nas_eps.emm.switch_off", "nas_eps.emm.cause", "nas_eps.emm.service_type",
)
S1AP_PORT = 36412  # the MME's SCTP port, TS 36.412 §7
CAUSE_FIELDS = ("radioNetwork", "transport", "nas", "protocol", "misc")


def s1ap_captures() -> list:
    """The shared captures whose MANIFEST row counts S1AP frames."""
    with open(SHARED_PCAPS / "MANIFEST.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [SHARED_PCAPS / r["file"] for r in rows if int(r["s1ap_frames"]) > 0]


CAPTURES = s1ap_captures()


@functools.lru_cache(maxsize=None)
def decoded(path) -> dict[int, list[dict]]:
    """{frame: records of every S1AP PDU tshark finds in it, in order}."""
    return {frame: [r for pdu in pdus for r in decode_s1ap(pdu)] for frame, pdus in raw_layers(path, "s1ap").items()}


def tshark_rows(path) -> dict[int, dict[str, list[str]]]:
    return fields(path, FIELDS, "s1ap")


@functools.lru_cache(maxsize=1)
def spec_message_names() -> dict[tuple[int, int], str]:
    """(procedure code, PDU kind) -> message name, from pycrate's S1AP-ELEMENTARY-PROCEDURES (§9.3.3)."""
    from pycrate_asn1dir import S1AP  # the oracle only; production code never imports pycrate
    table = S1AP.S1AP_PDU_Descriptions.S1AP_ELEMENTARY_PROCEDURES._val
    names = {}
    for procedure in table.root + (table.ext or []):
        for kind, key in enumerate(("InitiatingMessage", "SuccessfulOutcome", "UnsuccessfulOutcome")):
            message = procedure.get(key)
            if message is not None:
                names[procedure["procedureCode"], kind] = _snake(message._tr._name)
    return names


def _snake(name: str) -> str:
    """ASN.1 type name -> snake_case, with the spec's acronyms kept whole (E-RAB, LPPa, CP, CDMA2000)."""
    for acronym, word in (("E-RAB", "E_RAB"), ("LPPa", "Lppa"), ("S1cdma2000tunnelling", "S1_Cdma2000Tunnelling"),
                          ("ENBCP", "ENB_CP"), ("MMECP", "MME_CP")):
        name = name.replace(acronym, word)
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower().replace("__", "_")


def _ints(values, base=10) -> set[int]:
    return {int(v, base) for v in values}


def _ours(records, name, proto="s1ap") -> set:
    return {r[name] for r in records if r["proto"] == proto and r.get(name) is not None}


def compare_s1ap(path) -> list[tuple]:
    """Every per-frame disagreement between our S1AP records and tshark's fields."""
    names = spec_message_names()
    rows = tshark_rows(path)
    mismatches = []
    for frame, records in decoded(path).items():
        row = rows[frame]
        s1ap = [r for r in records if r["proto"] == "s1ap"]
        expected = [names.get((int(c), int(k)), f"unknown_procedure_{c}")
                    for c, k in zip(row["s1ap.procedureCode"], row["s1ap.S1AP_PDU"])]
        got = [r["msg"] for r in s1ap]
        # CriticalityDiagnostics repeats a procedure code inside a message: tshark's list may be longer.
        if Counter(got) - Counter(expected) or not set(expected) <= set(got):
            mismatches.append((frame, "msg", got, expected))
        # Some eNodeB emulators bind 36412 too: then the ports cannot tell the direction.
        ports = int(row["sctp.srcport"][0]), int(row["sctp.dstport"][0])
        uplink = None if ports[0] == ports[1] else ports[1] == S1AP_PORT
        for r in s1ap:
            if None not in (r["uplink"], uplink) and r["uplink"] != uplink:
                mismatches.append((frame, "uplink", r["msg"], r["uplink"]))
            if r.get("error"):
                mismatches.append((frame, "error", r["msg"], r["error"]))
        checks = [("enb_ue_id", _ours(s1ap, "enb_ue_id"), _ints(row["s1ap.ENB_UE_S1AP_ID"])),
                  ("mme_ue_id", _ours(s1ap, "mme_ue_id"), _ints(row["s1ap.MME_UE_S1AP_ID"])),
                  ("m_tmsi", _ours(s1ap, "m_tmsi"), _ints(row["s1ap.m_TMSI"])),
                  ("mmec", _ours(s1ap, "mmec"), _ints(row["s1ap.mMEC"]))]
        mismatches += [(frame, name, got, want) for name, got, want in checks if got != want]
        # A message keeps one cause: its Cause IE, else its first E-RAB's; tshark lists every E-RAB's.
        causes = {(r["cause_group"], r["cause"]) for r in s1ap if "cause" in r}
        wire = {(g, int(v)) for g in CAUSE_FIELDS for v in row[f"s1ap.{g}"]}
        if not causes <= wire or (wire and not causes):
            mismatches.append((frame, "cause", causes, wire))
        mcc = _ints(row["e212.mcc"] + row["e212.tai.mcc"] + row["e212.ecgi.mcc"])
        mnc = _ints(row["e212.mnc"] + row["e212.tai.mnc"] + row["e212.ecgi.mnc"])
        for name, got, wire in (("tac", _ours(s1ap, "tac"), _ints(row["s1ap.tAC"])),
                                ("eci", _ours(s1ap, "eci"), _ints(row["s1ap.CellIdentity"], 16)),
                                ("mcc", {int(m) for m in _ours(s1ap, "mcc")}, mcc),
                                ("mnc", {int(m) for m in _ours(s1ap, "mnc")}, mnc)):
            if not got <= wire or (name == "eci" and wire and not got):
                mismatches.append((frame, name, sorted(got), sorted(wire)))
        for r in s1ap:  # a message with its own TAI / EUTRAN-CGI IE (§9.1) must show it
            if r["msg"] in _LOCATED and ("eci" not in r or "tac" not in r):
                mismatches.append((frame, "location", r["msg"], None))
    return mismatches


# Messages whose TAI and EUTRAN-CGI IEs are mandatory (§9.1.7.1, §9.1.7.3, §9.1.5.7, §9.1.5.8).
_LOCATED = {"initial_ue_message", "uplink_nas_transport", "handover_notify", "path_switch_request"}


@pytest.fixture(scope="module")
def simulated(city):
    return city / "capture.pcap"


def test_manifest_counts_match_the_oracle():
    with open(SHARED_PCAPS / "MANIFEST.tsv", newline="") as f:
        rows = {r["file"]: int(r["s1ap_frames"]) for r in csv.DictReader(f, delimiter="\t")}
    for path in CAPTURES:
        assert len(raw_layers(path, "s1ap")) == rows[path.name], path.name


@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_s1ap_agrees_with_tshark(path):
    mismatches = compare_s1ap(path)
    assert not mismatches, f"{len(mismatches)} disagreements, e.g. {mismatches[:5]}"


def test_simulated_s1ap_agrees_with_tshark(simulated):
    assert len(decoded(simulated)) > 500
    mismatches = compare_s1ap(simulated)
    assert not mismatches, f"{len(mismatches)} disagreements, e.g. {mismatches[:5]}"


def test_every_procedure_of_the_spec_is_named():
    from decoders.s1ap import PROCEDURES
    for (code, kind), name in spec_message_names().items():
        assert PROCEDURES[code][kind] == name


def _spec_ie_types() -> dict[int, set[str]]:
    """IE id -> the ASN.1 type names pycrate's §9.3 IE tables give it."""
    from pycrate_asn1dir import S1AP
    types = {}
    for module in (S1AP.S1AP_PDU_Contents, S1AP.S1AP_IEs):
        for name in dir(module):
            table = getattr(module, name)
            if type(table).__name__ != "CLASS" or not hasattr(table._val, "root"):
                continue
            for row in table._val.root + (table._val.ext or []):
                if isinstance(row, dict) and "id" in row and row.get("Value") is not None:
                    value = row["Value"]
                    types.setdefault(row["id"], set()).add((value._tr or value)._name)
    return types


def test_ie_ids_are_the_spec_ones():
    """Our §9.3.7 id constants against pycrate's S1AP-Constants, and the cause lists against the IE tables."""
    from pycrate_asn1dir import S1AP
    import decoders.s1ap as ours
    spec = {name.replace("_", "").lower(): getattr(S1AP.S1AP_Constants, name)._val
            for name in dir(S1AP.S1AP_Constants) if name.startswith("id_")}
    constants = {name: value for name, value in vars(ours).items() if name.startswith("ID_")}
    assert len(constants) > 25
    for name, value in constants.items():
        assert spec["id" + name[3:].replace("_", "").lower()] == value, name
    types = _spec_ie_types()
    for list_id, item_id in ours.E_RAB_CAUSE_LISTS.items():
        assert types[list_id] & {"E-RABList", "E-RABFailedtoSetupListHOReqAck"}, list_id
        assert types[item_id] & {"E-RABItem", "E-RABFailedToSetupItemHOReqAck"}, item_id


def test_records_only_use_schema_fields(simulated):
    from decoders.records import MESSAGE_FIELDS
    for path in (simulated, *CAPTURES):
        for records in decoded(path).values():
            for record in records:
                assert set(record) <= MESSAGE_FIELDS, record


# -- unit tests on hex literals (annotated with the X.691 bits they hold) ---------------------------------------

def test_ue_context_release_command_with_the_id_pair():
    # §9.1.4.6, open5gs srsenb capture: initiatingMessage, procedure 23, 2 IEs. UE-S1AP-IDs (99) = 00 01 00 01:
    # CHOICE pair (0), pair ext/opt 00, MME ID length-1 = 0 in 2 bits, pad, 01; eNB ID likewise 00 01.
    # Cause (2) = 0x24 = 0|010|0|10: CHOICE nas (2), ENUMERATED root value 2 (detach).
    pdu = bytes.fromhex("0017001000000200630004000100010002400124")
    assert decode_s1ap(pdu) == [{"proto": "s1ap", "msg": "ue_context_release_command", "uplink": False,
                                 "mme_ue_id": 1, "enb_ue_id": 1, "cause": 2, "cause_group": "nas"}]


def test_ue_context_release_command_with_the_mme_id_alone_and_an_extension_cause():
    # UE-S1AP-IDs 0x70 = 0|1|11: CHOICE mME-UE-S1AP-ID, 4 octets follow (01234567).
    # Cause 08 40 = 0|000|1|0|000100: radioNetwork, ENUMERATED extension, small number 4 -> 36 + 4 = 40.
    pdu = bytes.fromhex("00170012000002006300057001234567000240020840")
    record, = decode_s1ap(pdu)
    assert (record["mme_ue_id"], record["cause_group"], record["cause"]) == (0x1234567, "radioNetwork", 40)
    assert "enb_ue_id" not in record


def test_initial_ue_message_with_s_tmsi_and_service_request():
    # §9.1.7.1, open5gs srsenb 2019 frame 49: eNB-UE-S1AP-ID 2; NAS-PDU c7 03 c3 40 (security header 12);
    # TAI 09 f1 07 + 0007 = 901-70 TAC 7; EUTRAN-CGI 0019b010 >> 4 = 0x19b01; RRC cause; S-TMSI 00 40 f500075e:
    # 2 preamble bits, MMEC 00000001 across the octet boundary, M-TMSI 0xf500075e.
    pdu = bytes.fromhex("000c4037000006000800020002001a000504c703c340004300060009f1070007006440080009f1070019b010"
                        "0086400140006000060040f500075e")
    assert decode_s1ap(pdu) == [
        {"proto": "s1ap", "msg": "initial_ue_message", "uplink": True, "enb_ue_id": 2, "mcc": "901", "mnc": "70",
         "tac": 7, "eci": 0x19B01, "mmec": 1, "m_tmsi": 0xF500075E},
        {"proto": "nas-eps", "msg": "service_request", "uplink": True}]


def test_reset_of_one_ue_associated_connection():
    # §9.1.8.1, open5gs testattach frame 335: Cause 00 60 = radioNetwork 3; ResetType 40 00 005b 00 02 40 0e:
    # CHOICE partOfS1-Interface, one item (count - 1 = 0), id 91, item 0100 00.. = MME ID present, value 14.
    pdu = bytes.fromhex("000e4015000002000240020060005c00084000005b0002400e")
    assert decode_s1ap(pdu) == [{"proto": "s1ap", "msg": "reset", "uplink": None, "cause": 3,
                                 "cause_group": "radioNetwork", "mme_ue_id": 14}]


def test_path_switch_request_names_the_source_mme_ue_id():
    # §9.1.5.8, open5gs testcups frame 553: SourceMME-UE-S1AP-ID (88) c0 010001da = 4 octets, 16777690.
    pdu = bytes.fromhex("000300520000060008000200010016001d010017000a0a1f7f000004000000010017000a0c1f7f000004000000"
                        "0200580005c0010001da006440080000f11000461530004340060000f1103039006b400518000c0000")
    record, = decode_s1ap(pdu)
    assert record == {"proto": "s1ap", "msg": "path_switch_request", "uplink": True, "enb_ue_id": 1,
                      "mme_ue_id": 16777690, "mcc": "001", "mnc": "01", "eci": 0x46153, "tac": 12345}


def test_e_rab_setup_request_carries_its_item_nas_pdu():
    # §9.1.3.1, open5gs ipsec_reg frame 269: E-RABToBeSetupListBearerSUReq (16), one item (17): e-RAB-ID 6,
    # QCI 5, ARP, transport address 32 bits (length - 1 = 31), TEID, then the NAS-PDU (security header 2,
    # null ciphered Activate Default EPS Bearer Context Request).
    pdu = bytes.fromhex("0005006e0000030000000200070008000200060010005b00001100560c0005040f80ac180f1e0000001f4727"
                        "8863adc0126202c101050403696d730501c0a865055e02b38e583227298080211002000010810608080808"
                        "830608080404000c040a048015000d0408080808000d0408080404")
    s1ap, nas = decode_s1ap(pdu)
    assert (s1ap["msg"], s1ap["mme_ue_id"], s1ap["enb_ue_id"]) == ("e_rab_setup_request", 7, 6)
    assert nas == {"proto": "nas-eps", "msg": "activate_default_eps_bearer_context_request", "uplink": False}


def test_paging_by_imsi_with_a_single_tai():
    # §9.1.6: UEPagingID 68 = 0|1|101: CHOICE iMSI, SIZE 3 + 5 = 8 octets of TBCD (filler f ends it);
    # TAIList 00 (one item) 002f ..: TAIItem with TAI 64 f0 00 + 0007 = 460-00 TAC 7.
    pdu = bytes.fromhex("000a402a000004005040020140002b40096864001032547698f0006d400100002e400b00002f40060064f0000007")
    assert decode_s1ap(pdu) == [{"proto": "s1ap", "msg": "paging", "uplink": False, "imsi": "460001234567890",
                                 "mcc": "460", "mnc": "00", "tac": 7}]


def test_paging_by_s_tmsi_over_two_tais_keeps_no_tracking_area():
    # UEPagingID 00 20 c0de0001: CHOICE s-TMSI, preamble 00, MMEC 2 (unaligned), M-TMSI; two TAIItems.
    pdu = bytes.fromhex("000a4031000004005040020140002b40060020c0de0001006d400100002e401501002f40060064f0000007002f"
                        "40060064f0000008")
    assert decode_s1ap(pdu) == [{"proto": "s1ap", "msg": "paging", "uplink": False, "mmec": 2,
                                 "m_tmsi": 0xC0DE0001}]


def test_ue_context_release_complete_with_user_location_information():
    # uecapabilityparser frame 81: User Location Information (189) 00 | 52f099 | bc06904 0.. | 52f099 4f35:
    # EUTRAN-CGI 250-99 cell 0x0bc06904 (28 bits, aligned), then the TAI's two bits and TAC 20277.
    pdu = bytes.fromhex("2017002500000300004005c0254145a100084004800f520100bd400d0052f099bc06904052f0994f35")
    assert decode_s1ap(pdu) == [{"proto": "s1ap", "msg": "ue_context_release_complete", "uplink": True,
                                 "mme_ue_id": 625034657, "enb_ue_id": 1004033, "mcc": "250", "mnc": "99",
                                 "eci": 0x0BC06904, "tac": 20277}]


def test_handover_required_names_the_target_cell():
    # open5gs testcups frame 631, intra-LTE (HandoverType 0): Target ID's selected TAI 001-01 TAC 12345, and
    # the Source eNB to Target eNB Transparent Container's targetCell-ID 0x43a0; Cause radioNetwork 17.
    pdu = bytes.fromhex(
        "000000810300000600000005c0020000c400080002000c00010001000002400202200004000d0000f1100000043000f1103039"
        "00680080d080ce4080ab0f1014c59800018000bf06ec4d00100302c0000000000015a8001406720af00348f10013d03bc584"
        "14903bc58809401de2c210044013f212249010127dad808fd50398381c08fd503983805f5037868baa010c846fb057874162d"
        "62e821f42f2e159f821d09c0009e28aa1a0012d888026d06000408008066072003e415250d462102081843423c135002214d"
        "6dfb0a0b06502c402000004008177faab4677235334a0e867213e8040300001004e40024500004e400246000000f11000043"
        "a000000f110001f20a0000022")
    assert decode_s1ap(pdu) == [{"proto": "s1ap", "msg": "handover_required", "uplink": True,
                                 "mme_ue_id": 33554628, "enb_ue_id": 12, "cause": 17, "cause_group": "radioNetwork",
                                 "mcc": "001", "mnc": "01", "tac": 12345, "eci": 0x43A0}]


@pytest.mark.parametrize("pdu, msg, uplink", [
    ("0001000300000000", "handover_request", False),             # MME -> target eNB
    ("2001000300000000", "handover_request_acknowledge", True),   # the target eNB answers
    ("4001000300000000", "handover_failure", True),
    ("2011000300000000", "s1_setup_response", False),
    ("000f000300000000", "error_indication", None),               # either side may send it
    ("00c8000300000000", "unknown_procedure_200", None),          # not an error: a newer release
    ("2002000300000000", "unknown_procedure_2", None),            # Handover Notification has no outcome
])
def test_message_names_and_directions(pdu, msg, uplink):
    assert decode_s1ap(bytes.fromhex(pdu)) == [{"proto": "s1ap", "msg": msg, "uplink": uplink}]


@pytest.mark.parametrize("pdu, error", [
    ("000c", Truncated),                 # shorter than the PDU frame
    ("800c000300000000", Unsupported),   # S1AP-PDU CHOICE extension
    ("600c000300000000", Malformed),     # CHOICE index 3 of 3 alternatives
    ("000c0005000000", Truncated),       # open type length past the end
])
def test_damaged_frames_raise(pdu, error):
    with pytest.raises(error):
        decode_s1ap(bytes.fromhex(pdu))


def test_a_damaged_ie_is_reported_and_the_walk_goes_on():
    # MME-UE-S1AP-ID says 4 octets but holds 1; the eNB-UE-S1AP-ID after it is still read.
    pdu = bytes.fromhex("000b000f00000200000002c001000800020005")
    record, = decode_s1ap(pdu)
    assert record["error"] == "s1ap.ie_too_short" and record["enb_ue_id"] == 5 and "mme_ue_id" not in record
    # An IE whose open type runs past the container ends the walk.
    record, = decode_s1ap(bytes.fromhex("000b000c000002000000020001000809"))
    assert record == {"proto": "s1ap", "msg": "downlink_nas_transport", "uplink": False, "mme_ue_id": 1,
                      "error": "s1ap.ie_truncated"}


# -- decoders/per.py -----------------------------------------------------------------------------------------------

@given(st.integers(0, (1 << 32) - 1), st.integers(0, 10_000_000_000))
def test_constrained_whole_numbers_read_what_the_simulator_writes(ue_id, bitrate):
    from simulator.s1ap_encode import _Bits, _put_uint
    data = _put_uint(_put_uint(_Bits().put(1, 1), ue_id), bitrate, 3).bytes()
    bits = BitReader(data)
    assert bits.bit()
    assert bits.constrained(0, (1 << 32) - 1) == ue_id
    assert bits.constrained(0, 10_000_000_000) == bitrate


def test_constrained_ranges_of_x691_11_5_7():
    assert BitReader(b"\xa0").constrained(1, 8) == 6                 # range 8: a 3-bit field, 101
    assert BitReader(b"\x00\xff").constrained(0, 255) == 0           # range 256: one aligned octet
    bits = BitReader(b"\x80\x12\x34")
    assert bits.bit() and bits.constrained(0, 65535) == 0x1234       # range 64K: two aligned octets
    assert BitReader(b"\x07").constrained(3, 3) == 3                 # range 1: no bits at all


def test_open_type_length_forms():
    assert open_type(b"\x02ab!", 0) == (b"ab", 3)                    # §11.9.3.6 one octet
    value = bytes(range(256)) * 2
    assert open_type(b"\x82\x00" + value, 0) == (value, 514)         # §11.9.3.7 two octets
    big = bytes(range(256)) * 80                                     # 20480 octets: one 16K fragment + rest
    encoded = b"\xc1" + big[:16384] + (0x8000 | 4096).to_bytes(2, "big") + big[16384:]
    assert open_type(encoded, 0) == (big, len(encoded))              # §11.9.3.8 fragmented
    with pytest.raises(Truncated):
        open_type(b"\xc1" + big[:100], 0)
    with pytest.raises(Malformed):
        open_type(b"\xc5" + big, 0)


# -- robustness: nothing but DecodeError subclasses, or records with `error` --------------------------------------

@functools.lru_cache(maxsize=1)
def _real_pdus() -> list[bytes]:
    return [pdu for path in CAPTURES[:6] for pdus in raw_layers(path, "s1ap").values() for pdu in pdus]


def _decode_or_error(pdu: bytes) -> None:
    from decoders.records import MESSAGE_FIELDS
    try:
        records = decode_s1ap(pdu)
    except DecodeError:
        return
    for record in records:
        assert set(record) <= MESSAGE_FIELDS and record["msg"]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_real_pdus_only_raise_decode_errors(data):
    pdus = _real_pdus()
    pdu = bytearray(pdus[data.draw(st.integers(0, len(pdus) - 1))])
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        at = data.draw(st.integers(0, max(0, len(pdu) - 1)))
        if op == "flip" and pdu:
            pdu[at] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del pdu[at:]
        elif op == "insert":
            pdu[at:at] = data.draw(st.binary(min_size=1, max_size=4))
        elif pdu:
            del pdu[at]
    _decode_or_error(bytes(pdu))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_random_bytes_only_raise_decode_errors(data):
    _decode_or_error(data)
    _decode_or_error(b"\x00\x0c\x40" + bytes((len(data),)) + data)  # a valid frame around random IEs


# -- the fast paths against pycrate: PDUs pycrate encodes from random values over the whole ranges ------------------
# decode_s1ap reads the usual layouts of UE S1AP IDs, Cause and E-RAB items by octets and falls back to BitReader
# otherwise; pycrate's APER codec (an independent implementation of the §9.3 ASN.1) builds the bytes and decodes
# them back into the oracle's values, so every layout either path may take is checked against it.

@functools.lru_cache(maxsize=1)
def _pycrate():
    from pycrate_asn1dir import S1AP
    return S1AP


def _pycrate_pdu():
    return _pycrate().S1AP_PDU_Descriptions.S1AP_PDU


def _cause_names() -> list[list[str]]:
    """Per Cause CHOICE alternative (in order), its ENUMERATED names: root values, then extension values."""
    ies = _pycrate().S1AP_IEs
    enums = (ies.CauseRadioNetwork, ies.CauseTransport, ies.CauseNas, ies.CauseProtocol, ies.CauseMisc)
    return [list(e._root) + list(e._ext or []) for e in enums]


# Each range covers one APER length-determinant size of the indefinite-length integer (X.691 §11.5.7.4).
# e-RAB-ID INTEGER (0..15, ...): its root values, and extension ones (an unconstrained whole number, X.691 §13.1).
E_RAB_IDS = st.one_of(st.integers(0, 15), st.integers(16, 0xFFFF))
MME_UE_IDS = st.one_of(st.integers(0, 0xFF), st.integers(0x100, 0xFFFF), st.integers(0x10000, 0xFFFFFF),
                       st.integers(0x1000000, (1 << 32) - 1))
ENB_UE_IDS = st.one_of(st.integers(0, 0xFF), st.integers(0x100, 0xFFFF), st.integers(0x10000, (1 << 24) - 1))
CAUSES = st.deferred(lambda: st.sampled_from(range(5)).flatmap(
    lambda group: st.tuples(st.just(group), st.integers(0, len(_cause_names()[group]) - 1))))
BITRATES = st.one_of(  # one value octet to five, §11.5.7.4 again
    st.integers(0, 0xFF), st.integers(0, 10_000_000_000))
# TransportLayerAddress BIT STRING (SIZE(1..160, ...)): IPv4, IPv6, both, any other root size, or an extension one.
ADDRESS_BITS = st.one_of(st.sampled_from([32, 128, 160]), st.integers(1, 160), st.integers(161, 300))
NAS_PDUS = st.one_of(  # one- and two-octet length determinants (§11.9.3.6-7)
    st.binary(min_size=1, max_size=40), st.binary(min_size=120, max_size=300))
MNCS = st.one_of(st.integers(0, 99).map("{:02}".format), st.integers(0, 999).map("{:03}".format))
PLMNS = st.tuples(st.integers(0, 999).map("{:03}".format), MNCS)


def _plmn_octets(mcc: str, mnc: str) -> bytes:
    """TS 24.008 §10.5.1.3 PLMN identity: MCC digit 2|1, MNC digit 3 (f for two digits)|MCC digit 3, MNC 2|1."""
    d = [int(c) for c in mcc + mnc]
    return bytes((d[1] << 4 | d[0], (d[5] if len(mnc) == 3 else 0xF) << 4 | d[2], d[4] << 4 | d[3]))


@st.composite
def _qos(draw) -> dict:
    """E-RAB Level QoS Parameters (§9.2.1.15), with GBR QoS information (§9.2.1.18) or without."""
    qos = {"qCI": draw(st.integers(0, 255)),
           "allocationRetentionPriority": {
               "priorityLevel": draw(st.integers(0, 15)),
               "pre-emptionCapability": draw(st.sampled_from(["shall-not-trigger-pre-emption",
                                                              "may-trigger-pre-emption"])),
               "pre-emptionVulnerability": draw(st.sampled_from(["not-pre-emptable", "pre-emptable"]))}}
    if draw(st.booleans()):  # no release defines an ARP extension: one unknown to both, skipped by its length
        qos["allocationRetentionPriority"]["iE-Extensions"] = _extensions(draw, (65534, 65535), "OCTET STRING",
                                                                          st.binary(max_size=200))
    if draw(st.booleans()):
        qos["gbrQosInformation"] = {name: draw(BITRATES) for name in (
            "e-RAB-MaximumBitrateDL", "e-RAB-MaximumBitrateUL", "e-RAB-GuaranteedBitrateDL",
            "e-RAB-GuaranteedBitrateUL")}
        if draw(st.booleans()):  # the extended bit rates (§9.2.1.18), which move the fields that follow
            qos["gbrQosInformation"]["iE-Extensions"] = _extensions(draw, (255, 256, 257, 258), "ExtendedBitRate",
                                                                    st.integers(10_000_000_001, 4_000_000_000_000))
    if draw(st.booleans()):
        qos["iE-Extensions"] = _extensions(draw, (273, 274), "Packet-LossRate", st.integers(0, 1000))
    return qos


def _extensions(draw, ids: tuple, type_name: str, values) -> list[dict]:
    """A ProtocolExtensionContainer (§9.3.5) of some of ``ids``, in order, each holding a drawn value."""
    chosen = draw(st.lists(st.sampled_from(ids), min_size=1, unique=True).map(sorted))
    return [{"id": i, "criticality": "ignore", "extensionValue": (type_name, draw(values))} for i in chosen]


@st.composite
def _e_rab_item(draw, item_id: int, type_name: str) -> dict:
    """One E-RAB list item (a ProtocolIE-SingleContainer) of the setup / modify lists, with its NAS-PDU."""
    item = {"e-RAB-ID": draw(E_RAB_IDS)}
    if type_name == "E-RABToBeModifiedItemBearerModReq":
        item["e-RABLevelQoSParameters"] = draw(_qos())
        item["nAS-PDU"] = draw(NAS_PDUS)
    else:
        size = draw(ADDRESS_BITS)
        item["e-RABlevelQoSParameters"] = draw(_qos())
        item["transportLayerAddress"] = (draw(st.integers(0, (1 << size) - 1)), size)
        item["gTP-TEID"] = draw(st.integers(0, (1 << 32) - 1)).to_bytes(4, "big")
        if type_name == "E-RABToBeSetupItemBearerSUReq" or draw(st.booleans()):
            item["nAS-PDU"] = draw(NAS_PDUS)
        if draw(st.booleans()):  # after the NAS-PDU, but its presence bit comes first
            item["iE-Extensions"] = _extensions(draw, (156, 183), "Correlation-ID", st.binary(min_size=4, max_size=4))
    return {"id": item_id, "criticality": "reject", "value": (type_name, item)}


def _ie(ie_id: int, type_name: str, value) -> dict:
    return {"id": ie_id, "criticality": "reject", "value": (type_name, value)}


@st.composite
def _ue_s1ap_ids(draw) -> dict:
    """UE-S1AP-IDs (§9.2.3.18): the MME and eNB UE S1AP IDs as a pair, or the MME one alone."""
    if draw(st.booleans()):
        pair = {"mME-UE-S1AP-ID": draw(MME_UE_IDS), "eNB-UE-S1AP-ID": draw(ENB_UE_IDS)}
        return _ie(99, "UE-S1AP-IDs", ("uE-S1AP-ID-pair", pair))
    return _ie(99, "UE-S1AP-IDs", ("mME-UE-S1AP-ID", draw(MME_UE_IDS)))


def _cause_groups() -> list[str]:
    return list(_pycrate().S1AP_IEs.Cause._cont.keys())


def _cause_value(group: int, index: int) -> tuple:
    return _cause_groups()[group], _cause_names()[group][index]


def _cgi(mcc, mnc, eci) -> dict:
    return _ie(100, "EUTRAN-CGI", {"pLMNidentity": _plmn_octets(mcc, mnc), "cell-ID": (eci, 28)})


def _tai_ie(mcc, mnc, tac) -> dict:
    return _ie(67, "TAI", {"pLMNidentity": _plmn_octets(mcc, mnc), "tAC": tac.to_bytes(2, "big")})


E_RAB_LISTS = {  # message -> (procedure code, list IE id, list type, item id, item type)
    "InitialContextSetupRequest": (9, 24, "E-RABToBeSetupListCtxtSUReq", 52, "E-RABToBeSetupItemCtxtSUReq"),
    "E-RABSetupRequest": (5, 16, "E-RABToBeSetupListBearerSUReq", 17, "E-RABToBeSetupItemBearerSUReq"),
    "E-RABModifyRequest": (6, 30, "E-RABToBeModifiedListBearerModReq", 36, "E-RABToBeModifiedItemBearerModReq"),
}


@st.composite
def pycrate_pdus(draw) -> tuple:
    """(PDU kind, procedure code, message type, IEs) for a message type decode_s1ap reads, from random values."""
    message = draw(st.sampled_from(["UEContextReleaseCommand", "UEContextReleaseComplete", "UplinkNASTransport",
                                    "HandoverRequired", "E-RABReleaseCommand", *E_RAB_LISTS]))
    cause = _ie(2, "Cause", _cause_value(*draw(CAUSES)))
    if message == "UEContextReleaseCommand":
        return "initiatingMessage", 23, message, [draw(_ue_s1ap_ids()), cause]
    ids = [_ie(0, "MME-UE-S1AP-ID", draw(MME_UE_IDS)), _ie(8, "ENB-UE-S1AP-ID", draw(ENB_UE_IDS))]
    if message == "UEContextReleaseComplete":
        return "successfulOutcome", 23, message, ids
    if message == "UplinkNASTransport":
        (cell_mcc, cell_mnc), (ta_mcc, ta_mnc) = draw(PLMNS), draw(PLMNS)
        return "initiatingMessage", 13, message, ids + [
            _ie(26, "NAS-PDU", draw(NAS_PDUS)), _cgi(cell_mcc, cell_mnc, draw(st.integers(0, (1 << 28) - 1))),
            _tai_ie(ta_mcc, ta_mnc, draw(st.integers(0, 0xFFFF)))]
    if message == "HandoverRequired":
        mcc, mnc = draw(PLMNS)
        target = ("targeteNB-ID", {
            "global-ENB-ID": {"pLMNidentity": _plmn_octets(mcc, mnc),
                              "eNB-ID": ("macroENB-ID", (draw(st.integers(0, (1 << 20) - 1)), 20))},
            "selected-TAI": {"pLMNidentity": _plmn_octets(mcc, mnc),
                             "tAC": draw(st.integers(0, 0xFFFF)).to_bytes(2, "big")}})
        handover_type = draw(st.sampled_from(["intralte", "ltetoutran", "ltetogeran"]))
        return "initiatingMessage", 0, message, ids + [_ie(1, "HandoverType", handover_type), cause,
                                                       _ie(4, "TargetID", target)]
    if message == "E-RABReleaseCommand":  # no Cause IE: the record's is the first E-RAB's
        items = [_ie(35, "E-RABItem", {"e-RAB-ID": draw(E_RAB_IDS),
                                       "cause": _cause_value(*draw(CAUSES))})
                 for _ in range(draw(st.integers(1, 3)))]
        return "initiatingMessage", 7, message, ids + [_ie(33, "E-RABList", items)]
    code, list_id, list_type, item_id, item_type = E_RAB_LISTS[message]
    items = draw(st.lists(_e_rab_item(item_id, item_type), min_size=1, max_size=3))
    return "initiatingMessage", code, message, ids + [_ie(list_id, list_type, items)]


def _encode(kind: str, code: int, message: str, ies: list[dict]) -> bytes:
    pdu = _pycrate_pdu()
    pdu.set_val((kind, {"procedureCode": code, "criticality": "reject",
                        "value": (message, {"protocolIEs": ies})}))
    return pdu.to_aper()


def _tbcd_plmn(octets: bytes) -> tuple[str, str]:
    digits = [f"{b & 0xF:x}{b >> 4:x}" for b in octets]
    mcc = digits[0] + digits[1][0]
    return mcc, (digits[2] + digits[1][1]).replace("f", "")


def _expected(pdu: bytes) -> tuple[dict, list[bytes]]:
    """The S1AP record and the NAS-PDUs, in order, that pycrate's own decode of ``pdu`` says it holds."""
    decoder = _pycrate_pdu()
    decoder.from_aper(pdu)
    kind, content = decoder.get_val()
    names = spec_message_names()
    record = {"msg": names[content["procedureCode"], ("initiatingMessage", "successfulOutcome").index(kind)]}
    nas, first_e_rab_cause = [], None
    for ie in content["value"][1]["protocolIEs"]:
        ie_id, (_, value) = ie["id"], ie["value"]
        if ie_id == 0:
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
        elif ie_id == 26:
            nas.append(value)
        elif ie_id == 100:
            record["mcc"], record["mnc"] = _tbcd_plmn(value["pLMNidentity"])
            record["eci"] = value["cell-ID"][0]
        elif ie_id == 67:
            if "eci" not in record:  # the cell's PLMN names the UE's network when both are there
                record["mcc"], record["mnc"] = _tbcd_plmn(value["pLMNidentity"])
            record["tac"] = int.from_bytes(value["tAC"], "big")
        elif ie_id == 4:
            selected = value[1]["selected-TAI"]
            record["mcc"], record["mnc"] = _tbcd_plmn(selected["pLMNidentity"])
            record["tac"] = int.from_bytes(selected["tAC"], "big")
        elif ie_id == 33 and first_e_rab_cause is None:
            first_e_rab_cause = _cause_index(value[0]["value"][1]["cause"])
        elif ie_id in (24, 16, 30):
            nas += [item["value"][1]["nAS-PDU"] for item in value if "nAS-PDU" in item["value"][1]]
    if first_e_rab_cause is not None and "cause" not in record:
        record["cause_group"], record["cause"] = first_e_rab_cause
    return record, nas


def _cause_index(cause: tuple) -> tuple[str, int]:
    group, name = cause
    return group, _cause_names()[_cause_groups().index(group)].index(name)


def _decode_with_nas_pdus(pdu: bytes) -> tuple[dict, list[bytes]]:
    """decode_s1ap's S1AP record (without proto and direction) and the NAS-PDU octets it hands to decode_nas."""
    from unittest import mock
    with mock.patch("decoders.s1ap.decode_nas", lambda nas_pdu, uplink: [{"nas_pdu": nas_pdu}]):
        record, *nas = decode_s1ap(pdu)
    record = {k: v for k, v in record.items() if k not in ("proto", "uplink")}
    return record, [r["nas_pdu"] for r in nas]


def test_cause_groups_are_pycrates_choice_alternatives():
    from decoders.s1ap import CAUSE_GROUPS
    assert tuple(_cause_groups()) == CAUSE_GROUPS


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pycrate_pdus())
# A NAS-PDU past 16K: the IE's open type is fragmented (X.691 §11.9.3.8), the walk's general path.
@example(("initiatingMessage", 13, "UplinkNASTransport", [_ie(0, "MME-UE-S1AP-ID", 1), _ie(8, "ENB-UE-S1AP-ID", 2),
                                                          _ie(26, "NAS-PDU", bytes(range(256)) * 80)]))
# An extended e-RAB-ID was once read as a normally small number: the NAS-PDU and the E-RAB's cause went missing.
@example(("initiatingMessage", 5, "E-RABSetupRequest", [
    _ie(0, "MME-UE-S1AP-ID", 5), _ie(8, "ENB-UE-S1AP-ID", 7), _ie(16, "E-RABToBeSetupListBearerSUReq", [
        _ie(17, "E-RABToBeSetupItemBearerSUReq", {
            "e-RAB-ID": 20, "transportLayerAddress": (1, 32), "gTP-TEID": b"abcd", "nAS-PDU": b"xyz",
            "e-RABlevelQoSParameters": {"qCI": 9, "allocationRetentionPriority": {
                "priorityLevel": 1, "pre-emptionCapability": "may-trigger-pre-emption",
                "pre-emptionVulnerability": "pre-emptable"}}})])]))
@example(("initiatingMessage", 7, "E-RABReleaseCommand", [
    _ie(0, "MME-UE-S1AP-ID", 5), _ie(8, "ENB-UE-S1AP-ID", 7),
    _ie(33, "E-RABList", [_ie(35, "E-RABItem", {"e-RAB-ID": 20, "cause": ("nas", "detach")})])]))
def test_fast_paths_agree_with_pycrate(message):
    pdu = _encode(*message)
    assert _decode_with_nas_pdus(pdu) == _expected(pdu), pdu.hex()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pycrate_pdus(), st.integers(1, 255))
def test_truncated_and_flipped_pycrate_pdus_only_raise_decode_errors(message, mask):
    """Every prefix, and every octet flipped (length determinants among them): a DecodeError or records."""
    pdu = _encode(*message)
    for end in range(len(pdu)):
        _decode_or_error(pdu[:end])
    for at in range(len(pdu)):
        _decode_or_error(pdu[:at] + bytes((pdu[at] ^ mask,)) + pdu[at + 1:])
