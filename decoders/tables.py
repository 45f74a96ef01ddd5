"""The operator's subscriber reference tables: IMSI→MSISDN, IMEI TAC → device, warehouse profile tags.

The A and S1 interfaces carry IMSIs (rarely phone numbers) and IMEIs; marketers select by phone number,
handset and warehouse tags, so these tables bridge the two. Each loader validates every row and the
first problem raises ``TableError`` naming the file, line and field, as the cell catalogue does.
"""

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa


class TableError(ValueError):
    """A problem in an operator table; the message names the file, line and field."""


SUBSCRIBER_KEYS = ("imsi", "msisdn")  # the id column a profile CSV may be keyed by


def csv_rows(path: str | Path, required: tuple[str, ...], error=TableError) -> Iterator[tuple[int, dict]]:
    """(line number, row with lower-cased keys and stripped values) of a UTF-8 CSV with a header line.

    Raises ``error`` for an unreadable file or missing columns; callers validate the fields.
    """
    path = Path(path)
    try:
        f = open(path, newline="", encoding="utf-8-sig")
    except OSError as err:
        raise error(f"{path}: cannot read: {err.strerror}") from None
    with f:
        reader = csv.DictReader(f)
        header = [(h or "").strip().lower() for h in reader.fieldnames or []]
        missing = [c for c in required if c not in header]
        if missing:
            raise error(f"{path}:1: missing column(s): {', '.join(missing)}")
        reader.fieldnames = header
        for line, row in enumerate(reader, start=2):
            yield line, {k: (v or "").strip() for k, v in row.items() if k}


def read_json(path: str | Path, error=TableError):
    """A parsed JSON file; ``error`` (the caller's error class) names the file, and the line of a syntax error."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise error(f"{path}: cannot read: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise error(f"{path}:{err.lineno}: not JSON: {err.msg}") from None


def digits(path, line: int, field: str, text: str, lengths: range) -> str:
    """The field, checked to be only digits of an allowed length (IMSI, TAC, ...); TableError otherwise."""
    if not (text.isdigit() and len(text) in lengths):
        count = f"{lengths.start}" if len(lengths) == 1 else f"{lengths.start}-{lengths.stop - 1}"
        raise TableError(f"{path}:{line}: field '{field}': {text!r} is not {count} digits")
    return text


_PHONE_CHARS = frozenset("0123456789+- ")


def normalise_msisdn(text: str) -> str:
    """Digits only: '+86 139-1234-5678' and '8613912345678' are the same number as written in the tables."""
    return "".join(ch for ch in text if ch.isdigit())


def read_msisdn(path: str | Path) -> dict[str, str]:
    """IMSI → MSISDN from a CSV with columns imsi, msisdn; an IMSI listed twice is an error."""
    out: dict[str, str] = {}
    seen: dict[str, int] = {}
    for line, row in csv_rows(path, ("imsi", "msisdn")):
        imsi = digits(path, line, "imsi", row["imsi"], range(6, 16))
        msisdn = normalise_msisdn(row["msisdn"])
        if not set(row["msisdn"]) <= _PHONE_CHARS or not 5 <= len(msisdn) <= 15:
            raise TableError(f"{path}:{line}: field 'msisdn': {row['msisdn']!r} is not a phone number")
        if imsi in seen:
            raise TableError(f"{path}:{line}: field 'imsi': {imsi} already listed on line {seen[imsi]}")
        seen[imsi] = line
        out[imsi] = msisdn
    return out


def read_tac(path: str | Path) -> dict[str, tuple[str, str]]:
    """IMEI TAC (first 8 IMEI digits, TS 23.003 §6.2) → (brand, model) from columns tac, brand, model."""
    out: dict[str, tuple[str, str]] = {}
    seen: dict[str, int] = {}
    for line, row in csv_rows(path, ("tac", "brand", "model")):
        tac = digits(path, line, "tac", row["tac"], range(8, 9))
        if not row["brand"]:
            raise TableError(f"{path}:{line}: field 'brand': empty")
        if tac in seen:
            raise TableError(f"{path}:{line}: field 'tac': {tac} already listed on line {seen[tac]}")
        seen[tac] = line
        out[tac] = (row["brand"], row["model"])
    return out


class Profiles:
    """Warehouse tags per subscriber: ``key`` is 'imsi' or 'msisdn', ``table`` has that column then one per tag.

    A tag column whose every non-empty value is a number is float64 (so rules can ask for ranges);
    any other tag is a string. Empty cells are nulls.
    """

    def __init__(self, key: str, table: pa.Table):
        self.key, self.table = key, table
        self.tags = [n for n in table.column_names if n != key]
        self.row_of = {k: i for i, k in enumerate(table[key].to_pylist())}


def read_profiles(path: str | Path) -> Profiles:
    """Profile tags CSV: an ``imsi`` or ``msisdn`` column plus any tag columns (plan, arpu_band, age_band, …)."""
    rows = csv_rows(path, ())
    columns: dict[str, list[str]] | None = None
    key = ""
    seen: dict[str, int] = {}
    for line, row in rows:
        if columns is None:
            keys = [k for k in SUBSCRIBER_KEYS if k in row]
            if len(keys) != 1:
                raise TableError(f"{path}:1: need exactly one subscriber column, imsi or msisdn")
            key = keys[0]
            if len(row) < 2:
                raise TableError(f"{path}:1: no tag columns besides {key}")
            columns = {name: [] for name in row}
        ident = row[key] if key == "imsi" else normalise_msisdn(row[key])
        if not ident.isdigit():
            raise TableError(f"{path}:{line}: field '{key}': {row[key]!r} is not digits")
        if ident in seen:
            raise TableError(f"{path}:{line}: field '{key}': {ident} already listed on line {seen[ident]}")
        seen[ident] = line
        for name in columns:
            columns[name].append(ident if name == key else row.get(name, ""))
    if columns is None:
        raise TableError(f"{path}: no subscribers")
    arrays = {name: _tag_column(values) if name != key else pa.array(values, pa.string())
              for name, values in columns.items()}
    return Profiles(key, pa.table(arrays))


def _tag_column(values: list[str]) -> pa.Array:
    present = [v for v in values if v]
    try:
        [float(v) for v in present]
    except ValueError:
        return pa.array([v or None for v in values], pa.string())
    return pa.array([float(v) if v else None for v in values], pa.float64())
