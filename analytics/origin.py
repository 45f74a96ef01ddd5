"""Where a subscriber comes from: country by MCC, province and city by the operator's number segments.

The operator's number-segment table maps IMSI prefixes and MSISDN 7-digit segments (the first 7 digits
of a national number, e.g. 1390571) to home province and city; for IMSIs the longest matching prefix
wins, and the MSISDN segment answers when the IMSI ranges do not (operators often publish only the
MSISDN plan). Roaming type compares the home with the probe's own country/province.
"""

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from decoders.tables import TableError, csv_rows, normalise_msisdn

MSISDN_SEGMENT_DIGITS = 7


class SegmentError(TableError):
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
                 home_province: str = "Zhejiang", msisdn_segments: dict[str, tuple[str, str]] | None = None,
                 country_code: str = "86"):
        self.segments = segments or {}
        self.msisdn_segments = msisdn_segments or {}
        self.home_mcc, self.home_province, self.country_code = home_mcc, home_province, country_code
        self.countries = mcc_countries()
        self._lengths = sorted({len(p) for p in self.segments}, reverse=True)
        self.home = lru_cache(maxsize=1 << 20)(self._home)

    @classmethod
    def load(cls, path: str | Path | None, **kwargs) -> "Origins":
        if not path:
            return cls(None, **kwargs)
        return cls(read_segments(path), msisdn_segments=read_segments(path, "msisdn"), **kwargs)

    def national(self, msisdn: str) -> str:
        """The national significant number: digits without the country code (8613912345678 → 13912345678)."""
        digits = normalise_msisdn(msisdn)
        if digits.startswith(self.country_code) and len(digits) > 11:
            return digits[len(self.country_code):]
        return digits

    def _home(self, imsi: str | None, msisdn: str | None = None) -> Home:
        if not imsi:
            return Home("", "", "", "unknown")
        mcc = imsi[:3]
        country = self.countries.get(mcc, f"MCC {mcc}")
        if mcc != self.home_mcc:
            return Home(country, "", "", "international")
        found = next((self.segments[imsi[:n]] for n in self._lengths if imsi[:n] in self.segments), None)
        if found is None and msisdn:
            found = self.msisdn_segments.get(self.national(msisdn)[:MSISDN_SEGMENT_DIGITS])
        if found:
            province, city = found
            return Home(country, province, city, "local" if province == self.home_province else "other_province")
        return Home(country, "", "", "unknown")


def read_segments(path: str | Path, kind: str = "imsi") -> dict[str, tuple[str, str]]:
    """Prefixes of one kind ('imsi' or 'msisdn') from a CSV with columns kind, prefix, province, city.

    MSISDN segments are exactly 7 digits of the national number; IMSI prefixes are 5-15 digits.
    """
    out: dict[str, tuple[str, str]] = {}
    for line, row in csv_rows(path, ("kind", "prefix", "province", "city"), SegmentError):
        prefix, row_kind = row["prefix"], row["kind"]
        if row_kind not in ("imsi", "msisdn"):
            raise SegmentError(f"{path}:{line}: field 'kind': {row_kind!r} is not imsi or msisdn")
        if not prefix.isdigit():
            raise SegmentError(f"{path}:{line}: field 'prefix': {prefix!r} is not digits")
        if row_kind == "msisdn" and len(prefix) != MSISDN_SEGMENT_DIGITS:
            raise SegmentError(f"{path}:{line}: field 'prefix': MSISDN segment {prefix!r} is not "
                               f"{MSISDN_SEGMENT_DIGITS} digits")
        if row_kind == "imsi" and not 5 <= len(prefix) <= 15:
            raise SegmentError(f"{path}:{line}: field 'prefix': IMSI prefix {prefix!r} is not 5-15 digits")
        if row_kind == kind:
            out[prefix] = (row["province"], row["city"])
    return out
