"""Behaviour events derived from the simulator's capture equal the simulator's ground truth."""

import csv
import json
from collections import Counter

import pytest

from decoders.decode import DecodeState
from decoders.events import events_from_file
from decoders.records import EventKind


@pytest.fixture(scope="module")
def derived(city):
    state = DecodeState()
    events = events_from_file(city / "capture.pcap", state=state)
    truth = [json.loads(line) for line in open(city / "truth.jsonl")]
    return events.to_pylist(), truth, state


def _key(e):
    ts = e["ts"] if isinstance(e["ts"], float) else e["ts"].timestamp()
    return round(ts, 3), e["imsi"], e["event"], e["cell"], e.get("prev_cell"), e.get("detail")


def test_every_event_kind_matches_truth_exactly(derived):
    events, truth, _ = derived
    got, want = Counter(map(_key, events)), Counter(map(_key, truth))
    for kind in EventKind:
        g = Counter({k: n for k, n in got.items() if k[2] == kind})
        w = Counter({k: n for k, n in want.items() if k[2] == kind})
        assert w, f"the simulation produced no {kind} events"
        missing, extra = w - g, g - w
        assert not missing and not extra, f"{kind}: missing {list(missing)[:3]} extra {list(extra)[:3]}"


def test_tmsi_only_messages_resolved(derived):
    events, truth, _ = derived
    assert all(e["imsi"] for e in events)
    # Most events are revealed by messages that carry only a TMSI / S-TMSI / S1AP IDs.
    temporary = [e for e in events if e["event"] != "power_on"]
    assert len(temporary) > len(events) / 2


def test_no_anomalies_on_clean_capture(derived):
    _, _, state = derived
    assert not state.anomalies, state.anomalies


def test_call_outcome_causes_match_truth(derived):
    events, truth, _ = derived
    got = Counter((_key(e), e["cause"]) for e in events if e["event"] == "call_outcome")
    want = Counter((_key(e), e["cause"]) for e in truth if e["event"] == "call_outcome")
    assert got == want
    # The simulated city exercises every way a call ends that its network produces.
    assert {key[5] for key, _ in want} == {"answered", "busy", "no_answer", "rejected", "vacant_number", "failed"}


def test_roaming_in_names_the_international_visitors(derived, city):
    events, _, _ = derived
    visitors = {row["imsi"] for row in csv.DictReader(open(city / "subscribers.csv"))
                if row["kind"] == "international_tourist"}
    arrivals = Counter(e["imsi"] for e in events if e["event"] == "roaming_in")
    assert set(arrivals) == visitors and set(arrivals.values()) == {1}
