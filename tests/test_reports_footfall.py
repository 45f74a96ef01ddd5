"""Footfall and origin reports equal pandas counts over visits designed by hand (each group's class is known)."""

import io
import json
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow as pa
import pytest
from test_report import _table

from analytics.footfall import bucket_labels, footfall, origin
from analytics.origin import Origins
from analytics.store import Store
from decoders.records import EVENT_SCHEMA

TZ = ZoneInfo("Asia/Shanghai")
DAY0 = datetime(2026, 5, 1, tzinfo=TZ)
START, END = DAY0.timestamp(), (DAY0 + timedelta(days=4)).timestamp()
SEGMENTS = {"46000571": ("Zhejiang", "Hangzhou"), "46000210": ("Shanghai", "Shanghai"),
            "46000250": ("Jiangsu", "Nanjing"), "46000574": ("Zhejiang", "Ningbo"),
            "46000280": ("Sichuan", "Chengdu"), "46000100": ("Beijing", "Beijing")}
FENCE_CELL, EXIT_CELL = "460-00-100-1", "460-00-200-9"
AREA_CELL = "460-00-100-2"                              # same LAC as the fence: the fence's area
ELSEWHERE, FAR = "460-00-200-5", "460-00-300-7"         # other location areas of the province


def at(day, hour, minute=0):
    return (DAY0 + timedelta(days=day, hours=hour, minutes=minute)).timestamp()


def _design():
    """(imsi, class, t_in, t_out or None while still inside at the end, night cells) for groups whose class is
    by design; ``nights`` lists (cell, day) of a night-time event (02:00 local) outside the visits."""
    visits, nights = [], []

    def group(n, prefix, label, spans, offset=0, slept=()):
        for i in range(n):
            imsi = prefix + f"{offset + i:0{15 - len(prefix)}d}"
            visits.extend((imsi, label, a + 60 * i, None if b is None else b + 90 * i) for a, b in spans)
            nights.extend((imsi, at(day, 2, i % 50), cell) for cell, day in slept)

    group(20, "46000571", "resident", [(at(d, 20), at(d + 1, 7)) for d in range(3)] + [(at(3, 21), None)],
          slept=[(FENCE_CELL, d) for d in range(-5, 4)])
    group(18, "46000571", "commuter", [(at(d, 9), at(d, 18)) for d in range(-1, 4)], offset=100,  # also day -1
          slept=[(ELSEWHERE, d) for d in range(-10, 4)])  # home in the province, outside the fence's area
    group(16, "46000210", "tourist", [(at(1, 14), at(2, 10))])  # the night inside the fence
    group(15, "46000250", "day-tripper", [(at(2, 10), at(2, 12)), (at(2, 13), at(2, 15, 30))],  # repeat visitors
          slept=[(FAR, 1), (FAR, 2)])  # nights outside the area do not make a tourist
    group(17, "46000574", "day-tripper", [(at(0, 11), at(0, 11, 20))],
          slept=[(AREA_CELL, d) for d in range(-20, -15)])  # before the 14-day look-back: no home cell
    group(5, "44010", "day-tripper", [(at(1, 10), at(1, 16))])  # a small group: must not show
    group(16, "46000280", "resident", [(at(1, 10), at(1, 12))],  # a Sichuan number living in the area
          slept=[(AREA_CELL, d) for d in range(-8, 4)])
    group(15, "46000571", "commuter", [(at(d, 10), at(d, 11)) for d in range(3)], offset=200)  # no night seen
    group(15, "46000100", "tourist", [(at(0, 10), at(0, 12)), (at(1, 10), at(1, 12))],
          slept=[(AREA_CELL, 1), (AREA_CELL, 2)])  # two nights in the area: a hotel, not a home
    return (pd.DataFrame(visits, columns=["imsi", "label", "t_in", "t_out"]),
            pd.DataFrame(nights, columns=["imsi", "ts", "cell"]))


def _triggers(design):
    rows = []
    for v in design.itertuples():
        rows.append({"ts": v.t_in, "imsi": v.imsi, "fence": "lake", "kind": "enter", "cell": FENCE_CELL,
                     "event": "cell_change", "frame": 1})
        if v.t_out is not None and not pd.isna(v.t_out):
            rows.append({"ts": v.t_out, "imsi": v.imsi, "fence": "lake", "kind": "exit", "cell": EXIT_CELL,
                         "event": "cell_change", "frame": 1})
    return pd.DataFrame(rows).sort_values("ts").reset_index(drop=True)


def _events(design, nights):
    """The event behind each enter (in the fence cell) plus the night-time location updates."""
    rows = pd.concat([design.assign(ts=design["t_in"], cell=FENCE_CELL, event="cell_change")[["ts", "imsi", "cell",
                                                                                                  "event"]],
                      nights.assign(event="location_update")], ignore_index=True).sort_values("ts")
    n = len(rows)
    ts = pa.array([round(x * 1e6) for x in rows["ts"]], pa.int64()).cast(EVENT_SCHEMA.field("ts").type)
    cols = {"ts": ts, "imsi": rows["imsi"].tolist(), "cell": rows["cell"].tolist(), "event": rows["event"].tolist()}
    return pa.table({f.name: cols.get(f.name, pa.nulls(n, f.type)) for f in EVENT_SCHEMA}, schema=EVENT_SCHEMA)


def _insert(store, origins):
    design, nights = _design()
    store.insert_triggers(_table(_triggers(design)), origins, token="f1")
    store.insert_events(_events(design, nights), origins, token="e1")
    return design, nights


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    store = Store(f"chdb://{tmp_path_factory.mktemp('ch') / 'data'}")
    origins = Origins(SEGMENTS)
    design, nights = _insert(store, origins)
    yield store, design, nights, origins
    store.close()


def _in_period(design):
    d = design.assign(t_out=design["t_out"].fillna(END))
    return d[(d.t_out >= START) & (d.t_in <= END)]


def _overlap(d, lo, hi):
    return d[(d.t_in < hi) & (d.t_out >= lo)]["imsi"].nunique()


def test_footfall_equals_hand_count(stored):
    store, design, _, _ = stored
    rep = footfall(store, "lake", START, END, k=1)
    d = _in_period(design)
    hours = [START + 3600 * h for h in range(96)]
    expected = {datetime.fromtimestamp(h, TZ).strftime("%Y-%m-%d %H:00"): _overlap(d, h, h + 3600) for h in hours}
    expected = {h: n for h, n in expected.items() if n}
    assert dict(zip(rep.hourly["hour"], rep.hourly["visitors"].astype(int))) == expected
    days = {(DAY0 + timedelta(days=i)).strftime("%Y-%m-%d"): _overlap(d, at(i, 0), at(i + 1, 0)) for i in range(4)}
    assert dict(zip(rep.daily["day"], rep.daily["visitors"].astype(int))) == days
    summary = dict(zip(rep.summary["metric"], rep.summary["value"]))
    assert summary["visitors"] == d["imsi"].nunique() == 20 + 18 + 16 + 15 + 17 + 5 + 16 + 15 + 15
    peak = max(expected, key=expected.get)
    assert (summary["peak_hour"], summary["peak_hour_visitors"]) == (peak, expected[peak])
    started = d[d.t_in >= START]
    assert summary["repeat_visitors"] == int((started.groupby("imsi").size() >= 2).sum()) == 20 + 18 + 15 + 15 + 15
    assert summary["returning_visitors"] == 18  # only the commuters entered before the period
    assert summary["new_visitors"] == d["imsi"].nunique() - 18
    # the curve: mean over the 4 days of each local hour's unique visitors
    by_hour = pd.Series(expected).groupby(lambda h: int(h[11:13])).sum() / 4
    curve = rep.curve.dropna(subset=["visitors"])
    assert dict(zip(curve["hour_of_day"], curve["visitors"])) == pytest.approx(by_hour.round(1).to_dict())
    # dwell: closed visits only, by DWELL_BUCKETS_S
    closed = design.dropna(subset=["t_out"])
    closed = closed[(closed.t_out >= START) & (closed.t_in <= END)]
    cut = pd.cut(closed.t_out - closed.t_in, [0, 900, 1800, 3600, 7200, 1e9], right=False, labels=bucket_labels())
    assert dict(zip(rep.dwell["bucket"], rep.dwell["visits"].fillna(0).astype(int))) == cut.value_counts().to_dict()


def test_origin_and_classes_equal_design(stored):
    store, design, _, origins = stored
    rep = origin(store, "lake", START, END, k=1)
    d = _in_period(design)
    people = d.drop_duplicates("imsi")
    homes = people["imsi"].map(origins.home)
    assert dict(zip(rep.by_country["origin"], rep.by_country["visitors"])) == \
        homes.map(lambda h: h.country).value_counts().to_dict()
    provinces = homes.map(lambda h: h.province)
    assert dict(zip(rep.by_province["origin"], rep.by_province["visitors"])) == \
        provinces[provinces != ""].value_counts().to_dict()
    cities = homes.map(lambda h: f"{h.province} / {h.city}" if h.city else "")
    assert dict(zip(rep.by_city["origin"], rep.by_city["visitors"])) == cities[cities != ""].value_counts().to_dict()
    assert dict(zip(rep.by_class["class"], rep.by_class["visitors"])) == people["label"].value_counts().to_dict()
    assert rep.by_class["visitors"].tolist() == [36, 33, 31, 37]  # resident, commuter, tourist, day-tripper
    # origin share per day: province (or country when foreign) of visitors present that day
    for i in range(4):
        day = (DAY0 + timedelta(days=i)).strftime("%Y-%m-%d")
        present = d[(d.t_in < at(i + 1, 0)) & (d.t_out >= at(i, 0))].drop_duplicates("imsi")
        label = present["imsi"].map(origins.home).map(lambda h: h.province or h.country)
        got = rep.daily[rep.daily.day == day]
        assert dict(zip(got["origin"], got["visitors"])) == label.value_counts().to_dict()
        assert got["share"].sum() == pytest.approx(1.0, abs=1e-3)


def _expected_classes(design, nights, origins, cells, lookback_days=14, home_nights=3, commuter_days=3):
    """Each visitor's class by the documented rules, counted with pandas straight from the designed rows."""
    d = _in_period(design)
    d = d.assign(t_in=d.t_in.clip(lower=START), t_out=d.t_out.clip(upper=END))
    local = lambda t: pd.to_datetime(t, unit="s", utc=True).dt.tz_convert(TZ)  # noqa: E731
    lin, lout = local(d.t_in), local(d.t_out)
    days = pd.Series([{(a + timedelta(days=n)).date() for n in range((b.date() - a.date()).days + 1)}
                      for a, b in zip(lin, lout)], index=d.index)
    # inside at night: some day's 00:00-06:00 overlaps the visit
    inside_night = pd.Series([any(a < datetime.combine(x, datetime.min.time(), TZ) + timedelta(hours=6) and
                                  b >= datetime.combine(x, datetime.min.time(), TZ) for x in xs)
                              for a, b, xs in zip(lin, lout, days)], index=d.index)
    ev = pd.concat([d.assign(ts=design.loc[d.index, "t_in"], cell=FENCE_CELL)[["imsi", "ts", "cell"]], nights])
    ev = ev[(ev.ts >= START - lookback_days * 86400) & (ev.ts < END)]
    ev = ev.assign(hour=local(ev.ts).dt.hour, date=local(ev.ts).dt.date)
    night = ev[ev.hour < 6]
    per_cell = night.groupby(["imsi", "cell"])["date"].nunique().rename("n").reset_index()
    per_cell = per_cell[per_cell.n >= home_nights].sort_values(["imsi", "n", "cell"], ascending=[True, False, True])
    home = per_cell.drop_duplicates("imsi").set_index("imsi")["cell"]
    lac = lambda c: c.rsplit("-", 1)[0]  # noqa: E731  (2G keys only in this design)
    area = {lac(c) for c in cells}
    night_in_area = set(night[(night.ts >= START) & night.cell.map(lac).isin(area)]["imsi"])
    out = {}
    for imsi, rows in d.groupby("imsi"):
        n_days = len(set().union(*days[rows.index]))
        local_home = imsi in home or origins.home(imsi).roaming == "local"
        if imsi in home and lac(home[imsi]) in area:
            out[imsi] = "resident"
        elif local_home and n_days >= commuter_days:
            out[imsi] = "commuter"
        elif not local_home and (inside_night[rows.index].any() or imsi in night_in_area):
            out[imsi] = "tourist"
        else:
            out[imsi] = "day-tripper"
    return pd.Series(out)


def test_classes_equal_a_pandas_count_of_home_cells(stored):
    """Per visitor: the class from the store (night-time home cell over all events) equals the pandas rule."""
    from analytics.footfall import classify, sightings, visits  # noqa: PLC0415
    store, design, nights, origins = stored
    expected = _expected_classes(design, nights, origins, [FENCE_CELL])
    by_design = _in_period(design).drop_duplicates("imsi").set_index("imsi")["label"]
    assert expected.sort_index().to_dict() == by_design.sort_index().to_dict()
    v = visits(store, "lake", START, END)
    v = v.assign(t_in=v.t_in.clip(lower=pd.Timestamp(START, unit="s", tz="UTC")),
                 t_out=v.t_out.clip(upper=pd.Timestamp(END, unit="s", tz="UTC")))
    got = classify(v, sightings(store, v["subscriber"].unique(), START, END), [FENCE_CELL])
    assert got.to_dict() == {store.pseudonym(imsi): c for imsi, c in expected.items()}
    # with no look-back only the period's nights count; with 30 days the Ningbo day-trippers' old nights in the
    # area (days -20..-16) make them residents
    for lookback in (0, 30):
        rep = origin(store, "lake", START, END, k=1, lookback_days=lookback)
        expected = _expected_classes(design, nights, origins, [FENCE_CELL], lookback_days=lookback)
        assert dict(zip(rep.by_class["class"], rep.by_class["visitors"])) == \
            expected.value_counts().reindex(list(rep.by_class["class"]), fill_value=0).to_dict()
        assert rep.by_class["visitors"].iloc[0] == 36 + 17 * (lookback == 30)


def test_small_counts_are_suppressed(stored):
    store, _, _, _ = stored
    rep = origin(store, "lake", START, END, k=15)
    assert "Japan" not in set(rep.by_country["origin"])
    for table in (rep.by_country, rep.by_province, rep.by_city, rep.by_class, rep.daily):
        assert table["visitors"].dropna().ge(15).all()
    assert rep.by_city.set_index("origin").loc["Zhejiang / Ningbo", "visitors"] == 17
    ff = footfall(store, "lake", START, END, k=15)
    for table, column in ((ff.hourly, "visitors"), (ff.daily, "visitors"), (ff.dwell, "visits"),
                          (ff.curve, "visitors")):
        assert table[column].dropna().ge(15).all()
    assert ff.dwell["visits"].isna().any() and ff.curve["visitors"].isna().any()
    summary = dict(zip(ff.summary["metric"], ff.summary["value"]))
    assert summary["returning_visitors"] == 18 and summary["visitors"] == 137


def _drawn_provinces(map_html: str) -> dict:
    """The GeoJSON the choropleth layer draws, read back out of map.html."""
    start = re.search(r"geo_json_\w+_add\(", map_html).end()
    doc, _ = json.JSONDecoder().raw_decode(map_html[start:])
    return {f["properties"]["name"]: f["properties"] for f in doc["features"]}


def test_origin_choropleth_shows_the_table_and_hides_small_provinces(stored, tmp_path):
    from analytics.footfall import write_origin_report  # noqa: PLC0415
    store, design, _, origins = stored
    page = write_origin_report(store, "lake", START, END, tmp_path, k=16).read_text()
    map_html = (tmp_path / "map.html").read_text()
    assert '<iframe src="map.html"' in page and "assets/leaflet.js" in map_html and (tmp_path / "assets").is_dir()
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"?(https?:)?//", map_html)  # nothing from a CDN
    drawn = _drawn_provinces(map_html)
    assert len(drawn) == 31 and "Zhejiang" in drawn and "Inner Mongolia" in drawn
    table = pd.read_csv(tmp_path / "origin_province.csv")
    shown = {o: int(n) for o, n in zip(table["origin"], table["visitors"]) if o in drawn and pd.notna(n)}
    # the independent count: distinct visitors per home province, then what k=16 lets a client see
    counts = _in_period(design).drop_duplicates("imsi")["imsi"].map(lambda x: origins.home(x).province)
    counts = counts[counts != ""].value_counts()
    assert shown == {p: n for p, n in counts.items() if n >= 16} == {"Zhejiang": 70, "Shanghai": 16, "Sichuan": 16}
    assert {p: v["visitors"] for p, v in drawn.items() if v["visitors"] is not None} == shown
    for name in ("Jiangsu", "Beijing", "Guangdong"):  # 15, 15 and no visitors: all read the same
        assert drawn[name]["visitors"] is None and drawn[name]["label"] == "suppressed"
    assert not re.search(r"\b15\b", json.dumps(list(drawn.values())))


def _python(code: str) -> str:
    """Run code in a fresh interpreter: chDB serves one data directory per process, and this one holds the
    module's store, so a second store is written and read only by subprocesses (like the CLI itself)."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415
    run = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
                          + code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def _sigloc(*args):
    return _python(f"sys.argv = ['sigloc', *{list(map(str, args))!r}]\nfrom appliance.cli import main; main()")


def seed(url):
    """Store the designed triggers and events at url; print the pseudonyms (test helper, run in a subprocess)."""
    store = Store(url)
    design, _ = _insert(store, Origins(SEGMENTS))
    print("\n".join({store.pseudonym(x) for x in design["imsi"]}))
    store.close()


def test_cli_writes_html_and_csv_without_identifiers(tmp_path):
    design, _ = _design()
    url = f"chdb://{tmp_path / 'data'}"
    pseudonyms = set(_python(f"from test_reports_footfall import seed; seed({url!r})").split())
    assert len(pseudonyms) == design["imsi"].nunique()
    period = ["--from", "2026-05-01", "--to", "2026-05-05", "--clickhouse", url]
    for kind in ("footfall", "origin"):
        out = _sigloc("report", kind, "--fence", "lake", *period, "--out", str(tmp_path / kind), "-k", "15")
        assert out.strip().endswith(str(tmp_path / kind / "report.html"))
    daily = pd.read_csv(tmp_path / "footfall" / "footfall_daily.csv")
    d = _in_period(design)
    assert daily["visitors"].tolist() == [_overlap(d, at(i, 0), at(i + 1, 0)) for i in range(4)]
    classes = pd.read_csv(tmp_path / "origin" / "visitor_class.csv")
    expected = d.drop_duplicates("imsi")["label"].value_counts().to_dict()
    assert dict(zip(classes["class"], classes["visitors"])) == expected
    page = (tmp_path / "origin" / "report.html").read_text()
    assert "Resident / commuter / tourist / day-tripper" in page and "Japan" not in page
    assert "map.html" in page and "Visitors" in (tmp_path / "origin" / "map.html").read_text()  # the choropleth
    text = "".join(p.read_text() for p in tmp_path.glob("*/*") if p.suffix in (".csv", ".html"))
    assert not any(x in text for x in set(design["imsi"]) | pseudonyms)


def test_cli_footfall_map_over_simulated_city(city, tmp_path):
    """The whole path on the simulator's city: run the job, then the footfall report with its cell map."""
    from geofence.fences import load_fence  # noqa: PLC0415
    url = f"chdb://{tmp_path / 'data'}"
    fence_file = city / "west_lake.geojson"
    _sigloc("run", str(city / "capture.pcap"), "--cells", str(city / "cells.csv"), "--fence", str(fence_file),
            "--segments", str(city / "number_segments.csv"), "--clickhouse", url, "--out", str(tmp_path / "job"))
    name = load_fence(fence_file).name
    t = pd.read_json(io.StringIO(_python(
        f"from analytics.store import Store\nstore = Store({url!r})\n"
        "t = store.query(\"SELECT toFloat64(min(ts)) AS lo, toFloat64(max(ts)) AS hi, uniqExact(subscriber) AS n \"\n"
        f"                \"FROM {{db}}.triggers WHERE fence = {{f:String}} AND kind = 'enter'\", {{'f': {name!r}}})\n"
        "print(t.to_json()); store.close()")))
    lo, hi = float(t["lo"][0]), float(t["hi"][0]) + 3600
    out = tmp_path / "ff"
    _sigloc("report", "footfall", "--fence", name, "--clickhouse", url, "--from", str(lo), "--to", str(hi),
            "-k", "1", "--cells", str(city / "cells.csv"), "--fence-file", str(fence_file), "--out", str(out))
    summary = pd.read_csv(out / "footfall_summary.csv").set_index("metric")["value"]
    assert int(summary["visitors"]) == int(t["n"][0]) > 0
    page, map_page = (out / "report.html").read_text(), (out / "map.html").read_text()
    assert '<iframe src="map.html"' in page and "assets/leaflet.js" in map_page and (out / "assets/leaflet.js").exists()


def test_partition_blanks_until_the_hidden_rows_reach_k():
    from analytics.footfall import mask  # noqa: PLC0415
    table = pd.DataFrame({"class": ["resident", "commuter", "tourist", "day-tripper"], "visitors": [40, 20, 6, 0]})
    assert mask(table, "visitors", 15)["visitors"].isna().tolist() == [False, False, True, True]
    # 6 hidden could be recovered from the total 66: the commuters' 20 are blanked with them
    assert mask(table, "visitors", 15, partition=True)["visitors"].isna().tolist() == [False, True, True, True]
    table["visitors"] = [40, 20, 0, 0]  # nothing to recover: zero classes are blank and leak nothing
    assert mask(table, "visitors", 15, partition=True)["visitors"].isna().tolist() == [False, False, True, True]
