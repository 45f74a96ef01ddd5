"""The captures the project ships are the upstream bytes, licensed, and decode."""

import csv
import hashlib
from pathlib import Path

import pytest

from decoders.decode import DecodeState, decode_file

PCAPS = Path(__file__).parent.parent / "pcaps"
MANIFEST = list(csv.DictReader(open(PCAPS / "MANIFEST.tsv"), delimiter="\t"))


def test_every_shipped_capture_has_a_manifest_line():
    shipped = {p.name for p in PCAPS.iterdir() if p.suffix in (".pcap", ".pcapng", ".cap")}
    assert shipped == {row["file"] for row in MANIFEST}


@pytest.mark.parametrize("row", MANIFEST, ids=[row["file"] for row in MANIFEST])
def test_shipped_capture_matches_manifest_and_decodes(row):
    path = PCAPS / row["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == row["sha256"]
    assert row["license_of_repo"] and row["repo"] and row["commit"]
    state = DecodeState()
    records = [r for table in decode_file(path, state) for r in table.to_pylist()]
    signaling = int(row["s1ap_frames"]) + int(row["bssap_frames"])
    assert len({r["frame"] for r in records}) == signaling
