"""The simulator writes real captures: Wireshark decodes every frame without a warning, and the truth is consistent."""

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from capture.payloads import PROTO_S1AP
from capture.stack import read_payloads
from simulator.pcap import SctpPacking
from simulator.scenario import simulate
from tshark_oracle import fields, raw_layers

WARNING_OR_WORSE = 0x00600000  # Wireshark expert severity PI_WARN (errors and malformed frames are above it)


def test_tshark_decodes_every_frame_without_warnings(city):
    capture = city / "capture.pcap"
    bad = fields(capture, ["_ws.expert.message"], f"_ws.malformed or _ws.expert.severity >= {WARNING_OR_WORSE}")
    assert not bad, f"{len(bad)} frames with warnings, e.g. {list(bad.items())[:3]}"
    protocols = Counter(p for row in fields(capture, ["frame.protocols"]).values()
                        for p in row["frame.protocols"][0].split(":"))
    for layer in ("s1ap", "nas-eps", "m3ua", "sccp", "gsm_a.bssmap", "gsm_a.dtap", "gsm_sms"):
        assert protocols[layer] > 10, f"{layer} missing from the capture: {protocols}"


def test_truth_names_only_simulated_subscribers_and_catalogued_cells(city):
    subscribers = {row["imsi"]: row for row in csv.DictReader(open(city / "subscribers.csv"))}
    cells = set()
    for row in csv.DictReader(open(city / "cells.csv")):
        cells.add(f"{row['mcc']}-{row['mnc']}-{row['lac']}-{row['ci']}" if row["rat"] == "2G"
                  else f"{row['mcc']}-{row['mnc']}-{row['eci']}")
    truth = [json.loads(line) for line in open(city / "truth.jsonl")]
    assert truth
    for event in truth:
        assert event["imsi"] in subscribers
        assert event["cell"] in cells
        rat = subscribers[event["imsi"]]["rat"]
        assert event["iface"] == ("A" if rat == "2G" else "S1")
    kinds = Counter(subscribers[imsi]["kind"] for imsi in {e["imsi"] for e in truth})
    assert {"resident", "domestic_tourist", "international_tourist"} <= set(kinds)


def test_frames_are_in_time_order_and_each_sender_numbers_its_chunks_in_wire_order(city):
    """Messages reach the writer subscriber by subscriber; on the wire they are in time order, every SCTP sender's
    TSNs go up by one from chunk to chunk, and every stream's SSNs by one from message to message (the fragments
    of one message share its SSN and follow each other, B to E; tshark reads them back). The default packing
    bundles some messages and fragments some."""
    rows = fields(city / "capture.pcap", ["frame.time_epoch", "ip.src", "ip.dst", "sctp.srcport", "sctp.data_tsn",
                                          "sctp.data_sid", "sctp.data_ssn", "sctp.data_b_bit", "sctp.data_e_bit"])
    times = [float(rows[n]["frame.time_epoch"][0]) for n in sorted(rows)]
    assert times == sorted(times)
    tsn, ssn, open_message, chunks, bundles, fragmented = {}, {}, set(), 0, 0, 0
    for n in sorted(rows):
        row = rows[n]
        sender = (row["ip.src"][0], row["ip.dst"][0], row["sctp.srcport"][0])  # one direction of an association
        bundles += len(row["sctp.data_tsn"]) > 1
        for t, sid, s, b, e in zip(row["sctp.data_tsn"], row["sctp.data_sid"], row["sctp.data_ssn"],
                                   row["sctp.data_b_bit"], row["sctp.data_e_bit"]):
            assert tsn.get(sender, int(t) - 1) == int(t) - 1, f"frame {n}: TSN {t} after {tsn[sender]}"
            assert (sender in open_message) == (b == "0"), f"frame {n}: fragment out of its message"
            step = 1 if b == "1" else 0
            assert ssn.get((sender, sid), int(s) - step) == int(s) - step, f"frame {n}: SSN {s} on stream {sid}"
            open_message.symmetric_difference_update({sender} if (b == "1") != (e == "1") else ())
            fragmented += b == "1" and e == "0"
            tsn[sender], ssn[sender, sid], chunks = int(t), int(s), chunks + 1
    assert chunks > 1000 and len(tsn) > 4
    assert not open_message, "every fragmented message is complete"
    assert bundles >= 10 and fragmented >= 10, (bundles, fragmented)
    assert not list(city.glob("spool-*")), "the spool is removed once the capture is written"


HEAVY = SctpPacking(bundle_share=1.0, fragment_share=0.1, fragment_above=160)


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """One small city written three times: heavily bundled and fragmented (twice, same seed), and one message
    per packet."""
    out = {}
    for name, packing in (("heavy", HEAVY), ("again", HEAVY), ("off", SctpPacking.off())):
        out[name] = simulate(tmp_path_factory.mktemp(name), subscribers=60, hours=1.0, seed=11, packing=packing)
    return out


def test_bundled_and_fragmented_capture_decodes_in_tshark_to_the_messages_sent(packed):
    """tshark sees packets of several DATA chunks and messages in B…E fragments, flags nothing, and reassembles
    exactly as many S1AP PDUs and M3UA DATA messages as the simulator sent (ASP management is class 3/4)."""
    capture = packed["heavy"]["capture"]
    assert fields(capture, ["frame.len"], f"_ws.malformed or _ws.expert.severity >= {WARNING_OR_WORSE}") == {}
    rows = fields(capture, ["sctp.data_tsn", "sctp.data_b_bit", "sctp.data_e_bit", "sctp.chunk_length",
                            "s1ap.procedureCode", "m3ua.message_class"])
    bundles = sum(len(row["sctp.data_tsn"]) > 1 for row in rows.values())
    starts = ends = whole = 0
    for row in rows.values():
        if not row["sctp.data_tsn"]:
            continue
        for b, e, length in zip(row["sctp.data_b_bit"], row["sctp.data_e_bit"], row["sctp.chunk_length"]):
            starts, ends = starts + (b == "1" and e == "0"), ends + (b == "0" and e == "1")
            if b == e == "1":
                whole += 1
                assert int(length) - 16 <= HEAVY.fragment_above, "a message above the threshold went whole"
    messages = sum(len(row["s1ap.procedureCode"]) + row["m3ua.message_class"].count("1") for row in rows.values())
    assert bundles >= 20 and starts == ends > 50 and whole > 1000, (bundles, starts, ends, whole)
    assert messages == packed["heavy"]["messages"] == packed["off"]["messages"]


def test_packing_changes_the_packets_not_the_messages(packed):
    """sigloc reads the same payloads, between the same endpoints, from the packed capture as from the one with a
    message per packet, and a packed capture is the same byte for byte when written again with the same seed."""
    def payloads(capture):
        out = Counter()
        for batch in read_payloads(capture):
            for i in range(len(batch)):
                out[batch.endpoints[batch.src[i]], batch.endpoints[batch.dst[i]], int(batch.proto[i]),
                    int(batch.sccp_type[i]), batch.payload(i)] += 1
        return out

    heavy, off = (Path(packed[name]["capture"]) for name in ("heavy", "off"))
    frames = {name: len(fields(packed[name]["capture"], ["frame.len"])) for name in ("heavy", "off")}
    assert frames["heavy"] != frames["off"]
    assert payloads(heavy) == payloads(off) and sum(payloads(off).values()) > 1000
    assert heavy.read_bytes() == Path(packed["again"]["capture"]).read_bytes()


def test_serving_cell_is_the_nearest_site_and_the_sector_facing_the_phone():
    """The grid look-up gives what a search over every site and sector gives (the definition)."""
    import math
    import random

    from simulator.city import SECTOR_AZIMUTHS, City, serving
    city = City.build()
    rng = random.Random(3)
    for _ in range(3000):  # over the grid and past its edges
        lat, lon = rng.uniform(30.10, 30.40), rng.uniform(120.0, 120.55)
        site = min(range(len(city.sites)),
                   key=lambda s: (city.sites[s][0] - lat) ** 2 + ((city.sites[s][1] - lon) * 0.864) ** 2)
        bearing = math.degrees(math.atan2((lon - city.sites[site][1]) * 0.864, lat - city.sites[site][0])) % 360
        sector = min(range(3), key=lambda k: min(abs(bearing - SECTOR_AZIMUTHS[k]),
                                                 360 - abs(bearing - SECTOR_AZIMUTHS[k])))
        assert serving(lat, lon, *city.grid) == site * 3 + sector, (lat, lon)


def test_one_hour_city_of_distinct_subscribers(tmp_path):
    """A one-hour capture (visitors who would arrive after it stay off the wire); no two subscribers share an
    IMSI; the truth lies within the hour, give or take the procedures under way at its end."""
    info = simulate(tmp_path, subscribers=400, hours=1.0, seed=5)
    imsis = [row["imsi"] for row in csv.DictReader(open(tmp_path / "subscribers.csv"))]
    assert len(imsis) == len(set(imsis)) == info["subscribers"]
    truth = [json.loads(line) for line in open(tmp_path / "truth.jsonl")]
    behaviour = [e for e in truth if e["event"] != "roaming_out"]
    assert behaviour and all(info["start"] - 1 <= e["ts"] <= info["end"] + 600 for e in behaviour)
    assert fields(tmp_path / "capture.pcap", ["frame.number"], "_ws.malformed") == {}


# -- the A interface over other carriers: IPA/SCCPlite over TCP, and 24-bit point codes ----------------------------

VARIANTS = (("ipa", "itu"), ("m3ua", "24bit"))


@pytest.fixture(scope="module")
def carriers(tmp_path_factory):
    """One small city written with the default A interface (M3UA/SCTP, ITU point codes) and with each variant."""
    out = {}
    for a_transport, point_codes in (("m3ua", "itu"), *VARIANTS):
        out[a_transport, point_codes] = Path(simulate(tmp_path_factory.mktemp(f"{a_transport}_{point_codes}"),
                                                      subscribers=200, hours=0.5, seed=7, a_transport=a_transport,
                                                      point_codes=point_codes)["dir"])
    return out


def _payload_sequence(capture, mtp3_standard: str = "auto") -> list[bytes]:
    return [batch.payload(i) for batch in read_payloads(capture, mtp3_standard=mtp3_standard)
            for i in range(len(batch))]


@pytest.mark.parametrize("variant", VARIANTS, ids=["-".join(v) for v in VARIANTS])
def test_a_interface_variant_decodes_in_tshark_without_warnings(carriers, variant):
    """tshark flags nothing (IPv4, TCP checksums verified; no TCP sequence analysis flags); the A interface is
    IPA stream 0xFD on TCP port 5000 (some segments carry two IPA messages) or M3UA with 24-bit point codes and
    SSN-only SCCP addresses."""
    capture = carriers[variant] / "capture.pcap"
    checks = ("ip.check_checksum:TRUE", "tcp.check_checksum:TRUE")
    bad = fields(capture, ["_ws.expert.message"], f"_ws.malformed or _ws.expert.severity >= {WARNING_OR_WORSE}",
                 checks)
    assert not bad, f"{len(bad)} frames with warnings, e.g. {list(bad.items())[:3]}"
    rows = fields(capture, ["frame.protocols", "ip.checksum.status", "tcp.checksum.status", "tcp.analysis.flags",
                            "tcp.flags", "gsm_ipa.protocol", "m3ua.protocol_data_opc", "sccp.calling.pc",
                            "sccp.called.pc"], "", checks)
    protocols = Counter(p for row in rows.values() for p in row["frame.protocols"][0].split(":"))
    for layer in ("s1ap", "sccp", "gsm_a.bssmap", "gsm_a.dtap", "gsm_sms"):
        assert protocols[layer] > 10, f"{layer} missing from the capture: {protocols}"
    assert all(row["ip.checksum.status"] == ["1"] for row in rows.values())
    if variant[0] == "ipa":
        assert protocols["m3ua"] == 0 and protocols["gsm_ipa"] > 1000, protocols
        tcp = [row for row in rows.values() if row["tcp.flags"]]
        assert all(row["tcp.checksum.status"] == ["1"] and not row["tcp.analysis.flags"] for row in tcp)
        flags = Counter(row["tcp.flags"][0] for row in tcp)
        assert flags["0x0002"] == flags["0x0012"] == flags["0x0010"] > 0 and flags["0x0018"] > 1000, flags
        streams = Counter(len(row["gsm_ipa.protocol"]) for row in tcp if row["gsm_ipa.protocol"])
        assert set(streams) == {1, 2}, streams  # the default packing puts a few pairs in one segment
        assert all(set(row["gsm_ipa.protocol"]) == {"0xfd"} for row in tcp if row["gsm_ipa.protocol"])
    else:
        opcs = {int(pc) for row in rows.values() for pc in row["m3ua.protocol_data_opc"]}
        assert opcs and min(opcs) > 0x3FFF and max(opcs) <= 0xFFFFFF, opcs
        assert not any(row["sccp.calling.pc"] or row["sccp.called.pc"] for row in rows.values())


@pytest.mark.parametrize("variant", VARIANTS, ids=["-".join(v) for v in VARIANTS])
def test_a_interface_variant_carries_the_same_payloads(carriers, variant):
    """sigloc reads the same payloads in the same order from a variant as from the default city (same messages,
    another carrier): 24-bit point codes in ``auto`` and ``chinese`` mode alike. Its BSSAP payloads of each frame
    are tshark's."""
    default = _payload_sequence(carriers["m3ua", "itu"] / "capture.pcap")
    capture = carriers[variant] / "capture.pcap"
    assert len(default) > 1000
    assert _payload_sequence(capture) == default
    if variant[1] == "24bit":
        assert _payload_sequence(capture, "chinese") == default
    else:
        ours = Counter()
        for batch in read_payloads(capture):
            for i in range(len(batch)):
                if int(batch.proto[i]) != PROTO_S1AP:
                    ours[int(batch.frame[i]), batch.payload(i)] += 1
        theirs = Counter((frame, payload) for frame, payloads in raw_layers(capture, "bssap").items()
                         for payload in payloads)
        assert ours == theirs and sum(theirs.values()) > 500


@pytest.mark.parametrize("variant", VARIANTS, ids=["-".join(v) for v in VARIANTS])
def test_a_interface_variant_gives_the_same_events(carriers, variant):
    """The probe derives the same events from a variant as from the default city (frame numbers aside)."""
    from decoders.events import events_from_file
    from test_events import scenario_config

    def events(city):
        table = events_from_file(city / "capture.pcap", scenario_config(city),
                                 restore=city / "previous_state.json.gz")
        return [{k: v for k, v in row.items() if k != "frame"} for row in table.to_pylist()]

    default = events(carriers["m3ua", "itu"])
    assert len(default) > 100
    assert events(carriers[variant]) == default


def test_unknown_a_interface_carrier_is_refused(tmp_path):
    with pytest.raises(ValueError, match="a_transport"):
        simulate(tmp_path, subscribers=5, hours=0.1, a_transport="m2ua")
    with pytest.raises(ValueError, match="point_codes"):
        simulate(tmp_path, subscribers=5, hours=0.1, point_codes="ansi")
