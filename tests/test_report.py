"""Report numbers equal an independent pandas count over the same triggers; small counts are suppressed."""

import random
from datetime import datetime, timezone

import pandas as pd
import pyarrow as pa
import pytest

from analytics.origin import Origins
from analytics.report import build_report, suppress
from analytics.store import Store
from geofence.match import TRIGGER_SCHEMA

T0 = datetime(2026, 5, 1, 0, 0, tzinfo=timezone.utc).timestamp()  # 08:00 in Hangzhou
SEGMENTS = {"46000571": ("Zhejiang", "Hangzhou"), "46000210": ("Shanghai", "Shanghai"),
            "46000250": ("Jiangsu", "Nanjing")}


def _visits(seed=3, people=120):
    """Random enter/exit sequences (some visits still open at the end) for imsis of several origins."""
    rng = random.Random(seed)
    prefixes = ["46000571", "46000210", "46000250", "44010", "45005"]
    weights = [50, 30, 25, 10, 5]
    rows = []
    for i in range(people):
        prefix = rng.choices(prefixes, weights)[0]
        imsi = prefix + f"{i:0{15 - len(prefix)}d}"
        t = T0 + rng.uniform(0, 3 * 3600)
        for _ in range(rng.randint(1, 2)):
            rows.append({"ts": t, "imsi": imsi, "fence": "lake", "kind": "enter", "cell": "c1", "event": "cell_change",
                         "frame": 1})
            t += rng.uniform(60, 5000)
            if t > T0 + 4 * 3600 or rng.random() < 0.2:
                break  # still inside at the end of the period
            rows.append({"ts": t, "imsi": imsi, "fence": "lake", "kind": "exit", "cell": "c9", "event": "cell_change",
                         "frame": 1})
            t += rng.uniform(60, 3000)
    return pd.DataFrame(rows).sort_values("ts").reset_index(drop=True)


def _table(df):
    cols = {f.name: df[f.name].tolist() for f in TRIGGER_SCHEMA if f.name not in ("ts", "dwell_s")}
    cols["dwell_s"] = [None] * len(df)
    ts = pa.array([round(x * 1e6) for x in df["ts"]], pa.int64()).cast(TRIGGER_SCHEMA.field("ts").type)
    return pa.table({"ts": ts, **cols}, schema=TRIGGER_SCHEMA)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    df = _visits()
    store = Store(f"chdb://{tmp_path_factory.mktemp('ch') / 'data'}")
    origins = Origins(SEGMENTS)
    store.insert_triggers(_table(df), origins, token="t1")
    store.insert_triggers(_table(df), origins, token="t1")  # a retried batch must not count twice
    yield store, df, origins
    store.close()


def _hand_count(df, start, end):
    """Visits by pairing each enter with the next exit of the same subscriber (open visits end at `end`)."""
    visits = []
    df = df[df.ts <= end]  # triggers after the period are not known to it
    for imsi, g in df.sort_values("ts").groupby("imsi"):
        rows = g.to_dict("records")
        for i, r in enumerate(rows):
            if r["kind"] == "enter":
                t_out = rows[i + 1]["ts"] if i + 1 < len(rows) and rows[i + 1]["kind"] == "exit" else end
                if t_out >= start:
                    visits.append((imsi, r["ts"], t_out))
    return pd.DataFrame(visits, columns=["imsi", "t_in", "t_out"])


def test_hourly_origin_dwell_equal_hand_count(stored):
    store, df, origins = stored
    start, end = T0, T0 + 4 * 3600
    rep = build_report(store, "lake", ["c1"], start, end, k=1)
    visits = _hand_count(df, start, end)
    assert rep.visitors == visits["imsi"].nunique()
    # hourly: a visitor counts in every hour its visit overlaps
    expected = {}
    for h in range(4):
        lo, hi = start + 3600 * h, start + 3600 * (h + 1)
        n = visits[(visits.t_in < hi) & (visits.t_out >= lo)]["imsi"].nunique()
        if n:
            expected[datetime.fromtimestamp(lo, timezone.utc).astimezone().strftime("%Y-%m-%d %H:00")] = n
    got = dict(zip(rep.hourly["hour"], rep.hourly["visitors"].astype(int)))
    assert list(got.values()) == list(expected.values())
    assert list(got)[0].endswith("08:00")  # local time (Asia/Shanghai)
    # origin by country and province
    homes = visits.drop_duplicates("imsi")["imsi"].map(origins.home)
    countries = homes.map(lambda h: h.country).value_counts().to_dict()
    assert dict(zip(rep.by_country["origin"], rep.by_country["visitors"].astype(int))) == countries
    provinces = homes.map(lambda h: h.province)
    provinces = provinces[provinces != ""].value_counts().to_dict()
    assert dict(zip(rep.by_province["origin"], rep.by_province["visitors"].astype(int))) == provinces
    # dwell buckets count visits
    dwell = visits.t_out - visits.t_in
    assert int(rep.dwell["visits"].fillna(0).sum()) == len(dwell)
    assert int(rep.dwell.loc[rep.dwell.bucket == "< 15 min", "visits"].fillna(0).iloc[0]) == int((dwell < 900).sum())


def test_small_counts_are_suppressed(stored):
    store, df, origins = stored
    rep = build_report(store, "lake", ["c1"], T0, T0 + 4 * 3600, k=15)
    shown = rep.by_country.dropna(subset=["visitors"])
    assert (shown["visitors"] >= 15).all()
    assert "Japan" not in set(rep.by_country["origin"]) and "South Korea" not in set(rep.by_country["origin"])
    assert rep.hourly["visitors"].dropna().ge(15).all()


def test_suppress_merges_small_rows_until_the_merge_reaches_k():
    table = pd.DataFrame({"origin": ["A", "B", "C", "D"], "visitors": [40, 20, 6, 5]})
    out = suppress(table, 15)  # 6 + 5 < 15 would be recoverable as total - 60: B joins the merge
    assert out["origin"].tolist() == ["A", "Other (small groups)"] and out["visitors"].tolist() == [40, 31]
    out = suppress(pd.DataFrame({"origin": ["A", "C", "D"], "visitors": [40, 9, 8]}), 15)
    assert out["visitors"].tolist() == [40, 17]
    out = suppress(pd.DataFrame({"origin": ["A", "B"], "visitors": [40, 20]}), 15)
    assert out["origin"].tolist() == ["A", "B"]  # nothing small, nothing merged
    out = suppress(pd.DataFrame({"origin": ["C", "D"], "visitors": [6, 5]}), 15)
    assert out["origin"].tolist() == ["Other (small groups)"] and pd.isna(out["visitors"].iloc[0])


def test_every_segment_province_has_a_boundary():
    """The bundled boundaries cover the 31 mainland provinces under the names number-segment tables use."""
    from analytics.report import province_key, provinces  # noqa: PLC0415
    from simulator.city import PROVINCES  # noqa: PLC0415
    drawn = {province_key(f["properties"]["name"]) for f in provinces()["features"]}
    assert len(drawn) == 31
    assert {province_key(p[0]) for p in PROVINCES} <= drawn
    for spelling, name in (("Zhejiang Sheng", "Zhejiang"), ("Tibet", "Xizang"), ("Nei Mongol", "Inner Mongolia"),
                           ("Guangxi Zhuangzu Zizhiqu", "Guangxi"), ("Ningxia Hui Autonomous Region", "Ningxia"),
                           ("Xinjiang Uygur Zizhiqu", "Xinjiang"), ("Shaanxi", "Shaanxi"), ("Shanxi", "Shanxi")):
        assert province_key(spelling) == province_key(name) in drawn


def test_store_holds_no_imsi(stored):
    store, df, _ = stored
    rows = store.query("SELECT * FROM {db}.triggers")
    text = rows.to_csv()
    assert not any(imsi in text for imsi in df["imsi"].unique())
    assert rows["subscriber"].str.len().eq(32).all()
