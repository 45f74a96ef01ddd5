"""Campaign rule trees: who, in which situation, a campaign wants to reach (docs/campaigns.md).

A rule is JSON (the web app posts it): ``{"and": [...]}``, ``{"or": [...]}``, ``{"not": {...}}`` over
leaves ``{"field": F, "equals" | "in" | "range": V}`` and ``{"time": {"hours", "weekdays", "dates"}}``.
Parsing checks every node and names its path (``$.and[1].in``) in the error, so the UI can point at it.
A parsed rule evaluates to a NumPy mask over an Arrow table of candidate rows (one column per field,
built by geofence.campaigns); a null field never satisfies a leaf, so ``not`` of a leaf includes unknowns.
"""

import json
import re
from dataclasses import dataclass
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from decoders.records import EventKind
from geofence.match import Detect

ROAMING = ("local", "other_province", "international", "unknown")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # pyarrow day_of_week: Monday = 0
TAG_PREFIX = "tag."
# Field → allowed values (None: free text). Tags (tag.<name>) are free text or numbers.
FIELDS: dict[str, tuple[str, ...] | None] = {
    "kind": tuple(d.value for d in Detect),
    "event": tuple(k.value for k in EventKind),
    "fence": None,
    "roaming": ROAMING,
    "home_province": None,
    "home_city": None,
    "mcc": None,
    "country": None,
    "tac": None,
    "brand": None,
    "model": None,
}
_OPS = ("equals", "in", "range")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")


class RuleError(ValueError):
    """A rule tree that cannot be used; the message starts with the JSON path of the bad node."""


class Rule:
    """A node of the tree; ``mask`` is True for the rows of ``table`` the rule accepts."""

    def mask(self, table: pa.Table, tz: str = "UTC") -> np.ndarray:
        return self._mask(table, _Local(table, tz))

    def _mask(self, table: pa.Table, local: "_Local") -> np.ndarray:
        raise NotImplementedError


@dataclass
class And(Rule):
    parts: list[Rule]

    def _mask(self, table, local):
        out = np.ones(len(table), bool)
        for part in self.parts:
            out &= part._mask(table, local)
        return out


@dataclass
class Or(Rule):
    parts: list[Rule]

    def _mask(self, table, local):
        out = np.zeros(len(table), bool)
        for part in self.parts:
            out |= part._mask(table, local)
        return out


@dataclass
class Not(Rule):
    part: Rule

    def _mask(self, table, local):
        return ~self.part._mask(table, local)


@dataclass
class Field(Rule):
    path: str
    field: str
    op: str
    value: object

    def _mask(self, table, local):
        if self.field not in table.column_names:
            raise RuleError(f"{self.path}: field {self.field!r} is not in the candidate data "
                            f"(columns: {', '.join(table.column_names)})")
        column = table[self.field]
        numeric = _is_number(column.type)
        if self.op == "range":
            if not numeric:
                raise RuleError(f"{self.path}: range needs a numeric field; {self.field!r} is {column.type}")
            lo, hi = self.value
            hit = pc.is_valid(column)
            if lo is not None:
                hit = pc.and_(hit, pc.greater_equal(column, lo))
            if hi is not None:
                hit = pc.and_(hit, pc.less_equal(column, hi))
        else:
            values = [self.value] if self.op == "equals" else list(self.value)
            if numeric and not all(isinstance(v, int | float) for v in values):
                raise RuleError(f"{self.path}: field {self.field!r} is numeric; compare it with numbers")
            if not numeric:
                values = [str(v) for v in values]
            hit = pc.is_in(column, value_set=pa.array(values, column.type))
        return _numpy(hit)


@dataclass
class Time(Rule):
    """Local-time window: every part given must hold (hours, weekdays, dates), in the engine's time zone."""

    hours: list[tuple[int, int]]       # [start, end) minutes of the day; start > end wraps past midnight
    weekdays: list[int]
    dates: list[tuple[str, str]]       # inclusive ISO date ranges

    def _mask(self, table, local):
        out = np.ones(len(table), bool)
        if self.hours:
            minute = local.minute_of_day()
            hit = np.zeros(len(table), bool)
            for start, end in self.hours:
                hit |= ((minute >= start) & (minute < end)) if start <= end else ((minute >= start) | (minute < end))
            out &= hit
        if self.weekdays:
            out &= np.isin(local.weekday(), self.weekdays)
        if self.dates:
            day = local.date()
            hit = np.zeros(len(table), bool)
            for first, last in self.dates:
                hit |= (day >= first) & (day <= last)
            out &= hit
        return out


class _Local:
    """Local-time components of the table's ``ts``, computed once per evaluation and shared by all leaves."""

    def __init__(self, table: pa.Table, tz: str):
        self.table, self.tz, self._cache = table, tz, {}

    def _ts(self):
        if "ts" not in self._cache:
            self._cache["ts"] = self.table["ts"].cast(pa.timestamp("us", tz=self.tz))
        return self._cache["ts"]

    def minute_of_day(self) -> np.ndarray:
        ts = self._ts()
        return _ints(pc.add(pc.multiply(pc.hour(ts), 60), pc.minute(ts)))

    def weekday(self) -> np.ndarray:
        return _ints(pc.day_of_week(self._ts()))

    def date(self) -> np.ndarray:
        return np.asarray(pc.strftime(self._ts(), "%Y-%m-%d").to_numpy(zero_copy_only=False), dtype="U10")


def _is_number(type_: pa.DataType) -> bool:
    return pa.types.is_floating(type_) or pa.types.is_integer(type_)


def _numpy(mask) -> np.ndarray:
    return pc.fill_null(mask, False).to_numpy(zero_copy_only=False).astype(bool, copy=False)


def _ints(array) -> np.ndarray:
    return array.to_numpy(zero_copy_only=False).astype(np.int64)


def parse_rule(doc, tags: dict[str, pa.DataType] | None = None) -> Rule:
    """A rule tree from JSON text or its decoded form; ``tags`` (name → type), if known, checks tag leaves."""
    if isinstance(doc, str | bytes):
        try:
            doc = json.loads(doc)
        except json.JSONDecodeError as err:
            raise RuleError(f"$: not JSON (line {err.lineno} column {err.colno}): {err.msg}") from None
    return _parse(doc, "$", tags)


def _parse(node, path: str, tags) -> Rule:
    if not isinstance(node, dict):
        raise RuleError(f"{path}: expected an object, got {type(node).__name__}")
    if len(node.keys() & {"and", "or", "not", "field", "time"}) != 1:
        raise RuleError(f"{path}: a node is exactly one of and, or, not, field, time; got keys {sorted(node)}")
    for op in ("and", "or"):
        if op in node:
            _only(node, path, {op})
            parts = node[op]
            if not isinstance(parts, list) or not parts:
                raise RuleError(f"{path}.{op}: expected a non-empty list of rules")
            rules = [_parse(p, f"{path}.{op}[{i}]", tags) for i, p in enumerate(parts)]
            return And(rules) if op == "and" else Or(rules)
    if "not" in node:
        _only(node, path, {"not"})
        return Not(_parse(node["not"], f"{path}.not", tags))
    if "time" in node:
        _only(node, path, {"time"})
        return _parse_time(node["time"], f"{path}.time")
    return _parse_field(node, path, tags)


def _only(node: dict, path: str, allowed: set[str]) -> None:
    extra = sorted(set(node) - allowed)
    if extra:
        raise RuleError(f"{path}: unexpected key(s) {', '.join(extra)}")


def _parse_field(node: dict, path: str, tags) -> Field:
    field = node["field"]
    ops = [op for op in _OPS if op in node]
    if len(ops) != 1:
        raise RuleError(f"{path}: a field leaf needs exactly one of equals, in, range")
    op = ops[0]
    _only(node, path, {"field", op})
    value = node[op]
    where = f"{path}.{op}"
    if not isinstance(field, str):
        raise RuleError(f"{path}.field: expected a field name")
    if field.startswith(TAG_PREFIX):
        name = field[len(TAG_PREFIX):]
        if tags is not None and name not in tags:
            raise RuleError(f"{path}.field: unknown profile tag {name!r} (known: {', '.join(sorted(tags))})")
        allowed = None
    elif field in FIELDS:
        allowed = FIELDS[field]
    else:
        raise RuleError(f"{path}.field: unknown field {field!r} (fields: {', '.join(FIELDS)}, tag.<name>)")
    if op == "range":
        if field in FIELDS or (tags is not None and not _is_number(tags[field[len(TAG_PREFIX):]])):
            raise RuleError(f"{where}: range applies only to numeric profile tags, not {field!r}")
        if (not isinstance(value, list) or len(value) != 2 or value == [None, None]
                or not all(v is None or isinstance(v, int | float) and not isinstance(v, bool) for v in value)):
            raise RuleError(f"{where}: expected [low, high] numbers (either may be null for an open end)")
        if None not in value and value[0] > value[1]:
            raise RuleError(f"{where}: low {value[0]} is above high {value[1]}")
        return Field(path, field, op, tuple(value))
    values = [value] if op == "equals" else value
    if op == "in" and (not isinstance(value, list) or not value):
        raise RuleError(f"{where}: expected a non-empty list")
    for i, v in enumerate(values):
        at = where if op == "equals" else f"{where}[{i}]"
        if not isinstance(v, str | int | float) or isinstance(v, bool):
            raise RuleError(f"{at}: expected a string or number")
        if allowed is not None and v not in allowed:
            raise RuleError(f"{at}: {v!r} is not a valid {field} ({', '.join(allowed)})")
    return Field(path, field, op, value if op == "equals" else list(value))


def _parse_time(node, path: str) -> Time:
    if not isinstance(node, dict) or not node:
        raise RuleError(f"{path}: expected an object with hours, weekdays and/or dates")
    _only(node, path, {"hours", "weekdays", "dates"})
    hours, weekdays, dates = [], [], []
    for i, window in enumerate(_list(node, "hours", path)):
        if not (isinstance(window, list) and len(window) == 2 and all(isinstance(t, str) for t in window)):
            raise RuleError(f"{path}.hours[{i}]: expected [\"HH:MM\", \"HH:MM\"]")
        start, end = (_minutes(t, f"{path}.hours[{i}]") for t in window)
        if start == end:
            raise RuleError(f"{path}.hours[{i}]: empty window {window[0]}-{window[1]}")
        hours.append((start, end))
    for i, day in enumerate(_list(node, "weekdays", path)):
        if day not in WEEKDAYS:
            raise RuleError(f"{path}.weekdays[{i}]: {day!r} is not one of {', '.join(WEEKDAYS)}")
        weekdays.append(WEEKDAYS.index(day))
    for i, item in enumerate(_list(node, "dates", path)):
        at = f"{path}.dates[{i}]"
        first, last = (item, item) if isinstance(item, str) else (item if isinstance(item, list) and len(item) == 2
                                                                   else (None, None))
        first, last = _iso(first, at), _iso(last, at)
        if first > last:
            raise RuleError(f"{at}: {first} is after {last}")
        dates.append((first, last))
    return Time(hours, weekdays, dates)


def _list(node: dict, key: str, path: str) -> list:
    value = node.get(key, [])
    if not isinstance(value, list):
        raise RuleError(f"{path}.{key}: expected a list")
    return value


def _minutes(text: str, path: str) -> int:
    m = _HHMM.match(text)
    if not m:
        raise RuleError(f"{path}: {text!r} is not HH:MM")
    return 24 * 60 if text == "24:00" else int(m.group(1)) * 60 + int(m.group(2))


def _iso(text, path: str) -> str:
    try:
        if isinstance(text, str) and len(text) == 10:
            return date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    raise RuleError(f"{path}: expected a date YYYY-MM-DD or [first, last]; got {text!r}")
