"""A small synthetic city on real coordinates: Hangzhou, from West Lake to Xiaoshan airport.

Cell sites stand on a regular grid (three sectors each, a 2G and a 4G cell per sector), grouped into
location/tracking areas by longitude band; points of interest are real places. Subscribers carry
IMSIs from real MCC-MNC ranges and, for China Mobile, from number segments the simulator writes
out so that visitor-origin reports can be checked against what was generated.
"""

import csv
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numba
import numpy as np

HOME_MCC, HOME_MNC = "460", "00"
UTC_OFFSET_HOURS = 8  # China Standard Time; schedules below are local times

# Points of interest (lat, lon). West Lake's fence is the polygon a marketer would draw round the lake shore.
POIS = {
    "west_lake": (30.2460, 120.1450),
    "in77_mall": (30.2590, 120.1640),
    "hangzhou_east_station": (30.2906, 120.2127),
    "xiaoshan_airport": (30.2295, 120.4344),
    "xixi_residential": (30.2720, 120.0800),
    "binjiang_residential": (30.2080, 120.2100),
    "downtown_office": (30.2800, 120.1700),
}
WEST_LAKE_FENCE = [  # (lon, lat) ring, GeoJSON order
    (120.1300, 30.2280), (120.1620, 30.2280), (120.1640, 30.2520), (120.1560, 30.2660),
    (120.1330, 30.2640), (120.1280, 30.2450), (120.1300, 30.2280),
]

GRID_LAT = (30.19, 30.31)
GRID_LON = (120.06, 120.46)
SITE_SPACING_KM = 2.0
AREA_BAND_DEG = 0.08  # one LAC/TAC per longitude band of this width
SECTOR_AZIMUTHS = (0, 120, 240)

# Other provinces and their China Mobile IMSI number segments (46000 + H1H2H3; synthetic but shaped like
# the real HLR-number plan) and MSISDN prefixes; the first row is the home province.
PROVINCES = [
    ("Zhejiang", "Hangzhou", "46000571", "1390571"),
    ("Shanghai", "Shanghai", "46000210", "1390210"),
    ("Jiangsu", "Nanjing", "46000250", "1390250"),
    ("Beijing", "Beijing", "46000100", "1390100"),
    ("Guangdong", "Guangzhou", "46000200", "1390200"),
    ("Sichuan", "Chengdu", "46000280", "1390280"),
]
# Visiting networks: MCC-MNC of real operators.
FOREIGN_PLMNS = [("440", "10"), ("450", "05"), ("310", "260"), ("234", "15"), ("262", "01")]

# IMEI type allocation codes (first 8 digits) for the phones handed out.
DEVICE_TACS = ["35332811", "35391110", "86891104", "86751303", "35456711"]


def km_to_deg(km: float, lat: float) -> tuple[float, float]:
    """Degrees of latitude and longitude spanned by ``km`` at latitude ``lat``."""
    return km / 110.574, km / (111.320 * math.cos(math.radians(lat)))


@dataclass(frozen=True)
class CellSite:
    """One sector: its 2G cell (lac, ci) and 4G cell (tac, eci) share the antenna."""

    site: int
    sector: int
    lat: float
    lon: float
    azimuth: int
    lac: int
    ci: int
    tac: int
    eci: int

    @property
    def key_2g(self) -> str:
        return f"{HOME_MCC}-{HOME_MNC}-{self.lac}-{self.ci}"

    @property
    def key_4g(self) -> str:
        return f"{HOME_MCC}-{HOME_MNC}-{self.eci}"


@dataclass
class City:
    cells: list[CellSite] = field(default_factory=list)
    sites: list[tuple[float, float]] = field(default_factory=list)

    @classmethod
    def build(cls) -> "City":
        city = cls()
        dlat, dlon = km_to_deg(SITE_SPACING_KM, sum(GRID_LAT) / 2)
        lat = GRID_LAT[0]
        while lat <= GRID_LAT[1] + 1e-9:
            lon = GRID_LON[0]
            while lon <= GRID_LON[1] + 1e-9:
                site = len(city.sites)
                city.sites.append((round(lat, 5), round(lon, 5)))
                area = int((lon - GRID_LON[0]) / AREA_BAND_DEG)
                for sector, azimuth in enumerate(SECTOR_AZIMUTHS):
                    city.cells.append(CellSite(
                        site=site, sector=sector, lat=round(lat, 5), lon=round(lon, 5), azimuth=azimuth,
                        lac=0x1100 + area, ci=(site + 1) * 10 + sector + 1,
                        tac=0x5100 + area, eci=(0x1A000 + site) * 256 + sector + 1))
                lon += dlon
            lat += dlat
        return city

    @cached_property
    def grid(self) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, np.ndarray]:
        """What ``serving`` needs: the midpoints between row latitudes and between column longitudes (the sites
        stand row by row on one grid), the number of columns, and each site's lat/lon."""
        lats = np.array(sorted({lat for lat, _ in self.sites}))
        lons = np.array(sorted({lon for _, lon in self.sites}))
        sites = np.array(self.sites)
        return (lats[:-1] + lats[1:]) / 2, (lons[:-1] + lons[1:]) / 2, len(lons), sites[:, 0], sites[:, 1]

    def border_sites(self) -> list[int]:
        """The easternmost column of sites: the edge of the watched network, where a subscriber leaves it."""
        east = max(lon for _, lon in self.sites)
        return [n for n, (_, lon) in enumerate(self.sites) if lon == east]

    def cells_near(self, lat: float, lon: float, km: float) -> list[CellSite]:
        """Every sector of the sites within ``km`` of (lat, lon), e.g. the airport's cell group."""
        dlat, dlon = km_to_deg(km, lat)
        return [c for c in self.cells if ((c.lat - lat) / dlat) ** 2 + ((c.lon - lon) / dlon) ** 2 <= 1.0]

    def write_catalogue(self, path: Path) -> None:
        """The engineering-parameter sheet an operator would hand over (one row per cell, both RATs)."""
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["rat", "mcc", "mnc", "lac", "ci", "tac", "eci", "site_name", "lat", "lon", "azimuth",
                        "beamwidth", "radius_m", "band", "indoor"])
            for c in self.cells:
                name = f"HZ{c.site:04d}"
                w.writerow(["2G", HOME_MCC, HOME_MNC, c.lac, c.ci, "", "", name, c.lat, c.lon, c.azimuth,
                            65, 1500, "GSM900", 0])
                w.writerow(["4G", HOME_MCC, HOME_MNC, "", "", c.tac, c.eci, name, c.lat, c.lon, c.azimuth,
                            65, 1200, "B3", 0])


@numba.njit(cache=True)
def serving(lat: float, lon: float, lat_mids, lon_mids, cols, site_lat, site_lon) -> int:
    """The index in ``City.cells`` of the sector a phone at (lat, lon) camps on (``City.grid`` gives the rest):
    the nearest site (lon scaled by 0.864), the sector whose azimuth (every 120° from north) faces the phone.

    On a grid the squared distance is a row term plus a column term, so the nearest site is the nearest row's
    nearest column; the number of midpoints below the point is that row's (column's) index.
    """
    site = np.searchsorted(lat_mids, lat) * cols + np.searchsorted(lon_mids, lon)
    bearing = math.degrees(math.atan2((lon - site_lon[site]) * 0.864, lat - site_lat[site])) % 360
    return site * 3 + int(math.ceil((bearing - 60) / 120)) % 3


def write_fence(path: Path) -> None:
    """The West Lake scenic-area fence as a marketer would draw it (GeoJSON Feature)."""
    feature = {"type": "Feature", "properties": {"name": "West Lake scenic area", "kind": "scenic"},
               "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in WEST_LAKE_FENCE]]}}
    path.write_text(json.dumps(feature, indent=1))


def write_number_segments(path: Path) -> None:
    """IMSI prefix -> home province/city for the simulated operator (what an operator imports)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["kind", "prefix", "province", "city"])
        for province, city, imsi_prefix, msisdn_prefix in PROVINCES:
            w.writerow(["imsi", imsi_prefix, province, city])
            w.writerow(["msisdn", msisdn_prefix, province, city])
