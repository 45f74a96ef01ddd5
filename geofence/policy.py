"""Contact policy: the rules marketers live under, applied to every candidate before a trigger leaves.

Candidates (rows a campaign's rule accepted) are decided in time order, in one-second slots and by
campaign priority within a slot, so when a touchpoint is saturated it is the lowest priority that is
dropped or delayed. Every candidate gets a recorded decision — ``allowed``, ``blocked`` or ``control``
— and a ``Reason``. The checks, first failing one wins (docs/campaigns.md):

1. opt-out, blacklist, red list (files reloaded live when they change; opt-out always wins);
2. quiet hours (default 22:00–08:00) and busy/meal windows, local time: *blocked*, not deferred,
   because a location trigger is stale by morning or after lunch;
3. caps per subscriber: per campaign per local day, global per local day and per ISO week;
4. control holdout: a keyed hash of campaign + subscriber puts a fixed share in the control group,
   recorded ``control`` and never contacted; it counts against the campaign's daily cap (so control
   and treatment are exposed alike) but not the global caps (nothing was sent);
5. per-touchpoint throughput (token bucket per second); on an empty bucket the backlog policy either
   drops (``throughput``) or delays up to ``max_delay_s`` (``backlog`` beyond it), and a delayed send
   that would land in quiet hours or a busy window is blocked for that reason.
"""

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from decoders.records import TS
from decoders.tables import normalise_msisdn
from geofence.rules import RuleError, parse_rule


class Decision(StrEnum):
    ALLOWED = "allowed"
    BLOCKED = "blocked"
    CONTROL = "control"


class Reason(StrEnum):
    """Why a candidate was not sent (``none`` for an allowed one)."""

    NONE = "none"
    OPT_OUT = "opt_out"
    BLACKLIST = "blacklist"
    RED_LIST = "red_list"
    QUIET_HOURS = "quiet_hours"
    BUSY_WINDOW = "busy_window"
    CAMPAIGN_DAY_CAP = "campaign_day_cap"
    GLOBAL_DAY_CAP = "global_day_cap"
    GLOBAL_WEEK_CAP = "global_week_cap"
    CONTROL = "control"
    THROUGHPUT = "throughput"
    BACKLOG = "backlog"


class PolicyError(ValueError):
    """A list file or policy setting that cannot be used; the message names the file and line or setting."""


# Columns ``decide`` needs in its candidate table (geofence.campaigns builds it).
CANDIDATE_COLUMNS = ("ts", "imsi", "msisdn", "campaign", "priority", "touchpoint", "cap_per_day", "control_share")


@dataclass
class Touchpoint:
    """An outlet channel (SMS gateway, push, outbound-call team) and how fast it can take messages."""

    rate_per_s: float
    burst: int = 1


@dataclass
class PolicyConfig:
    tz: str = "Asia/Shanghai"
    global_per_day: int | None = 3
    global_per_week: int | None = 10
    quiet_hours: tuple[str, str] | None = ("22:00", "08:00")
    busy_windows: list[tuple[str, str]] = field(default_factory=list)  # e.g. [("11:30", "13:00")]
    touchpoints: dict[str, Touchpoint] = field(default_factory=dict)   # a touchpoint not listed is unlimited
    backlog: str = "drop"                                               # "drop" or "delay"
    max_delay_s: float = 300.0
    opt_out: str | Path | None = None                                   # list files: one IMSI or MSISDN a line
    blacklist: str | Path | None = None
    red_list: str | Path | None = None


class ContactLists:
    """Opt-out, blacklist and red list; ``refresh`` reloads a file whose modification time changed."""

    NAMES = ("opt_out", "blacklist", "red_list")  # check order: opt-out first, it always wins

    def __init__(self, paths: dict[str, str | Path | None]):
        self.paths = {name: Path(p) for name, p in paths.items() if p}
        self.entries: dict[str, frozenset[str]] = {name: frozenset() for name in self.NAMES}
        self._mtimes: dict[str, int] = {}
        self.reload()

    def reload(self) -> None:
        """Re-read every list now (the operator's 'apply' button)."""
        for name, path in self.paths.items():
            self._load(name, path)

    def refresh(self) -> None:
        for name, path in self.paths.items():
            if _mtime(path) != self._mtimes.get(name):
                self._load(name, path)

    def _load(self, name: str, path: Path) -> None:
        mtime = _mtime(path)
        entries = set()
        for line, text in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
            text = text.split("#", 1)[0].strip()
            if not text:
                continue
            digits = normalise_msisdn(text)
            if not digits or set(text) - set("0123456789+- "):
                raise PolicyError(f"{path}:{line}: {name} entry {text!r} is not an IMSI or MSISDN")
            entries.add(digits)
        self.entries[name], self._mtimes[name] = frozenset(entries), mtime


def _mtime(path: Path) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError as err:
        raise PolicyError(f"{path}: cannot read list: {err.strerror}") from None


class _Bucket:
    """Token bucket; ``level`` may go negative in delay mode, counting messages queued behind the gateway."""

    def __init__(self, touchpoint: Touchpoint):
        self.rate, self.burst = touchpoint.rate_per_s, touchpoint.burst
        self.level, self.at = float(touchpoint.burst), -math.inf

    def wait(self, t: float) -> float:
        """Seconds from t until a token is free (0 if one is free now)."""
        level = min(self.burst, self.level + (t - self.at) * self.rate) if self.at > -math.inf else self.level
        return 0.0 if level >= 1 else (1 - level) / self.rate

    def take(self, t: float) -> None:
        if self.at > -math.inf:
            self.level = min(self.burst, self.level + (t - self.at) * self.rate)
        self.level -= 1
        self.at = t


class ContactPolicy:
    """Decides candidates batch after batch; counters, buckets and lists persist between batches."""

    def __init__(self, config: PolicyConfig, keyed_hash: Callable[[str], str]):
        """``keyed_hash``: the store's keyed HMAC (analytics.store.Store.pseudonym), so the control group
        cannot be predicted or recomputed without the operator's key."""
        if config.backlog not in ("drop", "delay"):
            raise PolicyError(f"backlog policy {config.backlog!r}: use 'drop' or 'delay'")
        for name, tp in config.touchpoints.items():
            if tp.rate_per_s <= 0 or tp.burst < 1:
                raise PolicyError(f"touchpoint {name!r}: rate_per_s must be > 0 and burst >= 1")
        self.config, self.keyed_hash = config, keyed_hash
        self.quiet = _windows([config.quiet_hours] if config.quiet_hours else [], "quiet_hours")
        self.busy = _windows(config.busy_windows, "busy_windows")
        self.lists = ContactLists({n: getattr(config, n) for n in ContactLists.NAMES})
        self.buckets = {name: _Bucket(tp) for name, tp in config.touchpoints.items()}
        self.campaign_day: dict[tuple[str, str, str], int] = {}  # (imsi, campaign, day) → contacts + controls
        self.global_day: dict[tuple[str, str], int] = {}
        self.global_week: dict[tuple[str, str], int] = {}
        self._day = self._week = ""  # latest local day and ISO week decided

    def reload(self) -> None:
        self.lists.reload()

    def in_control(self, campaign: str, imsi: str, share: float) -> bool:
        """Deterministic holdout: the same subscriber is in (or out of) a campaign's control group every time."""
        if share <= 0:
            return False
        return int(self.keyed_hash(f"control\x1f{campaign}\x1f{imsi}")[:8], 16) < share * 2**32

    def decide(self, candidates: pa.Table) -> pa.Table:
        """The candidates in decision order, with columns decision, reason and send_at (null unless allowed)."""
        missing = [c for c in CANDIDATE_COLUMNS if c not in candidates.column_names]
        if missing:
            raise PolicyError(f"candidate table lacks column(s) {', '.join(missing)}")
        self.lists.refresh()
        n = len(candidates)
        micros = candidates["ts"].cast(pa.int64()).to_numpy(zero_copy_only=False)
        priority = candidates["priority"].to_numpy(zero_copy_only=False)
        order = np.lexsort((np.arange(n), micros, -priority, micros // 1_000_000))
        table = candidates.take(pa.array(order, pa.int64()))
        seconds = micros[order] / 1e6

        local = table["ts"].cast(pa.timestamp("us", tz=self.config.tz))
        days = pc.strftime(local, "%Y-%m-%d").to_pylist()
        weeks = pc.strftime(local, "%G-W%V").to_pylist()
        quiet = self.quiet.mask(table, self.config.tz) if self.quiet else np.zeros(n, bool)
        busy = self.busy.mask(table, self.config.tz) if self.busy else np.zeros(n, bool)
        imsis = table["imsi"].to_pylist()
        msisdns = [normalise_msisdn(m) if m else None for m in table["msisdn"].to_pylist()]
        listed = {name: self._listed(name, imsis, msisdns) for name in ContactLists.NAMES}
        campaigns, touchpoints = table["campaign"].to_pylist(), table["touchpoint"].to_pylist()
        caps, shares = table["cap_per_day"].to_pylist(), table["control_share"].to_pylist()

        decision, reason, send_at = [], [], np.full(n, -1, np.int64)
        for i in range(n):
            if days[i] > self._day:
                self._prune(days[i], weeks[i])
            d, r, when = self._one(i, imsis[i], campaigns[i], touchpoints[i], caps[i], shares[i] or 0.0,
                                   days[i], weeks[i], seconds[i], quiet[i], busy[i], listed)
            decision.append(d.value)
            reason.append(r.value)
            if when is not None:
                send_at[i] = round(when * 1e6)
        send = pa.array(send_at, pa.int64(), mask=send_at < 0).cast(TS)
        return (table.append_column("decision", pa.array(decision, pa.string()))
                .append_column("reason", pa.array(reason, pa.string()))
                .append_column("send_at", send))

    def _prune(self, day: str, week: str) -> None:
        """Forget counters older than the previous day and week, so memory follows active subscribers."""
        keep_day, keep_week = self._day or day, self._week or week
        self._day, self._week = day, week
        self.campaign_day = {k: v for k, v in self.campaign_day.items() if k[2] >= keep_day}
        self.global_day = {k: v for k, v in self.global_day.items() if k[1] >= keep_day}
        self.global_week = {k: v for k, v in self.global_week.items() if k[1] >= keep_week}

    def _listed(self, name: str, imsis: list, msisdns: list) -> np.ndarray:
        entries = self.lists.entries[name]
        return np.fromiter(((a in entries) or (b in entries) for a, b in zip(imsis, msisdns)), bool, len(imsis))

    def _one(self, i, imsi, campaign, touchpoint, cap, share, day, week, t, quiet, busy, listed):
        for name in ContactLists.NAMES:
            if listed[name][i]:
                return Decision.BLOCKED, Reason(name), None
        if quiet:
            return Decision.BLOCKED, Reason.QUIET_HOURS, None
        if busy:
            return Decision.BLOCKED, Reason.BUSY_WINDOW, None
        cfg = self.config
        ckey, dkey, wkey = (imsi, campaign, day), (imsi, day), (imsi, week)
        if cap is not None and self.campaign_day.get(ckey, 0) >= cap:
            return Decision.BLOCKED, Reason.CAMPAIGN_DAY_CAP, None
        if cfg.global_per_day is not None and self.global_day.get(dkey, 0) >= cfg.global_per_day:
            return Decision.BLOCKED, Reason.GLOBAL_DAY_CAP, None
        if cfg.global_per_week is not None and self.global_week.get(wkey, 0) >= cfg.global_per_week:
            return Decision.BLOCKED, Reason.GLOBAL_WEEK_CAP, None
        if self.in_control(campaign, imsi, share):
            self.campaign_day[ckey] = self.campaign_day.get(ckey, 0) + 1
            return Decision.CONTROL, Reason.CONTROL, None
        when = t
        bucket = self.buckets.get(touchpoint)
        if bucket is not None:
            wait = bucket.wait(t)
            if wait > 0:
                if cfg.backlog == "drop":
                    return Decision.BLOCKED, Reason.THROUGHPUT, None
                if wait > cfg.max_delay_s:
                    return Decision.BLOCKED, Reason.BACKLOG, None
                when = t + wait
                late = self._windows_at(when)
                if late is not None:
                    return Decision.BLOCKED, late, None
            bucket.take(t)
        self.campaign_day[ckey] = self.campaign_day.get(ckey, 0) + 1
        self.global_day[dkey] = self.global_day.get(dkey, 0) + 1
        self.global_week[wkey] = self.global_week.get(wkey, 0) + 1
        return Decision.ALLOWED, Reason.NONE, when

    def _windows_at(self, t: float) -> Reason | None:
        """Quiet hours or busy window at a delayed send time, if either holds then."""
        one = pa.table({"ts": pa.array([round(t * 1e6)], pa.int64()).cast(TS)})
        if self.quiet and self.quiet.mask(one, self.config.tz)[0]:
            return Reason.QUIET_HOURS
        if self.busy and self.busy.mask(one, self.config.tz)[0]:
            return Reason.BUSY_WINDOW
        return None


def _windows(windows: list[tuple[str, str]], setting: str):
    """Local-time windows as a rules.Time node (the same HH:MM grammar and wrap past midnight as rules)."""
    if not windows:
        return None
    try:
        return parse_rule({"time": {"hours": [list(w) for w in windows]}})
    except RuleError as err:
        raise PolicyError(f"policy setting {setting}: {err}") from None
