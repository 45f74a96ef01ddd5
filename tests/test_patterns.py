"""Pattern events on hand-made event streams (thresholds met exactly, one microsecond short, batching), and every
event kind's precision and recall against the simulator's ground truth on A and on S1."""

import csv
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decoders.decode import decode_file
from decoders.events import EventConfig, EventDeriver, events_from_file
from decoders.patterns import US, PatternDetector, iso_us
from decoders.records import EVENT_SCHEMA, EventKind, RecordBuilder

IMSI = "460005710000001"
T0 = 1_777_593_600 * US  # 2026-05-01T00:00:00Z in µs
CFG = EventConfig(fast_switch_changes=3, fast_switch_window_s=60, long_stay_s=600, silent_days=2,
                  on_off_cycles=2, on_off_window_s=300, border_cells=frozenset({"460-00-9-9"}), roaming_out_s=900,
                  cell_groups={"460-00-1-1": "airport", "460-00-1-2": "airport"})


def _table(events: list[tuple]):
    """(µs, event, cell[, imsi]) tuples as an event table."""
    builder = RecordBuilder(EVENT_SCHEMA)
    for n, (ts, event, cell, *imsi) in enumerate(events, 1):
        builder.append({"ts": ts / US, "iface": "A", "event": event, "cell": cell, "imsi": imsi[0] if imsi else IMSI,
                        "frame": n})
    return builder.table()


def _patterns(events: list[tuple], config: EventConfig = CFG, batches: int = 1, stays: bool = True) -> list[tuple]:
    detector = PatternDetector(config if stays else replace(config, long_stay_s=1e9))
    size = -(-len(events) // batches) if events else 1
    out = []
    for i in range(0, len(events), size):
        out += detector.feed(_table(events[i:i + size])).to_pylist()
    return [(round(e["ts"].timestamp() * US), e["event"], e["cell"], e["detail"]) for e in out]


def _changes(times_s: list[float], prefix: str = "460-00-5-") -> list[tuple]:
    return [(T0 + round(t * US), "cell_change", f"{prefix}{n}") for n, t in enumerate(times_s)]


def test_fast_cell_switching_needs_n_changes_within_the_window():
    assert _patterns(_changes([0, 30, 60])) == [(T0 + 60 * US, "fast_cell_switching", "460-00-5-2", "3")]
    assert _patterns(_changes([0, 30, 60.000001])) == []
    # After a report the count starts again: six quick changes are two rides' worth, not four.
    assert [p[0] for p in _patterns(_changes([0, 10, 20, 30, 40, 50]))] == [T0 + 20 * US, T0 + 50 * US]


def test_long_stay_in_a_cell_group_once_per_stay():
    events = [(T0, "power_on", "460-00-1-1"), (T0 + 300 * US, "location_update", "460-00-1-2"),
              (T0 + 600 * US, "sms_mo", "460-00-1-1"), (T0 + 900 * US, "sms_mo", "460-00-1-2")]
    assert _patterns(events) == [(T0 + 600 * US, "long_stay", "460-00-1-1", "airport")]
    # A cell outside the group ends the stay; a cell in no group is a group of its own.
    broken = events[:2] + [(T0 + 400 * US, "sms_mo", "460-00-7-7"), (T0 + 1000 * US, "sms_mo", "460-00-7-7"),
                           (T0 + 1100 * US, "sms_mo", "460-00-1-1")]
    assert _patterns(broken) == [(T0 + 1000 * US, "long_stay", "460-00-7-7", "460-00-7-7")]
    assert _patterns([(T0, "power_on", "460-00-1-1"), (T0 + 599_999_999, "sms_mo", "460-00-1-1")]) == []


def test_power_off_ends_a_stay():
    events = [(T0, "power_on", "460-00-1-1"), (T0 + 500 * US, "power_off", "460-00-1-1"),
              (T0 + 550 * US, "power_on", "460-00-1-1"), (T0 + 700 * US, "sms_mo", "460-00-1-1")]
    assert [p[1] for p in _patterns(events)] == []


def test_silent_power_on_after_days_unseen():
    seen = T0 - 2 * 86400 * US
    events = [(seen, "location_update", "460-00-3-3"), (T0, "power_on", "460-00-3-3")]
    assert _patterns(events) == [(T0, "silent_power_on", "460-00-3-3", iso_us(seen))]
    assert iso_us(seen) == "2026-04-29T00:00:00.000Z"
    assert _patterns([(seen + 1, "location_update", "460-00-3-3"), (T0, "power_on", "460-00-3-3")]) == []
    # Any event counts as being seen, not only power on.
    assert _patterns([(seen, "power_on", "c"), (T0 - US, "sms_mo", "c"), (T0, "power_on", "c")], stays=False) == []


def test_frequent_on_off_counts_completed_cycles():
    cycle = lambda t: [(T0 + (t - 5) * US, "power_off", "c"), (T0 + t * US, "power_on", "c")]  # noqa: E731
    events = [(T0, "power_on", "c"), *cycle(100), *cycle(400)]
    assert _patterns(events) == [(T0 + 400 * US, "frequent_on_off", "c", "2")]
    assert _patterns([(T0, "power_on", "c"), *cycle(100), *cycle(401)]) == []
    assert _patterns([(T0, "power_on", "c"), (T0 + 100 * US, "power_on", "c"), (T0 + 200 * US, "power_on", "c")]) == []


def _border(ts_s: float, event: str = "location_update", imsi: str = IMSI) -> tuple:
    return (T0 + round(ts_s * US), event, "460-00-9-9", imsi)


def test_roaming_out_when_the_clock_passes_the_silence():
    other = lambda t: (T0 + round(t * US), "sms_mo", "460-00-4-4", "460005710000002")  # noqa: E731
    events = [_border(0), other(899), other(900)]
    assert _patterns(events) == [(T0 + 900 * US, "roaming_out", "460-00-9-9", iso_us(T0))]
    assert _patterns(events, batches=3) == _patterns(events)
    assert _patterns([_border(0), other(899.999999)]) == []                 # the clock has not got there
    assert _patterns([_border(0), _border(600, "sms_mo"), other(1000)], stays=False) == []  # seen again
    assert _patterns([_border(0), (T0 + 100 * US, "sms_mo", "460-00-4-4"), other(1000)]) == []  # moved inland
    assert _patterns([_border(0, "power_off"), other(1000)]) == []            # switched off, not gone
    assert _patterns([_border(0, imsi="234150000000001"), other(1000)]) == []  # a visitor leaving is no roamer
    # Back after the silence: the departure is still reported, once.
    assert [p[1] for p in _patterns([_border(0), _border(2000, "sms_mo"), other(2100)], stays=False)] == [
        "roaming_out"]


@pytest.mark.parametrize("batches", [1, 2, 5])
def test_batching_does_not_change_the_result(batches):
    events = sorted(_changes([0, 20, 40, 50, 55, 59, 61, 70]) + [
        (T0, "power_on", "460-00-1-1", "460005710000009"), (T0 + 700 * US, "sms_mo", "460-00-1-2", "460005710000009")])
    assert _patterns(events, batches=batches) == _patterns(events)


_stream = st.lists(st.tuples(st.sampled_from([0, 1, 10, 30, 100, 400, 1000]), st.sampled_from(["power_on", "power_off", "cell_change", "sms_mo"]),
                             st.sampled_from(["460-00-1-1", "460-00-1-2", "460-00-9-9", "460-00-5-5"]),
                             st.sampled_from([IMSI, "460005710000002", "234150000000001"])), max_size=60)


@settings(max_examples=150, deadline=None)
@given(_stream, st.integers(1, 7))
def test_any_stream_gives_the_same_patterns_however_batched(steps, batches):
    """Events in time order (ties included), fed in any number of batches, yield the same pattern events."""
    events, t = [], T0
    for dt, kind, cell, imsi in steps:
        t += dt * US
        events.append((t, kind, cell, imsi))
    assert _patterns(events, batches=batches) == _patterns(events)


def test_defaults_are_conservative():
    """With defaults nothing fires on an ordinary hour: no border cells, two-hour stays, five changes in ten min."""
    cfg = EventConfig()
    events = _changes([0, 200, 400, 600]) + [(T0 + 3600 * US, "sms_mo", "460-00-5-3")]
    assert _patterns(events, cfg) == []


# -- against the simulator's ground truth -------------------------------------------------------------------------

@pytest.fixture(scope="module", params=[("A", 0.0), ("S1", 1.0)], ids=["A", "S1"])
def run(request, tmp_path_factory):
    """A 2-hour city on one interface only, its events derived by a probe configured like the scenario."""
    from simulator.scenario import simulate
    from test_events import scenario_config
    iface, share_4g = request.param
    city = Path(simulate(tmp_path_factory.mktemp(f"patterns-{iface}"), subscribers=80, hours=2.0, seed=23,
                         share_4g=share_4g)["dir"])
    events = events_from_file(city / "capture.pcap", scenario_config(city), restore=city / "previous_state.json.gz")
    truth = [json.loads(line) for line in open(city / "truth.jsonl")]
    return iface, city, events.to_pylist(), truth


def _key(e: dict) -> tuple:
    ts = e["ts"] if isinstance(e["ts"], float) else e["ts"].timestamp()
    return round(ts, 3), e["imsi"], e["event"], e["cell"], e.get("prev_cell"), e.get("detail")


@pytest.mark.parametrize("kind", list(EventKind))
def test_precision_and_recall_against_truth(run, kind):
    iface, _, events, truth = run
    got = Counter(_key(e) for e in events if e["event"] == kind)
    want = Counter(_key(e) for e in truth if e["event"] == kind)
    if kind in ("mo_call", "mt_call", "call_outcome", "sms_mo") and iface == "S1":
        assert not want and not got  # voice and SMS are CSFB/IMS on LTE: not on S1
        return
    assert want, f"the {iface} simulation produced no {kind}"
    hits = sum((got & want).values())
    precision, recall = hits / max(1, sum(got.values())), hits / sum(want.values())
    assert precision >= 0.99 and recall >= 0.99, (f"{kind} on {iface}: precision {precision:.3f} recall {recall:.3f}; "
                                                  f"missing {list(want - got)[:2]} extra {list(got - want)[:2]}")
    assert all(e["iface"] == iface for e in events if e["event"] == kind)


def test_patterns_name_the_cast(run):
    """The pattern events fall on the subscribers the scenario cast for them (truth follows the rules, not intent)."""
    _, city, events, _ = run
    kind_of = {row["imsi"]: row["kind"] for row in csv.DictReader(open(city / "subscribers.csv"))}
    cast = {"silent_power_on": "silent_returner", "frequent_on_off": "weak_signal", "roaming_out": "border_leaver",
            "fast_cell_switching": "rider"}
    for kind, who in cast.items():
        named = {e["imsi"] for e in events if e["event"] == kind}
        assert {imsi for imsi, k in kind_of.items() if k == who} <= named, kind
        if kind == "fast_cell_switching":  # anyone in a fast vehicle may: leavers on the motorway, airport taxis
            assert "weak_signal" not in {kind_of[i] for i in named}
        else:
            assert {kind_of[i] for i in named} == {who}, kind
    stays = {e["imsi"] for e in events if e["event"] == "long_stay" and e["detail"] == "airport"}
    assert stays and {kind_of[i] for i in stays} <= {"airport_stay", "domestic_tourist", "international_tourist"}


def _tmsi_only_resolution(city, restore: bool) -> float:
    """Share of the messages after a 10-minute warm-up that carry no IMSI yet belong to a subscriber's
    connection, whose connection got its IMSI by the end of the capture."""
    deriver = EventDeriver(EventConfig())
    if restore:
        deriver.restore(city / "previous_state.json.gz")
    correlator, contexts, start = deriver.correlator, [], None
    for table in decode_file(city / "capture.pcap"):
        for rec in table.to_pylist():
            start = start or rec["ts"].timestamp()
            ctx = correlator.observe(rec)
            if ctx is not None and not rec["imsi"] and rec["ts"].timestamp() > start + 600:
                contexts.append(ctx)
    assert len(contexts) > 1000
    return sum(ctx.imsi is not None for ctx in contexts) / len(contexts)


def test_tmsi_only_messages_resolved_after_warm_up(run):
    _, city, _, _ = run
    assert _tmsi_only_resolution(city, restore=True) >= 0.99
    # Without yesterday's store the phones attached since before the capture stay anonymous.
    assert _tmsi_only_resolution(city, restore=False) < 0.99


def test_a_phone_handed_on_shows_its_imei_with_another_imsi(run):
    """Card–machine split: the phone one subscriber put down is used by another, who sees an imei_change."""
    _, _, events, _ = run
    owners: dict[str, set] = {}
    for e in events:
        if e["imei"]:
            owners.setdefault(e["imei"][:14], set()).add(e["imsi"])
    shared = {imei for imei, imsis in owners.items() if len(imsis) > 1}
    assert shared
    assert any(e["event"] == "imei_change" and e["imei"][:14] in shared for e in events)
