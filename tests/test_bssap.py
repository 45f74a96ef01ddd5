"""decoders/bssmap.py: A-interface BSSAP and Lb BSSAP-LE against tshark, and on hex literals.

Differential: the BSSAP payloads tshark finds in the simulator's capture, in wiresharkwiki__GSM_BCC.pcap (GSM-R
BCC DTAP) and wiresharkwiki__SMLC-Calflow---PLRS-without-TA.pcap (Lb), and the BSSMAP that
wiresharkwiki__3G-2G-HO.pcap carries inside MAP, decoded here and compared frame by frame (or PDU by PDU) with
the fields Wireshark shows: message types, IMSI/TMSI/IMEI, LAC, CI, MCC/MNC, numbers, update types, causes.
Hand-made payloads go through tshark too (a user DLT bound to its bssap dissector), so each unit literal is
checked against both the spec reading written in the test and Wireshark.

Also the oracle helpers test_dtap.py shares: ``tshark_pdus`` (one entry per PDU of a layer, even nested, with the
fields of its own subtree) and ``tshark_on_payloads`` (tshark on hand-made BSSAP payloads).

Known, explained differences from tshark (not counted as mismatches):
- a two-octet BSSMAP Cause (TS 48.008 §3.2.2.5, extension bit set) has no ``gsm_a.bssmap.cause`` in tshark;
- tshark decodes Lb (BSSAP-LE) with its A-interface BSSMAP dissector, which reads Chosen Channel as TV where TS
  49.031 §10 codes every element TLV; its walk of a Perform Location Request therefore ends in "Extraneous
  Data" after that element. The fields compared here lie before it, and the message names coincide.
"""

import functools
import json
import struct
import subprocess
import tempfile
from pathlib import Path

import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capture.errors import DecodeError, Truncated, Unsupported
from conftest import SHARED_PCAPS
from decoders import dtap
from decoders.bssmap import (FIXED_LENGTH_ELEMENTS, LE_MESSAGE_TYPES, MESSAGE_TYPES, decode_bssap, decode_bssap_le,
                             decode_bssmap)
from decoders.records import MESSAGE_FIELDS, MESSAGE_SCHEMA, RecordBuilder
from simulator import bssap_encode as bssap
from tshark_oracle import FILE_OPTIONS, TSHARK, fields, raw_layers, require_tshark

BCC = SHARED_PCAPS / "wiresharkwiki__GSM_BCC.pcap"
LB = SHARED_PCAPS / "wiresharkwiki__SMLC-Calflow---PLRS-without-TA.pcap"
HANDOVER = SHARED_PCAPS / "wiresharkwiki__3G-2G-HO.pcap"

# tshark fields that hold what a record reports.
FIELDS = ("gsm_a.bssmap.msgtype", "gsm_a.dtap.msg_mm_type", "gsm_a.dtap.msg_cc_type", "gsm_a.dtap.msg_rr_type",
          "gsm_a.dtap.msg_sms_type", "gsm_a.dtap.msg_gmm_type", "gsm_a.dtap.msg_ss_type",
          "gsm_a.dtap.msg_bcc_type", "gsm_a.dtap.msg_gcc_type", "e212.imsi", "gsm_a.tmsi", "3gpp.tmsi", "gsm_a.imei",
          "gsm_a.imeisv", "gsm_a.lac", "gsm_a.bssmap.cell_lac", "gsm_a.bssmap.cell_ci", "e212.mcc", "e212.mnc",
          "e212.lai.mcc", "e212.lai.mnc", "gsm_a.dtap.cld_party_bcd_num", "gsm_a.dtap.clg_party_bcd_num",
          "gsm_sms.tp-da", "gsm_sms.tp-oa", "gsm_a.dtap.updating_type", "gsm_a.dtap.service_type",
          "gsm_a.bssmap.cause", "gsm_a.dtap.rej_cause", "gsm_a.dtap.cause", "gsm_a.rp.cause",
          "gsm_a.dtap.cp_cause", "gsm_bssmap_le.lcsCauseValue")
_DTAP_TYPES = {"gsm_a.dtap.msg_mm_type": dtap.MM_MESSAGES, "gsm_a.dtap.msg_cc_type": dtap.CC_MESSAGES,
               "gsm_a.dtap.msg_rr_type": dtap.RR_MESSAGES, "gsm_a.dtap.msg_sms_type": dtap.SMS_MESSAGES,
               "gsm_a.dtap.msg_gmm_type": dtap.GMM_MESSAGES, "gsm_a.dtap.msg_ss_type": dtap.SS_MESSAGES,
               "gsm_a.dtap.msg_bcc_type": dtap.BCC_MESSAGES, "gsm_a.dtap.msg_gcc_type": dtap.GCC_MESSAGES}
_CAUSES = {"gsm_a.bssmap.cause": "bssmap", "gsm_a.dtap.rej_cause": "mm", "gsm_a.dtap.cause": "cc",
           "gsm_a.rp.cause": "rp", "gsm_a.dtap.cp_cause": "cp", "gsm_bssmap_le.lcsCauseValue": "lcs"}
# Protocol layers a layer hands its payload to; a PDU's own fields stop at them.
_LAYERS = ("bssap", "gsm_a.bssmap", "gsm_a.dtap", "gsm_a.rp", "gsm_sms", "gsm_bsslap", "gsm_map")
USER_DLT = 'uat:user_dlts:"User 0 (DLT=147)","bssap","0","","0",""'


# -- oracle helpers (shared with test_dtap.py) ------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _tshark_json(path: str, display_filter: str) -> list:
    require_tshark()
    options = [arg for opt in FILE_OPTIONS.get(Path(path).name, ()) for arg in ("-o", opt)]
    cmd = [TSHARK, "-n", "-r", path, *options, "-T", "json", "-x", "--no-duplicate-keys", "-Y", display_filter]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout)


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _flatten(tree, out: dict[str, list[str]]) -> dict[str, list[str]]:
    """Every field value in a JSON subtree, by field name, without descending into another protocol layer."""
    for key, value in tree.items():
        if key.endswith("_raw") or key in _LAYERS:
            continue
        for item in _as_list(value):
            if isinstance(item, dict):
                _flatten(item, out)
            else:
                out.setdefault(key, []).append(item)
    return out


def _find(tree, layer: str, found: list) -> None:
    if isinstance(tree, list):
        for item in tree:
            _find(item, layer, found)
        return
    if not isinstance(tree, dict):
        return
    if layer in tree:
        raws = tree[f"{layer}_raw"]
        raws = raws if isinstance(raws[0], list) else [raws]
        found += [(bytes.fromhex(raw[0]), subtree, tree) for raw, subtree in zip(raws, _as_list(tree[layer]))]
    for key, value in tree.items():
        if not key.endswith("_raw"):
            _find(value, layer, found)


@functools.lru_cache(maxsize=None)
def tshark_pdus(path, layer: str, handoff: tuple[str, ...] = ()) -> list[tuple[int, bytes, dict[str, list[str]]]]:
    """``(frame, bytes, fields)`` for every ``layer`` PDU of a capture, nested ones included (BSSMAP in MAP,
    DTAP in RANAP or RSL). ``fields`` are those of the PDU's own subtree, plus those of the ``handoff`` layers
    it passes its payload to (gsm_a.rp, gsm_sms after a CP-DATA) when the frame holds a single such PDU."""
    out = []
    for packet in _tshark_json(str(path), layer):
        layers = packet["_source"]["layers"]
        frame = int(layers["frame"]["frame.number"])
        found: list = []
        _find(layers, layer, found)
        for raw, subtree, parent in found:
            values = _flatten(subtree, {})
            present = [name for name in handoff if name in parent]
            assert not present or len(found) == 1, f"frame {frame}: cannot pair {present} with one of its PDUs"
            for name in present:
                for item in _as_list(parent[name]):
                    _flatten(item, values)
            out.append((frame, raw, values))
    return out


def _pcap(payloads: list[bytes]) -> bytes:
    """A pcap of one frame per payload on DLT 147 (USER0), which USER_DLT hands to tshark's bssap dissector."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 147))
    for payload in payloads:
        out += struct.pack("<IIII", 0, 0, len(payload), len(payload)) + payload
    return bytes(out)


@functools.lru_cache(maxsize=None)
def tshark_on_payloads(payloads: tuple[bytes, ...]) -> list[dict[str, list[str]]]:
    """tshark's FIELDS for each hand-made BSSAP payload, in order."""
    path = Path(tempfile.mkdtemp(prefix="sigloc-bssap-")) / "payloads.pcap"
    path.write_bytes(_pcap(list(payloads)))
    rows = fields(path, FIELDS, options=(USER_DLT,))
    return [rows[i + 1] for i in range(len(payloads))]


def _int(value: str) -> int:
    return int(value, 0)


def mismatches(records: list[dict], row: dict[str, list[str]], bssmap_types: dict = MESSAGE_TYPES,
               bssmap_proto: str = "bssmap") -> list[tuple]:
    """Where the records of one frame (or PDU) and tshark's fields for it disagree: (what, ours, tshark's)."""
    def get(name):
        return row.get(name, [])

    out = []

    def check(what, ours, theirs, subset=False, present=False):
        """Equal sets; or with ``subset`` ours among tshark's, and with ``present`` one whenever tshark has one."""
        if (not ours <= theirs or (present and bool(ours) != bool(theirs))) if subset else ours != theirs:
            out.append((what, sorted(ours, key=str), sorted(theirs, key=str)))

    def ours(name):
        return {r[name] for r in records if r.get(name) is not None}

    names = {("bssmap" if proto == "gsm_a.bssmap.msgtype" else "dtap", value) for proto in
             ("gsm_a.bssmap.msgtype", *_DTAP_TYPES) for value in get(proto)}
    wire_names = set()
    for kind, code in names:
        table = bssmap_types if kind == "bssmap" else None
        if table is None:
            table = next(t for f, t in _DTAP_TYPES.items() if code in get(f))
        entry = table.get(_int(code))
        wire_names.add((bssmap_proto if kind == "bssmap" else "dtap", entry[0] if entry else f"unknown {code}"))
    check("msg", {(r["proto"], r["msg"]) for r in records}, wire_names)
    check("imsi", ours("imsi"), set(get("e212.imsi")))
    check("tmsi", ours("tmsi"), {_int(v) for v in get("gsm_a.tmsi") + get("3gpp.tmsi")})
    check("imei", ours("imei"), set(get("gsm_a.imei")))
    check("imeisv", ours("imeisv"), set(get("gsm_a.imeisv")))
    check("lac", ours("lac"), {_int(v) for v in get("gsm_a.lac") + get("gsm_a.bssmap.cell_lac")}, subset=True,
          present=True)
    check("ci", ours("ci"), {_int(v) for v in get("gsm_a.bssmap.cell_ci")}, subset=True, present=True)
    # e212.mcc/mnc also come from every IMSI: ours (from cells and LAIs) must be among them.
    check("mcc", ours("mcc"), set(get("e212.mcc") + get("e212.lai.mcc")), subset=True)
    check("mnc", {int(v) for v in ours("mnc")}, {int(v) for v in get("e212.mnc") + get("e212.lai.mnc")},
          subset=True)
    # The RP addresses (service centre) show as BCD numbers too: in an SMS frame the TPDU's addresses count.
    sms = bool(get("gsm_a.dtap.msg_sms_type"))
    check("called", ours("called"), set(get("gsm_sms.tp-da") if sms else get("gsm_a.dtap.cld_party_bcd_num")))
    check("calling", ours("calling"), set(get("gsm_sms.tp-oa") if sms else get("gsm_a.dtap.clg_party_bcd_num")))
    wire_types = {dtap.LOCATION_UPDATING_TYPES.get(_int(v)) for v in get("gsm_a.dtap.updating_type")}
    wire_types |= {dtap.CM_SERVICE_TYPES.get(_int(v)) for v in get("gsm_a.dtap.service_type")}
    check("update_type", ours("update_type"), wire_types - {None})
    causes = {(r["cause_group"], r["cause"]) for r in records if r.get("cause") is not None}
    causes = {c for c in causes if not (c[0] == "bssmap" and c[1] > 0x7F)}  # two-octet form: see module doc
    check("cause", causes, {(group, _int(v)) for name, group in _CAUSES.items() for v in get(name)})
    return out


# -- the simulator's capture --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def simulated(unpacked_city):
    """Per frame: the records of its one BSSAP payload, tshark's fields, and whether it was sent to the MSC."""
    path = unpacked_city / "capture.pcap"
    payloads = raw_layers(path, "bssap")
    rows = fields(path, (*FIELDS, "ip.dst"), "bssap")
    assert all(len(p) == 1 for p in payloads.values())
    msc = "10.0.0.2"  # simulator.scenario: every BSC talks to one MSC
    return {frame: (decode_bssap(p[0], None), rows[frame], rows[frame]["ip.dst"] == [msc])
            for frame, p in payloads.items()}


def test_simulated_capture_agrees_with_tshark(simulated):
    bad = {frame: m for frame, (records, row, _) in simulated.items() if (m := mismatches(records, row))}
    assert len(simulated) > 1000
    assert not bad, f"{len(bad)} of {len(simulated)} frames differ, e.g. {list(bad.items())[:3]}"


def test_simulated_capture_covers_every_message_the_simulator_writes(simulated):
    seen = {(r["proto"], r["msg"]) for records, _, _ in simulated.values() for r in records}
    assert seen >= {("bssmap", m) for m in ("complete_layer3_information", "paging", "clear_command",
                                             "clear_complete", "assignment_request", "assignment_complete",
                                             "handover_performed")}
    assert seen >= {("dtap", m) for m in ("location_updating_request", "location_updating_accept", "setup",
                                           "cm_service_request", "paging_response", "identity_response",
                                           "imsi_detach_indication", "cp_data", "cp_ack", "release_complete")}
    assert not any(r.get("error") for records, _, _ in simulated.values() for r in records)


def test_direction_from_the_message_type_matches_the_link(simulated):
    """Where TS 48.008 §3.2.1 / TS 24.008 fix the sender, it is the side the simulator sent the frame from."""
    wrong = [(frame, r["msg"]) for frame, (records, _, to_msc) in simulated.items() for r in records
             if r["uplink"] is not None and r["msg"] != "complete_layer3_information" and r["uplink"] != to_msc]
    assert not wrong, wrong[:5]
    known = sum(r["uplink"] is not None for records, _, _ in simulated.values() for r in records)
    assert known > 0.7 * sum(len(records) for records, _, _ in simulated.values())


def test_records_fit_the_message_schema(simulated):
    builder = RecordBuilder(MESSAGE_SCHEMA)
    for records, _, _ in simulated.values():
        for record in records:
            assert set(record) <= MESSAGE_FIELDS, set(record) - MESSAGE_FIELDS
            builder.append(record)
    table = builder.table()
    assert table.num_rows > 1000 and table.schema == MESSAGE_SCHEMA
    assert pc.count(table["imsi"]).as_py() > 0 and pc.count(table["ci"]).as_py() > 0


# -- real captures ----------------------------------------------------------------------------------------------

def test_gsm_r_broadcast_call_control_agrees_with_tshark():
    payloads = raw_layers(BCC, "bssap")
    rows = fields(BCC, FIELDS, "bssap")
    records = {frame: decode_bssap(p[0], None) for frame, p in payloads.items()}
    assert [r[0]["msg"] for r in records.values()] == ["bcc_setup", "bcc_connect", "bcc_termination_request",
                                                         "bcc_termination"]
    bad = {frame: m for frame, recs in records.items() if (m := mismatches(recs, rows[frame]))}
    assert not bad, bad
    # TS 44.069: the phone sends Setup and Termination Request, the network Connect and Termination.
    assert [r[0]["uplink"] for r in records.values()] == [True, False, True, False]


def test_lb_bssap_le_agrees_with_tshark():
    payloads = raw_layers(LB, "bssap")
    rows = fields(LB, FIELDS, "bssap")
    records = {frame: decode_bssap_le(p[0], None) for frame, p in payloads.items()}
    assert [r[0]["msg"] for r in records.values()] == ["perform_location_request", "connection_oriented_information",
                                                       "connection_oriented_information", "perform_location_response"]
    bad = {frame: m for frame, recs in records.items()
           if (m := mismatches(recs, rows[frame], LE_MESSAGE_TYPES, "bssmap-le"))}
    assert not bad, bad
    request, _, ta_response, _ = records.values()
    assert {k: request[0][k] for k in ("mcc", "mnc", "lac", "ci")} == {"mcc": "123", "mnc": "45", "lac": 1234,
                                                                        "ci": 250}
    assert ta_response[0]["ci"] == 250  # the BSSLAP TA Response's serving cell (TS 48.071 §4.2.2)
    assert not any(r[0].get("error") for r in records.values())


def test_bssmap_inside_map_agrees_with_tshark():
    """TS 29.002 AN-APDU signalInfo carries a BSSAP-framed BSSMAP message; tshark's gsm_a.bssmap is its body."""
    pdus = tshark_pdus(HANDOVER, "gsm_a.bssmap")
    assert len(pdus) == 51
    bad, names = [], set()
    for frame, body, row in pdus:
        records = decode_bssmap(body, None)
        names.add(records[0]["msg"])
        assert decode_bssap(bytes((0, len(body))) + body, None) == records
        if m := mismatches(records[:1], row):
            bad.append((frame, m))
        assert not records[0].get("error"), (frame, records[0])
    assert not bad, bad
    assert names == {"handover_request", "handover_request_acknowledge", "handover_detect", "handover_complete",
                     "handover_performed"}


def test_layer3_information_of_a_handover_request_acknowledge():
    """§3.2.1.11: the RR Handover Command the target BSS prepared (tshark leaves it undecoded without SCCP tracing);
    the MSC forwards those very bytes to the phone as DTAP in frame 25, where tshark does decode them."""
    body = next(raw for frame, raw, _ in tshark_pdus(HANDOVER, "gsm_a.bssmap") if frame == 23)
    forwarded = next(raw for frame, raw, _ in tshark_pdus(HANDOVER, "gsm_a.dtap") if frame == 25)
    records = decode_bssmap(body, True)
    assert [(r["proto"], r["msg"], r["uplink"]) for r in records] == [
        ("bssmap", "handover_request_acknowledge", True), ("dtap", "handover_command", False)]
    assert records[1] == dtap.decode_l3(forwarded, None)
    assert body[1] == 0x17 and body[3:3 + body[2]] == forwarded  # Layer 3 Information, the first element


def test_handover_request_reports_the_target_cell():
    """§3.2.1.8: Cell Identifier (Serving), here a UTRAN SAI, before Cell Identifier (Target), a CGI."""
    body = next(raw for frame, raw, _ in tshark_pdus(HANDOVER, "gsm_a.bssmap") if frame == 22)
    record = decode_bssmap(body, None)[0]
    assert (record["mcc"], record["mnc"], record["lac"], record["ci"], record["cause"]) == ("310", "26", 0x62,
                                                                                            0xE4D6, 0x0C)


# -- hex literals: what simulator/bssap_encode.py writes, decoded back -----------------------------------------------

LU_REQUEST = bssap.location_updating_request("imsi_attach", ("460", "00", 0x1102), imsi="460002507894720")
UNIT_CASES = [
    # TS 48.008 §3.2.1.32 Complete Layer 3 Information: Cell Identifier (§3.2.2.17, discriminator 0: CGI), Layer 3
    # Information (§3.2.2.24) holding a TS 24.008 §9.2.15 Location Updating Request.
    (bssap.complete_layer3("460", "00", 0x1102, 0x050D, LU_REQUEST),
     "001f5705080064f0001102050d171205087264f000110257084906005270987402",
     [{"proto": "bssmap", "msg": "complete_layer3_information", "uplink": True, "mcc": "460", "mnc": "00",
       "lac": 0x1102, "ci": 0x050D},
      {"proto": "dtap", "msg": "location_updating_request", "uplink": True, "update_type": "imsi_attach",
       "mcc": "460", "mnc": "00", "lac": 0x1102, "imsi": "460002507894720"}]),
    # Discriminator 1 (LAC + CI): no PLMN in the cell; a TS 44.018 §9.1.25 Paging Response with a TMSI.
    (bssap.complete_layer3("460", "00", 0x1102, 0x050D, bssap.paging_response(tmsi=0x12345678), cgi=False),
     "0017570505011102050d170d062707035758a605f412345678".replace(" ", ""),
     [{"proto": "bssmap", "msg": "complete_layer3_information", "uplink": True, "mcc": None, "mnc": None,
       "lac": 0x1102, "ci": 0x050D},
      {"proto": "dtap", "msg": "paging_response", "uplink": True, "tmsi": 0x12345678}]),
    # §3.2.1.19 Paging: IMSI (§3.2.2.6), TMSI (§3.2.2.7), Cell Identifier List (§3.2.2.27, discriminator 1).
    (bssap.paging("460002507894720", 0xDEADBEEF, [(0x1102, 0x050D), (0x1103, 7)]),
     "001c52080849060052709874020904deadbeef1a09011102050d11030007",
     [{"proto": "bssmap", "msg": "paging", "uplink": False, "imsi": "460002507894720", "tmsi": 0xDEADBEEF,
       "mcc": None, "mnc": None, "lac": 0x1102, "ci": 0x050D}]),
    (bssap.paging("460002507894720", None, [(1, 2)]), "001252080849060052709874021a050100010002",
     [{"proto": "bssmap", "msg": "paging", "uplink": False, "imsi": "460002507894720", "mcc": None, "mnc": None,
       "lac": 1, "ci": 2}]),
    # §3.2.1.21 Clear Command, Cause (§3.2.2.5) 9 "call control"; §3.2.1.22 Clear Complete; §3.2.1.20 Clear Request.
    (bssap.clear_command(9), "000420040109",
     [{"proto": "bssmap", "msg": "clear_command", "uplink": False, "cause": 9, "cause_group": "bssmap"}]),
    (bssap.clear_complete(), "000121", [{"proto": "bssmap", "msg": "clear_complete", "uplink": True}]),
    (bssap.clear_request(0x20), "000422040120",
     [{"proto": "bssmap", "msg": "clear_request", "uplink": True, "cause": 0x20, "cause_group": "bssmap"}]),
    # §3.2.1.25 Handover Performed: Cause, Cell Identifier (a 3-digit MNC).
    (bssap.handover_performed(0x0B, "310", "410", 5, 6), "000e1704010b050800130014000500 06".replace(" ", ""),
     [{"proto": "bssmap", "msg": "handover_performed", "uplink": True, "cause": 0x0B, "cause_group": "bssmap",
       "mcc": "310", "mnc": "410", "lac": 5, "ci": 6}]),
    # §3.2.1.9 Handover Required: Cause, Cell Identifier List (preferred): the first cell.
    (bssap.handover_required(0x0C, [(5, 6), (7, 8)]), "000f1104010c1a09010005000600070008",
     [{"proto": "bssmap", "msg": "handover_required", "uplink": True, "cause": 0x0C, "cause_group": "bssmap",
       "mcc": None, "mnc": None, "lac": 5, "ci": 6}]),
    # §3.2.1.30 Cipher Mode Command: Encryption Information (TLV), a TV element; §3.2.1.31 Cipher Mode Complete.
    (bssap.cipher_mode_command(), "000e530a09022e8f1d3c4b5a69782300",
     [{"proto": "bssmap", "msg": "cipher_mode_command", "uplink": False}]),
    (bssap.cipher_mode_complete(), "0003552c02", [{"proto": "bssmap", "msg": "cipher_mode_complete", "uplink": True}]),
    # §3.2.1.1 Assignment Request: Channel Type (TLV), CIC (TV 3); §3.2.1.2 Assignment Complete: TV elements only.
    (bssap.assignment_request(), "0009010b03010801010001",
     [{"proto": "bssmap", "msg": "assignment_request", "uplink": False}]),
    (bssap.assignment_complete(), "000c02150001000121982c024001",
     [{"proto": "bssmap", "msg": "assignment_complete", "uplink": True}]),
    # §3.2.1.23 Reset (either side sends it), §3.2.1.24 Reset Acknowledge.
    (bssap.reset(0), "000430040100",
     [{"proto": "bssmap", "msg": "reset", "uplink": None, "cause": 0, "cause_group": "bssmap"}]),
    (bssap.reset_ack(), "000131", [{"proto": "bssmap", "msg": "reset_acknowledge", "uplink": None}]),
    # TS 48.006 §9.3: DTAP, DLCI 0x03 (SAPI 3, SMS), length, the layer 3 message (TS 24.011 CP-ACK).
    (bssap.dtap(bssap.cp_ack(0), dlci=3), "0103028904", [{"proto": "dtap", "msg": "cp_ack", "uplink": None}]),
]

def _bssmap(body: str) -> str:
    """A BSSMAP message (hex, spaces allowed) framed as BSSAP: discriminator 0, length (TS 48.006 §9.3)."""
    message = bytes.fromhex(body.replace(" ", ""))
    return (bytes((0, len(message))) + message).hex()


# Hand-made payloads the simulator does not write.
HAND_CASES = [
    # Cause in the two-octet form (§3.2.2.5: extension bit 1; class 7, national value 0x0001).
    (_bssmap("20 04 02 f0 01"),
     [{"proto": "bssmap", "msg": "clear_command", "uplink": False, "cause": 0x7001, "cause_group": "bssmap"}]),
    # §3.2.1.68 Common ID: the IMSI.
    (_bssmap("2f 08 08 49 06 00 52 70 98 74 02"),
     [{"proto": "bssmap", "msg": "common_id", "uplink": False, "imsi": "460002507894720"}]),
    # §3.2.1.31 Cipher Mode Complete with Layer 3 Message Contents (§3.2.2.35): the RR Ciphering Mode Complete
    # (TS 44.018 §9.1.11) with the IMEISV.
    (_bssmap("55 20 0d 06 32 17 09 33 54 76 98 10 32 54 76 f8 2c 02"),
     [{"proto": "bssmap", "msg": "cipher_mode_complete", "uplink": True},
      {"proto": "dtap", "msg": "ciphering_mode_complete", "uplink": True, "imeisv": "3456789012345678"}]),
    # §3.2.1.32 with the cell as LAI (discriminator 4: PLMN and LAC, no CI) and an IMSI Detach Indication.
    (_bssmap("57 05 06 04 64 f0 10 12 34 17 09 05 01 57 05 f4 00 00 00 01"),
     [{"proto": "bssmap", "msg": "complete_layer3_information", "uplink": True, "mcc": "460", "mnc": "01",
       "lac": 0x1234, "ci": None},
      {"proto": "dtap", "msg": "imsi_detach_indication", "uplink": True, "tmsi": 1}]),
    # Discriminator 2, CI only; a CM Re-establishment Request (TS 24.008 §9.2.4) with an IMSI.
    (_bssmap("57 05 03 02 04 d2 17 10 05 28 01 03 57 58 a6 08 49 06 00 52 70 98 74 02"),
     [{"proto": "bssmap", "msg": "complete_layer3_information", "uplink": True, "mcc": None, "mnc": None,
       "lac": None, "ci": 1234},
      {"proto": "dtap", "msg": "cm_reestablishment_request", "uplink": True, "imsi": "460002507894720"}]),
    # §3.2.1.44 Perform Location Response (A interface): LCS Cause (§3.2.2.66) 5, "position method failure".
    (_bssmap("2d 47 01 05"),
     [{"proto": "bssmap", "msg": "perform_location_response", "uplink": True, "cause": 5, "cause_group": "lcs"}]),
    # §3.2.1.8 Handover Request: Channel Type, Encryption Information, Classmark 2, Cell Identifier (Serving) as
    # CGI, Cell Identifier (Target) as LAC + CI, Cause, IMSI.
    (_bssmap("10 0b 03 01 08 01 0a 09 02 2e 8f 1d 3c 4b 5a 69 78 12 03 57 58 a6 05 08 00 64 f0 00 00 01 00 02"
             "05 05 01 00 03 00 04 04 01 0b 08 08 49 06 00 52 70 98 74 02"),
     [{"proto": "bssmap", "msg": "handover_request", "uplink": False, "mcc": None, "mnc": None, "lac": 3,
       "ci": 4, "cause": 0x0B, "cause_group": "bssmap", "imsi": "460002507894720"}]),
]


@pytest.mark.parametrize("encoded, literal, expected", UNIT_CASES, ids=[c[2][-1]["msg"] for c in UNIT_CASES])
def test_simulator_messages_decode_back(encoded, literal, expected):
    assert encoded.hex() == literal
    assert decode_bssap(bytes.fromhex(literal), None) == expected


@pytest.mark.parametrize("literal, expected", HAND_CASES, ids=[c[1][-1]["msg"] for c in HAND_CASES])
def test_hand_made_messages(literal, expected):
    assert decode_bssap(bytes.fromhex(literal), None) == expected


def test_hex_literals_agree_with_tshark():
    literals = [bytes.fromhex(c[1]) for c in UNIT_CASES] + [bytes.fromhex(c[0]) for c in HAND_CASES]
    rows = tshark_on_payloads(tuple(literals))
    bad = [(p.hex(), m) for p, row in zip(literals, rows) if (m := mismatches(decode_bssap(p, None), row))]
    assert not bad, bad


def test_uplink_from_the_connection_wins_over_the_message_type():
    assert decode_bssap(bssap.clear_complete(), False)[0]["uplink"] is False
    records = decode_bssap(bssap.complete_layer3("460", "00", 1, 2, LU_REQUEST), False)
    assert [r["uplink"] for r in records] == [False, True]  # the embedded message is the phone's


def test_bssmap_le_elements_are_all_tlv():
    """TS 49.031 §10: Chosen Channel is TLV on Lb (TV on the A interface); the IMSI element is 0x00."""
    message = bytes.fromhex("2b 21 01 88 00 08 49060052709874 02 05 05 05 1234 0099".replace(" ", ""))
    record = decode_bssap_le(bytes((0, len(message))) + message, None)[0]
    assert record == {"proto": "bssmap-le", "msg": "perform_location_request", "uplink": True,
                      "imsi": "460002507894720", "mcc": None, "mnc": None, "lac": 0x1234, "ci": None}


def test_damaged_elements_keep_what_was_read():
    record = decode_bssap(bytes.fromhex(_bssmap("57 05 08 00 64 f0 00")), None)[0]
    assert record["msg"] == "complete_layer3_information" and record["error"] == "bssmap.element_truncated"
    record = decode_bssap(bytes.fromhex(_bssmap("52 08 01 06 09 04 00 00 00 01")), None)[0]
    assert record["msg"] == "paging" and record["error"] == "identity.unknown_type" and record["tmsi"] == 1


def test_what_cannot_be_decoded_raises_a_named_error():
    cases = {"": "bssap.short", "02 00": "bssap.unknown_discriminator",
             "00 05 20": "bssap.bssmap_length_exceeds_payload",
             "00 00": "bssmap.empty", "00 01 ff": "bssmap.unknown_message_type", "01 00": "bssap.short",
             "01 00 05 05": "bssap.dtap_length_exceeds_payload", "01 00 02 07 41": "dtap.unsupported_protocol"}
    for literal, reason in cases.items():
        with pytest.raises(DecodeError) as err:
            decode_bssap(bytes.fromhex(literal.replace(" ", "")), None)
        assert err.value.reason == reason, literal
    with pytest.raises(Unsupported):
        decode_bssap(bytes.fromhex("000177"), None)
    with pytest.raises(Truncated):
        decode_bssap_le(b"\x00", None)


def test_unknown_layer3_inside_complete_layer3_keeps_the_cell():
    message = bytes.fromhex("57 05 05 01 0001 0002 17 02 05 7f".replace(" ", ""))
    records = decode_bssmap(message, None)
    assert records == [{"proto": "bssmap", "msg": "complete_layer3_information", "uplink": True, "mcc": None,
                        "mnc": None, "lac": 1, "ci": 2, "error": "dtap.unknown_message_type"}]


def test_element_layout_agrees_with_pycrate():
    """pycrate's TS 48.008 element table (an oracle only) gives the same length for every fixed-length element."""
    from pycrate_mobile.TS48008_BSSMAP import BSSMAPElm_dict
    theirs = {iei: 1 + size for iei, (_, size, _) in BSSMAPElm_dict.items() if size >= 0}
    # pycrate takes Talker Flag (T), Last used E-UTRAN PLMN ID (TV 4) and Old Location Area Identification (TV 6)
    # for TLV, as libosmocore does not; 0xF0/0xF1 are Osmocom's own elements.
    assert {iei: size for iei, size in FIXED_LENGTH_ELEMENTS.items() if iei not in (0x35, 0x95, 0x96, 0xF0, 0xF1)} \
        == theirs


# -- robustness ---------------------------------------------------------------------------------------------------

def _valid_payloads() -> list[bytes]:
    return [bytes.fromhex(c[1]) for c in UNIT_CASES] + [bytes.fromhex(c[0]) for c in HAND_CASES]


def _assert_records(records: list[dict]) -> None:
    for record in records:
        assert set(record) <= MESSAGE_FIELDS and record["proto"] in ("bssmap", "bssmap-le", "dtap")
        assert isinstance(record["msg"], str)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80), st.sampled_from([None, True, False]))
def test_random_bytes_only_raise_decode_errors(payload, uplink):
    for decode in (decode_bssap, decode_bssap_le, decode_bssmap):
        try:
            _assert_records(decode(payload, uplink))
        except DecodeError:
            pass


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(_valid_payloads()), st.data())
def test_mutated_payloads_only_raise_decode_errors(payload, data):
    mutated = bytearray(payload)
    for _ in range(data.draw(st.integers(1, 4))):
        mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(st.integers(0, 255))
    for candidate in (bytes(mutated), payload[:data.draw(st.integers(0, len(payload)))]):
        try:
            _assert_records(decode_bssap(candidate, None))
        except DecodeError:
            pass
