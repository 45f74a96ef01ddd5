"""The operator's outlet (POI) catalogue and the nearest outlet to a point, so a lead goes to the closest
business hall or grid manager.

Distances are great-circle (haversine on a 6 371 008.8 m mean-radius sphere): at city scale the
error against the ellipsoid is under 0.5 %, far below a cell's footprint. The search is a NumPy
distance matrix over blocks of points, which for the few thousand outlets an operator has beats
building a spatial index.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from decoders.tables import TableError, csv_rows

EARTH_RADIUS_M = 6_371_008.8
_BLOCK = 4096  # points per distance-matrix block: bounds memory at _BLOCK × outlets float64s


class OutletError(TableError):
    """A problem in the outlet catalogue; the message names the file, line and field."""


def haversine_m(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in metres between points given in degrees (NumPy broadcasting)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dlat, dlon = p2 - p1, np.radians(lon2) - np.radians(lon1)
    a = np.sin(dlat / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(a, 1.0)))


@dataclass
class Outlets:
    name: np.ndarray  # str objects
    kind: np.ndarray
    lat: np.ndarray   # float64 degrees
    lon: np.ndarray

    def __len__(self) -> int:
        return len(self.name)

    @classmethod
    def load(cls, path: str | Path) -> "Outlets":
        return read_outlets(path)

    def nearest(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(outlet index, distance m) nearest to each point; index -1 and distance NaN where lat/lon is NaN."""
        lat, lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
        index = np.full(lat.shape[0], -1, np.int64)
        dist = np.full(lat.shape[0], np.nan)
        known = np.flatnonzero(~(np.isnan(lat) | np.isnan(lon)))
        for start in range(0, known.shape[0], _BLOCK):
            rows = known[start:start + _BLOCK]
            d = haversine_m(lat[rows, None], lon[rows, None], self.lat[None, :], self.lon[None, :])
            best = np.argmin(d, axis=1)
            index[rows], dist[rows] = best, d[np.arange(rows.shape[0]), best]
        return index, dist


def read_outlets(path: str | Path) -> Outlets:
    """Outlet CSV with columns name, kind, lat, lon (WGS-84 degrees); names must be unique."""
    names, kinds, lats, lons = [], [], [], []
    seen: dict[str, int] = {}
    for line, row in csv_rows(path, ("name", "kind", "lat", "lon"), OutletError):
        if not row["name"]:
            raise OutletError(f"{path}:{line}: field 'name': empty")
        if row["name"] in seen:
            raise OutletError(f"{path}:{line}: field 'name': {row['name']!r} already listed on line "
                              f"{seen[row['name']]}")
        seen[row["name"]] = line
        values = []
        for field, bound in (("lat", 90), ("lon", 180)):
            try:
                value = float(row[field])
            except ValueError:
                raise OutletError(f"{path}:{line}: field '{field}': {row[field]!r} is not a number") from None
            if not -bound <= value <= bound:
                raise OutletError(f"{path}:{line}: field '{field}': {value} is outside -{bound}..{bound}")
            values.append(value)
        names.append(row["name"])
        kinds.append(row["kind"])
        lats.append(values[0])
        lons.append(values[1])
    if not names:
        raise OutletError(f"{path}: no outlets")
    return Outlets(np.array(names, object), np.array(kinds, object), np.array(lats), np.array(lons))
