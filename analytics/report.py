"""Footfall and visitor-origin report for one fence: the numbers a tourism bureau or mall buys.

A *visit* is an enter trigger up to the next exit (or the end of the period when the visitor is still
inside). Footfall per hour counts distinct visitors whose visit overlaps the hour; origin counts
distinct visitors by home country and, for domestic visitors, province. Every count below ``k`` is
suppressed (merged into one "other" row, topped up from the smallest rows until it reaches k), so a
client never learns about an individual. Output: ``report.html`` (tables + link to the map), ``map.html`` (folium,
Leaflet served from the report's own ``assets/``), and each table as CSV. The origin report's map is a
choropleth of visitors by home province over the bundled Natural Earth boundaries (analytics/data/).
"""

import html
import json
import shutil
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

import folium
import pandas as pd

from analytics.store import Store
from geofence.cells import Catalogue
from geofence.fences import Fence

DEFAULT_K = 15
DEFAULT_TZ = "Asia/Shanghai"
DWELL_BINS = [(0, 900, "< 15 min"), (900, 1800, "15-30 min"), (1800, 3600, "30-60 min"),
              (3600, 7200, "1-2 h"), (7200, 10**9, "> 2 h")]

VISITS_SQL = """
SELECT subscriber, home_country, home_province, home_city, t_in,
       if(k_next = 'exit', t_next, toDateTime64({end:Float64}, 6, 'UTC')) AS t_out, k_next = 'exit' AS closed
FROM (
    SELECT subscriber, home_country, home_province, home_city, kind, ts AS t_in,
           leadInFrame(ts, 1, toDateTime64({end:Float64}, 6, 'UTC')) OVER w AS t_next,
           leadInFrame(kind, 1, '') OVER w AS k_next
    FROM {db}.triggers
    WHERE fence = {fence:String} AND kind IN ('enter', 'exit') AND ts <= toDateTime64({end:Float64}, 6, 'UTC')
    WINDOW w AS (PARTITION BY subscriber ORDER BY ts ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING)
)
WHERE kind = 'enter' AND t_out >= toDateTime64({start:Float64}, 6, 'UTC')
"""

HOURLY_SQL = """
SELECT formatDateTime(toDateTime(h, {tz:String}), '%Y-%m-%d %H:00') AS hour, uniqExact(subscriber) AS visitors
FROM ({visits})
ARRAY JOIN range(toUInt32(toStartOfHour(t_in)), toUInt32(t_out) + 1, 3600) AS h
WHERE h >= toUInt32(toStartOfHour(toDateTime64({start:Float64}, 6, 'UTC'))) AND h < {end:Float64}
GROUP BY hour ORDER BY hour
"""

ORIGIN_SQL = """
SELECT {column} AS origin, uniqExact(subscriber) AS visitors
FROM ({visits}) {where}
GROUP BY origin ORDER BY visitors DESC, origin
"""

DWELL_SQL = "SELECT subscriber, toFloat64(t_out - t_in) AS dwell_s FROM ({visits})"

CELL_HEAT_SQL = """
SELECT cell, uniqExact(subscriber) AS visitors FROM {db}.events
WHERE cell IN {cells:Array(String)} AND subscriber != ''
  AND ts BETWEEN toDateTime64({start:Float64}, 6, 'UTC') AND toDateTime64({end:Float64}, 6, 'UTC')
GROUP BY cell
"""


@dataclass
class FenceReport:
    fence: str
    start: float
    end: float
    k: int
    visitors: int
    hourly: pd.DataFrame        # hour (local), visitors (suppressed below k -> NaN)
    by_country: pd.DataFrame    # origin, visitors, share
    by_province: pd.DataFrame   # origin, visitors, share (domestic visitors)
    dwell: pd.DataFrame         # bucket, visits
    cell_heat: pd.DataFrame     # cell, visitors
    tz: str = DEFAULT_TZ        # the client's time zone: hours and the period are shown in it


def suppress(table: pd.DataFrame, k: int, label: str = "Other (small groups)") -> pd.DataFrame:
    """Merge rows whose count is below k into one "other" row; while that row is still below k, merge the
    smallest shown row into it too, so that no small count can be recovered by subtracting the shown rows from
    a total; blank it only when the whole table is below k. ``table`` is sorted by count, largest first."""
    big = table[table["visitors"] >= k].sort_values("visitors", ascending=False, kind="stable")
    small = int(table.loc[table["visitors"] < k, "visitors"].sum())
    merged = (table["visitors"] < k).any()
    while merged and small < k and len(big):
        small += int(big["visitors"].iloc[-1])
        big = big.iloc[:-1]
    big = big.copy()
    if merged:
        big = pd.concat([big, pd.DataFrame({"origin": [label], "visitors": [small]})], ignore_index=True)
    total = big["visitors"].sum()
    big["share"] = (big["visitors"] / total).round(4) if total else 0.0
    big["visitors"] = big["visitors"].astype("Int64")
    big.loc[big["visitors"] < k, ["visitors", "share"]] = pd.NA
    return big.reset_index(drop=True)


def build_report(store: Store, fence: str, fence_cells: list[str], start: float, end: float,
                 k: int = DEFAULT_K, tz: str = DEFAULT_TZ) -> FenceReport:
    params = {"fence": fence, "start": start, "end": end, "tz": tz, "cells": fence_cells}

    def q(sql: str, **parts: str) -> pd.DataFrame:
        sql = sql.replace("{visits}", VISITS_SQL)
        for name, text in parts.items():
            sql = sql.replace("{" + name + "}", text)
        return store.query(sql, params)

    visits = q(VISITS_SQL)
    hourly = q(HOURLY_SQL)
    hourly["visitors"] = hourly["visitors"].astype("Int64").where(hourly["visitors"] >= k)
    by_country = suppress(q(ORIGIN_SQL, column="home_country", where=""), k)
    by_province = suppress(q(ORIGIN_SQL, column="home_province", where="WHERE home_province != ''"), k)
    dwell_s = q(DWELL_SQL)["dwell_s"]
    dwell = pd.DataFrame({"bucket": [b[2] for b in DWELL_BINS],
                          "visits": [int(((dwell_s >= lo) & (dwell_s < hi)).sum()) for lo, hi, _ in DWELL_BINS]})
    dwell["visits"] = dwell["visits"].astype("Int64").where(dwell["visits"] >= k)
    return FenceReport(fence, start, end, k, int(visits["subscriber"].nunique()), hourly, by_country, by_province,
                       dwell, cell_heat(store, fence_cells, start, end, k), tz)


def cell_heat(store: Store, fence_cells: list[str], start: float, end: float, k: int = DEFAULT_K) -> pd.DataFrame:
    """Distinct subscribers per fence cell in the period (cells below k left out): the map's heat."""
    heat = store.query(CELL_HEAT_SQL, {"cells": fence_cells, "start": start, "end": end}) if fence_cells else None
    if heat is None or heat.empty:  # an empty result comes back without columns
        heat = pd.DataFrame({"cell": pd.Series(dtype=str), "visitors": pd.Series(dtype=int)})
    return heat[heat["visitors"] >= k].reset_index(drop=True)


def _color(value: float, top: float) -> str:
    """Yellow→red ramp for the per-cell heat (no colormap legend: branca's pulls d3 from a CDN)."""
    f = 0.0 if top <= 0 else min(1.0, value / top)
    return f"#{255:02x}{int(220 * (1 - f)):02x}{40:02x}"


def write_map(path: Path, fence: Fence, catalogue: Catalogue, fence_cells: list[str], heat: pd.DataFrame) -> None:
    center = fence.geometry.centroid
    fmap = folium.Map(location=[center.y, center.x], zoom_start=13, tiles=None, control_scale=True)
    fmap.default_js = [("leaflet", "assets/leaflet.js")]
    fmap.default_css = [("leaflet_css", "assets/leaflet.css")]
    visitors = dict(zip(heat["cell"], heat["visitors"]))
    top = max(visitors.values(), default=0)
    for key in fence_cells:
        fp = catalogue.footprints[catalogue.index[key]]
        n = visitors.get(key)
        folium.Polygon([(y, x) for x, y in fp.exterior.coords], weight=1, color="#555",
                       fill=True, fill_color=_color(n or 0, top), fill_opacity=0.55 if n else 0.15,
                       tooltip=f"{key}: {n if n is not None else f'< k'} visitors").add_to(fmap)
    polys = getattr(fence.geometry, "geoms", [fence.geometry])
    for poly in polys:
        folium.Polygon([(y, x) for x, y in poly.exterior.coords], color="#1f4e9c", weight=3, fill=False,
                       tooltip=fence.name).add_to(fmap)
    fmap.fit_bounds([[fence.geometry.bounds[1], fence.geometry.bounds[0]],
                     [fence.geometry.bounds[3], fence.geometry.bounds[2]]])
    fmap.save(str(path))


PROVINCES_FILE = "data/cn_provinces.geojson"  # Natural Earth admin-1, see analytics/data/README-provinces.txt
# Spellings number-segment tables use for a province besides Natural Earth's name, after dropping the suffix.
PROVINCE_ALIASES = {"tibet": "xizang", "nei mongol": "inner mongolia", "inner mongol": "inner mongolia"}
PROVINCE_SUFFIXES = (" sheng", " shi", " province", " municipality", " autonomous region", " zizhiqu", " huizu",
                     " zhuangzu", " uygur", " uyghur", " hui", " zhuang")


def province_key(name: str) -> str:
    """A province name as both the segment table and the boundary file can be matched on ("Zhejiang Sheng",
    "zhejiang" and "Zhejiang" → "zhejiang"; "Tibet" → "xizang")."""
    key = " ".join(name.lower().split())
    stripped = True
    while stripped:
        stripped = False
        for suffix in PROVINCE_SUFFIXES:
            if key.endswith(suffix) and len(key) > len(suffix):
                key, stripped = key[: -len(suffix)], True
    return PROVINCE_ALIASES.get(key, key)


def provinces() -> dict:
    """The bundled province boundaries (GeoJSON FeatureCollection, property ``name``)."""
    with resources.files("analytics").joinpath(PROVINCES_FILE).open(encoding="utf-8") as f:
        return json.load(f)


def write_choropleth(path: Path, by_province: pd.DataFrame) -> None:
    """map.html: visitors by home province as a folium choropleth (no legend: branca's pulls d3 from a CDN).

    Only provinces with a shown count in ``by_province`` (``suppress`` output) get a number; every other province
    reads "suppressed", whether it had a few visitors or none, so the map tells no more than the table.
    """
    shown = {province_key(o): (int(n), s) for o, n, s in zip(by_province["origin"], by_province["visitors"],
                                                              by_province["share"]) if pd.notna(n)}
    top = max((n for n, _ in shown.values()), default=0)
    doc = provinces()
    for feature in doc["features"]:
        props = feature["properties"]
        n, share = shown.get(province_key(props["name"]), (None, None))
        props["visitors"] = n
        props["label"] = "suppressed" if n is None else f"{n} ({share:.1%})"

    def style(feature: dict) -> dict:
        n = feature["properties"]["visitors"]
        return {"color": "#555", "weight": 1, "fillOpacity": 0.7 if n else 0.15,
                "fillColor": _color(n, top) if n else "#bbbbbb"}

    fmap = folium.Map(location=[35.0, 104.0], zoom_start=4, tiles=None, control_scale=True)
    fmap.default_js = [("leaflet", "assets/leaflet.js")]
    fmap.default_css = [("leaflet_css", "assets/leaflet.css")]
    folium.GeoJson(doc, name="visitors by home province", style_function=style,
                   tooltip=folium.GeoJsonTooltip(["name", "label"], aliases=["Province", "Visitors"])).add_to(fmap)
    fmap.fit_bounds([[18.0, 73.5], [53.6, 135.1]])  # mainland China
    fmap.save(str(path))


COUNT_COLUMNS = ("visitors", "visits", "value", "subscribers", "converted", "recipients", "opt_outs")
STYLE = """<style>body{font-family:sans-serif;margin:2em;max-width:1100px} table.t{border-collapse:collapse}
table.t td,table.t th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}
iframe{width:100%;height:520px;border:1px solid #ccc}</style>"""


def _table_html(df: pd.DataFrame, k: int) -> str:
    """A suppressed count shows as "<k" (its share as blank): the client sees that a group exists, not its size."""
    shown = df.astype(object).where(df.notna(), "")
    for column in COUNT_COLUMNS:
        if column in df:
            shown.loc[df[column].isna(), column] = f"<{k}"
    return shown.to_html(index=False, escape=True, border=0, classes="t")


def copy_assets(out: Path) -> None:
    """The vendored Leaflet beside the report, so it renders offline."""
    (out / "assets").mkdir(parents=True, exist_ok=True)
    for name in ("leaflet.js", "leaflet.css", "LICENSE-leaflet.txt"):
        with resources.files("analytics").joinpath(f"assets/{name}").open("rb") as src, \
                open(out / "assets" / name, "wb") as dst:
            shutil.copyfileobj(src, dst)


def instant(text: str, tz: str) -> float:
    """Epoch seconds, or an ISO 8601 date/date-time (in ``tz`` unless it carries an offset): how clients and
    imported files name a moment. Raises ValueError naming the text."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not ISO 8601 (date or date-time) or epoch seconds") from None
    return (t if t.tzinfo else t.replace(tzinfo=ZoneInfo(tz))).timestamp()


def period_text(start: float, end: float, tz: str) -> str:
    zone = ZoneInfo(tz)
    return " – ".join(datetime.fromtimestamp(t, zone).strftime("%Y-%m-%d %H:%M") for t in (start, end)) + f" ({tz})"


def write_page(out_dir: str | Path, title: str, intro: str, tables: dict[str, pd.DataFrame],
               titles: dict[str, str], k: int, with_map: bool = False) -> Path:
    """report.html (intro, the map when written, one section per table) and each table as <name>.csv."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.to_csv(out / f"{name}.csv", index=False)
    sections = "\n".join(f"<h2>{html.escape(titles.get(name, name))}</h2>{_table_html(tables[name], k)}"
                         f"<p><a href='{name}.csv'>{name}.csv</a></p>" for name in tables)
    frame = '<iframe src="map.html" title="map"></iframe>' if with_map else ""
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
{STYLE}</head><body>
<h1>{html.escape(title)}</h1>
<p>{intro} Counts below {k} are suppressed; no individual data is shown.</p>
{frame}
{sections}
</body></html>
"""
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def write_report(report: FenceReport, out_dir: str | Path, fence: Fence, catalogue: Catalogue,
                 fence_cells: list[str]) -> Path:
    """Write report.html, map.html, assets/ and the CSV tables; return the report.html path."""
    out = Path(out_dir)
    copy_assets(out)
    write_map(out / "map.html", fence, catalogue, fence_cells, report.cell_heat)
    tables = {"footfall_hourly": report.hourly, "origin_country": report.by_country,
              "origin_province": report.by_province, "dwell": report.dwell}
    titles = {"footfall_hourly": "Visitors per hour", "origin_country": "Origin by country",
              "origin_province": "Origin by province (domestic visitors)", "dwell": "Dwell time"}
    shown = report.visitors if report.visitors >= report.k else f"&lt;{report.k}"
    intro = (f"Period {html.escape(period_text(report.start, report.end, report.tz))}. "
             f"Distinct visitors: <b>{shown}</b>.")
    return write_page(out, f"{report.fence} — visitor report", intro, tables, titles, report.k, with_map=True)
