"""The compiled S1AP path (decoders.s1ap_fast) against the Python decoders it mirrors.

``decode_batch`` with ``DecodeState(fast=False)`` is the reference: every payload through decode_s1ap. The
message tables and anomaly counters must be identical with the fast path on, on the simulated city, every real
capture, the hand-built cases, and mutated S1AP payloads (bit flips, truncations, length octets, insertions),
where the compiled pass must either agree or hand the PDU back. Each test also checks that the compiled pass did
take a share of the PDUs, so that agreement is not the Python path agreeing with itself.
"""

import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capture.payloads import PROTO_S1AP, PayloadBatch
from capture.stack import read_payloads
from conftest import shared_pcaps
from decoders.decode import DecodeState, decode_batch
from decoders.s1ap import decode_s1ap
from decoders.s1ap_fast import decode_s1ap_batch

CASES = sorted(Path(__file__).parent.glob("cases/*/input.pcap"))
CAPTURES = shared_pcaps() + CASES


def _both(batches):
    """(reference tables, fast tables, reference anomalies, fast anomalies, S1AP PDUs, PDUs the fast path took)."""
    ref, fast = DecodeState(fast=False), DecodeState(fast=True)
    pdus = taken = 0
    ref_tables, fast_tables = [], []
    for batch in batches:
        s1ap = np.flatnonzero(batch.proto == PROTO_S1AP)
        counts, _ = decode_s1ap_batch(batch.data, batch.offset[s1ap], batch.length[s1ap])
        pdus += len(s1ap)
        taken += int((counts >= 0).sum())
        ref_tables.append(decode_batch(batch, ref))
        fast_tables.append(decode_batch(batch, fast))
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


def test_city_tables_equal(city):
    ref_tables, fast_tables, ref_anomalies, fast_anomalies, pdus, taken = _both(read_payloads(city / "capture.pcap"))
    _assert_equal(ref_tables, fast_tables)
    assert fast_anomalies == ref_anomalies
    assert pdus > 1000 and taken >= 0.99 * pdus  # the city's procedures are all ones the kernel mirrors


@pytest.mark.parametrize("path", CAPTURES, ids=[f"{p.parent.name}/{p.name}" for p in CAPTURES])
def test_capture_tables_equal(path):
    ref_tables, fast_tables, ref_anomalies, fast_anomalies, pdus, taken = _both(read_payloads(path))
    _assert_equal(ref_tables, fast_tables)
    assert fast_anomalies == ref_anomalies
    assert taken <= pdus


def test_real_captures_mostly_take_the_fast_path():
    """Across the real S1 captures, the Python path is left only Reset and the E-RAB lists whose items carry the
    message's cause."""
    pdus = taken = 0
    for path in shared_pcaps():
        *_, n, k = _both(read_payloads(path))
        pdus, taken = pdus + n, taken + k
    assert pdus > 1000 and taken >= 0.98 * pdus


def _batch(payloads: list[bytes]) -> PayloadBatch:
    n = len(payloads)
    lengths = np.array([len(p) for p in payloads], np.int32)
    zeros = np.zeros(n, np.int32)
    return PayloadBatch(frame=np.arange(1, n + 1, dtype=np.uint32), ts=np.zeros(n),
                        proto=np.full(n, PROTO_S1AP, np.uint8),
                        assoc=zeros, src=zeros, dst=zeros, conn=np.full(n, -1, np.int64),
                        sccp_type=np.zeros(n, np.uint8), offset=np.cumsum(lengths) - lengths.astype(np.int64),
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
             nas.extended_service_request(0xC0DE0001, 1), nas.guti_reallocation_command(guti, [tai]),
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
