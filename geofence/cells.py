"""The operator's cell catalogue (engineering-parameter sheet) and each cell's footprint on the map.

A 2G row is keyed by (mcc, mnc, lac, ci), a 4G row by (mcc, mnc, eci) — the same keys the event stream
uses (decoders.records.cell_key). A sector's footprint is a wedge of the sheet's coverage radius and
beamwidth around its azimuth; a cell without azimuth (omni, indoor) is a disc.
"""

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from shapely.geometry import Polygon

from decoders.records import cell_key

REQUIRED = ("mcc", "mnc", "lat", "lon")
DEFAULT_RADIUS_M = 1000.0
DEFAULT_BEAMWIDTH = 65.0


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


class Catalogue:
    """Cells by key, with footprints (shapely polygons in lon/lat) computed once."""

    def __init__(self, cells: list[CellRecord]):
        self.cells = cells
        self.index = {c.key: i for i, c in enumerate(cells)}
        self.footprints = [footprint(c) for c in cells]

    def __len__(self) -> int:
        return len(self.cells)

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


def read_catalogue(path: str | Path) -> list[CellRecord]:
    """Parse and validate the sheet; the first problem raises CatalogueError naming file, line and field."""
    path = Path(path)
    try:
        f = open(path, newline="", encoding="utf-8-sig")
    except OSError as err:
        raise CatalogueError(f"{path}: cannot read: {err.strerror}") from None
    cells: list[CellRecord] = []
    with f:
        reader = csv.DictReader(f)
        header = [h.strip().lower() for h in reader.fieldnames or []]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise CatalogueError(f"{path}:1: missing column(s): {', '.join(missing)}")
        if not ({"lac", "ci"} <= set(header) or "eci" in header):
            raise CatalogueError(f"{path}:1: need columns lac and ci (2G) or eci (4G)")
        reader.fieldnames = header
        seen: dict[str, int] = {}
        for line, row in enumerate(reader, start=2):
            row = {k: (v or "").strip() for k, v in row.items() if k}
            mcc, mnc = row["mcc"], row["mnc"]
            if not (mcc.isdigit() and len(mcc) == 3):
                raise CatalogueError(f"{path}:{line}: field 'mcc': {mcc!r} is not a 3-digit MCC")
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
            cells.append(CellRecord(
                key=key, rat=row.get("rat") or rat,
                lat=_number(path, line, "lat", row["lat"], float, -90, 90),
                lon=_number(path, line, "lon", row["lon"], float, -180, 180),
                azimuth=_number(path, line, "azimuth", azimuth, float, 0, 360) if azimuth else None,
                beamwidth=_number(path, line, "beamwidth", row["beamwidth"], float, 1, 360)
                if row.get("beamwidth") else DEFAULT_BEAMWIDTH,
                radius_m=_number(path, line, "radius_m", row["radius_m"], float, 1, 100_000)
                if row.get("radius_m") else DEFAULT_RADIUS_M,
                site_name=row.get("site_name", "")))
    if not cells:
        raise CatalogueError(f"{path}: no cells")
    return cells


def footprint(cell: CellRecord, step_deg: float = 5.0) -> Polygon:
    """Sector wedge (or disc) in lon/lat, from a local equirectangular projection around the site."""
    m_per_deg_lat = 110_574.0
    m_per_deg_lon = 111_320.0 * math.cos(math.radians(cell.lat))
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
                       cell.lat + cell.radius_m * math.cos(rad) / m_per_deg_lat))
    return Polygon(points)
