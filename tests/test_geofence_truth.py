"""Dwell, pass-through and exit hysteresis on the simulated city, checked against the simulator's ground truth.

The expected detections are computed here from truth.jsonl alone (the simulator's record of where each
subscriber was seen), following the detection words of docs/geofence.md; the kernel sees only the events
sigloc derived from the capture.
"""

import json

from test_events import scenario_config

from decoders.decode import DecodeState
from decoders.events import events_from_file
from geofence.cells import Catalogue
from geofence.fences import compile_fence, load_fence
from geofence.match import DetectConfig, FenceMatcher

DWELL_S, PASS_S, CONFIRM = 600.0, 900.0, 2


def truth_detections(truth: list[dict], fence_cells: set[str]) -> list[tuple]:
    """(ts, imsi, word) from truth: enter, dwell once per visit after DWELL_S, exit confirmed by CONFIRM
    located events in a row outside (power off: at once), pass_through when enter → first outside < PASS_S."""
    state: dict[str, dict] = {}
    out = []
    for e in truth:
        located = e["event"] == "power_off" or e.get("cell")
        if not located or not e.get("imsi"):
            continue
        s = state.setdefault(e["imsi"], {"in": False})
        t, imsi = round(e["ts"], 3), e["imsi"]
        off = e["event"] == "power_off"
        if not off and e["cell"] in fence_cells:
            if not s["in"]:
                s.update({"in": True, "enter": e["ts"], "dwell": False, "first_out": None, "outs": 0})
                out.append((t, imsi, "enter"))
                continue
            s["first_out"], s["outs"] = None, 0  # back inside: a pending exit is cancelled
            if not s["dwell"] and e["ts"] - s["enter"] >= DWELL_S:
                s["dwell"] = True
                out.append((t, imsi, "dwell"))
        elif s["in"]:
            if s["first_out"] is None:
                s["first_out"] = e["ts"]
            s["outs"] += 1
            if off or s["outs"] >= CONFIRM:
                out.append((t, imsi, "exit"))
                if s["first_out"] - s["enter"] < PASS_S:
                    out.append((t, imsi, "pass_through"))
                s["in"] = False
    return sorted(out)


def city_fence_and_events(city):
    """The city's catalogue, West Lake fence and its cells, and the events sigloc derives, in time order."""
    catalogue = Catalogue.load(city / "cells.csv")
    fence = load_fence(city / "west_lake.geojson")
    events = events_from_file(city / "capture.pcap", scenario_config(city), state=DecodeState(),
                              restore=city / "previous_state.json.gz")
    return catalogue, fence, compile_fence(fence, catalogue), events.sort_by([("ts", "ascending"),
                                                                               ("frame", "ascending")])


def test_dwell_pass_through_and_hysteresis_match_truth(city):
    catalogue, fence, cells, events = city_fence_and_events(city)
    config = DetectConfig(dwell_s=DWELL_S, pass_through_s=PASS_S, exit_confirm=CONFIRM)
    got = sorted((round(r["ts"].timestamp(), 3), r["imsi"], r["kind"])
                 for r in FenceMatcher(catalogue.keys, {fence.name: cells}, config).match(events).to_pylist())
    truth = sorted((json.loads(line) for line in open(city / "truth.jsonl")), key=lambda e: e["ts"])
    want = truth_detections(truth, set(cells))
    kinds = {w[2] for w in want}
    assert {"enter", "dwell", "exit"} <= kinds, kinds  # the city exercises the words being checked
    assert got == want
