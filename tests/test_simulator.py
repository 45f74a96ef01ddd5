"""The simulator writes real captures: Wireshark decodes every frame without a warning, and the truth is consistent."""

import csv
import json
from collections import Counter

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
