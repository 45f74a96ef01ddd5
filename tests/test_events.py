"""Behaviour events derived from the simulator's capture equal the simulator's ground truth."""

import csv
import json
from collections import Counter

import pytest

from analytics.origin import Origins
from decoders.decode import DecodeState
from decoders.events import EventConfig, events_from_file
from decoders.records import EventKind


def scenario_config(city) -> EventConfig:
    """The probe configured as the simulated operator would: the scenario's thresholds and cell sets, and
    the number segments for other-province visitors."""
    origins = Origins.load(city / "number_segments.csv")
    return EventConfig.from_scenario(city / "scenario.json", province_of=lambda imsi: origins.home(imsi).province)


@pytest.fixture(scope="module")
def derived(city):
    state = DecodeState()
    events = events_from_file(city / "capture.pcap", scenario_config(city), state=state,
                              restore=city / "previous_state.json.gz")
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


def test_roaming_in_names_the_visitors(derived, city):
    events, _, _ = derived
    subscribers = list(csv.DictReader(open(city / "subscribers.csv")))
    visitors = {row["imsi"] for row in subscribers if row["kind"] == "international_tourist"}
    domestic = {row["imsi"] for row in subscribers if row["home"] != "Zhejiang" and row["imsi"][:3] == "460"}
    arrivals = Counter((e["imsi"], e["detail"]) for e in events if e["event"] == "roaming_in")
    assert set(arrivals) == {(i, "international") for i in visitors} | {(i, "domestic") for i in domestic}
    assert set(arrivals.values()) == {1}
