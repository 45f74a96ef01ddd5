"""A small probe for web tests: a hand-made 3×3 grid of omni cells, one user per role, two report clients."""

from pathlib import Path

from appliance.auth import Accounts
from appliance.delivery import Outbox
from appliance.web import WebState
from geofence.campaigns import CampaignStore
from geofence.cells import Catalogue
from geofence.fences import FenceSet, fence_from_json, save_fence

LAT0, LON0 = 30.25, 120.15
STEP = 0.01  # degrees between grid cells (about 1.1 km north-south, 0.96 km east-west)
PASSWORD = "correct horse battery"
ROLES = ("engineer", "marketer", "approver", "admin")


def grid_catalogue(path: Path) -> Path:
    """Cells 460-00-100-<1..9>, row-major from the south-west corner, 300 m discs."""
    rows = ["mcc,mnc,lac,ci,lat,lon,radius_m,site_name"]
    for i in range(9):
        r, c = divmod(i, 3)
        rows.append(f"460,00,100,{i + 1},{LAT0 + r * STEP:.5f},{LON0 + c * STEP:.5f},300,site{i + 1}")
    path.write_text("\n".join(rows) + "\n")
    return path


def square(lat0: float, lon0: float, lat1: float, lon1: float) -> dict:
    return {"type": "Polygon", "coordinates": [[[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]]}


def make_state(root: Path) -> WebState:
    catalogue = Catalogue.load(grid_catalogue(root / "cells.csv"))
    fences_dir = root / "fences"
    fences_dir.mkdir()
    fences = FenceSet(catalogue)
    for name, cell in (("mall_a", 1), ("mall_b", 9)):  # one fence per report client
        fence = fence_from_json({"kind": "cells", "name": name, "cells": [f"460-00-100-{cell}"]})
        save_fence(fence, fences_dir / f"{name}.json")
        fences.put(fence)
    reports = root / "reports"
    for name in ("mall_a", "mall_b"):
        (reports / name).mkdir(parents=True)
        (reports / name / "report.html").write_text(f"<html><body>report of {name}</body></html>")
    accounts = Accounts(root / "accounts.db")
    for role in ROLES:
        accounts.add_user(role, role, PASSWORD)
    accounts.add_user("client_a", "client", PASSWORD, ["mall_a"])
    accounts.add_user("client_b", "client", PASSWORD, ["mall_b"])
    return WebState(accounts=accounts, fences=fences, fences_dir=fences_dir, outbox=Outbox(root / "outbox.db"),
                    reports_dir=reports, campaigns=CampaignStore(root / "campaigns"))
