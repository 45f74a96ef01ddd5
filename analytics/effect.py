"""Campaign effect: did the triggered message convert better than the control group and a mass send?

Groups come from the store's deliveries: *triggered* = subscribers the campaign decided ``allowed`` for,
*control* = those it held back as ``control``; the optional *mass_send* baseline is an imported list of
the subscribers a mass send went to. A subscriber *converted* when an imported outcome (subscription,
purchase, ...) lies within ``window_days`` after its first decision in the period (for the mass send:
after the period start). Rates come with 95 % Wilson intervals; the difference between two groups with
Newcombe's hybrid Wilson interval (method 10), which stays honest for small rates where the normal
approximation does not. Opt-outs per campaign count recipients whose opt-out followed their message.

Imported files name a subscriber by ``imsi`` or ``msisdn`` (MSISDNs are resolved through the operator's
IMSI→MSISDN table); either is replaced by ``Store.pseudonym`` while reading, so no raw identifier reaches
the report or the database. Counts below ``k`` are blanked, and so is every rate built on one.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analytics.report import DEFAULT_K, DEFAULT_TZ, instant
from analytics.store import Store
from decoders.tables import TableError, csv_rows, digits, normalise_msisdn

Z95 = 1.959963984540054
WINDOW_DAYS = 7.0

DECISIONS_SQL = """
SELECT campaign, subscriber, decision, toFloat64(min(ts)) AS first_ts FROM {db}.deliveries
WHERE decision IN ('allowed', 'control') AND subscriber != ''
  AND ts BETWEEN toDateTime64({start:Float64}, 6, 'UTC') AND toDateTime64({end:Float64}, 6, 'UTC')
  AND ({campaign:String} = '' OR campaign = {campaign:String})
GROUP BY campaign, subscriber, decision
"""


class OutcomeError(TableError):
    """A problem in an outcome, mass-send or opt-out CSV; the message names file, line and field."""


def wilson(converted: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (Wilson 1927)."""
    if n == 0:
        return math.nan, math.nan
    p, z2 = converted / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float, float]:
    """Difference p1 - p2 with Newcombe's (1998) hybrid Wilson 95 % interval."""
    p1, p2 = x1 / n1, x2 / n2
    (l1, u1), (l2, u2) = wilson(x1, n1), wilson(x2, n2)
    d = p1 - p2
    return d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def _timestamp(path, line: int, text: str, tz: str) -> float:
    try:
        return instant(text, tz)
    except ValueError as err:
        raise OutcomeError(f"{path}:{line}: field 'ts': {err}") from None


def read_subscribers(path: str | Path, pseudonym, msisdn_imsi: dict[str, str] | None = None,
                     fields: tuple[str, ...] = (), tz: str = DEFAULT_TZ) -> pd.DataFrame:
    """Rows of a CSV naming subscribers by ``imsi`` or ``msisdn``, as ``subscriber`` (pseudonym) plus ``fields``
    (``ts`` parsed to epoch seconds; other fields must not be empty). An MSISDN missing from ``msisdn_imsi``
    cannot be attributed and is left out (counted in the ``unmatched`` attribute)."""
    rows, unmatched = [], 0
    for line, row in csv_rows(path, fields, OutcomeError):
        imsi, msisdn = row.get("imsi", ""), row.get("msisdn", "")
        if "imsi" not in row and "msisdn" not in row:
            raise OutcomeError(f"{path}:1: missing column: imsi or msisdn")
        if imsi:
            try:
                imsi = digits(path, line, "imsi", imsi, range(6, 16))
            except TableError as err:
                raise OutcomeError(str(err)) from None
        elif msisdn:
            if msisdn_imsi is None:
                raise OutcomeError(f"{path}:{line}: field 'msisdn': MSISDN keys need the IMSI→MSISDN table")
            number = normalise_msisdn(msisdn)
            if not 5 <= len(number) <= 15 or not set(msisdn) <= set("0123456789+- "):
                raise OutcomeError(f"{path}:{line}: field 'msisdn': {msisdn!r} is not a phone number")
            imsi = msisdn_imsi.get(number)
            if imsi is None:
                unmatched += 1
                continue
        else:
            raise OutcomeError(f"{path}:{line}: field 'imsi': empty (give an IMSI or an MSISDN)")
        out = {"subscriber": pseudonym(imsi)}
        for name in fields:
            if not row[name]:
                raise OutcomeError(f"{path}:{line}: field '{name}': empty")
            out[name] = _timestamp(path, line, row[name], tz) if name == "ts" else row[name]
        rows.append(out)
    df = pd.DataFrame(rows, columns=["subscriber", *fields])
    df.attrs["unmatched"] = unmatched
    return df


def msisdn_index(imsi_msisdn: dict[str, str]) -> dict[str, str]:
    """MSISDN → IMSI from decoders.tables.read_msisdn's IMSI → MSISDN, also under the national number."""
    out = {}
    for imsi, msisdn in imsi_msisdn.items():
        out[msisdn] = imsi
        if msisdn.startswith("86") and len(msisdn) == 13:
            out[msisdn[2:]] = imsi
    return out


@dataclass
class Effect:
    start: float
    end: float
    k: int
    conversion: pd.DataFrame   # campaign, group, subscribers, converted, rate, ci_low, ci_high
    difference: pd.DataFrame   # campaign, comparison, difference, ci_low, ci_high
    opt_outs: pd.DataFrame     # campaign, recipients, opt_outs, rate

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"conversion": self.conversion, "difference": self.difference, "opt_outs": self.opt_outs}


def _followed(members: pd.DataFrame, outcomes: pd.DataFrame, window_s: float) -> int:
    """How many members (subscriber, first_ts) have an outcome (or opt-out) in [first_ts, first_ts + window]."""
    joined = members.merge(outcomes, on="subscriber")
    hit = joined[(joined["ts"] >= joined["first_ts"]) & (joined["ts"] <= joined["first_ts"] + window_s)]
    return int(hit["subscriber"].nunique())


def effect(store: Store, start: float, end: float, outcomes: pd.DataFrame, mass_send: pd.DataFrame | None = None,
           opt_outs: pd.DataFrame | None = None, campaign: str | None = None, k: int = DEFAULT_K,
           window_days: float = WINDOW_DAYS) -> Effect:
    """Conversion per campaign and group, differences against control and mass send, and opt-outs."""
    window = window_days * 86400
    decided = store.query(DECISIONS_SQL, {"start": start, "end": end, "campaign": campaign or ""})
    if decided.empty:
        decided = pd.DataFrame(columns=["campaign", "subscriber", "decision", "first_ts"])
    mass = None
    if mass_send is not None:
        mass = mass_send[["subscriber"]].drop_duplicates().assign(first_ts=float(start))
    rows, diffs, opts = [], [], []
    for name in sorted(decided["campaign"].unique()):
        mine = decided[decided["campaign"] == name]
        groups = {"triggered": mine[mine["decision"] == "allowed"], "control": mine[mine["decision"] == "control"]}
        if mass is not None:
            groups["mass_send"] = mass
        counts = {g: (_followed(m, outcomes, window), m["subscriber"].nunique()) for g, m in groups.items()}
        for group, (x, n) in counts.items():
            rows.append((name, group, n, x, *( (x / n, *wilson(x, n)) if n else (math.nan,) * 3)))
        for other in ("control", "mass_send"):
            if other in counts and counts["triggered"][1] and counts[other][1]:
                diffs.append((name, f"triggered - {other}", *newcombe(*counts["triggered"], *counts[other])))
        if opt_outs is not None:
            sent = groups["triggered"]
            x = _followed(sent, opt_outs, window)
            opts.append((name, sent["subscriber"].nunique(), x, x / len(sent) if len(sent) else math.nan))
    conversion = pd.DataFrame(rows, columns=["campaign", "group", "subscribers", "converted", "rate", "ci_low",
                                             "ci_high"])
    difference = pd.DataFrame(diffs, columns=["campaign", "comparison", "difference", "ci_low", "ci_high"])
    small = set()
    for r in conversion.itertuples():
        if r.subscribers < k or r.converted < k:
            small.add((r.campaign, r.group))
    conversion = conversion.astype({"subscribers": "Int64", "converted": "Int64"})
    blank = [(c, g) in small for c, g in zip(conversion["campaign"], conversion["group"])]
    conversion.loc[blank, ["rate", "ci_low", "ci_high"]] = math.nan
    conversion.loc[conversion["subscribers"] < k, "subscribers"] = pd.NA
    conversion.loc[conversion["converted"] < k, "converted"] = pd.NA
    blank = [(c, "triggered") in small or (c, cmp.split(" - ")[1]) in small
             for c, cmp in zip(difference["campaign"], difference["comparison"])]
    difference.loc[blank, ["difference", "ci_low", "ci_high"]] = math.nan
    opt = pd.DataFrame(opts, columns=["campaign", "recipients", "opt_outs", "rate"]).astype(
        {"recipients": "Int64", "opt_outs": "Int64"})
    opt.loc[(opt["recipients"] < k) | (opt["opt_outs"] < k), "rate"] = math.nan
    opt.loc[opt["recipients"] < k, "recipients"] = pd.NA
    opt.loc[opt["opt_outs"] < k, "opt_outs"] = pd.NA
    return Effect(start, end, k, conversion, difference, opt)
