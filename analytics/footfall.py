"""Footfall and visitor-origin reports for one fence, as pandas tables a client may see.

Both start from the fence's *visits* (analytics.report.VISITS_SQL: an enter up to the next exit, or the end
of the period while still inside) and count distinct pseudonymous visitors. The visits of one fence and
period are small (one row per visit), so the counting is done in pandas, where each rule reads as written.
Every count a client sees below ``k`` is blanked (NA) or, for origin lists, merged by ``suppress``.

Visitor classes (one per visitor, first rule that holds) start from the visitor's **home cell**: the cell
where the visitor is seen on the most nights (events in NIGHT_HOURS, local time, in *any* cell) over the period
and the ``lookback_days`` (14) before it; a cell is a home only when seen there on >= ``resident_nights`` (3)
nights, so a hotel for a night or two is not one. The fence's **area** is its cells and every cell in the same
location area: the LAC of a 2G key (mcc-mnc-lac-ci); a 4G key (mcc-mnc-eci) carries no TAC, so there the eNodeB
(eci // 256) stands in. The probe sees its own network, i.e. the fence's province, so a home cell it saw is in
that province.

- **resident**: the home cell lies in the fence's area;
- **commuter**: not resident, lives in the fence's province (a home cell outside the area, or, with no home
  cell, a local number segment: roaming ``local``) and inside the fence on >= ``commuter_days`` local days;
- **tourist**: no home cell, home elsewhere by number segment (other province, abroad, or unknown), and at
  least one night in the area (inside the fence during NIGHT_HOURS, or a night-time event in an area cell);
- **day-tripper**: everyone else.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analytics.report import (DEFAULT_K, DEFAULT_TZ, VISITS_SQL, cell_heat, copy_assets, period_text, suppress,
                              write_choropleth, write_map, write_page)
from analytics.schema import DWELL_BUCKETS_S
from analytics.store import Store
from geofence.fences import compile_fence

NIGHT_HOURS = (0, 6)      # local hours [start, end) that count as "the night"
RESIDENT_NIGHTS = 3      # nights seen in one cell for it to be a home
COMMUTER_DAYS = 3
LOOKBACK_DAYS = 14       # nights before the period that count towards the home cell
CLASSES = ("resident", "commuter", "tourist", "day-tripper")

EARLIER_SQL = """
SELECT DISTINCT subscriber FROM {db}.triggers
WHERE fence = {fence:String} AND kind = 'enter' AND ts < toDateTime64({start:Float64}, 6, 'UTC')
"""


# Per visitor and cell: nights seen there (look-back and period), night-time events inside the period, and the
# roaming type the store derived from the number segment (the same on all of a subscriber's rows).
SIGHTINGS_SQL = """
SELECT subscriber, cell, uniqExactIf(day, night) AS nights,
       countIf(night AND ts >= toDateTime64({start:Float64}, 6, 'UTC')) AS period_night_events, any(roaming) AS roaming
FROM (SELECT subscriber, cell, ts, roaming, toDate(ts, {tz:String}) AS day,
             toHour(ts, {tz:String}) >= {night_from:UInt8} AND toHour(ts, {tz:String}) < {night_to:UInt8} AS night
      FROM {db}.events
      WHERE subscriber IN {subscribers:Array(String)} AND cell != ''
        AND ts >= toDateTime64({since:Float64}, 6, 'UTC') AND ts < toDateTime64({end:Float64}, 6, 'UTC'))
GROUP BY subscriber, cell
"""

ENTER_CELLS_SQL = """
SELECT DISTINCT cell FROM {db}.triggers WHERE fence = {fence:String} AND kind = 'enter' AND cell != ''
"""


def bucket_labels() -> list[str]:
    """'0-15 min', ..., '>= 120 min' from analytics.schema.DWELL_BUCKETS_S (the aggregate's buckets)."""
    minutes = [b // 60 for b in DWELL_BUCKETS_S]
    return [f"{lo}-{hi} min" for lo, hi in zip(minutes, minutes[1:])] + [f">= {minutes[-1]} min"]


def mask(table: pd.DataFrame, column: str, k: int, partition: bool = False) -> pd.DataFrame:
    """Blank (NA) every count below k in ``column``: the client sees the row exists, not how small it is.

    ``partition``: the rows split a total the client can see (visitor classes), so while the blanked rows sum
    to less than k the smallest shown row is blanked too; otherwise total minus the shown rows gives them away.
    """
    out = table.copy()
    out[column] = out[column].astype("Int64")
    hidden = out[column] < k
    if partition:
        while 0 < out.loc[hidden, column].sum() < k and not hidden.all():
            hidden[out.loc[~hidden, column].idxmin()] = True
    out.loc[hidden, column] = pd.NA
    return out


def visits(store: Store, fence: str, start: float, end: float) -> pd.DataFrame:
    """The fence's visits overlapping [start, end]: subscriber (pseudonym), home_*, t_in, t_out (UTC), closed."""
    df = store.query(VISITS_SQL, {"fence": fence, "start": start, "end": end})
    if df.empty:
        df = pd.DataFrame(columns=["subscriber", "home_country", "home_province", "home_city", "t_in", "t_out",
                                   "closed"])
    for column in ("t_in", "t_out"):
        df[column] = pd.to_datetime(df[column], utc=True)
    df["closed"] = df["closed"].astype(bool)
    return df


def _hours(v: pd.DataFrame, start: float, end: float, tz: str) -> pd.DataFrame:
    """One row per (visit, local hour it overlaps inside the period)."""
    lo = pd.Timestamp(start, unit="s", tz="UTC")
    hi = pd.Timestamp(end, unit="s", tz="UTC")
    t_in = v["t_in"].clip(lower=lo).dt.floor("h")
    t_out = v["t_out"].clip(upper=hi)
    rows = v.assign(hour=[list(pd.date_range(a, b, freq="h")) for a, b in zip(t_in, t_out)]).explode("hour")
    rows = rows.dropna(subset=["hour"])
    rows = rows[rows["hour"] < hi]
    rows["hour"] = pd.to_datetime(rows["hour"], utc=True).dt.tz_convert(tz)
    return rows


@dataclass
class Footfall:
    fence: str
    start: float
    end: float
    k: int
    summary: pd.DataFrame    # metric, value (visitors, peak hour, repeat visitors, new, returning)
    hourly: pd.DataFrame     # hour (local), visitors
    daily: pd.DataFrame      # day (local), visitors
    curve: pd.DataFrame      # hour_of_day, visitors (mean unique visitors per day at that hour)
    dwell: pd.DataFrame      # bucket, visits (closed visits only: an open visit has no dwell yet)
    tz: str = DEFAULT_TZ

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"footfall_summary": self.summary, "footfall_hourly": self.hourly, "footfall_daily": self.daily,
                "footfall_curve": self.curve, "dwell": self.dwell}


def footfall(store: Store, fence: str, start: float, end: float, k: int = DEFAULT_K,
             tz: str = DEFAULT_TZ) -> Footfall:
    """Unique visitors per hour and day, the mean hourly curve, the peak hour, dwell buckets, repeat visitors
    (>= 2 visits starting in the period) and new vs returning (returning: entered the fence before ``start``)."""
    v = visits(store, fence, start, end)
    hours = _hours(v, start, end, tz)
    hourly = hours.groupby("hour")["subscriber"].nunique().rename("visitors").reset_index()
    days = hours.assign(day=hours["hour"].dt.strftime("%Y-%m-%d"))
    daily = days.groupby("day")["subscriber"].nunique().rename("visitors").reset_index()
    n_days = max(1, daily["day"].nunique())
    curve = (hourly.assign(hour_of_day=hourly["hour"].dt.hour).groupby("hour_of_day")["visitors"].sum()
             .reindex(range(24), fill_value=0) / n_days).rename("visitors").reset_index()
    curve["visitors"] = curve["visitors"].round(1).where(curve["visitors"] >= k)
    hourly["hour"] = hourly["hour"].dt.strftime("%Y-%m-%d %H:00")

    closed = v[v["closed"]]
    dwell_s = (closed["t_out"] - closed["t_in"]).dt.total_seconds().to_numpy()
    edges = np.array(DWELL_BUCKETS_S[1:], dtype=float)
    counts = np.bincount(np.searchsorted(edges, dwell_s, side="right"), minlength=len(DWELL_BUCKETS_S))
    dwell = pd.DataFrame({"bucket": bucket_labels(), "visits": counts})

    started = v[v["t_in"] >= pd.Timestamp(start, unit="s", tz="UTC")]
    repeat = int((started.groupby("subscriber").size() >= 2).sum())
    earlier = store.query(EARLIER_SQL, {"fence": fence, "start": start}) if len(v) else pd.DataFrame()
    earlier = set(earlier["subscriber"]) if len(earlier) else set()  # an empty result has no columns
    visitors = set(v["subscriber"])
    returning = len(visitors & earlier)
    peak = hourly.loc[hourly["visitors"].idxmax()] if len(hourly) else None
    shown = lambda n: n if n >= k else pd.NA  # noqa: E731
    summary = pd.DataFrame({"metric": ["visitors", "peak_hour", "peak_hour_visitors", "repeat_visitors",
                                       "new_visitors", "returning_visitors"],
                            "value": [shown(len(visitors)),
                                      peak["hour"] if peak is not None and peak["visitors"] >= k else pd.NA,
                                      shown(int(peak["visitors"])) if peak is not None else pd.NA,
                                      shown(repeat), shown(len(visitors) - returning), shown(returning)]},
                           dtype=object)
    return Footfall(fence, start, end, k, summary, mask(hourly, "visitors", k), mask(daily, "visitors", k),
                    curve, mask(dwell, "visits", k), tz)


def _nights_and_days(v: pd.DataFrame, tz: str) -> pd.DataFrame:
    """Per visitor: nights with presence in NIGHT_HOURS, local days seen; from the visits' local hours."""
    t_in, t_out = v["t_in"].dt.tz_convert(tz), v["t_out"].dt.tz_convert(tz)
    hours = v.assign(hour=[list(pd.date_range(a.floor("h"), b, freq="h")) for a, b in zip(t_in, t_out)])
    hours = hours.explode("hour").dropna(subset=["hour"])
    hour = pd.to_datetime(hours["hour"])
    day = hour.dt.strftime("%Y-%m-%d")
    night = hour.dt.hour.between(NIGHT_HOURS[0], NIGHT_HOURS[1] - 1)
    per = pd.DataFrame({"subscriber": hours["subscriber"], "day": day, "night": night})
    days = per.groupby("subscriber")["day"].nunique()
    nights = per[per["night"]].groupby("subscriber")["day"].nunique().reindex(days.index, fill_value=0)
    return pd.DataFrame({"nights": nights, "days": days})


def area_key(cell: str) -> str:
    """The location area of a cell key: mcc-mnc-lac for 2G; for 4G, whose key has no TAC, the eNodeB."""
    parts = cell.split("-")
    if len(parts) == 4:
        return "-".join(parts[:3])
    if len(parts) == 3 and parts[2].isdigit():
        return f"{parts[0]}-{parts[1]}-enb{int(parts[2]) // 256}"
    return cell


def fence_cells(store: Store, fence: str) -> list[str]:
    """The fence's cells as its enter triggers name them: the fallback when the caller has no compiled fence."""
    found = store.query(ENTER_CELLS_SQL, {"fence": fence})
    return sorted(found["cell"]) if len(found) else []


def sightings(store: Store, subscribers, start: float, end: float, tz: str = DEFAULT_TZ,
              lookback_days: float = LOOKBACK_DAYS) -> pd.DataFrame:
    """Per visitor and cell, over every cell of the network (SIGHTINGS_SQL): nights seen there in the period and
    the look-back, night-time events inside the period, and the number segment's roaming type."""
    columns = ["subscriber", "cell", "nights", "period_night_events", "roaming"]
    subscribers = list(subscribers)
    found = store.query(SIGHTINGS_SQL, {
        "subscribers": subscribers, "start": start, "end": end, "since": start - lookback_days * 86400, "tz": tz,
        "night_from": NIGHT_HOURS[0], "night_to": NIGHT_HOURS[1]}) if subscribers else None
    return found if found is not None and len(found) else pd.DataFrame(columns=columns)


def home_cells(seen: pd.DataFrame, resident_nights: int = RESIDENT_NIGHTS) -> pd.Series:
    """Home cell per subscriber: the cell seen on the most nights (ties: the lowest key), if >= resident_nights."""
    homes = seen[seen["nights"] >= resident_nights].sort_values(["subscriber", "nights", "cell"],
                                                                ascending=[True, False, True])
    return homes.drop_duplicates("subscriber").set_index("subscriber")["cell"]


def classify(v: pd.DataFrame, seen: pd.DataFrame, cells: list[str], tz: str = DEFAULT_TZ,
             resident_nights: int = RESIDENT_NIGHTS, commuter_days: int = COMMUTER_DAYS) -> pd.Series:
    """Class of each visitor (index: subscriber) by the rules in the module docstring, from the visits ``v``
    (clipped to the period), the ``sightings`` and the fence's ``cells``."""
    if v.empty:
        return pd.Series(dtype=object, name="class")
    nd = _nights_and_days(v, tz)
    area = {area_key(c) for c in cells}
    in_area = seen["cell"].map(area_key).isin(area).astype(bool)
    home = home_cells(seen, resident_nights).reindex(nd.index)
    resident = home.map(lambda c: isinstance(c, str) and area_key(c) in area).astype(bool)
    roaming = seen.groupby("subscriber")["roaming"].first().reindex(nd.index).fillna("unknown")
    night_events = seen[in_area].groupby("subscriber")["period_night_events"].sum().reindex(nd.index, fill_value=0)
    in_province = home.notna() | (roaming == "local")
    night_in_area = (nd["nights"] > 0) | (night_events > 0)
    return pd.Series(np.select([resident, in_province & (nd["days"] >= commuter_days), ~in_province & night_in_area],
                               list(CLASSES[:3]), CLASSES[3]), index=nd.index, name="class")


@dataclass
class OriginReport:
    fence: str
    start: float
    end: float
    k: int
    by_country: pd.DataFrame    # origin, visitors, share
    by_province: pd.DataFrame   # origin, visitors, share (domestic visitors)
    by_city: pd.DataFrame       # origin ("province / city"), visitors, share
    by_class: pd.DataFrame      # class, visitors
    daily: pd.DataFrame         # day, origin (province, or country when foreign), visitors, share
    tz: str = DEFAULT_TZ

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"origin_country": self.by_country, "origin_province": self.by_province,
                "origin_city": self.by_city, "visitor_class": self.by_class, "origin_daily": self.daily}


def _count(people: pd.DataFrame, column: str, k: int) -> pd.DataFrame:
    table = people[people[column] != ""].groupby(column).size().rename("visitors").reset_index()
    table = table.rename(columns={column: "origin"}).sort_values(["visitors", "origin"], ascending=[False, True])
    return suppress(table, k)


def origin(store: Store, fence: str, start: float, end: float, k: int = DEFAULT_K, tz: str = DEFAULT_TZ,
           resident_nights: int = RESIDENT_NIGHTS, commuter_days: int = COMMUTER_DAYS, cells: list[str] | None = None,
           lookback_days: float = LOOKBACK_DAYS) -> OriginReport:
    """Visitors by home country, province and city, by class, and the origin share per local day. ``cells``: the
    fence's compiled cells (default: the cells its enter triggers name)."""
    v = visits(store, fence, start, end)
    people = v.drop_duplicates("subscriber")[["subscriber", "home_country", "home_province", "home_city"]]
    people = people.assign(city=np.where(people["home_city"] != "",
                                         people["home_province"] + " / " + people["home_city"], ""))
    period = v.assign(t_in=v["t_in"].clip(lower=pd.Timestamp(start, unit="s", tz="UTC")),
                      t_out=v["t_out"].clip(upper=pd.Timestamp(end, unit="s", tz="UTC")))
    seen = sightings(store, people["subscriber"], start, end, tz, lookback_days)
    cells = fence_cells(store, fence) if cells is None else cells
    classes = classify(period, seen, cells, tz, resident_nights, commuter_days)
    by_class = (classes.value_counts().reindex(list(CLASSES), fill_value=0).rename_axis("class")
                .rename("visitors").reset_index())
    hours = _hours(v, start, end, tz)
    hours["day"] = hours["hour"].dt.strftime("%Y-%m-%d")
    hours["origin"] = hours["home_province"].where(hours["home_province"] != "", hours["home_country"])
    days = []
    for day, g in hours.groupby("day"):
        table = g.groupby("origin")["subscriber"].nunique().rename("visitors").reset_index()
        table = suppress(table.sort_values(["visitors", "origin"], ascending=[False, True]), k)
        days.append(table.assign(day=day)[["day", "origin", "visitors", "share"]])
    daily = (pd.concat(days, ignore_index=True) if days
             else pd.DataFrame(columns=["day", "origin", "visitors", "share"]))
    return OriginReport(fence, start, end, k, _count(people, "home_country", k), _count(people, "home_province", k),
                        _count(people, "city", k), mask(by_class, "visitors", k, partition=True), daily, tz)


FOOTFALL_TITLES = {"footfall_summary": "Summary", "footfall_hourly": "Unique visitors per hour",
                   "footfall_daily": "Unique visitors per day",
                   "footfall_curve": "Hourly curve (mean unique visitors per day)",
                   "dwell": "Dwell time (closed visits)"}


def write_footfall_report(store: Store, fence: str, start: float, end: float, out_dir: str | Path,
                          k: int = DEFAULT_K, tz: str = DEFAULT_TZ, shape=None, catalogue=None) -> Path:
    """report.html + CSVs of one fence's footfall (``sigloc report footfall`` and the web app's report page);
    with the fence's shape and the catalogue, also a map of visitors per fence cell."""
    rep = footfall(store, fence, start, end, k=k, tz=tz)
    with_map = shape is not None and catalogue is not None
    if with_map:
        cells = compile_fence(shape, catalogue)
        copy_assets(Path(out_dir))
        write_map(Path(out_dir) / "map.html", shape, catalogue, cells, cell_heat(store, cells, start, end, k))
    return write_page(out_dir, f"{fence} — footfall", f"Period {period_text(start, end, tz)}.", rep.tables(),
                      FOOTFALL_TITLES, k, with_map=with_map)


ORIGIN_TITLES = {"origin_country": "Origin by country", "origin_province": "Origin by province (domestic)",
                 "origin_city": "Origin by city", "visitor_class": "Resident / commuter / tourist / day-tripper",
                 "origin_daily": "Origin share per day"}


def write_origin_report(store: Store, fence: str, start: float, end: float, out_dir: str | Path,
                        k: int = DEFAULT_K, tz: str = DEFAULT_TZ, **options) -> Path:
    """report.html + CSVs of one fence's visitor origin with the choropleth of visitors by home province
    (``options``: those of ``origin``)."""
    rep = origin(store, fence, start, end, k=k, tz=tz, **options)
    copy_assets(Path(out_dir))
    write_choropleth(Path(out_dir) / "map.html", rep.by_province)
    return write_page(out_dir, f"{fence} — visitor origin", f"Period {period_text(start, end, tz)}.", rep.tables(),
                      ORIGIN_TITLES, k, with_map=True)
