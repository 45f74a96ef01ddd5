"""Contact policy (geofence/policy.py): every rule blocks what it should and allows what it should not block."""

import os
import re
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from analytics.store import Store
from decoders.records import TS
from geofence.policy import ContactPolicy, PolicyConfig, PolicyError, Touchpoint

CST = timezone(timedelta(hours=8))
A, B, C = "460005710000001", "460005710000002", "460005710000003"


@pytest.fixture(scope="module")
def keyed_hash(tmp_path_factory):
    """The store's own keyed HMAC (the control group must use it, not a hash anyone can recompute)."""
    store = Store(f"chdb://{tmp_path_factory.mktemp('policy') / 'data'}")
    yield store.pseudonym
    store.close()


def _local(*wall) -> float:
    return datetime(*wall, tzinfo=CST).timestamp()


def cands(*rows):
    """Candidate table from (local wall time tuple, imsi, campaign, overrides) rows."""
    out = {k: [] for k in ("ts", "imsi", "msisdn", "campaign", "priority", "touchpoint", "cap_per_day",
                           "control_share")}
    for row in rows:
        wall, imsi, campaign, extra = (*row, {})[:4] if len(row) == 3 else row
        values = {"ts": round(_local(*wall) * 1e6), "imsi": imsi, "msisdn": "86139" + imsi[-8:],
                  "campaign": campaign, "priority": 0, "touchpoint": "sms", "cap_per_day": None,
                  "control_share": 0.0, **extra}
        for k in out:
            out[k].append(values[k])
    return pa.table({
        "ts": pa.array(out["ts"], pa.int64()).cast(TS), "imsi": out["imsi"], "msisdn": out["msisdn"],
        "campaign": out["campaign"], "priority": pa.array(out["priority"], pa.int64()),
        "touchpoint": out["touchpoint"], "cap_per_day": pa.array(out["cap_per_day"], pa.int64()),
        "control_share": pa.array(out["control_share"], pa.float64()),
    })


def decide(policy, *rows):
    t = policy.decide(cands(*rows))
    return list(zip(t["imsi"].to_pylist(), t["decision"].to_pylist(), t["reason"].to_pylist()))


def policy(keyed_hash, **config):
    config.setdefault("global_per_day", None)
    config.setdefault("global_per_week", None)
    return ContactPolicy(PolicyConfig(**config), keyed_hash)


NOON = (2026, 12, 2, 10, 0)  # a Wednesday, outside quiet hours


def _list(tmp_path, name, *lines):
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.mark.parametrize("name", ["opt_out", "blacklist", "red_list"])
def test_lists_block_listed_by_imsi_or_msisdn(tmp_path, keyed_hash, name):
    path = _list(tmp_path, f"{name}.txt", "# operator export", A, "+86 139-1000-0002")  # B by MSISDN
    p = policy(keyed_hash, **{name: path})
    assert decide(p, (NOON, A, "c"), (NOON, B, "c"), (NOON, C, "c")) == [
        (A, "blocked", name), (B, "blocked", name), (C, "allowed", "none")]


def test_opt_out_wins_over_every_other_rule(tmp_path, keyed_hash):
    lists = {n: _list(tmp_path, f"{n}.txt", A) for n in ("opt_out", "blacklist", "red_list")}
    p = policy(keyed_hash, **lists)
    night = (2026, 12, 2, 23, 0)
    assert decide(p, (night, A, "c", {"control_share": 0.99})) == [(A, "blocked", "opt_out")]


def test_lists_reload_live(tmp_path, keyed_hash):
    path = _list(tmp_path, "opt_out.txt", C)
    p = policy(keyed_hash, opt_out=path)
    assert decide(p, (NOON, A, "c")) == [(A, "allowed", "none")]
    path.write_text(f"{C}\n{A}\n")
    os.utime(path, ns=(1, 1))  # a new modification time, as any rewrite of the file gives
    assert decide(p, ((2026, 12, 2, 10, 5), A, "c")) == [(A, "blocked", "opt_out")]  # picked up by itself
    path.write_text(f"{C}\n")
    p.reload()
    assert p.lists.entries["opt_out"] == {C}


def test_list_errors(tmp_path, keyed_hash):
    bad = _list(tmp_path, "opt_out.txt", A, "not-a-number")
    with pytest.raises(PolicyError, match=re.escape(f"{bad}:2: opt_out entry 'not-a-number' is not an IMSI")):
        policy(keyed_hash, opt_out=bad)
    with pytest.raises(PolicyError, match=re.escape(f"{tmp_path / 'gone.txt'}: cannot read list")):
        policy(keyed_hash, blacklist=tmp_path / "gone.txt")


def test_quiet_hours_default_22_to_08_local(keyed_hash):
    p = policy(keyed_hash)
    got = decide(p, ((2026, 12, 2, 21, 59), A, "c1"), ((2026, 12, 2, 22, 0), A, "c2"),
                 ((2026, 12, 3, 7, 59), A, "c3"), ((2026, 12, 3, 8, 0), A, "c4"))
    assert [r for _, _, r in got] == ["none", "quiet_hours", "quiet_hours", "none"]


def test_quiet_hours_configurable_and_off(keyed_hash):
    late = ((2026, 12, 2, 22, 30), A, "c")
    assert decide(policy(keyed_hash, quiet_hours=None), late) == [(A, "allowed", "none")]
    assert decide(policy(keyed_hash, quiet_hours=("23:00", "07:00")), late) == [(A, "allowed", "none")]
    with pytest.raises(PolicyError, match=re.escape("policy setting quiet_hours: $.time.hours[0]: '7am'")):
        policy(keyed_hash, quiet_hours=("22:00", "7am"))


def test_busy_windows_block(keyed_hash):
    p = policy(keyed_hash, busy_windows=[("11:30", "13:00"), ("17:30", "19:00")])
    got = decide(p, ((2026, 12, 2, 11, 29), A, "a"), ((2026, 12, 2, 11, 30), B, "a"),
                 ((2026, 12, 2, 18, 0), C, "a"), ((2026, 12, 2, 19, 0), A, "b"))
    assert got == [(A, "allowed", "none"), (B, "blocked", "busy_window"), (C, "blocked", "busy_window"),
                   (A, "allowed", "none")]


def test_campaign_cap_per_local_day(keyed_hash):
    p = policy(keyed_hash)
    cap = {"cap_per_day": 2}
    got = decide(p, ((2026, 12, 2, 9, 0), A, "x", cap), ((2026, 12, 2, 10, 0), A, "x", cap),
                 ((2026, 12, 2, 11, 0), A, "x", cap), ((2026, 12, 2, 11, 0), A, "y", cap),
                 ((2026, 12, 2, 12, 0), B, "x", cap))
    assert got == [(A, "allowed", "none"), (A, "allowed", "none"), (A, "blocked", "campaign_day_cap"),
                   (A, "allowed", "none"), (B, "allowed", "none")]
    # the next local day starts at 00:00 CST (16:00 UTC), not at UTC midnight; state carries across batches
    assert decide(p, ((2026, 12, 3, 8, 0), A, "x", cap)) == [(A, "allowed", "none")]


def test_global_caps_per_day_and_week(keyed_hash):
    p = policy(keyed_hash, global_per_day=2, global_per_week=3)
    got = decide(p, ((2026, 11, 30, 9, 0), A, "a"), ((2026, 11, 30, 10, 0), A, "b"),
                 ((2026, 11, 30, 11, 0), A, "c"),                   # third today: day cap
                 ((2026, 12, 1, 9, 0), A, "d"),                     # third this ISO week
                 ((2026, 12, 1, 10, 0), A, "e"),                    # fourth this week: week cap
                 ((2026, 12, 1, 10, 0), B, "e"),
                 ((2026, 12, 7, 9, 0), A, "f"))                     # Monday: a new week
    assert [r for _, _, r in got] == ["none", "none", "global_day_cap", "none", "global_week_cap", "none", "none"]


def test_control_group_deterministic_and_never_contacted(keyed_hash):
    subs = [f"46000571{i:07d}" for i in range(400)]
    rows = [((2026, 12, 2, 10, 0), s, "lake", {"control_share": 0.25}) for s in subs]
    first = decide(policy(keyed_hash), *rows)
    again = decide(policy(keyed_hash), *rows)
    assert first == again
    control = {s for s, d, _ in first if d == "control"}
    assert all(r == "control" for s, d, r in first if d == "control")
    assert {d for s, d, _ in first if s not in control} == {"allowed"}
    assert 70 <= len(control) <= 130  # 25 % of 400, binomial sd ≈ 8.7
    # another campaign draws its own control group
    other = {s for s, d, _ in decide(policy(keyed_hash), *[(w, s, "mall", x) for w, s, _, x in rows])
             if d == "control"}
    assert other != control
    # share 0: nobody held out
    assert {d for _, d, _ in decide(policy(keyed_hash), *[(w, s, "lake") for w, s, _, _ in rows])} == {"allowed"}


def test_control_counts_against_campaign_cap_not_global(keyed_hash):
    p = policy(keyed_hash, global_per_day=1)
    held = next(s for s in (f"46000571{i:07d}" for i in range(100)) if p.in_control("lake", s, 0.5))
    x = {"control_share": 0.5, "cap_per_day": 1}
    got = decide(p, ((2026, 12, 2, 9, 0), held, "lake", x), ((2026, 12, 2, 10, 0), held, "lake", x),
                 ((2026, 12, 2, 11, 0), held, "mall"))
    assert got == [(held, "control", "control"), (held, "blocked", "campaign_day_cap"), (held, "allowed", "none")]


def test_throughput_drops_lowest_priority(keyed_hash):
    p = policy(keyed_hash, touchpoints={"sms": Touchpoint(rate_per_s=1, burst=1)})
    t = (2026, 12, 2, 10, 0, 0)
    got = decide(p, (t, A, "low", {"priority": 1}), (t, B, "high", {"priority": 5}),
                 (t, C, "mid", {"priority": 3}), ((2026, 12, 2, 10, 0, 1), A, "low", {"priority": 1}),
                 (t, C, "push", {"touchpoint": "push"}))           # another touchpoint, unlimited
    # decided per one-second slot, highest priority first; the next second has a fresh token
    assert got == [(B, "allowed", "none"), (C, "blocked", "throughput"), (A, "blocked", "throughput"),
                   (C, "allowed", "none"), (A, "allowed", "none")]


def test_throughput_delay_backlog(keyed_hash):
    p = policy(keyed_hash, touchpoints={"sms": Touchpoint(rate_per_s=0.5, burst=1)}, backlog="delay",
               max_delay_s=3)
    t = (2026, 12, 2, 10, 0, 0)
    table = p.decide(cands((t, A, "c", {"priority": 2}), (t, B, "c"), (t, C, "c")))
    assert table["decision"].to_pylist() == ["allowed", "allowed", "blocked"]
    assert table["reason"].to_pylist() == ["none", "none", "backlog"]  # the third would wait 4 s > 3 s
    sent = [None if v is None else v.timestamp() - _local(*t) for v in table["send_at"].to_pylist()]
    assert sent == [0.0, 2.0, None]


def test_delayed_send_into_quiet_hours_is_blocked(keyed_hash):
    p = policy(keyed_hash, touchpoints={"sms": Touchpoint(rate_per_s=0.1, burst=1)}, backlog="delay",
               max_delay_s=60)
    t = (2026, 12, 2, 21, 59, 55)
    assert decide(p, (t, A, "c"), (t, B, "c")) == [(A, "allowed", "none"), (B, "blocked", "quiet_hours")]


def test_bad_settings(keyed_hash):
    with pytest.raises(PolicyError, match="backlog policy 'queue'"):
        policy(keyed_hash, backlog="queue")
    with pytest.raises(PolicyError, match="touchpoint 'sms': rate_per_s must be > 0"):
        policy(keyed_hash, touchpoints={"sms": Touchpoint(rate_per_s=0)})
    with pytest.raises(PolicyError, match="candidate table lacks column"):
        policy(keyed_hash).decide(pa.table({"ts": pa.array([0], pa.int64()).cast(TS)}))
