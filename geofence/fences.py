"""Fences a marketer draws (GeoJSON polygons) and their compilation to the cells that serve them.

A phone is located by its serving cell, so a fence is, for matching, the set of cells whose footprint
lies mostly inside it: a cell belongs when at least ``min_overlap`` of its footprint area overlaps
the fence. Areas are compared in a local projection where a degree of longitude is shrunk by
cos(latitude), so ratios are true to within the fence's own extent.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path

from shapely import STRtree
from shapely.affinity import scale
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from geofence.cells import Catalogue

DEFAULT_MIN_OVERLAP = 0.3


class FenceError(ValueError):
    """A fence file that cannot be used; the message names the file and the problem."""


@dataclass
class Fence:
    name: str
    geometry: BaseGeometry  # lon/lat


def load_fence(path: str | Path) -> Fence:
    """A GeoJSON Feature, FeatureCollection (first feature) or bare Polygon/MultiPolygon."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise FenceError(f"{path}: cannot read: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise FenceError(f"{path}:{err.lineno}: not JSON: {err.msg}") from None
    if not isinstance(doc, dict):
        raise FenceError(f"{path}: expected a GeoJSON object")
    name = path.stem
    if doc.get("type") == "FeatureCollection":
        features = doc.get("features") or []
        if not features:
            raise FenceError(f"{path}: FeatureCollection has no features")
        doc = features[0]
    if doc.get("type") == "Feature":
        name = (doc.get("properties") or {}).get("name") or name
        doc = doc.get("geometry") or {}
    if doc.get("type") not in ("Polygon", "MultiPolygon"):
        raise FenceError(f"{path}: geometry type {doc.get('type')!r} is not Polygon or MultiPolygon")
    try:
        geometry = shape(doc)
    except (ValueError, TypeError, IndexError, AttributeError) as err:
        raise FenceError(f"{path}: bad coordinates: {err}") from None
    if geometry.is_empty or not geometry.is_valid or geometry.area == 0:
        raise FenceError(f"{path}: polygon is empty, self-intersecting or has no area")
    minx, miny, maxx, maxy = geometry.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise FenceError(f"{path}: coordinates are not lon/lat degrees (GeoJSON order is [lon, lat])")
    return Fence(name, geometry)


def compile_fence(fence: Fence, catalogue: Catalogue, min_overlap: float = DEFAULT_MIN_OVERLAP) -> list[str]:
    """Keys of the cells whose footprint overlaps the fence by at least ``min_overlap`` of its area."""
    lat0 = fence.geometry.centroid.y
    shrink = math.cos(math.radians(lat0))
    area = scale(fence.geometry, xfact=shrink, yfact=1.0, origin=(0, 0))
    footprints = [scale(f, xfact=shrink, yfact=1.0, origin=(0, 0)) for f in catalogue.footprints]
    tree = STRtree(footprints)
    keys = []
    for i in sorted(tree.query(area, predicate="intersects")):
        fp = footprints[i]
        if fp.intersection(area).area >= min_overlap * fp.area:
            keys.append(catalogue.cells[i].key)
    return keys
