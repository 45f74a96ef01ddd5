"""The compiled fast path (capture.fastpath, ``read_payloads``) gives exactly what the per-frame stack gives.

The reference is ``read_payloads(fast=False)``: ``Stack.frame`` fed one packet at a time (what the live sources do,
and what ``read_payloads`` did before the fast path). Every PayloadBatch column, the payload bytes, endpoint and
association lists and the anomalies of every batch must be equal, on the simulated city, every shared capture,
hand-built frames that mix FAST and SLOW frames on one association, and damaged copies of the city. The record
indexers are checked against tshark's frame list.
"""

import random
import struct

import numpy as np
import pytest

from capture.errors import Anomalies
from capture.fastpath import FAST, SKIP, SLOW, Scan
from capture.pcap import read_frames, read_packets
from capture.stack import read_payloads
from conftest import shared_pcaps
from packets import (data_chunk, ether, i_data_chunk, ipv4, ipv6, m3ua_data, sack_chunk, sccp_address, sccp_cc,
                     sccp_cr, sccp_dt1, sctp, sll2, udt, write_pcap, write_pcapng)
from simulator import s1ap_encode as s1ap
from test_capture import _pcap_records
from tshark_oracle import fields

CAPTURES = shared_pcaps()
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
        ether(ipv4(132, sctp(2905, 2905, [m3(sccp_cc(7, 9), 7, 2, 1), data_chunk(8, b"ab", flags=2)]))),  # SLOW CC
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


def test_damaged_frames_are_counted_alike(city, tmp_path):
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
