"""Shared fixtures: one simulated city per test session (small, so CI stays fast)."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
SHARED_PCAPS = ROOT.parent / "shared" / "pcaps"
sys.path.insert(0, str(Path(__file__).parent))  # test helpers (tshark_oracle) import as plain modules


@pytest.fixture(scope="session")
def city(tmp_path_factory):
    """A 2-hour morning of 80 subscribers: capture.pcap, truth.jsonl, cells.csv, west_lake.geojson, …"""
    from simulator.scenario import simulate
    out = tmp_path_factory.mktemp("city")
    info = simulate(out, subscribers=80, hours=2.0, seed=11)
    return Path(info["dir"])


@pytest.fixture(scope="session")
def unpacked_city(tmp_path_factory):
    """The same city with one message per SCTP packet: for the tests that pair our records with tshark's fields
    frame by frame (bundling and fragmentation are checked against tshark in test_simulator)."""
    from simulator.pcap import SctpPacking
    from simulator.scenario import simulate
    out = tmp_path_factory.mktemp("unpacked_city")
    info = simulate(out, subscribers=80, hours=2.0, seed=11, packing=SctpPacking.off())
    return Path(info["dir"])


def shared_pcaps() -> list[Path]:
    return sorted(p for p in SHARED_PCAPS.glob("*") if p.suffix in (".pcap", ".pcapng", ".cap"))
