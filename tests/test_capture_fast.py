"""The compiled fast path (capture.fastpath, ``read_payloads``) gives exactly what the per-frame stack gives.

The reference is ``read_payloads(fast=False)``: ``Stack.frame`` fed one packet at a time (what the live sources do,
and what ``read_payloads`` did before the fast path). Every PayloadBatch column, the payload bytes, endpoint and
association lists and the anomalies of every batch must be equal, on the simulated city, every shared capture,
hand-built frames that mix FAST and SLOW frames on one association, and damaged copies of the city. The record
indexers are checked against tshark's frame list.
"""

import random
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capture import sccp, stack
from capture.errors import Anomalies, DecodeError
from capture.fastpath import FAST, SKIP, SLOW, Scan, crc32s, sccp_fields
from capture.pcap import read_frames, read_packets
from capture.stack import Stack, bssap_shaped, read_payloads
from conftest import shared_pcaps
from packets import (data_chunk, ether, i_data_chunk, ipv4, ipv6, m3ua_data, sack_chunk, sccp_address, sccp_cc,
                     sccp_cr, sccp_dt1, sccp_it, sctp, sll2, udt, write_pcap, write_pcapng, xudt)
from simulator import s1ap_encode as s1ap
from test_capture import _pcap_records
from tshark_oracle import fields

CAPTURES = shared_pcaps()
SHORT_RUN = stack.SHORT_RUN


@pytest.fixture(autouse=True)
def every_run_compiled(monkeypatch):
    """Runs of FAST frames of any length through ``Stack._run``, so that hand-built captures of a few frames and
    the short runs between damaged frames exercise it (test_damaged_frames_are_counted_alike also uses the
    default)."""
    monkeypatch.setattr(stack, "SHORT_RUN", 1)
COLUMNS = ("frame", "ts", "proto", "assoc", "src", "dst", "conn", "sccp_type", "offset", "length")


def assert_same(path, batch_frames: int = 65536) -> list:
    fast = list(read_payloads(path, batch_frames=batch_frames))
    slow = list(read_payloads(path, batch_frames=batch_frames, fast=False))
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow):
        for name in COLUMNS:
            x, y = getattr(a, name), getattr(b, name)
            assert x.dtype == y.dtype and np.array_equal(x, y), name
        assert (a.data, a.endpoints, a.associations, a.anomalies) == (b.data, b.endpoints, b.associations,
                                                                      b.anomalies)
    return fast


@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_shared_captures_equal_the_per_frame_stack(path):
    assert_same(path)
    assert_same(path, batch_frames=7)


def test_simulated_city_equals_the_per_frame_stack(city):
    batches = assert_same(city / "capture.pcap", batch_frames=5000)
    assert sum(map(len, batches)) > 1000
    # The city is what a probe sees: almost every frame takes the compiled path.
    classes = np.concatenate([Scan(f).cls for f in read_frames(city / "capture.pcap", Anomalies())])
    assert (classes == FAST).mean() > 0.95


@pytest.mark.parametrize("path", [*CAPTURES, "city"], ids=[*(p.name for p in CAPTURES), "city"])
def test_record_index_equals_tshark_frames(path, city):
    path = city / "capture.pcap" if path == "city" else path
    got = [(ts, len(data)) for ts, _, data in read_packets(path, Anomalies())]
    wire = fields(path, ["frame.time_epoch", "frame.cap_len"])
    assert len(got) == len(wire)
    for (ts, length), number in zip(got, sorted(wire)):
        assert length == int(wire[number]["frame.cap_len"][0])
        assert ts == pytest.approx(float(wire[number]["frame.time_epoch"][0]), abs=1e-6)


def _s1ap(i: int) -> bytes:
    return s1ap.initial_ue_message(i, b"\x07\x41" + bytes((i,)) * 8, "460", "00", 0x1234, 0x00AB0000 + i)


def test_state_is_shared_between_fast_and_slow_frames(tmp_path):
    """Retransmissions across FAST and SLOW frames, a new association first seen in a SLOW frame, one SCCP
    connection whose CR is FAST and whose DT1 is SLOW: counted and tied as the per-frame stack does."""
    called = sccp_address(254)
    m3 = lambda payload, tsn, opc=1, dpc=2: data_chunk(tsn, m3ua_data(opc, dpc, payload), ppid=3)  # noqa: E731
    frames = [
        ether(ipv4(132, sctp(36412, 36412, [data_chunk(1, _s1ap(1))]))),                        # FAST
        ether(ipv4(132, sctp(36412, 36412, [data_chunk(1, _s1ap(1)), i_data_chunk(9, b"x", 1, 18)]))),  # SLOW dup
        ether(ipv4(132, sctp(36412, 36412, [data_chunk(2, _s1ap(2)), sack_chunk()]))),           # FAST
        ether(ipv4(132, sctp(36412, 36412, [data_chunk(2, _s1ap(2))]))),                        # FAST dup
        ether(ipv4(132, sctp(2905, 2905, [data_chunk(5, b"\0" * 3, ppid=3)]))),                 # SLOW: bad M3UA
        ether(ipv4(132, sctp(2905, 2905, [m3(sccp_cr(7, called, bytes((0, 1, 0x57))), 6)]))),    # FAST CR
        ether(ipv4(132, sctp(2905, 2905, [m3(sccp_cc(7, 9), 7, 2, 1),
                                          i_data_chunk(8, b"ab", 2, 18, flags=2)]))),           # SLOW CC
        ether(ipv4(132, sctp(2905, 2905, [m3(sccp_dt1(9, bytes((0, 2, 0x40, 1))), 9)]))),       # FAST DT1
        ether(ipv6(132, sctp(2905, 2905, [m3(udt(called, called, bytes((0, 1, 0x52))), 1)]))),  # FAST IPv6
        sll2(ipv4(132, sctp(36412, 36412, [data_chunk(3, _s1ap(3))]))),                         # not Ethernet
        ether(ipv4(132, sctp(36412, 36412, [data_chunk(4, _s1ap(4))])), tags=(0x8100, 0x88A8)),  # QinQ
        ether(ipv4(132, sctp(36412, 36412, [data_chunk(5, _s1ap(5))]), more=True)),             # IP fragment
        ether(b"\x00" * 30, ethertype=0x0806),                                                  # ARP
    ]
    path = tmp_path / "mixed.pcapng"
    write_pcapng(path, [(1_700_000_000.0 + i, f) for i, f in enumerate(frames[:9] + frames[10:])])
    batches = assert_same(path, batch_frames=3)
    total = Anomalies()
    for batch in batches:
        total.update(batch.anomalies)
    assert total["sctp.duplicate_tsn"] == 2 and total["m3ua.header_too_short"] == 1
    classes = Scan(next(read_frames(path, Anomalies()))).cls.tolist()
    assert classes == [FAST, SLOW, FAST, FAST, SLOW, FAST, SLOW, FAST, FAST, FAST, SLOW, SKIP]
    sll2_path = tmp_path / "sll2.pcap"
    write_pcap(sll2_path, [(1.0, frames[9])], linktype=276)
    assert Scan(next(read_frames(sll2_path, Anomalies()))).cls.tolist() == [FAST]
    assert len(assert_same(sll2_path)[0]) == 1


def test_sctp_fragments_in_fast_frames(tmp_path):
    """DATA fragments travel in FAST frames and are reassembled in order with the whole messages around them: E
    before B, streams interleaved, a retransmitted fragment, fragments of an S1AP and of an M3UA message (an SCCP
    CR completed by its last fragment opens the connection its DT1 uses), a new association first seen in a
    fragment, a message left incomplete past the 30 s reassembly timeout, and capture time going backwards."""
    called = sccp_address(254)
    cr = m3ua_data(1, 2, sccp_cr(7, called, bytes((0, 1, 0x57))))
    dt1 = m3ua_data(2, 1, sccp_dt1(7, bytes((0, 2, 0x40, 1))))
    big = _s1ap(9)
    a, b = big[:20], big[20:]
    m3 = lambda tsn, payload, flags=3: data_chunk(tsn, payload, ppid=3, flags=flags)  # noqa: E731
    s1 = lambda *chunks: ether(ipv4(132, sctp(36412, 36412, list(chunks))))  # noqa: E731
    a3 = lambda *chunks: ether(ipv4(132, sctp(2905, 2905, list(chunks))))  # noqa: E731
    frames = [
        (0.0, s1(data_chunk(1, _s1ap(1)))),
        (0.5, s1(data_chunk(3, b, flags=1, ssn=5))),                               # E before B
        (1.0, a3(m3(10, cr[:9], flags=2))),                                          # new association: a fragment
        (1.2, s1(data_chunk(2, a, flags=2, ssn=5), data_chunk(4, _s1ap(2), stream=2))),  # B: S1AP message whole
        (1.4, s1(data_chunk(2, a, flags=2, ssn=5))),                               # retransmitted fragment
        (2.0, a3(m3(11, cr[9:20], flags=0), data_chunk(20, b"lost", 3, ssn=3, flags=2))),  # middle; a B never completed
        (2.5, a3(m3(12, cr[20:], flags=1))),                                         # E: the CR, then its DT1
        (2.6, a3(m3(13, dt1))),
        (40.0, s1(data_chunk(5, _s1ap(3)))),                                         # sweeps the lost message
        (39.0, s1(data_chunk(6, a, flags=2, ssn=6))),                              # time goes back
        (70.0, s1(data_chunk(7, b, flags=1, ssn=6))),
        (71.0, a3(m3(14, dt1[:10], flags=2))),                                       # left open at the end
    ]
    path = tmp_path / "fragments.pcap"
    write_pcap(path, [(1_700_000_000.0 + t, f) for t, f in frames])
    assert Scan(next(read_frames(path, Anomalies()))).cls.tolist() == [FAST] * len(frames)
    for batch_frames in (100, 3):
        total = Anomalies()
        batches = assert_same(path, batch_frames=batch_frames)
        for batch in batches:
            total.update(batch.anomalies)
        # timed out: "lost" by the sweep at 40 s, the B of 39 s by the one at 70 s, two at the end
        assert total["sctp.duplicate_tsn"] == 1 and total["sctp.reassembly_timeout"] == 4
        assert sum(map(len, batches)) == 6  # 4 S1AP (one reassembled), the CR's and the DT1's BSSAP
        assert sum(int((x.conn >= 0).sum()) for x in batches) == 2


def test_damaged_frames_are_counted_alike(city, tmp_path, monkeypatch):
    """Random octets of 3000 records overwritten, others cut short (the record length kept consistent): both paths
    count the same damage, by reason, and emit the same payloads."""
    data = (city / "capture.pcap").read_bytes()
    records, rng = _pcap_records(data), random.Random(4)
    for i in rng.sample(range(len(records)), 3000):
        record = bytearray(records[i])
        if rng.random() < 0.3:
            cut = rng.randrange(16, len(record))
            record = record[:cut]
            struct.pack_into("<I", record, 8, cut - 16)
        for _ in range(rng.randrange(1, 4)):
            at = rng.randrange(16, len(record)) if len(record) > 16 else None
            if at is not None:
                record[at] = rng.randrange(256)
        records[i] = bytes(record)
    damaged = tmp_path / "damaged.pcap"
    damaged.write_bytes(data[:24] + b"".join(records))
    monkeypatch.setattr(stack, "SHORT_RUN", SHORT_RUN)
    assert_same(damaged, batch_frames=4096)
    monkeypatch.setattr(stack, "SHORT_RUN", 1)
    batches = assert_same(damaged, batch_frames=4096)
    counted = Anomalies()
    for batch in batches:
        counted.update(batch.anomalies)
    assert sum(counted.values()) > 100 and len(counted) > 5


def test_cut_and_impossible_records_end_the_file_alike(city, tmp_path):
    data = (city / "capture.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:len(data) // 3 + 5])
    assert assert_same(cut, batch_frames=1000)[-1].anomalies["pcap.truncated_record"] == 1
    records = _pcap_records(data)
    bad = bytearray(records[500])
    struct.pack_into("<I", bad, 8, 1 << 20)
    broken = tmp_path / "bad_record.pcap"
    broken.write_bytes(data[:24] + b"".join(records[:500]) + bytes(bad) + b"".join(records[501:600]))
    batches = assert_same(broken, batch_frames=64)
    assert sum(b.anomalies["pcap.bad_record"] for b in batches) == 1
    assert max(int(b.frame.max()) for b in batches if len(b)) <= 500


# -- SCCP in the compiled pass ----------------------------------------------------------------------------------------

def _rlsd(dst_ref: int, src_ref: int, data: bytes = b"") -> bytes:
    """Q.713 §4.4 Released, cause 0; the user data in the optional part when given."""
    optional = (bytes((1, 0x0F, len(data))) + data + b"\0") if data else b"\0"
    return bytes((0x04,)) + dst_ref.to_bytes(3, "little") + src_ref.to_bytes(3, "little") + b"\0" + optional


def _cref(dst_ref: int) -> bytes:
    return bytes((0x03,)) + dst_ref.to_bytes(3, "little") + b"\x00\x00"  # §4.4 Connection Refused, no optional part


def _rlc(dst_ref: int, src_ref: int) -> bytes:
    return bytes((0x05,)) + dst_ref.to_bytes(3, "little") + src_ref.to_bytes(3, "little")


def _sccp_conversation() -> list[tuple[int, bytes]]:
    """(direction, message): 0 BSC to MSC, 1 back. Two connections opened (CR 0x10, CR 0x11), the first confirmed
    (CC: the MSC's reference 0x20), used both ways (a DT1 M-bit pair too), tested, released; the second refused;
    a CR addressed by global title, UDTs, a DT1 of a connection never seen, the first reference again after its
    release; then what the compiled pass hands back to capture.sccp: XUDT segments, LUDT and damage."""
    gt = bytes((0x12, 0xFE, 0x00, 0x11, 0x04)) + bytes.fromhex("6483010000")  # GTI 4, SSN 254, BCD digits
    pc = sccp_address(254, 0x101)
    dtap, bssmap = bytes((1, 0x80, 3, 5, 0x24, 0x11)), bytes((0, 4, 0x40, 1, 2, 3))
    return [(0, sccp_cr(0x10, sccp_address(254), bytes((0, 1, 0x57)))), (0, sccp_cr(0x11, pc, dtap)),
            (1, sccp_cc(0x10, 0x20)), (0, sccp_dt1(0x20, dtap)), (1, sccp_dt1(0x10, bssmap)),
            (1, sccp_dt1(0x10, dtap[:3], more=True)), (1, sccp_dt1(0x10, dtap[3:])), (0, sccp_it(0x20, 0x10)),
            (0, _rlsd(0x20, 0x10, bssmap)), (1, _rlc(0x10, 0x20)), (1, _cref(0x11)), (0, sccp_cr(0x12, gt, dtap)),
            (0, udt(sccp_address(254), pc, bssmap)), (1, udt(sccp_address(250), sccp_address(7), dtap)),
            (0, udt(gt, sccp_address(0), bssmap)), (1, sccp_dt1(0x77, bssmap)), (0, sccp_dt1(0x20, dtap)),
            (0, xudt(pc, pc, b"ab", (True, 1, 5))), (0, xudt(pc, pc, b"cd", (False, 0, 5))), (0, bytes((0x13, 0, 0))),
            (0, sccp_dt1(0x20, dtap)[:-2]), (0, udt(bytes((0x52,)), pc, bssmap)), (0, sccp_cr(0x13, b"\x7c\x01", dtap))]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([m for _, m in _sccp_conversation()]),
                          st.lists(st.tuples(st.integers(0, 63), st.integers(0, 255)), max_size=3),
                          st.one_of(st.none(), st.integers(0, 63))), min_size=1, max_size=8),
       st.sampled_from([2, 3]))
def test_sccp_fields_equal_sccp_parse(messages, pc_octets):
    """The kernel's reading of (mutated, cut) SCCP messages is capture.sccp.parse's, and it declines exactly the
    messages parse raises for or of a type it leaves to Python."""
    buf, starts, lengths = bytearray(), [], []
    for message, flips, cut in messages:
        message = bytearray(message)
        for at, value in flips:
            message[at % len(message)] = value
        message = message[:cut] if cut is not None else message
        starts.append(len(buf))
        lengths.append(len(message))
        buf += message
    n = len(starts)
    ok, kind, src_ref, dst_ref, ssn, called_ssn, data, data_len, more, shaped = sccp_fields(
        np.frombuffer(bytes(buf), np.uint8), np.array(starts, np.int64), np.array(lengths, np.int64),
        np.full(n, pc_octets, np.int64))
    for i in range(n):
        view = memoryview(bytes(buf))[starts[i]:starts[i] + lengths[i]]
        try:
            msg = sccp.parse(view, pc_octets)
        except DecodeError:
            assert not ok[i]
            continue
        assert ok[i] == (msg.type in (1, 2, 3, 4, 5, 6, 9, 16))
        if ok[i]:
            payload = msg.data.tobytes() if msg.data is not None else None
            assert (kind[i], src_ref[i], dst_ref[i], ssn[i], called_ssn[i], bool(more[i])) == (
                msg.type, msg.src_ref, msg.dst_ref, sccp.subsystem(msg), -1 if msg.called is None else msg.called.ssn,
                msg.more)
            got = bytes(buf[data[i]:data[i] + data_len[i]]) if data[i] >= 0 else None
            assert got == payload and shaped[i] == (payload is not None and bssap_shaped(payload))


def test_sccp_connections_of_fast_frames(tmp_path, monkeypatch):
    """An A-interface conversation in FAST frames, one message a frame on one association: the compiled pass takes
    every well-formed message of a type it reads once the association's point codes are known, hands the rest to
    capture.sccp, ties the messages to connections as the conversation says and equals the per-frame stack."""
    frames = [ether(ipv4(132, sctp(2905, 2905, [data_chunk(i + 1, m3ua_data(1 + d, 2 - d, m), ppid=3)])))
              for i, (d, m) in enumerate(_sccp_conversation())]
    path = tmp_path / "conversation.pcap"
    write_pcap(path, [(1_700_000_000.0 + i, f) for i, f in enumerate(frames)])
    taken = []
    track = stack._SccpRead.track
    monkeypatch.setattr(stack._SccpRead, "track", lambda self, owner, lo, hi: (
        taken.extend(self.frame[lo:hi].tolist()), track(self, owner, lo, hi))[-1])
    for standard in ("itu", "auto"):
        taken.clear()
        fast = [b for b in read_payloads(path, standard) if len(b)]
        slow = [b for b in read_payloads(path, standard, fast=False) if len(b)]
        assert len(fast) == len(slow) == 1
        for name in COLUMNS:
            assert np.array_equal(getattr(fast[0], name), getattr(slow[0], name)), name
        assert (fast[0].data, fast[0].anomalies) == (slow[0].data, slow[0].anomalies)
        # frame 1 makes the flow and its point codes (auto mode: frame 2 decides the layout, the first address
        # with a point code); 18-23 are XUDT segments, LUDT and damage
        assert sorted(taken) == list(range(2 if standard == "itu" else 3, 18))
    batch = fast[0]
    conns = dict(zip(batch.frame.tolist(), batch.conn.tolist()))
    assert sorted(conns) == [1, 2, 4, 5, 7, 9, 12, 13, 14, 15, 16, 17, 19]  # 6 is in 7, 18 in 19; the rest: no data
    assert conns[1] == conns[4] == conns[5] == conns[7] == conns[9] and conns[13] == conns[14] == conns[15] == -1
    assert conns[1] < conns[2] < conns[12] < conns[16] < conns[17]
    assert batch.payload(list(conns).index(7)) == bytes((1, 0x80, 3, 5, 0x24, 0x11))
    assert batch.payload(len(batch) - 1) == b"abcd" and batch.proto.tolist() == [2] * 8 + [3] + [2] * 4
    assert batch.anomalies == {"sccp.ludt_unsupported": 1, "sccp.pointer_out_of_range": 1,
                               "sccp.address_too_short": 1, "sccp.reserved_gti": 1}


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 2000)), max_size=10))
def test_chunk_signatures_are_zlib_crc32(data, spans):
    """The fast path's retransmission signatures are the CRC-32 capture.sctp computes with zlib, chunk by chunk."""
    spans = [(min(a, len(data)), min(n, len(data) - min(a, len(data)))) for a, n in spans]
    starts, lengths = (np.array([s[i] for s in spans], np.int64) for i in (0, 1))
    assert crc32s(np.frombuffer(data, np.uint8), starts, lengths).tolist() == [
        zlib.crc32(data[a:a + n]) for a, n in spans]
