"""The transport stack (capture/) against tshark, frame by frame, and its layers on hand-built packets.

Differential: for every real capture in ../shared/pcaps and the simulator's, the S1AP and BSSAP payload bytes
``read_payloads`` emits per frame equal the bytes tshark assigns to its ``s1ap`` / ``bssap`` layers (reassembled
SCTP messages and bundles included, NGAP, RANAP, MAP and A-bis excluded). Unit tests build packets by hand (or
with simulator/pcap.py) to reach what the real captures do not: pcap variants, link types, IP fragments, SCTP
out-of-order fragments and retransmissions, IPA framing across TCP segments, SCCP address forms, MTP3 layouts.
"""

import functools
import gzip
import json
import re
import struct
import subprocess
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capture import m2ua, m3ua, sccp
from capture import mtp2 as mtp2_layer
from capture.errors import Anomalies, DecodeError, Malformed, Truncated, Unsupported
from capture.ip import IpLayer
from capture.ipa import IpaLayer
from capture.link import ip_start
from capture.mtp3 import MtpStandards, point_code, routing_label
from capture.payloads import PROTO_BSSAP, PROTO_BSSAP_LE, PROTO_S1AP
from capture.sccp import SCCP_CR, SCCP_DT1, SCCP_UDT
from capture.pcap import read_packets
from capture.sctp import SctpLayer
from capture.stack import Stack, bssap_shaped, read_payloads
from conftest import SHARED_PCAPS, shared_pcaps
from decoders.records import timestamps
from simulator import bssap_encode as bssap
from simulator import s1ap_encode as s1ap
from packets import (A, B, data_chunk, epb, ether, i_data_chunk, idb, ipa, ipv4, ipv6, msu_itu, mtp2, mtp2_phdr, pb,
                     sack_chunk, sccp_address, sctp, shb, sll, sll2, spb, tcp, udt, write_pcap, write_pcapng, xudt)
from tshark_oracle import FILE_OPTIONS, TSHARK, fields, raw_layers, require_tshark

CAPTURES = shared_pcaps()
REASSEMBLED = ("magma__nsa_connection.pcap", "open5gs__nonipsec_reg.pcapng", "uecapabilityparser__sctpS1apNgap.pcap")
BUNDLED = ("open5gs__srsenb.pcapng", "open5gs__volte.pcapng", "open5gs__ipsec_reg.pcapng",
           "magma__gx_gy_combined_04_210505_133027-1.pcapng")
NEGATIVES = ("wiresharkwiki__3gpp_mc.cap", "wiresharkwiki__iPhone_A_bis_card.pcap", "wiresharkwiki__3G-2G-HO.pcap")


def shared(name: str) -> Path:
    return SHARED_PCAPS / name


@functools.lru_cache(maxsize=None)
def signaling_layers(path, options: tuple[str, ...] = ()) -> dict[str, dict[int, list[bytes]]]:
    """``raw_layers(path, "s1ap")`` and ``raw_layers(path, "bssap")`` from one tshark run instead of two."""
    require_tshark()
    options = [arg for opt in (*FILE_OPTIONS.get(Path(path).name, ()), *options) for arg in ("-o", opt)]
    cmd = [TSHARK, "-n", "-r", str(path), *options, "-T", "json", "-x", "--no-duplicate-keys", "-J",
           "frame s1ap bssap", "-Y", "s1ap or bssap"]
    packets = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout)
    out = {"s1ap": {}, "bssap": {}}
    for packet in packets:
        layers = packet["_source"]["layers"]
        for layer, found in out.items():
            raw = layers.get(f"{layer}_raw")
            if raw is not None:  # one PDU: [hex, offset, length, mask, type]; several: a list of those
                found[int(layers["frame"]["frame.number"])] = [bytes.fromhex(e[0]) for e in
                                                                (raw if isinstance(raw[0], list) else [raw])]
    return out


@pytest.fixture(scope="module")
def oracle():
    """tshark's S1AP and BSSAP layers of every shared capture, computed two files at a time."""
    with ThreadPoolExecutor(2) as pool:
        return dict(zip(CAPTURES, pool.map(signaling_layers, CAPTURES)))


@functools.lru_cache(maxsize=None)
def ours(path, mtp3_standard: str = "auto") -> dict:
    """Our payloads per protocol and frame, every row, and the summed anomalies."""
    out = {"s1ap": defaultdict(list), "bssap": defaultdict(list), "rows": [], "anomalies": Anomalies()}
    for batch in read_payloads(path, mtp3_standard=mtp3_standard):
        out["anomalies"].update(batch.anomalies)
        for i in range(len(batch)):
            proto, frame = int(batch.proto[i]), int(batch.frame[i])
            out["s1ap" if proto == PROTO_S1AP else "bssap"][frame].append(batch.payload(i))
            out["rows"].append({"frame": frame, "ts": float(batch.ts[i]), "proto": proto,
                                "assoc": batch.associations[batch.assoc[i]], "src": batch.endpoints[batch.src[i]],
                                "dst": batch.endpoints[batch.dst[i]], "conn": int(batch.conn[i]),
                                "sccp_type": int(batch.sccp_type[i]), "payload": batch.payload(i)})
    return out


# -- differential on the real captures --------------------------------------------------------------------------------

@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_s1ap_payloads_equal_tshark(oracle, path):
    assert dict(ours(path)["s1ap"]) == oracle[path]["s1ap"]


@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_bssap_payloads_equal_tshark(oracle, path):
    assert dict(ours(path)["bssap"]) == oracle[path]["bssap"]


@pytest.mark.parametrize("name", REASSEMBLED)
def test_reassembled_s1ap_messages_are_emitted_at_the_completing_frame(name):
    path = shared(name)
    reassembled = fields(path, ["sctp.fragment", "frame.cap_len"], "s1ap and sctp.fragment")
    assert reassembled
    for frame, row in reassembled.items():
        fragments = [int(f) for f in row["sctp.fragment"]]
        assert frame == max(fragments) and len(fragments) >= 2
        # a payload longer than the frame that carries it can only be the reassembled message
        assert max(map(len, ours(path)["s1ap"][frame])) > int(row["frame.cap_len"][0])
    if name == "open5gs__nonipsec_reg.pcapng":
        # tshark lists fragments in TSN order, B first; here B (frame 33) came after E (frame 30)
        assert any(int(r["sctp.fragment"][0]) > int(r["sctp.fragment"][-1]) for r in reassembled.values())


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_pdus_give_several_payloads_of_one_frame(oracle, name):
    bundles = {f: p for f, p in ours(shared(name))["s1ap"].items() if len(p) > 1}
    assert bundles and bundles == {f: p for f, p in oracle[shared(name)]["s1ap"].items() if len(p) > 1}


def test_ngap_is_not_s1ap():
    path = shared("uecapabilityparser__sctpS1apNgap.pcap")
    ngap = fields(path, ["sctp.data_payload_proto_id"], "ngap")
    assert len(ngap) == 17
    assert not set(ngap) & set(ours(path)["s1ap"])


@pytest.mark.parametrize("name", NEGATIVES)
def test_sccp_that_is_not_a_interface_bssap_gives_no_payload(name):
    assert not ours(shared(name))["rows"]


def test_m2ua_dt1_without_its_cr_is_bssap_by_shape_with_mtp3_point_codes():
    path = shared("wiresharkwiki__GSM_BCC.pcap")
    rows = ours(path)["rows"]
    wire = fields(path, ["mtp3.opc", "mtp3.dpc", "sccp.dlr"])
    assert len(rows) == 4
    for row in rows:
        assert row["proto"] == PROTO_BSSAP and row["sccp_type"] == SCCP_DT1 and row["conn"] >= 0
        assert _pc(row["src"]) == int(wire[row["frame"]]["mtp3.opc"][0])
        assert _pc(row["dst"]) == int(wire[row["frame"]]["mtp3.dpc"][0])
    # One connection per destination local reference: the two directions' references are unrelated here.
    by_ref = defaultdict(set)
    for row in rows:
        by_ref[(row["dst"], wire[row["frame"]]["sccp.dlr"][0])].add(row["conn"])
    assert all(len(c) == 1 for c in by_ref.values()) and len({c for cs in by_ref.values() for c in cs}) == len(by_ref)


def test_lb_interface_is_bssap_le_on_one_connection():
    path = shared("wiresharkwiki__SMLC-Calflow---PLRS-without-TA.pcap")
    rows = ours(path)["rows"]
    assert [r["proto"] for r in rows] == [PROTO_BSSAP_LE] * 4
    assert rows[0]["sccp_type"] == SCCP_CR and {r["sccp_type"] for r in rows[1:]} == {SCCP_DT1}
    assert len({r["conn"] for r in rows}) == 1


def test_chinese_mtp3_is_detected_per_link():
    path = shared("wiresharkwiki__3G-2G-HO.pcap")
    sccp_errors = {std: {k for k in ours(path, std)["anomalies"] if k.startswith("sccp.")}
                   for std in ("auto", "chinese", "itu")}
    assert sccp_errors["auto"] == sccp_errors["chinese"] == set()
    assert "sccp.unknown_message_type" in sccp_errors["itu"]
    # IPv4 total lengths and M2UA lengths beyond the captured bytes are tolerated: the parameters are complete.
    assert ours(path)["anomalies"] == {"sctp.duplicate_tsn": 2}


def test_chinese_and_itu_routing_labels_equal_tshark():
    for name, standard in (("wiresharkwiki__3G-2G-HO.pcap", "chinese"), ("wiresharkwiki__GSM_BCC.pcap", "itu")):
        path = shared(name)
        wire = fields(path, ["mtp3.opc", "mtp3.dpc", "mtp3.sls", "mtp3.service_indicator"])
        msus = _m2ua_msus(path)
        assert len(msus) == len(wire)
        for frame, msu in msus.items():
            label = routing_label(msu, standard)
            got = (label.opc, label.dpc, label.sls, label.si)
            assert got == tuple(int(wire[frame][k][0], 0) for k in ("mtp3.opc", "mtp3.dpc", "mtp3.sls",
                                                                   "mtp3.service_indicator")), frame


def test_retransmitted_chunks_are_dropped_where_tshark_shows_them_twice():
    """3G-2G-HO's sender repeats TSN 0 for every chunk; two frames repeat the previous chunk byte for byte (true
    retransmissions: tshark dissects them again, we count and drop them). The other 100 have new content."""
    path = shared("wiresharkwiki__3G-2G-HO.pcap")
    last, repeats = {}, []
    for frame, (_, _, data) in enumerate(read_packets(path, Anomalies()), 1):
        packet = bytes(data[14 + (data[14] & 0x0F) * 4:])  # Ethernet, IPv4 options: the SCTP packet
        key, tsn, chunk = packet[:8], packet[16:20], packet[12:]
        if last.get((key, tsn)) == chunk:
            repeats.append(frame)
        last[(key, tsn)] = chunk
    assert len(repeats) == 2 and ours(path)["anomalies"]["sctp.duplicate_tsn"] == len(repeats)
    assert set(repeats) <= set(fields(path, ["m2ua.message_class"], "m2ua"))  # tshark does show them again


def test_timestamps_equal_tshark():
    for name in ("open5gs__testepc.pcapng", "magma__nsa_connection.pcap", "wiresharkwiki__GSM_BCC.pcap"):
        wire = fields(shared(name), ["frame.time_epoch"])
        for row in ours(shared(name))["rows"]:
            assert row["ts"] == pytest.approx(float(wire[row["frame"]]["frame.time_epoch"][0]), abs=1e-6)


# -- differential on the simulator's capture ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def simulated(city):
    return city / "capture.pcap"


def test_simulated_capture_equals_tshark(simulated):
    got = ours(simulated)
    assert len(got["s1ap"]) > 500 and len(got["bssap"]) > 500
    assert dict(got["s1ap"]) == signaling_layers(simulated)["s1ap"]
    assert dict(got["bssap"]) == signaling_layers(simulated)["bssap"]
    assert not got["anomalies"]


def test_simulated_transport_context_equals_tshark(unpacked_city):
    """Frame by frame, so on the city with one message per packet."""
    simulated = unpacked_city / "capture.pcap"
    wire = fields(simulated, ["frame.time_epoch", "ip.src", "ip.dst", "sctp.srcport", "sctp.dstport",
                              "m3ua.protocol_data_opc", "m3ua.protocol_data_dpc", "sccp.message_type",
                              "sccp.assoc.id"], "s1ap or bssap", options=("sccp.trace_sccp:TRUE",))
    connections = defaultdict(set)
    for row in ours(simulated)["rows"]:
        w = wire[row["frame"]]
        assert row["ts"] == pytest.approx(float(w["frame.time_epoch"][0]), abs=1e-6)
        ends = (f"{w['ip.src'][0]}:{w['sctp.srcport'][0]}", f"{w['ip.dst'][0]}:{w['sctp.dstport'][0]}")
        assert row["assoc"] in ("-".join(ends), "-".join(ends[::-1]))
        if row["proto"] == PROTO_S1AP:
            assert (row["src"], row["dst"], row["conn"], row["sccp_type"]) == (*ends, -1, 0)
            continue
        assert (_pc(row["src"]), _pc(row["dst"])) == (int(w["m3ua.protocol_data_opc"][0]),
                                                      int(w["m3ua.protocol_data_dpc"][0]))
        assert row["sccp_type"] == int(w["sccp.message_type"][0], 16)
        if row["sccp_type"] == SCCP_UDT:
            assert row["conn"] == -1
        else:
            connections[row["conn"]].add(w["sccp.assoc.id"][0])
    # Our connection ids partition the messages exactly as Wireshark's SCCP associations do.
    assert connections and all(len(ids) == 1 for ids in connections.values())
    assert len({i for ids in connections.values() for i in ids}) == len(connections)


def test_truncated_capture_yields_the_complete_records_and_counts_the_cut(simulated, tmp_path):
    data = simulated.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:len(data) // 2 + 7])
    batches = list(read_payloads(cut, batch_frames=500))
    assert batches[-1].anomalies["pcap.truncated_record"] == 1
    assert sum(b.anomalies["pcap.truncated_record"] for b in batches) == 1
    complete = len(list(read_packets(cut, Anomalies())))
    whole = [r for r in ours(simulated)["rows"] if r["frame"] <= complete]
    assert [p for b in batches for p in map(b.payload, range(len(b)))] == [r["payload"] for r in whole]


def test_rotated_directory_reads_as_one_stream(simulated, tmp_path):
    records = _pcap_records(simulated.read_bytes())
    header, half = simulated.read_bytes()[:24], len(records) // 2
    rotated = tmp_path / "rotated"
    rotated.mkdir()
    (rotated / "capture.pcap2").write_bytes(header + b"".join(records[half:]))
    (rotated / "capture.pcap1").write_bytes(header + b"".join(records[:half]))
    got = [(int(b.frame[i]), b.payload(i)) for b in read_payloads(rotated) for i in range(len(b))]
    assert got == [(r["frame"], r["payload"]) for r in ours(simulated)["rows"]]
    assert any(frame > half for frame, _ in got)


def test_batches_split_by_frames_keep_indices_stable(simulated):
    batches = list(read_payloads(simulated, batch_frames=400))
    assert len(batches) > 5
    assert all(b.frame.max() - b.frame.min() < 400 for b in batches if len(b))
    rows = [(int(b.frame[i]), b.endpoints[b.src[i]], b.associations[b.assoc[i]], int(b.conn[i]), b.payload(i))
            for b in batches for i in range(len(b))]
    assert rows == [(r["frame"], r["src"], r["assoc"], r["conn"], r["payload"]) for r in ours(simulated)["rows"]]
    assert batches[-1].endpoints[:len(batches[0].endpoints)] == batches[0].endpoints


# -- capture files -------------------------------------------------------------------------------------------------

def test_not_a_capture_names_the_file(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("this is not a capture\n" * 20)
    for path, content in ((text, None), (tmp_path / "empty.pcap", b""),
                          (tmp_path / "bom.pcapng", struct.pack("<II", 0x0A0D0D0A, 28) + b"\0" * 20)):
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(Malformed) as err:
            list(read_payloads(path))
        assert str(path) in str(err.value) and err.value.reason == "pcap.not_a_capture"


# Nanosecond times whose float of seconds rounds to the wrong µs (open5gs__ipsec_reg frame 9 is the first), one
# exactly half way, and one that carries into the next second.
NS_TIMES = [1587110457_444287361, 1700000000_000000500, 1700000000_999999600, 1587110457_000001499]


@pytest.mark.parametrize("kind", ["pcapng", "pcap"])
def test_nanosecond_times_round_to_the_nearest_microsecond(tmp_path, kind):
    """The message's µs is tshark's nanosecond time rounded (half up), on the compiled and the per-frame path."""
    frames = [ether(ipv4(132, sctp(36412, 36412, [data_chunk(i, pdu)]))) for i, pdu in enumerate(PDUS * 2)][:4]
    path = tmp_path / f"ns.{kind}"
    if kind == "pcapng":
        path.write_bytes(b"".join([shb(), idb(1, 9)] + [(epb if n % 2 else pb)(0, units, frame)
                                                        for n, (units, frame) in enumerate(zip(NS_TIMES, frames))]))
    else:
        path.write_bytes(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1) + b"".join(
            struct.pack("<IIII", units // 10 ** 9, units % 10 ** 9, len(frame), len(frame)) + frame
            for units, frame in zip(NS_TIMES, frames)))
    wire = fields(path, ["frame.time_epoch"])
    nanos = [int(wire[n + 1]["frame.time_epoch"][0].replace(".", "")) for n in range(len(frames))]
    assert nanos == NS_TIMES
    want = [(ns + 500) // 1000 for ns in nanos]
    for fast in (True, False):
        got = [int(us) for b in read_payloads(path, fast=fast) for us in timestamps(b.ts).cast(pa.int64()).to_pylist()]
        assert got == want, fast
    assert [round(ts * 1_000_000) for ts, _, _ in read_packets(path, Anomalies())] == want


def test_pcap_variants_read_alike(tmp_path):
    """µs and ns magic in both byte orders, and pcapng in both byte orders with several if_tsresol."""
    frames = [(1_700_000_000.25 + i, ether(ipv4(132, sctp(36412, 36412, [data_chunk(i, pdu)])))) for i, pdu in
              enumerate(PDUS)]
    files = {f"{'ns' if ns else 'us'}{endian}.pcap": (write_pcap, dict(endian=endian, nanos=ns))
             for endian in "<>" for ns in (False, True)}
    files.update({f"ng{endian}{res}.pcapng": (write_pcapng, dict(endian=endian, tsresol=res))
                  for endian in "<>" for res in (None, 9, 0x80 | 20)})
    for name, (write, kw) in files.items():
        path = tmp_path / name
        write(path, frames, **kw)
        got = [(int(b.frame[i]), b.payload(i)) for b in read_payloads(path) for i in range(len(b))]
        assert got == [(i + 1, pdu) for i, pdu in enumerate(PDUS)], name
        stamps = [ts for ts, _, _ in read_packets(path, Anomalies())]
        assert stamps == pytest.approx([ts for ts, _ in frames], abs=1e-6), name
        if name in ("ns>.pcap", "ng>148.pcapng"):  # the most unusual two: tshark reads them alike too
            wire = fields(path, ["frame.time_epoch"])
            assert [float(wire[i + 1]["frame.time_epoch"][0]) for i in range(len(frames))] == pytest.approx(stamps)
            assert raw_layers(path, "s1ap") == {i + 1: [pdu] for i, pdu in enumerate(PDUS)}, name


def test_pcapng_interfaces_with_different_link_types_and_old_blocks(tmp_path):
    """One pcapng: an interface per link type (VLAN and QinQ Ethernet, SLL, SLL2, null in both byte orders,
    loopback, raw IPv4/IPv6), IPv6 with extension headers, and Simple and obsolete Packet Blocks."""
    def v4(tsn):
        return ipv4(132, sctp(36412, 36412, [data_chunk(tsn, PDUS[0])]))

    def v6(tsn):
        return ipv6(132, sctp(36412, 36412, [data_chunk(tsn, PDUS[1])]), hop_by_hop=True)

    links = [(1, lambda p: ether(p, tags=(0x8100,)), v4), (1, lambda p: ether(p, 0x86DD, (0x88A8, 0x8100)), v6),
             (113, sll, v4), (276, lambda p: sll2(p, 0x86DD), v6), (0, lambda p: struct.pack("<I", 2) + p, v4),
             (0, lambda p: struct.pack(">I", 30) + p, v6), (108, lambda p: struct.pack(">I", 2) + p, v4),
             (101, bytes, v6), (228, bytes, v4), (229, bytes, v6), (12, bytes, v4), (14, bytes, v6)]
    frames = [(frame(packet(tsn)), PDUS[0] if packet is v4 else PDUS[1])
              for tsn, (_, frame, packet) in enumerate(links)]
    n = len(links)
    extra = [(links[0][1](v4(n)), PDUS[0]), (links[3][1](v6(n + 1)), PDUS[1])]
    blocks = [shb()] + [idb(linktype) for linktype, _, _ in links]
    blocks += [epb(i, 1_600_000_000_000_000 + i, frame) for i, (frame, _) in enumerate(frames)]
    blocks += [spb(extra[0][0]), pb(3, 1_600_000_100_000_000, extra[1][0])]
    path = tmp_path / "links.pcapng"
    path.write_bytes(b"".join(blocks))
    got = {int(b.frame[i]): [b.payload(i)] for b in read_payloads(path) for i in range(len(b))}
    expected = {i + 1: [pdu] for i, (_, pdu) in enumerate(frames + extra)}
    assert got == expected
    assert raw_layers(path, "s1ap") == expected
    stamps = [ts for ts, _, _ in read_packets(path, Anomalies())]
    assert stamps[n] == stamps[n - 1] == pytest.approx(1_600_000_000 + (n - 1) / 1e6)  # SPB: no time of its own
    assert stamps[n + 1] == pytest.approx(1_600_000_100)


def test_link_layer_offsets():
    assert ip_start(1, memoryview(ether(b"\x45" + b"\0" * 19, tags=(0x8100, 0x8100)))) == 22
    assert ip_start(1, memoryview(bytes(12) + b"\x08\x06" + bytes(28))) is None       # ARP
    assert ip_start(1, memoryview(bytes(12) + b"\x00\x26" + bytes(38))) is None       # 802.3 length + LLC
    assert ip_start(113, memoryview(sll(b"\x45"))) == 16
    assert ip_start(276, memoryview(sll2(b"\x60", 0x86DD))) == 20
    assert ip_start(0, memoryview(struct.pack("<I", 24) + b"\x60")) == 4
    assert ip_start(0, memoryview(struct.pack("<I", 7) + b"\x60")) is None
    with pytest.raises(Unsupported):
        ip_start(147, memoryview(b"\0" * 20))
    with pytest.raises(Truncated):
        ip_start(1, memoryview(b"\0" * 13))
    with pytest.raises(Unsupported):
        ip_start(1, memoryview(ether(b"", tags=(0x8100,) * 6)))


def test_bad_record_length_ends_the_file_with_a_count(tmp_path):
    path = tmp_path / "bad.pcap"
    write_pcap(path, [(1.0, b"\0" * 60), (2.0, b"\0" * 60)])
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 24 + 16 + 60 + 8, 0x7FFFFFFF)  # the second record's caplen
    path.write_bytes(bytes(data))
    anomalies = Anomalies()
    assert len(list(read_packets(path, anomalies))) == 1 and anomalies == {"pcap.bad_record": 1}


# -- IP -------------------------------------------------------------------------------------------------------------

def test_ipv4_fragments_reassemble_in_any_order_and_time_out():
    message = sctp(36412, 36412, [data_chunk(1, PDUS[2])])
    pieces = [ipv4(132, message[i:i + 64], ident=9, offset=i, more=i + 64 < len(message))
              for i in range(0, len(message), 64)]
    anomalies = Anomalies()
    layer = IpLayer(frozenset((132,)), anomalies)
    results = [layer.packet(memoryview(p), 0, 1.0) for p in reversed(pieces)]
    assert results[:-1] == [None] * (len(pieces) - 1)
    assert bytes(results[-1][3]) == message and results[-1][0] == 132
    layer.packet(memoryview(pieces[0]), 0, 2.0)
    layer.packet(memoryview(pieces[1]), 0, 40.0)  # 38 s later: the first datagram has expired
    layer.finish()
    assert anomalies == {"ip.fragment_timeout": 2}


def test_ipv6_fragment_header_and_extension_headers():
    message = sctp(36412, 36412, [data_chunk(1, PDUS[2])])
    half = (len(message) // 2) & ~7
    first = ipv6(44, struct.pack("!BBHI", 132, 0, 1, 77) + message[:half], hop_by_hop=True)
    second = ipv6(44, struct.pack("!BBHI", 132, 0, half, 77) + message[half:])
    layer = IpLayer(frozenset((132,)), Anomalies())
    assert layer.packet(memoryview(second), 0, 0.0) is None
    proto, src, dst, payload = layer.packet(memoryview(first), 0, 0.0)
    assert proto == 132 and bytes(payload) == message and len(src) == 16
    udp = IpLayer(frozenset((132,)), Anomalies())
    assert udp.packet(memoryview(ipv6(17, b"\0" * 8)), 0, 0.0) is None


def test_ip_fragments_in_a_capture_equal_tshark(tmp_path):
    message = sctp(36412, 36412, [data_chunk(1, PDUS[2])])
    frames = [(10.0 + i / 10, ether(ipv4(132, message[i * 96:(i + 1) * 96], ident=5, offset=i * 96,
                                         more=(i + 1) * 96 < len(message))))
              for i in range(-(-len(message) // 96))]
    frames = frames[1:] + frames[:1]  # the first fragment last
    path = tmp_path / "frag.pcap"
    write_pcap(path, frames)
    got = {int(b.frame[i]): [b.payload(i)] for b in read_payloads(path) for i in range(len(b))}
    assert got == {len(frames): [PDUS[2]]} == raw_layers(path, "s1ap")


# -- SCTP -----------------------------------------------------------------------------------------------------------

def _sctp_layer(anomalies):
    return SctpLayer(lambda ppid, sport, dport: 1 if ppid == 18 else 0, anomalies)


def test_sctp_fragments_out_of_order_and_retransmissions():
    pdu = PDUS[2]
    third = len(pdu) // 3
    parts = [pdu[:third], pdu[third:2 * third], pdu[2 * third:]]
    chunks = [data_chunk(100 + i, part, ssn=4, flags=(2 if i == 0 else 0) | (1 if i == 2 else 0))
              for i, part in enumerate(parts)]
    anomalies = Anomalies()
    layer = _sctp_layer(anomalies)
    send = lambda chunk: layer.packet(A, B, memoryview(sctp(36412, 36412, [chunk])), 1.0)  # noqa: E731
    assert send(chunks[2]) == [] and send(chunks[0]) == [] and send(chunks[0]) == []
    (message,) = send(chunks[1])
    assert message[4] == pdu and message[:4] == (1, 36412, 36412, 1)
    assert send(data_chunk(103, PDUS[0])) != [] and send(data_chunk(103, PDUS[0])) == []
    assert send(data_chunk(103, PDUS[1])) != []  # same TSN, other content: not a retransmission
    assert anomalies == {"sctp.duplicate_tsn": 2}
    assert layer.packet(B, A, memoryview(sctp(36412, 36412, [data_chunk(100, PDUS[0])])), 1.0) != []


def test_sctp_bundle_other_ppids_and_damaged_chunks():
    anomalies = Anomalies()
    layer = _sctp_layer(anomalies)
    bundle = [sack_chunk(), data_chunk(1, PDUS[0]), data_chunk(2, PDUS[1], ppid=60), data_chunk(3, PDUS[2])]
    got = layer.packet(A, B, memoryview(sctp(1, 2, bundle)), 0.0)
    assert [bytes(m[4]) for m in got] == [PDUS[0], PDUS[2]]
    assert layer.packet(A, B, memoryview(sctp(1, 2, [b"\x03\x00\x00\x02"])), 0.0) == []
    truncated = sctp(1, 2, [data_chunk(9, PDUS[0])])[:-8]
    assert layer.packet(A, B, memoryview(truncated), 0.0) == []
    many = layer.packet(A, B, memoryview(sctp(1, 2, [data_chunk(1000 + i, b"x") for i in range(300)])), 0.0)
    assert len(many) == 256
    assert anomalies == {"sctp.chunk_too_small": 1, "sctp.chunk_truncated": 1, "sctp.too_many_chunks": 1}
    with pytest.raises(Truncated):
        layer.packet(A, B, memoryview(b"\0" * 11), 0.0)


def test_sctp_i_data_fragments_and_reassembly_timeout():
    pdu = PDUS[2]
    half = len(pdu) // 2
    anomalies = Anomalies()
    layer = _sctp_layer(anomalies)
    send = lambda chunk, ts=0.0: layer.packet(A, B, memoryview(sctp(1, 2, [chunk])), ts)  # noqa: E731
    assert send(i_data_chunk(11, pdu[half:], mid=3, ppid_or_fsn=1, flags=1)) == []
    (message,) = send(i_data_chunk(10, pdu[:half], mid=3, ppid_or_fsn=18, flags=2))
    assert message[4] == pdu
    assert send(i_data_chunk(12, pdu[:half], mid=4, ppid_or_fsn=18, flags=2), ts=1.0) == []
    assert send(i_data_chunk(13, PDUS[0], mid=5, ppid_or_fsn=18), ts=40.0) != []
    assert anomalies == {"sctp.reassembly_timeout": 1}


# -- IPA over TCP ---------------------------------------------------------------------------------------------------

def _sccplite_udt(bssap_pdu: bytes) -> bytes:
    called = bytes((0x42, 254))  # route on SSN, SSN present
    return bytes((SCCP_UDT, 0x00, 3, 5, 7, len(called))) + called + bytes((len(called),)) + called + \
        bytes((len(bssap_pdu),)) + bssap_pdu


def test_sccplite_over_ipa_equals_tshark(tmp_path):
    """One IPA message per segment (Wireshark's IPA dissector does not reassemble across segments)."""
    messages = [ipa(0xFE, b"\x06"), ipa(0xFD, _sccplite_udt(bssap.paging("001010123456789", None, [(1, 2)]))),
                ipa(0x00, b"\x01\x02"), ipa(0xFD, _sccplite_udt(bssap.reset(0x00)))]
    seq, frames = 1, [tcp(5000, 40000, 0, b"", flags=0x02)]
    for message in messages:
        frames.append(tcp(5000, 40000, seq, message))
        seq += len(message)
    path = tmp_path / "sccplite.pcap"
    write_pcap(path, [(100.0 + i, ether(ipv4(6, f))) for i, f in enumerate(frames)])
    got = {int(b.frame[i]): [b.payload(i)] for b in read_payloads(path) for i in range(len(b))}
    assert len(got) == 2 and got == raw_layers(path, "bssap")


def test_ipa_messages_split_across_segments_with_retransmission_and_reordering(tmp_path):
    paging = bssap.paging("001010123456789", 0x12345678, [(0x1234, 0x0101)])
    reset = bssap.reset(0x00)
    stream = ipa(0xFE, b"\x06") + ipa(0xFD, _sccplite_udt(paging)) + ipa(0x00, b"\x01\x02") + \
        ipa(0xFD, _sccplite_udt(reset))
    paging_end = 4 + 3 + len(_sccplite_udt(paging))  # after the CCM and the first SCCP message
    isn, cuts = 1000, [0, 5, paging_end - 3, paging_end + 4, len(stream)]
    segments = [(isn + 1 + a, stream[a:b]) for a, b in zip(cuts, cuts[1:])]
    frames = [tcp(40000, 5000, isn, b"", flags=0x02)] + [tcp(40000, 5000, seq, data) for seq, data in segments]
    order = [0, 1, 3, 2, 2, 4]  # SYN; the third segment before the second (which completes the paging), twice
    frames = [frames[i] for i in order] + [tcp(40000, 5000, segments[1][0] - 2, stream[3:30])]  # overlap
    path = tmp_path / "ipa.pcap"
    write_pcap(path, [(100.0 + i, ether(ipv4(6, f))) for i, f in enumerate(frames)])
    rows = [(int(b.frame[i]), int(b.proto[i]), b.payload(i), int(b.conn[i]), b.endpoints[b.src[i]])
            for b in read_payloads(path) for i in range(len(b))]
    assert rows == [(4, PROTO_BSSAP, paging, -1, "10.0.0.1:40000"), (6, PROTO_BSSAP, reset, -1, "10.0.0.1:40000")]
    anomalies = Anomalies()
    layer = IpaLayer(anomalies)
    for frame in frames:
        layer.segment(A, B, memoryview(frame))
    assert anomalies == {"tcp.retransmission": 2}


def test_ipa_rsl_and_oml_are_not_payloads():
    layer = IpaLayer(Anomalies())
    assert layer.segment(A, B, memoryview(tcp(3003, 40000, 1, ipa(0x00, b"\x01" * 10) + ipa(0xFF, b"\x80")))) == []


# -- M3UA, M2UA, MTP3 -------------------------------------------------------------------------------------------------

def test_m3ua_protocol_data_and_other_classes():
    pd = struct.pack("!IIBBBB", 0x3FFF, 0x123456, 3, 2, 0, 9) + b"\x09\x00"
    data = struct.pack("!BBBBI", 1, 0, 1, 1, 8 + 4 + len(pd) + 2) + struct.pack("!HH", 0x0210, 4 + len(pd)) + pd
    got = m3ua.protocol_data(memoryview(data + b"\0\0"))
    assert (got.opc, got.dpc, got.si, got.ni, got.sls, bytes(got.user_data)) == (0x3FFF, 0x123456, 3, 2, 9, b"\x09\x00")
    assert m3ua.protocol_data(memoryview(bytes.fromhex("0100030100000008"))) is None  # ASP Up
    with pytest.raises(Malformed):
        m3ua.protocol_data(memoryview(bytes.fromhex("0200010100000008")))
    with pytest.raises(Truncated):
        m3ua.protocol_data(memoryview(b"\x01\x00"))


def test_m2ua_protocol_data_1_and_2():
    msu = bytes.fromhex("83eba1b1dd09")
    pd1 = struct.pack("!HHI", 1, 8, 7) + struct.pack("!HH", 0x0300, 4 + len(msu)) + msu + b"\0\0"
    message = struct.pack("!BBBBI", 1, 0, 6, 1, 8 + len(pd1)) + pd1
    assert m2ua.msu(memoryview(message)) == (b"\0\0\0\x07", msu)
    pd2 = struct.pack("!HH", 0x0301, 5 + len(msu)) + b"\x3f" + msu + b"\0"
    assert m2ua.msu(memoryview(struct.pack("!BBBBI", 1, 0, 6, 1, 8 + len(pd2)) + pd2))[1] == msu
    assert m2ua.msu(memoryview(bytes.fromhex("0100060200000008"))) is None  # Establish Request


def test_mtp3_itu_and_chinese_routing_labels():
    # Q.704 §2.2: DPC 0x21eb (14 bits), OPC, SLS in 4 octets LSB first.
    itu = routing_label(memoryview(bytes.fromhex("03eba1b1dd06")), "itu")
    word = 0xDDB1A1EB
    assert (itu.si, itu.ni, itu.dpc, itu.opc, itu.sls) == (3, 0, word & 0x3FFF, (word >> 14) & 0x3FFF, word >> 28)
    chinese = routing_label(memoryview(bytes.fromhex("83 563412 cdab00 05 09".replace(" ", ""))), "chinese")
    assert (chinese.si, chinese.ni, chinese.dpc, chinese.opc, chinese.sls) == (3, 2, 0x123456, 0x00ABCD, 5)
    assert bytes(chinese.user_data) == b"\x09"
    assert point_code(0x21EB, "itu") == "4-61-3" and point_code(0x123456, "chinese") == "18-52-86"
    with pytest.raises(Truncated):
        routing_label(memoryview(bytes.fromhex("83000000")), "itu")


def test_mtp3_auto_decides_each_link_on_the_first_decisive_message():
    standards = MtpStandards("auto")
    assert standards.of("a", lambda std: std == "chinese") == "chinese"
    assert standards.of("a", lambda std: std == "itu") == "chinese"      # decided
    assert standards.of("b", lambda std: False) == "itu"                 # undecided
    assert standards.of("b", lambda std: std == "chinese") == "chinese"
    assert MtpStandards("itu").of("c", lambda std: std == "chinese") == "itu"
    with pytest.raises(ValueError):
        MtpStandards("ansi")


# -- SCCP -----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("hex_value, pc_octets, expected", [
    ("43 0102 fe", 2, sccp.Address(True, 0x0201, 254, 0)),                    # §3.4.2: PC, SSN, route on SSN
    ("42 fe", 2, sccp.Address(True, None, 254, 0)),                            # SSN only
    ("43 563412 fe", 3, sccp.Address(True, 0x123456, 254, 0)),                 # 24-bit point code
    ("12 08 00 11 04 31 26 07 00 01 f0", 2,                                    # GTI 4, TT 0, E.164 odd
     sccp.Address(False, None, 8, 4, 0, 1, 4, "13627000100")),
    ("06 06 84 31 26 07", 2, sccp.Address(False, None, 6, 1, None, None, 4, "13627")),  # GTI 1, odd digits
    ("0a 07 00 21 43", 2, sccp.Address(False, None, 7, 2, 0, None, None, "1234")),      # GTI 2
])
def test_sccp_address_forms(hex_value, pc_octets, expected):
    message = udt(bytes.fromhex(hex_value.replace(" ", "")), bytes.fromhex("42fe"), b"\x00\x03\x56\x00\x00")
    msg = sccp.parse(memoryview(message), pc_octets)
    assert msg.called == expected and msg.calling.ssn == 254 and bytes(msg.data) == b"\x00\x03\x56\x00\x00"


@pytest.mark.parametrize("hex_value, error", [
    ("43 01", Truncated), ("40 00", Malformed), ("3c fe", Malformed), ("", Truncated), ("0e fe 00 23", Unsupported),
])
def test_sccp_bad_addresses(hex_value, error):
    with pytest.raises(error):
        sccp.parse(memoryview(udt(bytes.fromhex(hex_value.replace(" ", "")), b"\x42\xfe", b"\x00")), 2)


def test_sccp_messages_and_their_errors():
    cr = bytes.fromhex("01 f40100 02 02 06 04 43 0202 fe 0f 03 00 01 55 00".replace(" ", ""))
    msg = sccp.parse(memoryview(cr))
    assert (msg.type, msg.src_ref, msg.protocol_class, msg.called.pc, msg.called.ssn, bytes(msg.data)) == \
        (SCCP_CR, 0x1F4, 2, 0x202, 254, b"\x00\x01\x55")
    dt1 = sccp.parse(memoryview(bytes.fromhex("06 f50100 01 01 02 0102".replace(" ", ""))))
    assert (dt1.dst_ref, dt1.more, bytes(dt1.data)) == (0x1F5, True, b"\x01\x02")
    rlc = sccp.parse(memoryview(bytes.fromhex("05 f40100 f50100".replace(" ", ""))))
    assert (rlc.dst_ref, rlc.src_ref, rlc.data) == (0x1F4, 0x1F5, None)
    xudt = bytes.fromhex("11 81 0f 04 06 08 09 02 42fe 02 42fe 01 00 12 01 04 00".replace(" ", ""))  # importance
    msg = sccp.parse(memoryview(xudt))
    assert (msg.type, msg.protocol_class, msg.called.ssn, bytes(msg.data)) == (0x11, 1, 254, b"\x00")
    xudt_segmented = bytes.fromhex("11 00 0f 04 06 08 09 02 42fe 02 42fe 01 00 10 04 c3 010203 00".replace(" ", ""))
    msg = sccp.parse(memoryview(xudt_segmented))
    assert (msg.segmentation, bytes(msg.data)) == ((True, 3, 0x030201), b"\x00")  # F and C set, 3 to follow
    cut_segmentation = xudt_segmented[:-5] + bytes.fromhex("02 c301 00")
    for data, error in ((b"\x42", Malformed), (b"\x13\x00", Unsupported), (b"\x06\x01\x00", Truncated),
                        (bytes.fromhex("0600000000" "00"), Malformed), (bytes.fromhex("06000000" "0009"), Malformed),
                        (cut_segmentation, Truncated)):
        with pytest.raises(error):
            sccp.parse(memoryview(data))


def test_sccp_connections_live_from_cr_to_rlc_and_ids_are_never_reused():
    anomalies = Anomalies()
    conns = sccp.Connections(anomalies)
    bsc, msc = 1, 2
    cr = sccp.parse(memoryview(bytes.fromhex("01 f40100 02 02 06 04 43 0202 fe 0f 02 0001 00".replace(" ", ""))))
    cc = sccp.parse(memoryview(bytes.fromhex("02 f40100 f50100 02 00".replace(" ", ""))))
    up = sccp.parse(memoryview(bytes.fromhex("06 f50100 00 01 02 0001".replace(" ", ""))))
    down = sccp.parse(memoryview(bytes.fromhex("06 f40100 00 01 02 0001".replace(" ", ""))))
    rlsd = sccp.parse(memoryview(bytes.fromhex("04 f40100 f50100 00 00".replace(" ", ""))))
    rlc = sccp.parse(memoryview(bytes.fromhex("05 f50100 f40100".replace(" ", ""))))
    first = conns.track(cr, bsc, msc, 0.0)
    assert first.ssn == 254
    assert [conns.track(m, s, d, 1.0) for m, s, d in ((cc, msc, bsc), (up, bsc, msc), (down, msc, bsc),
                                                      (rlsd, msc, bsc), (rlc, bsc, msc))] == [first] * 5
    again = conns.track(down, msc, bsc, 2.0)  # after RLC: the reference no longer names that connection
    assert again.id > first.id and again.ssn == 0
    second = conns.track(cr, bsc, msc, 3.0)
    assert second.id > again.id and conns.track(up, bsc, msc, 3.0).id != second.id  # CC not seen yet
    assert conns.track(down, msc, bsc, 3.0).id == second.id and not anomalies


def test_sccp_dt1_segments_join_on_the_last_one():
    conns = sccp.Connections(Anomalies())
    first = sccp.parse(memoryview(bytes.fromhex("06 f40100 01 01 02 0105".replace(" ", ""))))
    last = sccp.parse(memoryview(bytes.fromhex("06 f40100 00 01 03 000102".replace(" ", ""))))
    conn = conns.track(first, 2, 1, 0.0)
    assert conns.reassemble(conn, 1, first.more, first.data) is None
    assert conns.reassemble(conns.track(last, 2, 1, 0.0), 1, last.more, last.data) == b"\x01\x05\x00\x01\x02"


def test_bssap_shape_heuristic():
    assert bssap_shaped(bssap.clear_complete()) and bssap_shaped(bssap.dtap(b"\x05\x24\x11"))
    assert bssap_shaped(bytes.fromhex("0006400100020101"))
    assert not bssap_shaped(bytes.fromhex("0006400000020101"))  # RANAP-like: criticality ignore, no 0x01
    assert not bssap_shaped(b"\x00\x05\x01") and not bssap_shaped(b"\x02\x01\x00") and not bssap_shaped(b"\x00")


# -- robustness -----------------------------------------------------------------------------------------------------

FUZZ_SEEDS = {name: shared(name).read_bytes() for name in ("wiresharkwiki__GSM_BCC.pcap", "magma__nsa_connection.pcap",
                                                           "wiresharkwiki__3G-2G-HO.pcap")}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.sampled_from(sorted(FUZZ_SEEDS)),
       flips=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=12),
       cut=st.one_of(st.none(), st.integers(0, 1 << 20)))
def test_mutated_captures_only_count_anomalies(tmp_path, seed, flips, cut):
    data = bytearray(FUZZ_SEEDS[seed])
    for at, value in flips:
        data[at % len(data)] = value
    path = tmp_path / "fuzz.pcap"
    path.write_bytes(bytes(data if cut is None else data[:cut % (len(data) + 1)]))
    try:
        batches = list(read_payloads(path, batch_frames=16))
    except Malformed as err:
        assert err.reason == "pcap.not_a_capture"  # only a broken file header may raise
        return
    for b in batches:
        assert len(b.ts) == len(b.proto) == len(b.offset) == len(b)
        assert all(int(o) + int(n) <= len(b.data) for o, n in zip(b.offset, b.length))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([2, 3]))
def test_random_bytes_only_raise_decode_errors(data, pc_octets):
    view = memoryview(data)
    anomalies = Anomalies()
    for parse in (lambda: sccp.parse(view, pc_octets), lambda: m3ua.protocol_data(view),
                  lambda: m2ua.msu(view), lambda: routing_label(view, "chinese"),
                  lambda: IpLayer(frozenset((6, 132)), anomalies).packet(view, 0, 0.0),
                  lambda: _sctp_layer(anomalies).packet(A, B, view, 0.0),
                  lambda: IpaLayer(anomalies).segment(A, B, view), lambda: ip_start(1, view),
                  lambda: mtp2_layer.msu(139, view), lambda: _add_if_segmented(sccp.parse(view), anomalies),
                  lambda: Stack("auto").frame(1, 0.0, 140, view), lambda: Stack("auto").frame(1, 0.0, 139, view)):
        try:
            parse()
        except DecodeError:
            pass


def _add_if_segmented(msg, anomalies) -> None:
    if msg.segmentation is not None:
        sccp.Segments(anomalies).add(msg, 1, 0.0)


# -- helpers: building packets and files by hand ----------------------------------------------------------------------

PDUS = [s1ap.downlink_nas_transport(7, 3, b"\x07\x55\x01"),
        s1ap.s1_setup_request(0x1234, "enb-1", "001", "01", [1, 2]),
        s1ap.initial_context_setup_request(9, 4, nas=bytes(range(256)) * 3)]


def _pcap_records(data: bytes) -> list[bytes]:
    out, at = [], 24
    while at < len(data):
        caplen = struct.unpack_from("<I", data, at + 8)[0]
        out.append(data[at:at + 16 + caplen])
        at += 16 + caplen
    return out


def _pc(endpoint: str) -> int:
    """An ITU point code back from our "pc:zone-area-point" (3-8-3) endpoint name."""
    zone, area, point = map(int, endpoint.removeprefix("pc:").split("-"))
    return zone << 11 | area << 3 | point


def _m2ua_msus(path) -> dict[int, memoryview]:
    """The MSU of every M2UA DATA message tshark finds, taken from its m2ua layer bytes by our M2UA parser."""
    out = {}
    for frame, (message,) in raw_layers(path, "m2ua").items():
        found = m2ua.msu(memoryview(message))
        if found is not None:
            out[frame] = found[1]
    return out


# -- second round: gzip, MTP2 link types, XUDT segmentation, connection liveness ----------------------------------

def test_gzipped_capture_and_rotated_gz_files_read_as_the_plain_ones(simulated, tmp_path):
    data = simulated.read_bytes()
    records = _pcap_records(data)
    rotated = tmp_path / "rotated"
    rotated.mkdir()
    half = len(records) // 2
    (rotated / "sigloc_00001.pcap.gz").write_bytes(gzip.compress(data[:24] + b"".join(records[:half])))
    (rotated / "sigloc_00002.pcap").write_bytes(data[:24] + b"".join(records[half:]))
    whole = [(r["frame"], r["conn"], r["payload"]) for r in ours(simulated)["rows"]]
    assert [(int(b.frame[i]), int(b.conn[i]), b.payload(i)) for b in read_payloads(rotated)
            for i in range(len(b))] == whole
    cut = tmp_path / "cut.pcap.gz"
    cut.write_bytes(gzip.compress(data)[:len(data) // 8])
    batches = list(read_payloads(cut))
    got = [(int(b.frame[i]), int(b.conn[i]), b.payload(i)) for b in batches for i in range(len(b))]
    assert got and got == whole[:len(got)] and sum(b.anomalies["pcap.truncated_record"] for b in batches) == 1


def test_mtp2_signal_units_and_pseudo_header():
    paging = bssap.paging("001010123456789", None, [(1, 2)])
    msu = msu_itu(0x101, 0x202, udt(sccp_address(254), sccp_address(254), paging))
    assert mtp2_layer.msu(mtp2_layer.LINKTYPE_MTP2, memoryview(mtp2(msu))) == (0, 3)
    assert mtp2_layer.msu(mtp2_layer.LINKTYPE_MTP2, memoryview(mtp2(b""))) is None               # FISU
    assert mtp2_layer.msu(mtp2_layer.LINKTYPE_MTP2, memoryview(mtp2(b"\x01"))) is None           # LSSU
    assert mtp2_layer.msu(mtp2_layer.LINKTYPE_MTP2_WITH_PHDR, memoryview(mtp2_phdr(mtp2(msu), link=7))) == (7, 7)
    annex_a = struct.pack("<BBH", 0, 1, 3) + struct.pack("<HHH", 5, 6, len(msu)) + msu
    assert mtp2_layer.msu(mtp2_layer.LINKTYPE_MTP2_WITH_PHDR, memoryview(annex_a)) == (3, 10)
    assert mtp2_layer.msu(mtp2_layer.LINKTYPE_MTP3, memoryview(msu)) == (0, 0)
    for linktype, frame in ((140, b"\x00\x00"), (139, b"\x00\x00\x01"), (139, b"\0\0\0\0\0\0\x05")):
        with pytest.raises(Truncated):
            mtp2_layer.msu(linktype, memoryview(frame))


def test_xudt_segments_join_in_any_order_and_incomplete_ones_time_out():
    anomalies = Anomalies()
    segments = sccp.Segments(anomalies)
    message = bytes(range(200)) * 2
    parts = [message[i:i + 150] for i in range(0, len(message), 150)]  # 3 segments: remaining 2, 1, 0
    called, calling = sccp_address(254, 0x202), sccp_address(254, 0x101)

    def segment(i, reference=0x0A0B0C):
        return sccp.parse(memoryview(xudt(called, calling, parts[i], (i == 0, len(parts) - 1 - i, reference))))

    assert [segments.add(segment(i), 1, 0.0) for i in (2, 0)] == [None, None]
    assert segments.add(segment(1), 1, 0.5) == message
    assert segments.add(segment(0), 1, 1.0) is None and segments.add(segment(0, 7), 2, 1.0) is None
    assert segments.add(segment(1, 7), 1, 1.0) is None  # same reference from another node: another message
    single = sccp.parse(memoryview(xudt(called, calling, b"\x00\x01\x02", (True, 0, 9))))
    assert bytes(segments.add(single, 1, 2.0)) == b"\x00\x01\x02" and not anomalies
    assert segments.add(segment(2), 1, 30.0) is None  # the sweep drops the three incomplete messages first
    segments.finish()
    assert anomalies == {"sccp.reassembly_timeout": 4}


def test_inactivity_tests_keep_a_connection_alive_and_silent_ones_expire():
    anomalies = Anomalies()
    conns = sccp.Connections(anomalies, idle=600.0)
    bsc, msc = 1, 2
    cr = sccp.parse(memoryview(bytes.fromhex("01 f40100 02 02 06 04 43 0202 fe 0f 02 0001 00".replace(" ", ""))))
    cc = sccp.parse(memoryview(bytes.fromhex("02 f40100 f50100 02 00".replace(" ", ""))))
    inactivity = sccp.parse(memoryview(bytes.fromhex("10 f50100 f40100 02 0000 00".replace(" ", ""))))
    up = sccp.parse(memoryview(bytes.fromhex("06 f50100 00 01 02 0001".replace(" ", ""))))
    first = conns.track(cr, bsc, msc, 0.0)
    assert conns.track(cc, msc, bsc, 1.0).id == first.id
    for minute in (5, 10, 15):
        assert conns.track(inactivity, bsc, msc, minute * 60.0).id == first.id
    assert conns.track(up, bsc, msc, 20 * 60.0).id == first.id and not anomalies
    later = conns.track(up, bsc, msc, 40 * 60.0)  # 20 silent minutes: the sweep dropped it
    assert later.id != first.id and anomalies == {"sccp.connection_expired": 1}


def test_every_anomaly_reason_is_documented():
    root = Path(__file__).parent.parent
    code = "".join(p.read_text() for p in (root / "capture").glob("*.py"))
    reasons = set(re.findall(r'(?:Truncated|Malformed|Unsupported)\("([a-z0-9_]+\.[a-z0-9_]+)"', code))
    reasons |= set(re.findall(r'anomalies\["([a-z0-9_]+\.[a-z0-9_]+)"\]', code))
    for name in re.findall(r'(?:Truncated|Malformed)\(f"\{protocol\}\.([a-z0-9_]+)"', code):  # capture/sigtran.py
        reasons |= {f"m2ua.{name}", f"m3ua.{name}"}
    documented = set(re.findall(r"`([a-z0-9_]+\.[a-z0-9_]+)`", (root / "docs" / "capture.md").read_text()))
    assert len(reasons) > 60 and reasons <= documented, sorted(reasons - documented)
