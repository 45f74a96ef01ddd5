"""Footfall and origin reports equal pandas counts over visits designed by hand (each group's class is known)."""

import io
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from test_report import _table

from analytics.footfall import bucket_labels, footfall, origin
from analytics.origin import Origins
from analytics.store import Store

TZ = ZoneInfo("Asia/Shanghai")
DAY0 = datetime(2026, 5, 1, tzinfo=TZ)
START, END = DAY0.timestamp(), (DAY0 + timedelta(days=4)).timestamp()
SEGMENTS = {"46000571": ("Zhejiang", "Hangzhou"), "46000210": ("Shanghai", "Shanghai"),
            "46000250": ("Jiangsu", "Nanjing"), "46000574": ("Zhejiang", "Ningbo")}


def at(day, hour, minute=0):
    return (DAY0 + timedelta(days=day, hours=hour, minutes=minute)).timestamp()


def _design():
    """(imsi, class, t_in, t_out or None while still inside at the end) for groups whose class is by design."""
    visits = []

    def group(n, prefix, label, spans, offset=0):
        for i in range(n):
            imsi = prefix + f"{offset + i:0{15 - len(prefix)}d}"
            visits.extend((imsi, label, a + 60 * i, None if b is None else b + 90 * i) for a, b in spans)

    group(20, "46000571", "resident", [(at(d, 20), at(d + 1, 7)) for d in range(3)] + [(at(3, 21), None)])
    group(18, "46000571", "commuter", [(at(d, 9), at(d, 18)) for d in range(-1, 4)], offset=100)  # also day -1
    group(16, "46000210", "tourist", [(at(1, 14), at(2, 10))])
    group(15, "46000250", "day-tripper", [(at(2, 10), at(2, 12)), (at(2, 13), at(2, 15, 30))])  # repeat visitors
    group(17, "46000574", "day-tripper", [(at(0, 11), at(0, 11, 20))])
    group(5, "44010", "day-tripper", [(at(1, 10), at(1, 16))])  # a small group: must not show
    return pd.DataFrame(visits, columns=["imsi", "label", "t_in", "t_out"])


def _triggers(design):
    rows = []
    for v in design.itertuples():
        rows.append({"ts": v.t_in, "imsi": v.imsi, "fence": "lake", "kind": "enter", "cell": "c1",
                     "event": "cell_change", "frame": 1})
        if v.t_out is not None and not pd.isna(v.t_out):
            rows.append({"ts": v.t_out, "imsi": v.imsi, "fence": "lake", "kind": "exit", "cell": "c9",
                         "event": "cell_change", "frame": 1})
    return pd.DataFrame(rows).sort_values("ts").reset_index(drop=True)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    design = _design()
    store = Store(f"chdb://{tmp_path_factory.mktemp('ch') / 'data'}")
    origins = Origins(SEGMENTS)
    store.insert_triggers(_table(_triggers(design)), origins, token="f1")
    yield store, design, origins
    store.close()


def _in_period(design):
    d = design.assign(t_out=design["t_out"].fillna(END))
    return d[(d.t_out >= START) & (d.t_in <= END)]


def _overlap(d, lo, hi):
    return d[(d.t_in < hi) & (d.t_out >= lo)]["imsi"].nunique()


def test_footfall_equals_hand_count(stored):
    store, design, _ = stored
    rep = footfall(store, "lake", START, END, k=1)
    d = _in_period(design)
    hours = [START + 3600 * h for h in range(96)]
    expected = {datetime.fromtimestamp(h, TZ).strftime("%Y-%m-%d %H:00"): _overlap(d, h, h + 3600) for h in hours}
    expected = {h: n for h, n in expected.items() if n}
    assert dict(zip(rep.hourly["hour"], rep.hourly["visitors"].astype(int))) == expected
    days = {(DAY0 + timedelta(days=i)).strftime("%Y-%m-%d"): _overlap(d, at(i, 0), at(i + 1, 0)) for i in range(4)}
    assert dict(zip(rep.daily["day"], rep.daily["visitors"].astype(int))) == days
    summary = dict(zip(rep.summary["metric"], rep.summary["value"]))
    assert summary["visitors"] == d["imsi"].nunique() == 20 + 18 + 16 + 15 + 17 + 5
    peak = max(expected, key=expected.get)
    assert (summary["peak_hour"], summary["peak_hour_visitors"]) == (peak, expected[peak])
    started = d[d.t_in >= START]
    assert summary["repeat_visitors"] == int((started.groupby("imsi").size() >= 2).sum()) == 20 + 18 + 15
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
    store, design, origins = stored
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
    # origin share per day: province (or country when foreign) of visitors present that day
    for i in range(4):
        day = (DAY0 + timedelta(days=i)).strftime("%Y-%m-%d")
        present = d[(d.t_in < at(i + 1, 0)) & (d.t_out >= at(i, 0))].drop_duplicates("imsi")
        label = present["imsi"].map(origins.home).map(lambda h: h.province or h.country)
        got = rep.daily[rep.daily.day == day]
        assert dict(zip(got["origin"], got["visitors"])) == label.value_counts().to_dict()
        assert got["share"].sum() == pytest.approx(1.0, abs=1e-3)


def test_small_counts_are_suppressed(stored):
    store, _, _ = stored
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
    assert summary["returning_visitors"] == 18 and summary["visitors"] == 91


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
    """Store the designed triggers at url; print the pseudonyms (test helper, run in a subprocess)."""
    design = _design()
    store = Store(url)
    store.insert_triggers(_table(_triggers(design)), Origins(SEGMENTS), token="f1")
    print("\n".join({store.pseudonym(x) for x in design["imsi"]}))
    store.close()


def test_cli_writes_html_and_csv_without_identifiers(tmp_path):
    design = _design()
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
