"""Rule trees (geofence/rules.py): each operator and leaf on a hand-made candidate table, and parse errors
that name the path of the bad node."""

import re
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pytest

from decoders.records import TS
from geofence.rules import RuleError, parse_rule

CST = timezone(timedelta(hours=8))


def _ts(*local):
    """Epoch microseconds of a China Standard Time wall-clock time."""
    return round(datetime(*local, tzinfo=CST).timestamp() * 1e6)


# Five candidates; 2026-12-02 is a Wednesday.
ROWS = pa.table({
    "ts": pa.array([_ts(2026, 12, 2, 9, 0), _ts(2026, 12, 2, 23, 30), _ts(2026, 12, 5, 7, 59),
                    _ts(2026, 12, 6, 12, 0), _ts(2026, 12, 24, 18, 0)], pa.int64()).cast(TS),
    "kind": ["enter", "dwell", None, "exit", "inside"],
    "event": ["cell_change", "location_update", "power_on", "cell_change", "imei_change"],
    "fence": ["lake", "lake", None, "airport", "airport"],
    "roaming": ["local", "other_province", "international", "local", "unknown"],
    "home_province": ["Zhejiang", "Shanghai", None, "Zhejiang", None],
    "mcc": ["460", "460", "262", "460", "460"],
    "brand": ["Apple", "Huawei", None, "Apple", "Xiaomi"],
    "tag.arpu": pa.array([188.5, 40.0, None, 99.0, 300.0], pa.float64()),
    "tag.plan": ["gold", "silver", None, "gold", "bronze"],
})


def _rows(rule, tz="Asia/Shanghai"):
    return list(np.flatnonzero(parse_rule(rule).mask(ROWS, tz)))


@pytest.mark.parametrize("rule, rows", [
    ({"field": "kind", "equals": "enter"}, [0]),
    ({"field": "kind", "in": ["dwell", "exit"]}, [1, 3]),
    ({"field": "event", "equals": "power_on"}, [2]),
    ({"field": "roaming", "in": ["other_province", "international"]}, [1, 2]),
    ({"field": "home_province", "equals": "Zhejiang"}, [0, 3]),
    ({"field": "mcc", "equals": "262"}, [2]),
    ({"field": "brand", "in": ["Apple", "Xiaomi"]}, [0, 3, 4]),
    ({"field": "tag.plan", "equals": "gold"}, [0, 3]),
    ({"field": "tag.arpu", "range": [99, 188.5]}, [0, 3]),        # inclusive both ends
    ({"field": "tag.arpu", "range": [100, None]}, [0, 4]),        # open high end; the null row never matches
    ({"field": "tag.arpu", "range": [None, 50]}, [1]),
    ({"field": "tag.arpu", "equals": 40}, [1]),
    ({"field": "tag.arpu", "in": [40, 300]}, [1, 4]),
])
def test_leaves(rule, rows):
    assert _rows(rule) == rows


def test_and_or_not():
    apple = {"field": "brand", "equals": "Apple"}
    lake = {"field": "fence", "equals": "lake"}
    assert _rows({"and": [apple, lake]}) == [0]
    assert _rows({"or": [apple, lake]}) == [0, 1, 3]
    assert _rows({"not": apple}) == [1, 2, 4]  # null brand (row 2) is "not Apple"
    assert _rows({"not": {"not": apple}}) == [0, 3]
    assert _rows({"and": [{"or": [apple, lake]}, {"not": {"field": "kind", "equals": "exit"}}]}) == [0, 1]


def test_time_hours_in_configured_zone():
    assert _rows({"time": {"hours": [["08:00", "18:00"]]}}) == [0, 3]          # 18:00 is excluded
    assert _rows({"time": {"hours": [["22:00", "08:00"]]}}) == [1, 2]          # wraps past midnight
    assert _rows({"time": {"hours": [["07:00", "08:00"], ["17:00", "24:00"]]}}) == [1, 2, 4]
    # the same instants seen from UTC: 09:00 CST is 01:00 UTC, 23:30 CST is 15:30 UTC
    assert _rows({"time": {"hours": [["08:00", "18:00"]]}}, tz="UTC") == [1, 4]


def test_time_weekdays_and_dates():
    assert _rows({"time": {"weekdays": ["sat", "sun"]}}) == [2, 3]
    assert _rows({"time": {"dates": ["2026-12-24"]}}) == [4]
    assert _rows({"time": {"dates": [["2026-12-01", "2026-12-05"]]}}) == [0, 1, 2]
    assert _rows({"time": {"weekdays": ["wed"], "hours": [["20:00", "24:00"]]}}) == [1]
    # 23:30 CST on 2 December is still 2 December in Shanghai but 15:30 in UTC the same day;
    # 07:59 CST on 5 December is 23:59 UTC on the 4th
    assert _rows({"time": {"dates": ["2026-12-04"]}}, tz="UTC") == [2]


def test_json_text_accepted():
    assert _rows('{"field": "kind", "equals": "enter"}') == [0]


@pytest.mark.parametrize("rule, message", [
    ("{nope", "$: not JSON (line 1 column 2)"),
    ([], "$: expected an object, got list"),
    ({"and": []}, "$.and: expected a non-empty list of rules"),
    ({"and": [{"field": "kind", "equals": "enter"}, {"or": [{"field": "kind", "equals": "walk"}]}]},
     "$.and[1].or[0].equals: 'walk' is not a valid kind"),
    ({"not": {"field": "colour", "equals": "red"}}, "$.not.field: unknown field 'colour'"),
    ({"field": "event", "in": ["power_on", "teleport"]}, "$.in[1]: 'teleport' is not a valid event"),
    ({"field": "kind", "equals": "enter", "in": ["exit"]}, "$: a field leaf needs exactly one of equals, in, range"),
    ({"field": "kind", "in": []}, "$.in: expected a non-empty list"),
    ({"field": "brand", "range": [1, 2]}, "$.range: range applies only to numeric profile tags, not 'brand'"),
    ({"field": "tag.arpu", "range": [200, 100]}, "$.range: low 200 is above high 100"),
    ({"field": "tag.arpu", "range": [None, None]}, "$.range: expected [low, high] numbers"),
    ({"and": [{"field": "kind", "equals": "enter"}], "or": []}, "$: a node is exactly one of"),
    ({"not": {"field": "kind", "equals": "enter"}, "extra": 1}, "$: unexpected key(s) extra"),
    ({"time": {"hours": [["25:00", "08:00"]]}}, "$.time.hours[0]: '25:00' is not HH:MM"),
    ({"time": {"hours": [["08:00", "08:00"]]}}, "$.time.hours[0]: empty window 08:00-08:00"),
    ({"time": {"weekdays": ["monday"]}}, "$.time.weekdays[0]: 'monday' is not one of mon"),
    ({"time": {"dates": [["2026-12-31", "2026-12-01"]]}}, "$.time.dates[0]: 2026-12-31 is after 2026-12-01"),
    ({"time": {"dates": ["24/12/2026"]}}, "$.time.dates[0]: expected a date YYYY-MM-DD"),
    ({"time": {"months": [12]}}, "$.time: unexpected key(s) months"),
])
def test_parse_errors_name_the_path(rule, message):
    with pytest.raises(RuleError, match=re.escape(message)):
        parse_rule(rule)


def test_known_tags_checked_at_parse():
    tags = {"arpu": pa.float64(), "plan": pa.string()}
    parse_rule({"field": "tag.arpu", "range": [1, 2]}, tags)
    with pytest.raises(RuleError, match=re.escape("$.field: unknown profile tag 'tenure' (known: arpu, plan)")):
        parse_rule({"field": "tag.tenure", "equals": "5y"}, tags)
    with pytest.raises(RuleError, match=re.escape("$.range: range applies only to numeric profile tags")):
        parse_rule({"field": "tag.plan", "range": [1, 2]}, tags)


def test_evaluation_errors_name_the_path():
    with pytest.raises(RuleError, match=re.escape("$.or[1]: field 'tag.tenure' is not in the candidate data")):
        parse_rule({"or": [{"field": "kind", "equals": "enter"}, {"field": "tag.tenure", "equals": "5y"}]}).mask(ROWS)
    with pytest.raises(RuleError, match=re.escape("$: range needs a numeric field; 'tag.plan' is string")):
        parse_rule({"field": "tag.plan", "range": [1, 2]}).mask(ROWS)
    with pytest.raises(RuleError, match=re.escape("$: field 'tag.arpu' is numeric; compare it with numbers")):
        parse_rule({"field": "tag.arpu", "equals": "high"}).mask(ROWS)


def _reference(node, row) -> bool:
    """Row-by-row reading of the grammar in docs/campaigns.md, for the differential test."""
    if "and" in node:
        return all(_reference(n, row) for n in node["and"])
    if "or" in node:
        return any(_reference(n, row) for n in node["or"])
    if "not" in node:
        return not _reference(node["not"], row)
    value = row[node["field"]]
    if value is None:
        return False
    if "equals" in node:
        return value == node["equals"]
    return value in node["in"]


LEAVES = [{"field": "kind", "equals": "enter"}, {"field": "kind", "in": ["dwell", "exit"]},
          {"field": "brand", "equals": "Apple"}, {"field": "roaming", "in": ["local", "unknown"]},
          {"field": "tag.plan", "equals": "gold"}, {"field": "home_province", "equals": "Zhejiang"}]


def test_random_trees_match_row_by_row_reference():
    rng = np.random.default_rng(7)

    def tree(depth):
        if depth == 0 or rng.random() < 0.3:
            return LEAVES[rng.integers(len(LEAVES))]
        op = ("and", "or", "not")[rng.integers(3)]
        if op == "not":
            return {"not": tree(depth - 1)}
        return {op: [tree(depth - 1) for _ in range(rng.integers(1, 4))]}

    rows = ROWS.to_pylist()
    for _ in range(300):
        rule = tree(4)
        expected = [i for i, row in enumerate(rows) if _reference(rule, row)]
        assert _rows(rule) == expected, rule
