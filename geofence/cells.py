"""The operator's cell catalogue (engineering-parameter sheet) and each cell's footprint on the map.

A 2G row is keyed by (mcc, mnc, lac, ci), a 4G row by (mcc, mnc, eci) — the same keys the event stream
uses (decoders.records.cell_key). The sheet comes as CSV or Excel (.xlsx) with the column names
planning tools export (``longitude``/``lon``, ``cell_name``/``site_name``, ``coverage_radius``/``radius_m``…).
A sector's footprint is a wedge of the sheet's coverage radius and beamwidth around its azimuth; a cell
without azimuth (omni, indoor) gets the Voronoi cell of its site among all sites, clipped to its radius
disc, so neighbouring omni sites do not claim each other's ground.
"""

import csv
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from shapely.affinity import scale
from shapely.geometry import MultiPoint, Polygon

from decoders.records import cell_key

REQUIRED = ("mcc", "mnc", "lat", "lon")
DEFAULT_RADIUS_M = 1000.0
DEFAULT_BEAMWIDTH = 65.0
M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LON_EQUATOR = 111_320.0

# Column names seen in operators' sheets -> the canonical name used here.
ALIASES = {
    "latitude": "lat", "lng": "lon", "long": "lon", "longitude": "lon",
    "cell_name": "site_name", "site": "site_name", "sitename": "site_name", "name": "site_name",
    "azi": "azimuth", "direction": "azimuth", "beam_width": "beamwidth", "hbw": "beamwidth",
    "radius": "radius_m", "coverage": "radius_m", "coverage_radius": "radius_m", "coverage_radius_m": "radius_m",
    "frequency_band": "band", "freq_band": "band", "indoor_flag": "indoor", "is_indoor": "indoor",
    "cellid": "ci", "cell_id": "ci", "e_ci": "eci",
}
TRUE_WORDS = {"1", "y", "yes", "true", "indoor", "in"}
FALSE_WORDS = {"", "0", "n", "no", "false", "outdoor", "out"}


class CatalogueError(ValueError):
    """A problem in the catalogue file; the message names the file, line and field."""


@dataclass(frozen=True)
class CellRecord:
    key: str
    rat: str
    lat: float
    lon: float
    azimuth: float | None
    beamwidth: float
    radius_m: float
    site_name: str
    band: str = ""
    indoor: bool = False


class Catalogue:
    """Cells by key, with footprints (shapely polygons in lon/lat) computed once."""

    def __init__(self, cells: list[CellRecord]):
        self.cells = cells
        self.index = {c.key: i for i, c in enumerate(cells)}
        self.footprints = footprints(cells)

    def __len__(self) -> int:
        return len(self.cells)

    @property
    def keys(self) -> list[str]:
        return [c.key for c in self.cells]

    @classmethod
    def load(cls, path: str | Path) -> "Catalogue":
        return cls(read_catalogue(path))


def _number(path, line: int, field: str, text: str, kind=float, lo=None, hi=None):
    try:
        value = kind(text)
    except ValueError:
        raise CatalogueError(f"{path}:{line}: field '{field}': {text!r} is not a number") from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise CatalogueError(f"{path}:{line}: field '{field}': {value} is outside {lo}..{hi}")
    return value


def _canonical(name: str) -> str:
    name = name.strip().lower().replace(" ", "_").replace("-", "_")
    return ALIASES.get(name, name)


def _cell_text(value) -> str:
    """Excel hands back ints/floats; 460.0 or 7.0 from a numeric cell must read as '460' / '7'."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _rows(path: Path) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """Header and (line number, values) of the sheet, CSV or the first worksheet of an .xlsx."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        try:
            import openpyxl
        except ImportError:
            raise CatalogueError(f"{path}: reading Excel needs openpyxl (pip install openpyxl)") from None
        try:
            book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except OSError as err:
            raise CatalogueError(f"{path}: cannot read: {err.strerror}") from None
        except Exception as err:  # openpyxl raises zipfile/KeyError/InvalidFileException for non-xlsx input
            raise CatalogueError(f"{path}: not an Excel workbook: {err}") from None
        rows = [[_cell_text(v) for v in row] for row in book.worksheets[0].iter_rows(values_only=True)]
        book.close()  # a read-only workbook holds its file open until closed
        header = rows[0] if rows else []
        return header, ((n, r) for n, r in enumerate(rows[1:], start=2) if any(r))
    try:
        f = open(path, newline="", encoding="utf-8-sig")
    except OSError as err:
        raise CatalogueError(f"{path}: cannot read: {err.strerror}") from None

    reader = csv.reader(f)
    header = next(reader, [])

    def lines():
        with f:
            yield from ((n, r) for n, r in enumerate(reader, start=2) if any(v.strip() for v in r))
    return header, lines()


def _flag(path, line: int, field: str, text: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise CatalogueError(f"{path}:{line}: field '{field}': {text!r} is not a yes/no flag")


def read_catalogue(path: str | Path) -> list[CellRecord]:
    """Parse and validate the sheet; the first problem raises CatalogueError naming file, line and field."""
    path = Path(path)
    raw_header, rows = _rows(path)
    header = [_canonical(h) for h in raw_header]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise CatalogueError(f"{path}:1: missing column(s): {', '.join(missing)}")
    if not ({"lac", "ci"} <= set(header) or "eci" in header):
        raise CatalogueError(f"{path}:1: need columns lac and ci (2G) or eci (4G)")
    cells: list[CellRecord] = []
    seen: dict[str, int] = {}
    for line, values in rows:
        row = {k: (v or "").strip() for k, v in zip(header, values) if k}
        cells.append(_record(path, line, row, seen))
    if not cells:
        raise CatalogueError(f"{path}: no cells")
    return cells


def _record(path, line: int, row: dict[str, str], seen: dict[str, int]) -> CellRecord:
    mcc, mnc = row.get("mcc", ""), row.get("mnc", "")
    if not (mcc.isdigit() and len(mcc) == 3):
        raise CatalogueError(f"{path}:{line}: field 'mcc': {mcc!r} is not a 3-digit MCC")
    if len(mnc) == 1 and mnc.isdigit():
        mnc = "0" + mnc  # a numeric Excel cell drops the leading zero of "00".."09"
    if not (mnc.isdigit() and len(mnc) in (2, 3)):
        raise CatalogueError(f"{path}:{line}: field 'mnc': {mnc!r} is not a 2- or 3-digit MNC")
    if row.get("eci"):
        eci = _number(path, line, "eci", row["eci"], int, 0, 2**28 - 1)
        key, rat = cell_key(mcc, mnc, eci=eci), "4G"
    elif row.get("lac") and row.get("ci"):
        lac = _number(path, line, "lac", row["lac"], int, 0, 65535)
        ci = _number(path, line, "ci", row["ci"], int, 0, 65535)
        key, rat = cell_key(mcc, mnc, lac, ci), "2G"
    else:
        raise CatalogueError(f"{path}:{line}: field 'lac'/'ci' or 'eci': a cell needs lac+ci or eci")
    if key in seen:
        raise CatalogueError(f"{path}:{line}: cell {key} already defined on line {seen[key]}")
    seen[key] = line
    azimuth = row.get("azimuth")
    return CellRecord(
        key=key, rat=row.get("rat") or rat,
        lat=_number(path, line, "lat", row["lat"], float, -90, 90),
        lon=_number(path, line, "lon", row["lon"], float, -180, 180),
        azimuth=_number(path, line, "azimuth", azimuth, float, 0, 360) if azimuth else None,
        beamwidth=_number(path, line, "beamwidth", row["beamwidth"], float, 1, 360)
        if row.get("beamwidth") else DEFAULT_BEAMWIDTH,
        radius_m=_number(path, line, "radius_m", row["radius_m"], float, 1, 100_000)
        if row.get("radius_m") else DEFAULT_RADIUS_M,
        site_name=row.get("site_name", ""), band=row.get("band", ""),
        indoor=_flag(path, line, "indoor", row.get("indoor", "")))


def footprint(cell: CellRecord, step_deg: float = 5.0) -> Polygon:
    """Sector wedge (or disc) in lon/lat, from a local equirectangular projection around the site."""
    m_per_deg_lon = M_PER_DEG_LON_EQUATOR * math.cos(math.radians(cell.lat))
    if cell.azimuth is None or cell.beamwidth >= 360:
        bearings = [i * step_deg for i in range(int(360 / step_deg))]
        points = []
    else:
        half = cell.beamwidth / 2
        n = max(2, int(cell.beamwidth / step_deg))
        bearings = [cell.azimuth - half + cell.beamwidth * i / n for i in range(n + 1)]
        points = [(cell.lon, cell.lat)]
    for b in bearings:
        rad = math.radians(b)
        points.append((cell.lon + cell.radius_m * math.sin(rad) / m_per_deg_lon,
                       cell.lat + cell.radius_m * math.cos(rad) / M_PER_DEG_LAT))
    return Polygon(points)


def _is_omni(cell: CellRecord) -> bool:
    return cell.azimuth is None or cell.beamwidth >= 360


def footprints(cells: Iterable[CellRecord]) -> list[Polygon]:
    """Every cell's footprint: wedges for sectors; for omni cells the site's Voronoi region ∩ its disc.

    The Voronoi diagram is built over the distinct sites of the omni cells in a local projection
    (longitude shrunk by cos of the mean latitude) so the bisectors are true perpendiculars on the ground.
    """
    cells = list(cells)
    out = [footprint(c) for c in cells]
    omni = [i for i, c in enumerate(cells) if _is_omni(c)]
    sites = sorted({(cells[i].lon, cells[i].lat) for i in omni})
    if len(sites) < 2:
        return out
    shrink = math.cos(math.radians(float(np.mean([s[1] for s in sites]))))
    points = MultiPoint([(x * shrink, y) for x, y in sites])
    regions = shapely.voronoi_polygons(points, extend_to=points.envelope.buffer(10.0), ordered=True)
    region_of = dict(zip(sites, (scale(r, xfact=1 / shrink, yfact=1.0, origin=(0, 0)) for r in regions.geoms)))
    for i in omni:
        c = cells[i]
        clipped = out[i].intersection(region_of[(c.lon, c.lat)])
        out[i] = clipped if isinstance(clipped, Polygon) else max(getattr(clipped, "geoms", [out[i]]),
                                                                   key=lambda g: g.area)
    return out
