"""Where a subscriber comes from: country by MCC, province and city by the operator's number segments.

The operator's number-segment table maps IMSI (and MSISDN) prefixes to home province and city; the
longest matching prefix wins. Roaming type compares the home with the probe's own country/province.
"""

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path


class SegmentError(ValueError):
    """A problem in the number-segment file; the message names file, line and field."""


@dataclass(frozen=True)
class Home:
    country: str
    province: str
    city: str
    roaming: str  # local, other_province, international, unknown


def mcc_countries() -> dict[str, str]:
    with resources.files("analytics").joinpath("data/mcc.csv").open(encoding="utf-8") as f:
        return {row["mcc"]: row["country"] for row in csv.DictReader(f)}


class Origins:
    """Home lookups for IMSIs, cached: reports ask about the same few thousand subscribers again and again."""

    def __init__(self, segments: dict[str, tuple[str, str]] | None = None, home_mcc: str = "460",
                 home_province: str = "Zhejiang"):
        self.segments = segments or {}
        self.home_mcc, self.home_province = home_mcc, home_province
        self.countries = mcc_countries()
        self._lengths = sorted({len(p) for p in self.segments}, reverse=True)
        self.home = lru_cache(maxsize=1 << 20)(self._home)

    @classmethod
    def load(cls, path: str | Path | None, **kwargs) -> "Origins":
        return cls(read_segments(path) if path else None, **kwargs)

    def _home(self, imsi: str | None) -> Home:
        if not imsi:
            return Home("", "", "", "unknown")
        mcc = imsi[:3]
        country = self.countries.get(mcc, f"MCC {mcc}")
        if mcc != self.home_mcc:
            return Home(country, "", "", "international")
        for n in self._lengths:
            found = self.segments.get(imsi[:n])
            if found:
                province, city = found
                return Home(country, province, city, "local" if province == self.home_province else "other_province")
        return Home(country, "", "", "unknown")


def read_segments(path: str | Path) -> dict[str, tuple[str, str]]:
    """IMSI prefixes from a CSV with columns kind, prefix, province, city (kind 'imsi' rows are used)."""
    path = Path(path)
    out: dict[str, tuple[str, str]] = {}
    try:
        f = open(path, newline="", encoding="utf-8-sig")
    except OSError as err:
        raise SegmentError(f"{path}: cannot read: {err.strerror}") from None
    with f:
        reader = csv.DictReader(f)
        missing = {"kind", "prefix", "province", "city"} - set(reader.fieldnames or [])
        if missing:
            raise SegmentError(f"{path}:1: missing column(s): {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            prefix = (row["prefix"] or "").strip()
            if not prefix.isdigit():
                raise SegmentError(f"{path}:{line}: field 'prefix': {prefix!r} is not digits")
            if row["kind"].strip() == "imsi":
                out[prefix] = (row["province"].strip(), row["city"].strip())
    return out
