"""The simulator writes real captures: Wireshark decodes every frame without a warning, and the truth is consistent."""

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from capture.stack import read_payloads
from simulator.pcap import SctpPacking
from simulator.scenario import simulate
from tshark_oracle import fields

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
