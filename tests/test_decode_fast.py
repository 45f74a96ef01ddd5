"""The compiled S1AP and BSSAP paths (decoders.s1ap_fast, decoders.bssap_fast) against the Python decoders they mirror.

``decode_batch`` with ``DecodeState(fast=False)`` is the reference: every payload through decode_s1ap / decode_bssap.
The message tables, anomaly counters and SCCP connection sides must be identical with the fast paths on, on the
simulated city, every real capture, the hand-built cases (IPA/SCCPlite, M2UA and M3UA with 24-bit point codes
among them), and mutated payloads (bit flips, truncations, length octets, insertions), where a compiled pass must
either agree or hand the payload back. Each test also checks that the compiled pass did take a share of the
payloads, so that agreement is not the Python path agreeing with itself.
"""

import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capture.errors import DecodeError
from capture.payloads import PROTO_BSSAP, PROTO_S1AP, PayloadBatch
from capture.sccp import SCCP_CR, SCCP_DT1, SCCP_UDT
from capture.stack import read_payloads
from conftest import shared_pcaps
from decoders.bssap_fast import decode_bssap_batch
from decoders.bssmap import decode_bssap
from decoders.decode import DecodeState, decode_batch
from decoders.s1ap import decode_s1ap
from decoders.s1ap_fast import decode_s1ap_batch
from simulator import bssap_encode as bssap
from test_bssap import HAND_CASES, UNIT_CASES

CASES = sorted(Path(__file__).parent.glob("cases/*/input.pcap"))
CAPTURES = shared_pcaps() + CASES


def _compiled_counts(batch: PayloadBatch, proto: int) -> np.ndarray:
    """Records per payload of ``proto`` from its compiled pass alone (-1: left to Python)."""
    payloads = np.flatnonzero(batch.proto == proto)
    decode = decode_s1ap_batch if proto == PROTO_S1AP else decode_bssap_batch
    return decode(batch.data, batch.offset[payloads], batch.length[payloads])[0]


def _both(batches, proto=PROTO_S1AP):
    """(reference tables, fast tables, reference anomalies, fast anomalies, payloads of ``proto``, payloads of it the
    fast path took); the two runs must also end with the same SCCP connection sides."""
    ref, fast = DecodeState(fast=False), DecodeState(fast=True)
    pdus = taken = 0
    ref_tables, fast_tables = [], []
    for batch in batches:
        counts = _compiled_counts(batch, proto)
        pdus += len(counts)
        taken += int((counts >= 0).sum())
        ref_tables.append(decode_batch(batch, ref))
        fast_tables.append(decode_batch(batch, fast))
    assert fast.bsc_side == ref.bsc_side
    return ref_tables, fast_tables, ref.anomalies, fast.anomalies, pdus, taken


def _assert_equal(ref_tables, fast_tables):
    for ref, fast in zip(ref_tables, fast_tables):
        if not ref.equals(fast):
            for name in ref.column_names:
                theirs, ours = ref[name].to_pylist(), fast[name].to_pylist()
                rows = [i for i, (a, b) in enumerate(zip(theirs, ours)) if a != b]
                assert not rows and len(theirs) == len(ours), (
                    f"{name}: {len(theirs)} vs {len(ours)} rows, first differences "
                    f"{[(i, theirs[i], ours[i]) for i in rows[:3]]}")


@pytest.mark.parametrize("proto", [PROTO_S1AP, PROTO_BSSAP], ids=["s1ap", "bssap"])
def test_city_tables_equal(city, proto):
    ref_tables, fast_tables, ref_anomalies, fast_anomalies, pdus, taken = _both(read_payloads(city / "capture.pcap"),
                                                                                proto)
    _assert_equal(ref_tables, fast_tables)
    assert fast_anomalies == ref_anomalies
    assert pdus > 1000 and taken >= 0.99 * pdus  # the city's procedures are all ones the kernels mirror


@pytest.mark.parametrize("path", CAPTURES, ids=[f"{p.parent.name}/{p.name}" for p in CAPTURES])
def test_capture_tables_equal(path):
    batches = list(read_payloads(path))
    ref_tables, fast_tables, ref_anomalies, fast_anomalies, pdus, taken = _both(batches)
    _assert_equal(ref_tables, fast_tables)
    assert fast_anomalies == ref_anomalies
    assert taken <= pdus
    bssap_payloads = sum(int((b.proto == PROTO_BSSAP).sum()) for b in batches)
    if bssap_payloads:  # the A-interface captures (GSM_BCC and the transport cases): every payload compiled
        assert sum(int((_compiled_counts(b, PROTO_BSSAP) >= 0).sum()) for b in batches) == bssap_payloads


def test_real_captures_mostly_take_the_fast_path():
    """Across the real S1 captures, the Python path is left only Reset and the E-RAB lists whose items carry the
    message's cause."""
    pdus = taken = 0
    for path in shared_pcaps():
        *_, n, k = _both(read_payloads(path))
        pdus, taken = pdus + n, taken + k
    assert pdus > 1000 and taken >= 0.98 * pdus


def _batch(payloads: list[bytes], proto: int = PROTO_S1AP, context: list[tuple] | None = None) -> PayloadBatch:
    """A batch of ``payloads``; ``context``: per payload (src, dst, SCCP connection, SCCP type), else none."""
    n = len(payloads)
    lengths = np.array([len(p) for p in payloads], np.int32)
    src, dst, conn, sccp_type = (zip(*context) if context else ([0] * n, [0] * n, [-1] * n, [0] * n))
    return PayloadBatch(frame=np.arange(1, n + 1, dtype=np.uint32), ts=np.zeros(n),
                        proto=np.full(n, proto, np.uint8), assoc=np.zeros(n, np.int32),
                        src=np.array(src, np.int32), dst=np.array(dst, np.int32), conn=np.array(conn, np.int64),
                        sccp_type=np.array(sccp_type, np.uint8), offset=np.cumsum(lengths) - lengths.astype(np.int64),
                        length=lengths, data=b"".join(payloads))


# NAS-EPS vectors of tests/test_nas_eps.py the simulator does not write: attach reject, network detach with cause,
# EMM status, security mode complete with IMEISV, IMEI identity, ciphered and unknown messages, damage.
_NAS_HEX = ("0744077800040201d11b", "0745025302", "076065", "c703c340", "0756083a65390853468390",
            "075e2309335698300000003150", "0748030bf664f000800101c0de00015264f0002345", "074c0105f4c0de0001",
            "2711223344058a9bcdef", "4711223344050747aa", "2711223344053201c1", "27112233440507560899", "0747",
            "0f01", "075608991007", "17d915f8470307450b0bf664f000800101c0de0001", "0252c1", "075501")


def _synthetic() -> list[bytes]:
    """Every NAS message kind the kernel mirrors, plain and security-protected, in the S1AP messages that carry
    NAS both ways, and the S1AP procedures of the city with their IE variants (paging by IMSI and S-TMSI)."""
    from simulator import nas_encode as nas
    from simulator import s1ap_encode as s1
    guti, tai, roamer = ("460", "001", 0x8001, 2, 0xC0DE0001), ("460", "00", 0x1234), ("310", "410", 7)
    plain = [nas.attach_request(imsi="460001234567890"), nas.attach_request(guti=guti, attach_type="combined"),
             nas.attach_accept(guti, [tai, roamer]), nas.attach_complete(), nas.identity_request(),
             nas.identity_response(imsi="46000123456789"), nas.identity_response(imei="490154203237518"),
             nas.identity_response(imeisv="4901542032375181"),
             nas.tracking_area_update_request(guti, "periodic", last_tai=roamer),
             nas.tracking_area_update_accept(guti, [tai]), nas.tracking_area_update_accept(),
             nas.tracking_area_update_complete(), nas.detach_request_ue(guti=guti),
             nas.detach_request_ue(imsi="460001234567890", switch_off=False, detach_type="eps"), nas.detach_accept(),
             *(nas.extended_service_request(0xC0DE0001, service) for service in (1, 4, 5, 8, 11)),
             nas.guti_reallocation_command(guti, [tai]),
             *(bytes.fromhex(h) for h in _NAS_HEX)]
    messages = plain + [nas.protect(m, header, 5) for m in plain if m[0] == 0x07 for header in (1, 2, 3, 4)]
    messages.append(nas.service_request(1, 5, 0x1234))
    pdus = []
    for m in messages:
        pdus += [s1.initial_ue_message(1, m, "460", "00", 0x1234, 0x1234567, s_tmsi=(2, 0xC0DE0001)),
                 s1.uplink_nas_transport(7, 1, m, "460", "00", 0x1234, 0x1234567),
                 s1.downlink_nas_transport(7, 1, m), s1.initial_context_setup_request(7, 1, m)]
    return pdus + [
        s1.paging(5, s_tmsi=(2, 0xC0DE0001), tais=[tai]), s1.paging(5, imsi="460001234567890", tais=[tai, roamer]),
        s1.ue_context_release_request(7, 1), s1.ue_context_release_command(7, 1, ("nas", 2)),
        s1.ue_context_release_command(7, None, ("radioNetwork", 20)), s1.ue_context_release_complete(7, 1),
        s1.path_switch_request(1, 7, "460", "00", 0x1234, 0x1234567), s1.path_switch_request_acknowledge(7, 1),
        s1.handover_notify(7, 1, "310", "410", 7, 0xABCDEF1), s1.initial_context_setup_request(7, 1),
        s1.initial_context_setup_response(7, 1), s1.s1_setup_request(3, "enb", "460", "00", [1, 2]),
        s1.s1_setup_response("mme", "460", "00", 0x8001, 2)]


def test_synthetic_pdus_equal():
    pdus = _synthetic()
    ref_tables, fast_tables, ref_anomalies, fast_anomalies, n, taken = _both([_batch(pdus)])
    _assert_equal(ref_tables, fast_tables)
    assert fast_anomalies == ref_anomalies
    # Python is left the NAS the kernel does not name (unknown types and PDs), the damaged vectors (a UE-style detach
    # sent downlink reads as truncated) and the null-ciphered candidates that fail to decode (Python says "ciphered").
    assert taken >= 0.85 * n


def _mutate(rng: random.Random, pdu: bytes) -> bytes:
    """One to three edits: a bit flip, a truncation, a byte set to a length-determinant boundary, an insertion."""
    out = bytearray(pdu)
    for _ in range(rng.choice((1, 1, 2, 3))):
        kind = rng.random()
        if kind < 0.15:
            del out[rng.randrange(len(out) + 1):]
        elif not out:
            continue
        elif kind < 0.6:
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        elif kind < 0.8:
            i = rng.randrange(len(out))
            out[i] = rng.choice((0, 1, 2, 3, 0x7F, 0x80, 0x81, 0xBF, 0xC0, 0xFF, (out[i] + 1) & 0xFF,
                                 (out[i] - 1) & 0xFF))
        else:
            i = rng.randrange(len(out) + 1)
            out[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4)))
    return bytes(out)


def test_mutated_pdus_equal(city):
    """A seeded differential fuzz: the two paths give the same rows and anomalies, and nothing raises."""
    seeds = {}
    for path in [city / "capture.pcap", *shared_pcaps()]:
        for batch in read_payloads(path):
            for i in np.flatnonzero(batch.proto == PROTO_S1AP):
                seeds.setdefault(batch.payload(i))
    seeds = list(seeds) + _synthetic()
    rng = random.Random(5)
    mutated = [_mutate(rng, rng.choice(seeds)) for _ in range(40_000)]
    ref_tables, fast_tables, ref_anomalies, fast_anomalies, pdus, taken = _both([_batch(mutated)])
    _assert_equal(ref_tables, fast_tables)
    assert fast_anomalies == ref_anomalies
    assert taken > 0.25 * pdus
    # Mutants the fast path took must include damaged ones the Python decoder still decodes without error.
    batch = _batch(mutated)
    counts, _ = decode_s1ap_batch(batch.data, batch.offset, batch.length)
    known = set(seeds)
    taken_new = [p for p, c in zip(mutated, counts) if c >= 0 and p not in known]
    assert len(taken_new) > 1000
    assert all(not r.get("error") for p in taken_new[:2000] for r in decode_s1ap(p))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_synthetic()), st.integers(0, 1 << 16), st.binary(max_size=6), st.integers(0, 6))
def test_spliced_pdus_equal(pdu, at, inserted, removed):
    """Property: any splice into a well-formed PDU (bytes inserted, bytes removed) decodes alike on both paths."""
    at %= len(pdu) + 1
    spliced = pdu[:at] + inserted + pdu[at + removed:]
    ref_tables, fast_tables, ref_anomalies, fast_anomalies, *_ = _both([_batch([spliced])])
    _assert_equal(ref_tables, fast_tables)
    assert fast_anomalies == ref_anomalies


def test_left_to_python():
    """An IE with a handler the kernel does not mirror (Reset Type, here in a Handover Required) sends the PDU back;
    an IE without one (RRC Establishment Cause's id) is skipped; so are the PDUs decode_s1ap rejects (unknown
    procedure, too short)."""
    ids = bytes.fromhex("000000020001" "000800020002")  # MME-UE-S1AP-ID 1, eNB-UE-S1AP-ID 2

    def handover_required(ie_id: int) -> bytes:
        value = bytes.fromhex("000003") + ids + ie_id.to_bytes(2, "big") + bytes.fromhex("000100")
        return bytes((0, 0, 0, len(value))) + value

    pdus = [handover_required(92), handover_required(134), bytes.fromhex("00ff000300000000"), bytes.fromhex("000c00")]
    lengths = np.array([len(p) for p in pdus])
    counts, columns = decode_s1ap_batch(b"".join(pdus), np.cumsum(lengths) - lengths, lengths)
    assert list(counts) == [-1, 1, -1, -1]
    assert columns["msg"].to_pylist() == ["handover_required"]
    assert (columns["mme_ue_id"].to_pylist(), columns["enb_ue_id"].to_pylist()) == ([1], [2])
    for pdu in pdus[:2]:  # both decode cleanly in Python: the kernel's -1 is not about damage
        assert decode_s1ap(pdu) == [{"proto": "s1ap", "msg": "handover_required", "uplink": True, "mme_ue_id": 1,
                                     "enb_ue_id": 2}]


# -- BSSAP ----------------------------------------------------------------------------------------------------------

def _tlv(iei: int, value: bytes) -> bytes:
    return bytes((iei, len(value))) + value


def _lv(value: bytes) -> bytes:
    return bytes((len(value),)) + value


def _bssap_synthetic() -> list[bytes]:
    """What the kernel mirrors beyond the city's procedures: every DTAP body (MM causes, LU Accept with an IMSI or
    after a type 1 element, CM Re-establishment, CC causes with and without octet 3a, Setup numbers with * and #, TI
    extension, RP-DATA to the phone with its SMS-DELIVER sender, RP-ERROR, CP-ERROR), the names-only protocols, every
    Cell Identifier form, the two-octet cause, LCS cause, BSSLAP APDU, IMEI element; and what it leaves to Python
    (alphanumeric sender, unknown protocol, bad IMEI check digit, a short TMSI element)."""
    lai, imsi, cause = ("460", "00", 0x1102), "460002507894720", _lv(bytes.fromhex("e091"))
    mi = bssap.mobile_identity
    deliver = (bytes((0x04, 13, 0x91)) + bytes.fromhex("6831197254f6") + bytes(9) + bytes((1, 0x41)))
    alphanumeric = bytes((0x04, 10, 0xD0)) + bytes.fromhex("d4f29c0e") + bytes(10)
    sc = _lv(bssap.bcd_number("8613800571500"))
    l3 = [bssap.location_updating_reject(13), bytes((0x05, 0x22, 0x11)), bytes((0x05, 0x29, 0x06)),
          bytes((0x05, 0x31, 0x60)), bytes((0x05, 0x1C, 0x15)),
          bssap.location_updating_accept(lai) + _tlv(0x17, mi(imsi=imsi)),
          bssap.location_updating_accept(lai) + b"\xa1" + _tlv(0x17, mi(tmsi=7)),
          bssap.location_updating_request("periodic", lai, tmsi=9), bssap.location_updating_request("normal", lai,
                                                                                                     imsi=imsi),
          bytes((0x05, 0x28, 0x71)) + _lv(bytes.fromhex("5758a6")) + _lv(mi(imsi=imsi)),
          bssap.identity_response(imei="35693803564380"), bssap.identity_response(imeisv="3569380356438091"),
          bssap.identity_response(imei="356938035643801"),  # check digit wrong: Python's error
          bssap.cm_service_request("emergency", imsi=imsi), bssap.cm_service_request("ss", tmsi=3),
          bytes((0x05, 0x24, 0x73)) + _lv(bytes.fromhex("5758a6")) + _lv(mi(tmsi=3)),  # an unnamed service type
          bssap.imsi_detach_indication(imsi=imsi), bssap.tmsi_reallocation_command(lai, 0xFEDCBA98),
          bssap.paging_response(imsi=imsi), bytes((0x06, 0x32)), bytes((0x06, 0x32)) + _tlv(0x17, mi(imeisv="1" * 16)),
          bytes((0x06, 0x2B, 0x01)), bssap.setup_mt(1, "8613912345678"), bssap.setup_mo(2, "10086"),
          bytes((0x03, 0x05, 0x34, 0x01, 0x5E, 3, 0x81, 0x2A, 0xB1)), bytes((0x03, 0x05, 0x5E, 4, 0x01, 0x80, 0x21,
                                                                              0x43)),
          bytes((0x73, 0x88, 0x25)) + cause, bssap.release(1, 16), bssap.release_complete(1, 31),
          bytes((0x83, 0x08, 0x08, 2, 0xE0, 0x91)), bytes((0x03, 0x3D, 2, 0xE0, 0x9F, 0x01)),
          bytes((0x03, 0x13, 1, 0xA0)) + cause, bytes((0x03, 0x1A)) + cause, bytes((0x03, 0x05)),
          bssap.cp_data(0, bytes((1, 7)) + sc + b"\x00" + _lv(deliver), from_originator=False),
          bssap.cp_data(0, bytes((1, 7)) + sc + b"\x00" + _lv(alphanumeric), from_originator=False),
          bssap.cp_data(1, bytes((5, 7)) + _lv(b"\x2a")), bssap.cp_data(1, bytes((3, 7))),
          bssap.cp_data(1, bytes((7, 7))), bytes((0x09, 0x10, 0x51)),
          bytes((0x08, 0x01)), bytes((0x0B, 0x3B, 0x1C, 0)), bytes((0x01, 0x32)), bytes((0x00, 0x31)),
          bytes((0x0F, 0x01))]
    cells = ["00" "64f000" "1102" "050d", "01" "1102" "050d", "02" "050d", "04" "64f000" "1102", "05" "1102",
             "08" "64f000" "1102" "0001", "0a" "1102" "0001", "0b" "64f000" "1102" "0001", "03", "06", "09" "12",
             "00" "64f0", "00" "6af000" "1102" "050d"]
    bssmap = [bssap.bssmap(0x10, _tlv(0x05, bytes.fromhex(a)), _tlv(0x05, bytes.fromhex(b)))
              for a, b in zip(cells, reversed(cells))]
    bssmap += [bssap.bssmap(0x18, _tlv(0x1A, bytes.fromhex(c)), _tlv(0x05, bytes.fromhex("050001")))
               for c in cells[:6]]
    bssmap += [bssap.bssmap(0x18, _tlv(0x05, bytes.fromhex("050001")), _tlv(0x1A, bytes.fromhex(cells[0])))]
    bssmap += [bssap.bssmap(0x2D, bytes.fromhex(e)) for e in ("47 01 05 04 01 09", "04 01 09 47 01 05",
                                                                "49 00 05 01 02 09 12 34", "49 00 03 01 02 08",
                                                                "49 00 02 01 03", "04 02 f0 01", "04 01 f0",
                                                                "68 08 3a 65 39 08 53 46 83 90", "09 03 00 00 01")]
    bssmap += [bssap.complete_layer3("460", "00", 1, 2, m) for m in l3[:12]]
    bssmap += [bssap.bssmap(0x12, _tlv(0x17, bytes((0x06, 0x2B, 0x01)))),
               bssap.bssmap(0x57, _tlv(0x05, bytes.fromhex(cells[1])), *[_tlv(0x17, m) for m in l3[:4]]),
               bssap.bssmap(0x57, _tlv(0x05, bytes.fromhex(cells[1])), *[_tlv(0x20, m) for m in l3[:5]])]
    literals = [bytes.fromhex(c[1]) for c in UNIT_CASES] + [bytes.fromhex(c[0]) for c in HAND_CASES]
    return [bssap.dtap(m, dlci) for m in l3 for dlci in (0, 3)] + bssmap + literals


def _contexts(n: int, rng: random.Random) -> list[tuple]:
    """Transport context for synthetic payloads: a few connections (each opened by a CR), some connectionless."""
    out = []
    for _ in range(n):
        conn = rng.randrange(-1, 12)
        sccp_type = SCCP_UDT if conn < 0 else rng.choice((SCCP_CR, SCCP_DT1, SCCP_DT1, SCCP_DT1))
        src, dst = rng.sample(range(4), 2)
        out.append((src, dst, conn, sccp_type))
    return out


def test_synthetic_bssap_equal():
    payloads = _bssap_synthetic()
    rng = random.Random(7)
    batches = [_batch(payloads, PROTO_BSSAP, _contexts(len(payloads), rng)) for _ in range(3)]
    ref_tables, fast_tables, ref_anomalies, fast_anomalies, n, taken = _both(batches, PROTO_BSSAP)
    _assert_equal(ref_tables, fast_tables)
    assert fast_anomalies == ref_anomalies
    assert taken >= 0.85 * n
    counts = _compiled_counts(batches[0], PROTO_BSSAP)

    def clean(payload: bytes) -> bool:
        try:
            return not any(r.get("error") for r in decode_bssap(payload, None))
        except DecodeError:
            return False

    # Python is left the damaged and unknown payloads and, of the clean ones, only the alphanumeric SMS sender (with
    # DLCI 0 and 3) and the Complete Layer 3 with five layer 3 messages.
    assert len([p for p, c in zip(payloads, counts) if c < 0 and clean(p)]) == 3


def test_bssap_uplink_follows_the_connection():
    """A connection's BSC side comes from its CR in payload order, compiled or not: a DT1 before the CR has the
    direction its message implies; after a CR from the BSC (or a Handover Request, from the MSC) the connection's;
    a CR the kernel leaves to Python (here a Complete Layer 3 whose IMEI fails its check digit) sets it as well."""
    bad_imei = bssap.complete_layer3("460", "00", 1, 2, bssap.identity_response(imei="356938035643801"))
    assert _compiled_counts(_batch([bad_imei], PROTO_BSSAP), PROTO_BSSAP)[0] == -1
    dtap_connect = bssap.dtap(bssap.connect(1))                         # CC Connect: either side sends it
    handover = bytes.fromhex(HAND_CASES[-1][0])
    steps = [(dtap_connect, (0, 1, 1, SCCP_DT1)), (bssap.clear_complete(), (1, 0, 1, SCCP_DT1)),
             (bssap.complete_layer3("460", "00", 1, 2, bssap.paging_response(tmsi=5)), (0, 1, 1, SCCP_CR)),
             (dtap_connect, (0, 1, 1, SCCP_DT1)), (bssap.clear_complete(), (1, 0, 1, SCCP_DT1)),
             (bad_imei, (2, 1, 2, SCCP_CR)), (dtap_connect, (2, 1, 2, SCCP_DT1)), (dtap_connect, (1, 2, 2, SCCP_DT1)),
             (handover, (1, 3, 3, SCCP_CR)), (dtap_connect, (3, 1, 3, SCCP_DT1)), (bad_imei, (1, 3, 3, SCCP_DT1))]
    batch = _batch([p for p, _ in steps], PROTO_BSSAP, [c for _, c in steps])
    ref_tables, fast_tables, *_ = _both([batch], PROTO_BSSAP)
    _assert_equal(ref_tables, fast_tables)
    table = fast_tables[0]
    assert table["uplink"].to_pylist() == [None, True, True, True, True, False, True, True, True, False, False, True,
                                           False, True]
    assert table["msg"].to_pylist()[6:8] == ["complete_layer3_information", "identity_response"]


def test_mutated_bssap_equal(city):
    """A seeded differential fuzz over the city's BSSAP payloads in their transport context (so that mutated CRs,
    compiled or not, decide the direction of the DT1s after them) and the synthetic corpus."""
    seeds = [(batch.payload(i), (int(batch.src[i]), int(batch.dst[i]), int(batch.conn[i]), int(batch.sccp_type[i])))
             for batch in read_payloads(city / "capture.pcap") for i in np.flatnonzero(batch.proto == PROTO_BSSAP)]
    rng = random.Random(11)
    corpus = _bssap_synthetic()
    payloads, contexts = [], []
    for k in range(30_000):  # the city's order, again and again: repeated CRs of connections already known too
        payload, context = seeds[k % len(seeds)]
        if rng.random() < 0.1:
            payload = rng.choice(corpus)
        payloads.append(_mutate(rng, payload) if rng.random() < 0.6 else payload)
        contexts.append(context)
    batches = [_batch(payloads[i:i + 6000], PROTO_BSSAP, contexts[i:i + 6000]) for i in range(0, len(payloads), 6000)]
    ref_tables, fast_tables, ref_anomalies, fast_anomalies, n, taken = _both(batches, PROTO_BSSAP)
    _assert_equal(ref_tables, fast_tables)
    assert fast_anomalies == ref_anomalies
    assert taken > 0.4 * n
    # Mutants the fast path took must include damaged ones the Python decoder still decodes without error.
    known = {p for p, _ in seeds} | set(corpus)
    taken_new = [p for b in batches for p, c in zip((b.payload(i) for i in range(len(b))),
                                                    _compiled_counts(b, PROTO_BSSAP)) if c >= 0 and p not in known]
    assert len(taken_new) > 1000
    assert all(not r.get("error") for p in taken_new[:2000] for r in decode_bssap(p, None))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_bssap_synthetic()), st.integers(0, 1 << 16), st.binary(max_size=6), st.integers(0, 6))
def test_spliced_bssap_equal(payload, at, inserted, removed):
    """Property: any splice into a BSSAP payload decodes alike on both paths."""
    at %= len(payload) + 1
    spliced = payload[:at] + inserted + payload[at + removed:]
    ref_tables, fast_tables, ref_anomalies, fast_anomalies, *_ = _both([_batch([spliced], PROTO_BSSAP)], PROTO_BSSAP)
    _assert_equal(ref_tables, fast_tables)
    assert fast_anomalies == ref_anomalies
