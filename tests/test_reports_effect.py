"""Campaign effect equals a pandas count over hand-built deliveries and outcomes; bad CSVs name file, line, field."""

import csv

import pandas as pd
import pyarrow as pa
import pytest

from analytics.effect import OutcomeError, effect, msisdn_index, newcombe, read_subscribers, wilson
from analytics.store import Store
from geofence.campaigns import DECISION_SCHEMA
from test_reports_footfall import _python

T0 = 1_777_593_600.0  # 2026-05-01 00:00 UTC
DAY = 86400.0


def imsi(group, i):
    return f"46000{group}{i:09d}"


def _design():
    """Decisions per subscriber and their outcomes/opt-outs: (campaign, group, imsi, decided, outcome_ts|None)."""
    rows = []
    for i in range(200):  # greet, triggered: 30 convert in time, 5 before the message, 4 after the window
        t = T0 + 60 * i
        out = t + DAY if i < 30 else t - 600 if i < 35 else t + 8 * DAY if i < 39 else None
        rows.append(("greet", "allowed", imsi(1, i), t, out))
    for i in range(60):  # greet, control: 6 convert anyway
        t = T0 + 90 * i
        rows.append(("greet", "control", imsi(2, i), t, t + 2 * DAY if i < 6 else None))
    for i in range(10):
        rows.append(("greet", "blocked", imsi(3, i), T0, T0 + DAY))  # never contacted, not a group
    for i in range(40):  # care: 20 triggered, 20 control, 16 and 3 converting
        g = "allowed" if i < 20 else "control"
        rows.append(("care", g, imsi(4, i), T0 + 3600, T0 + 7200 if i < 16 or 20 <= i < 23 else None))
    return pd.DataFrame(rows, columns=["campaign", "decision", "imsi", "ts", "outcome_ts"])


MASS = [imsi(5, i) for i in range(300)]  # mass send: 12 of 300 convert
MSISDN = {m: f"8613{i:09d}" for i, m in enumerate(MASS)}


def _deliveries(store, d):
    n = len(d)
    return pa.table({
        "ts": pa.array((d["ts"] * 1e6).round().astype("int64")).cast(DECISION_SCHEMA.field("ts").type),
        "campaign": d["campaign"].tolist(), "subscriber": [store.pseudonym(x) for x in d["imsi"]],
        "fence": ["lake"] * n, "kind": ["enter"] * n, "event": ["cell_change"] * n,
        "decision": d["decision"].tolist(), "reason": ["none"] * n,
        "send_at": pa.nulls(n, DECISION_SCHEMA.field("send_at").type), "cell": ["c1"] * n,
    }, schema=DECISION_SCHEMA)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("effect")
    store = Store(f"chdb://{tmp / 'data'}")
    d = _design()
    store.insert_deliveries(_deliveries(store, d), token="d1")
    with open(tmp / "outcomes.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["imsi", "msisdn", "outcome", "ts"])
        for r in d.dropna(subset=["outcome_ts"]).itertuples():
            w.writerow([r.imsi, "", "subscribed", r.outcome_ts])
        for i, m in enumerate(MASS[:12]):  # by phone number, as ISO 8601 local time
            w.writerow(["", "+86 " + MSISDN[m][2:], "purchase", f"2026-05-0{2 + i % 3}T10:00:00"])
        w.writerow(["", "13999999999", "purchase", T0])  # not our subscriber: cannot be attributed
    with open(tmp / "mass.csv", "w") as f:
        f.write("msisdn\n" + "\n".join(MSISDN[m] for m in MASS) + "\n")
    with open(tmp / "optout.csv", "w") as f:  # 16 greet recipients opt out after the message, 2 before
        f.write("imsi,ts\n" + "".join(f"{imsi(1, i)},{T0 + 60 * i + (3600 if i < 16 else -3600)}\n"
                                      for i in range(18)))
    yield store, d, tmp
    store.close()


def _read(store, tmp):
    index = msisdn_index(MSISDN)
    outcomes = read_subscribers(tmp / "outcomes.csv", store.pseudonym, index, ("outcome", "ts"))
    mass = read_subscribers(tmp / "mass.csv", store.pseudonym, index)
    opt = read_subscribers(tmp / "optout.csv", store.pseudonym, index, ("ts",))
    return outcomes, mass, opt


def test_conversion_equals_hand_count(setup):
    store, d, tmp = setup
    outcomes, mass, opt = _read(store, tmp)
    assert outcomes.attrs["unmatched"] == 1
    rep = effect(store, T0, T0 + DAY, outcomes, mass, opt, k=0)
    got = {(r.campaign, r.group): (r.subscribers, r.converted) for r in rep.conversion.itertuples()}
    d = d[d.decision != "blocked"]
    ok = (d.outcome_ts >= d.ts) & (d.outcome_ts <= d.ts + 7 * DAY)
    hand = d.assign(ok=ok).groupby(["campaign", "decision"]).agg(n=("imsi", "nunique"), x=("ok", "sum"))
    for (campaign, decision), r in hand.iterrows():
        group = {"allowed": "triggered", "control": "control"}[decision]
        assert got[(campaign, group)] == (r.n, r.x)
    assert got[("greet", "triggered")] == (200, 30) and got[("greet", "mass_send")] == (300, 12)
    row = rep.conversion.set_index(["campaign", "group"]).loc[("greet", "triggered")]
    assert row.rate == pytest.approx(0.15)
    diff = rep.difference.set_index(["campaign", "comparison"]).loc[("greet", "triggered - control")]
    assert diff.difference == pytest.approx(0.15 - 0.10)
    assert diff.ci_low < 0 < diff.ci_high  # 15 % vs 10 % on 60 controls is not yet a proven effect
    mass_diff = rep.difference.set_index(["campaign", "comparison"]).loc[("greet", "triggered - mass_send")]
    assert mass_diff.difference == pytest.approx(0.15 - 0.04) and mass_diff.ci_low > 0
    opts = rep.opt_outs.set_index("campaign")
    assert (opts.loc["greet", "recipients"], opts.loc["greet", "opt_outs"]) == (200, 16)
    assert opts.loc["care", "opt_outs"] == 0


def test_wilson_matches_published_values():
    assert wilson(12, 100) == pytest.approx((0.0700, 0.1981), abs=1e-4)  # Newcombe 1998, table I style check
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    d, lo, hi = newcombe(56, 70, 48, 80)  # Newcombe 1998 example (a): 0.2 (0.0524, 0.3339)
    assert (d, lo, hi) == pytest.approx((0.2, 0.0524, 0.3339), abs=1e-4)


def test_small_groups_are_suppressed(setup):
    store, _, tmp = setup
    outcomes, mass, opt = _read(store, tmp)
    rep = effect(store, T0, T0 + DAY, outcomes, mass, opt, k=15)
    c = rep.conversion.set_index(["campaign", "group"])
    assert pd.isna(c.loc[("greet", "control"), "converted"]) and pd.isna(c.loc[("greet", "control"), "rate"])
    assert c.loc[("greet", "control"), "subscribers"] == 60
    assert pd.isna(c.loc[("greet", "mass_send"), "converted"])
    assert c.loc[("care", "triggered"), "converted"] == 16 and c.loc[("care", "triggered"), "rate"] == 0.8
    assert c["converted"].dropna().ge(15).all() and c["subscribers"].dropna().ge(15).all()
    assert rep.difference[["difference"]].isna().all().all()  # every comparison involves a suppressed group


@pytest.mark.parametrize("text, message", [
    ("imsi,outcome,ts\n4600ab,subscribed,2026-05-01T10:00\n", "bad.csv:2: field 'imsi': '4600ab' is not 6-15 digits"),
    ("imsi,outcome,ts\n460001234567890,,2026-05-01\n", "bad.csv:2: field 'outcome': empty"),
    ("imsi,outcome,ts\n460001234567890,x,2026-05-01\n460001234567890,x,yesterday\n",
     "bad.csv:3: field 'ts': 'yesterday' is not ISO 8601"),
    ("imsi,ts\n460001234567890,2026-05-01\n", "bad.csv:1: missing column(s): outcome"),
    ("phone,outcome,ts\n1391234567,x,2026-05-01\n", "bad.csv:1: missing column: imsi or msisdn"),
    ("msisdn,outcome,ts\n13912345678,x,2026-05-01\n", "bad.csv:2: field 'msisdn': MSISDN keys need"),
    ("imsi,msisdn,outcome,ts\n,,x,2026-05-01\n", "bad.csv:2: field 'imsi': empty"),
])
def test_outcome_csv_errors_name_file_line_field(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(OutcomeError) as err:
        read_subscribers(path, lambda x: x, None, ("outcome", "ts"))
    assert message in str(err.value)


def seed(url):
    """Store the designed deliveries at url; print the pseudonyms (test helper, run in a subprocess)."""
    store = Store(url)
    d = _design()
    store.insert_deliveries(_deliveries(store, d), token="d1")
    print("\n".join({store.pseudonym(x) for x in [*d["imsi"], *MASS]}))
    store.close()


def test_cli_effect_report_holds_no_identifiers(setup, tmp_path):
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    _, d, tmp = setup
    url = f"chdb://{tmp_path / 'data'}"
    pseudonyms = set(_python(f"from test_reports_effect import seed; seed({url!r})").split())
    assert len(pseudonyms) == d["imsi"].nunique() + len(MASS)
    with open(tmp_path / "msisdn.csv", "w") as f:
        f.write("imsi,msisdn\n" + "".join(f"{m},{MSISDN[m]}\n" for m in MASS))
    args = ["report", "effect", "--clickhouse", url, "--from", str(T0), "--to", str(T0 + DAY), "-k", "15",
            "--outcomes", str(tmp / "outcomes.csv"), "--mass-send", str(tmp / "mass.csv"),
            "--opt-outs", str(tmp / "optout.csv"), "--msisdn", str(tmp_path / "msisdn.csv"),
            "--out", str(tmp_path / "out")]
    run = subprocess.run([sys.executable, "-c", "from appliance.cli import main; main()", *args],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    conversion = pd.read_csv(tmp_path / "out" / "conversion.csv").set_index(["campaign", "group"])
    assert conversion.loc[("greet", "triggered"), ["subscribers", "converted"]].tolist() == [200, 30]
    assert pd.isna(conversion.loc[("greet", "control"), "converted"])
    opt = pd.read_csv(tmp_path / "out" / "opt_outs.csv").set_index("campaign")
    assert opt.loc["greet", "opt_outs"] == 16
    text = "".join(p.read_text() for p in (tmp_path / "out").iterdir())
    raw = set(d["imsi"]) | set(MASS) | set(MSISDN.values()) | {m[2:] for m in MSISDN.values()}
    assert not any(x in text for x in raw | pseudonyms)
    # a bad outcome file: one line on stderr naming file, line and field, exit status 2
    (tmp_path / "bad.csv").write_text("imsi,outcome,ts\n460001234567890,x,soon\n")
    args[args.index("--outcomes") + 1] = str(tmp_path / "bad.csv")
    run = subprocess.run([sys.executable, "-c", "from appliance.cli import main; main()", *args],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "bad.csv:2: field 'ts'" in run.stderr
