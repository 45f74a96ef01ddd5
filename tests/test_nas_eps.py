"""decoders/nas_eps.py (TS 24.301) against tshark on every NAS-PDU of every capture, plus hex-literal unit tests.

The NAS records come from decoding each frame's S1AP PDUs (``test_s1ap.decoded``); per frame they must
show the EMM and ESM message types tshark shows (names from tshark's own value strings for
``nas_eps.nas_msg_emm_type`` / ``_esm_type``), the same ciphered and Service Request messages, the same
IMSIs, IMEIs, IMEISVs, M-TMSIs and MME codes, the attach / update / detach / service types and the EMM
causes. Our update-type vocabulary is the simulator's (simulator/nas_encode.py) plus the spec's other
values.
"""

import functools
import re
import subprocess
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capture.errors import DecodeError
from decoders.nas_eps import decode_nas
from simulator import nas_encode
from test_s1ap import CAPTURES, decoded, tshark_rows
from tshark_oracle import TSHARK, require_tshark

# The simulator's names (what the event layer is written against), and the spec's remaining values.
ATTACH_NAMES = {**{v: k for k, v in nas_encode.ATTACH_TYPES.items()}, 0: "eps", 3: "rlos", 4: "eps", 5: "eps",
                6: "emergency", 7: "reserved"}
UPDATE_NAMES = {**{v: k for k, v in nas_encode.UPDATE_TYPES.items()}, 4: "ta_updating", 5: "ta_updating",
                6: "reserved", 7: "reserved"}
DETACH_UE_NAMES = {**{v: k for k, v in nas_encode.DETACH_TYPES.items()}, 0: "combined", 4: "combined",
                   5: "combined", 6: "reserved", 7: "reserved"}
DETACH_NETWORK_NAMES = {0: "re_attach_not_required", 1: "re_attach_required", 2: "re_attach_not_required",
                        3: "imsi_detach", 4: "re_attach_not_required", 5: "re_attach_not_required",
                        6: "reserved", 7: "reserved"}
# tshark's service type values (TS 24.301 §9.9.3.27, the unused ones as the network reads them).
SERVICE_NAMES = {0: "mo_csfb", 1: "mt_csfb", 2: "mo_csfb_emergency", 3: "mo_csfb", 4: "mo_csfb",
                 8: "packet_services_via_s1", 9: "packet_services_via_s1", 10: "packet_services_via_s1",
                 11: "packet_services_via_s1"}


@functools.lru_cache(maxsize=1)
def tshark_message_names() -> dict[str, dict[str, int]]:
    """{"emm": {snake name: type}, "esm": {...}} from tshark's value strings (Tables 9.8.1 / 9.8.2)."""
    require_tshark()
    out = subprocess.run([TSHARK, "-G", "values"], capture_output=True, text=True, check=True).stdout
    names = {"emm": {}, "esm": {}}
    for line in out.splitlines():
        cols = line.split("\t")
        if cols[0] == "V" and cols[1] in ("nas_eps.nas_msg_emm_type", "nas_eps.nas_msg_esm_type"):
            names[cols[1][-8:-5]][re.sub(r"[ /-]+", "_", cols[3].strip().lower())] = int(cols[2])
    return names


def _ints(values) -> list[int]:
    return [int(v, 0) for v in values]


def compare_nas(path) -> list[tuple]:
    """Every per-frame disagreement between our NAS records and tshark's nas_eps / gsm_a / e212 fields."""
    names = tshark_message_names()
    rows = tshark_rows(path)
    mismatches = []
    for frame, records in decoded(path).items():
        row = rows[frame]
        nas = [r for r in records if r["proto"] == "nas-eps"]
        for kind in ("emm", "esm"):
            got = Counter(names[kind][r["msg"]] for r in nas if r["msg"] in names[kind])
            want = Counter(_ints(row[f"nas_eps.nas_msg_{kind}_type"]))
            if got != want:
                mismatches.append((frame, kind, sorted(got.elements()), sorted(want.elements())))
        unnamed = [r["msg"] for r in nas if r["msg"] not in names["emm"] and r["msg"] not in names["esm"]
                   and r["msg"] not in ("service_request", "ciphered")]
        if unnamed:
            mismatches.append((frame, "unnamed", unnamed, None))
        counts = [("ciphered", sum(r.get("ciphered") is True for r in nas), len(row["nas_eps.ciphered_msg"])),
                  ("service_request", sum(r["msg"] == "service_request" for r in nas),
                   sum(v >= 12 for v in _ints(row["nas_eps.security_header_type"])))]
        mismatches += [(frame, name, got, want) for name, got, want in counts if got != want]
        for r in nas:
            if r.get("error"):
                mismatches.append((frame, "error", r["msg"], r["error"]))
        sets = [
            ("imsi", {r["imsi"] for r in records if r.get("imsi")}, set(row["e212.imsi"])),
            ("imei", {r["imei"] for r in nas if r.get("imei")}, set(row["gsm_a.imei"] + row["nas_eps.emm.imei"])),
            ("imeisv", {r["imeisv"] for r in nas if r.get("imeisv")}, set(row["gsm_a.imeisv"])),
            ("tmsi", {r[k] for r in nas for k in ("m_tmsi", "tmsi") if r.get(k) is not None},
             set(_ints(row["nas_eps.emm.m_tmsi"] + row["gsm_a.tmsi"]))),
            ("mmec", {r["mmec"] for r in nas if r.get("mmec") is not None}, set(_ints(row["nas_eps.emm.mme_code"]))),
            ("cause", Counter(r["cause"] for r in nas if r.get("cause_group") == "emm"),
             Counter(_ints(row["nas_eps.emm.cause"]))),
            ("update_type", Counter(r["update_type"] for r in nas if r.get("update_type")), _update_types(row)),
        ]
        mismatches += [(frame, name, got, want) for name, got, want in sets if got != want]
        tacs = {r["tac"] for r in nas if r.get("tac") is not None}
        if not tacs <= set(_ints(row["nas_eps.emm.tai_tac"])):
            mismatches.append((frame, "tac", tacs, row["nas_eps.emm.tai_tac"]))
    return mismatches


def _update_types(row) -> Counter:
    """Our update_type vocabulary from tshark's attach / update / detach / service type fields."""
    names = [ATTACH_NAMES[v] for v in _ints(row["nas_eps.emm.eps_att_type"])]
    names += [UPDATE_NAMES[v] for v in _ints(row["nas_eps.emm.update_type_value"])]
    switch_off = _ints(row["nas_eps.emm.switch_off"])
    for i, v in enumerate(_ints(row["nas_eps.emm.detach_type_ul"])):
        names.append(("switch_off_" if switch_off[i] else "") + DETACH_UE_NAMES[v])
    names += [DETACH_NETWORK_NAMES[v] for v in _ints(row["nas_eps.emm.detach_type_dl"])]
    names += [SERVICE_NAMES[v] for v in _ints(row["nas_eps.emm.service_type"]) if v in SERVICE_NAMES]
    return Counter(names)


@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_nas_agrees_with_tshark(path):
    mismatches = compare_nas(path)
    assert not mismatches, f"{len(mismatches)} disagreements, e.g. {mismatches[:5]}"


def test_simulated_nas_agrees_with_tshark(city):
    path = city / "capture.pcap"
    nas = [r for records in decoded(path).values() for r in records if r["proto"] == "nas-eps"]
    assert {"attach_request", "tracking_area_update_request", "detach_request", "service_request"} <= {
        r["msg"] for r in nas}
    mismatches = compare_nas(path)
    assert not mismatches, f"{len(mismatches)} disagreements, e.g. {mismatches[:5]}"


# -- unit tests on hex literals (TS 24.301 §8.2, §9) ----------------------------------------------------------------

def _one(hex_pdu: str, uplink=None) -> dict:
    record, = decode_nas(bytes.fromhex(hex_pdu), uplink)
    return record


def test_integrity_protected_identity_response():
    # open5gs srsenb frame 33: security header 1, MAC 36856929, SQN 0a; plain 07 56 (§8.2.19); mobile identity
    # 08 99 10 07 00 00 20 31 90: type 1 (IMSI), odd, digits 9 0170 0000 0213 09.
    assert _one("17368569290a0756089910070000203190", True) == {
        "proto": "nas-eps", "msg": "identity_response", "uplink": True, "imsi": "901700000021309"}


def test_attach_request_with_imsi_and_its_esm_container():
    # §8.2.4: 72 = KSI 7, attach type 2 (combined); EPS mobile identity 08 49 06 ... (IMSI 460001234567890);
    # UE network capability 02 e0e0; ESM container 0004 0201d011 = PDN connectivity request (§8.3.20).
    attach, esm = decode_nas(bytes.fromhex("07417208490600214365870902e0e000040201d011"), True)
    assert attach == {"proto": "nas-eps", "msg": "attach_request", "uplink": True, "update_type": "combined",
                      "imsi": "460001234567890"}
    assert esm == {"proto": "nas-eps", "msg": "pdn_connectivity_request", "uplink": True}


def test_attach_request_with_old_guti():
    # identity 0b f6 64f000 8001 01 c0de0001: GUTI type 6 with filler f, 460-00, MMEGI 0x8001, MMEC 1.
    record = decode_nas(bytes.fromhex("0741710bf664f000800101c0de000102e0e000040201d011"), True)[0]
    assert (record["update_type"], record["mcc"], record["mnc"], record["mmec"], record["m_tmsi"]) == (
        "eps", "460", "00", 1, 0xC0DE0001)


def test_null_ciphered_attach_accept_gives_the_new_guti():
    # Security header 2 (integrity + ciphered), inner 07 42 is plain EMM (the EEA0 heuristic); attach result,
    # T3412, TAI list, ESM container (Activate Default EPS Bearer Context Request), then GUTI IEI 0x50.
    accept, esm = decode_nas(bytes.fromhex(
        "2779b0854a0007420146060064f000123400155201c101090908696e7465726e657405010a2d0002500bf664f000800101c0de0001"),
        False)
    assert accept == {"proto": "nas-eps", "msg": "attach_accept", "uplink": False, "mcc": "460", "mnc": "00",
                      "mmec": 1, "m_tmsi": 0xC0DE0001}
    assert esm["msg"] == "activate_default_eps_bearer_context_request"


def test_ue_detach_with_switch_off():
    # §8.2.11.1: 0b = KSI 0, switch-off bit 4 set, type 3 (combined EPS/IMSI detach); old GUTI.
    record = _one("17d915f8470307450b0bf664f000800101c0de0001", True)
    assert (record["msg"], record["update_type"], record["m_tmsi"]) == ("detach_request", "switch_off_combined",
                                                                        0xC0DE0001)


def test_network_detach_with_cause():
    # §8.2.11.2: detach type 2 (re-attach not required), EMM cause IEI 53 value 2 (IMSI unknown in HSS).
    assert _one("0745025302", False) == {"proto": "nas-eps", "msg": "detach_request", "uplink": False,
                                          "update_type": "re_attach_not_required", "cause": 2, "cause_group": "emm"}


def test_tracking_area_update_request_with_last_visited_tai():
    # §8.2.29: 03 = periodic updating; old GUTI; IEI 52 + 64f000 2345 = last visited TAI 460-00 TAC 0x2345.
    record = _one("0748030bf664f000800101c0de00015264f0002345", True)
    assert (record["update_type"], record["tac"], record["m_tmsi"]) == ("periodic", 0x2345, 0xC0DE0001)


def test_extended_service_request():
    # §8.2.15: service type 1 (mobile terminating CS fallback); M-TMSI as mobile identity 05 f4 c0de0001.
    assert _one("074c0105f4c0de0001", True) == {"proto": "nas-eps", "msg": "extended_service_request",
                                                "uplink": True, "update_type": "mt_csfb", "m_tmsi": 0xC0DE0001}


@pytest.mark.parametrize("octet, service", [(0x08, "packet_services_via_s1"), (0x04, "mo_csfb"),
                                            (0x0B, "packet_services_via_s1"), (0x05, None)])
def test_extended_service_request_service_types(octet, service):
    """§9.9.3.27: 8 is packet services via S1 (pycrate found it read as unknown, and 4 as packet services);
    the unused values read as the network must read them, reserved ones as none."""
    record = _one(f"074c{octet:02x}05f412345678", True)
    assert record.get("update_type") == service and record["m_tmsi"] == 0x12345678


def test_identity_response_with_imei():
    # TS 24.008 §10.5.1.4: 3a = digit 3, odd, type 2 (IMEI); 15 digits with a valid Luhn check digit.
    assert _one("0756083a65390853468390", True)["imei"] == "356938035643809"


def test_attach_reject_with_its_esm_reject():
    # §8.2.3: EMM cause 7 (EPS services not allowed); ESM container IEI 78 with PDN connectivity reject.
    reject, esm = decode_nas(bytes.fromhex("0744077800040201d11b"), False)
    assert (reject["msg"], reject["cause"], reject["cause_group"]) == ("attach_reject", 7, "emm")
    assert esm["msg"] == "pdn_connectivity_reject"


def test_service_request_and_emm_status():
    assert _one("c703c340", True) == {"proto": "nas-eps", "msg": "service_request", "uplink": True}
    assert _one("076065", False)["cause"] == 101


@pytest.mark.parametrize("pdu", [
    "2711223344058a9bcdef",    # header 2, the octet after the SQN is no plain header: ciphered
    "4711223344050747aa",      # header 4, 07 but message type 0x47 is not in Table 9.8.1
    "2711223344053201c1",      # ESM header with EPS bearer identity 3 (reserved, §9.3.2)
    "27112233440507560899",    # looks plain but its identity is cut short: treated as ciphered
])
def test_ciphered_messages(pdu):
    assert _one(pdu, True) == {"proto": "nas-eps", "msg": "ciphered", "ciphered": True, "uplink": True}


def test_unknown_types_and_direction_fallback():
    assert _one("0747")["msg"] == "unknown_emm_71"
    assert _one("0f01") == {"proto": "nas-eps", "msg": "unknown_pd_15", "uplink": None}
    assert _one("17112233440a0f01") == {"proto": "nas-eps", "msg": "unknown_pd_15", "uplink": None}
    assert decode_nas(bytes.fromhex("0741710bf664f000800101c0de000102e0e000040201d011"))[0]["uplink"] is True
    assert _one("075501")["uplink"] is False                                             # identity request


def test_damage_after_the_message_type_is_a_record_with_error():
    assert _one("075608991007", True) == {"proto": "nas-eps", "msg": "identity_response", "uplink": True,
                                          "error": "nas_eps.ie_truncated"}
    for pdu, error in (("", "nas_eps.empty"), ("6711223344", "nas_eps.reserved_security_header"),
                       ("17112233", "nas_eps.protected_too_short"), ("c7", "nas_eps.service_request_too_short")):
        with pytest.raises(DecodeError) as info:
            decode_nas(bytes.fromhex(pdu))
        assert info.value.reason == error


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=64), st.sampled_from([0x07, 0x17, 0x27, 0x37, 0x47, 0x02, 0x52, 0xC7]),
       st.integers(0x40, 0x6A) | st.integers(0xC0, 0xEB),  # around Tables 9.8.1 / 9.8.2
       st.sampled_from([None, True, False]))
def test_random_nas_only_raises_decode_errors(tail, first, msg_type, uplink):
    from decoders.records import MESSAGE_FIELDS
    for pdu in (tail, bytes((first, msg_type)) + tail, bytes((first,)) + tail[:5] + bytes((0x07, msg_type)) + tail):
        try:
            records = decode_nas(pdu, uplink)
        except DecodeError:
            continue
        for record in records:
            assert set(record) <= MESSAGE_FIELDS and record["proto"] == "nas-eps"
