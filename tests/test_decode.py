"""The whole decode path (capture stack + decoders) against tshark, frame by frame, on every real capture.

The protocol tests check each decoder field by field on the bytes tshark hands them; this one checks what
`sigloc decode` prints: that a frame's IMSIs, tracking areas, location areas and cells are the ones Wireshark
shows for that frame, so nothing is lost or invented between the pcap and the record.
"""

import json
import subprocess
import sys
from collections import defaultdict

import pytest

from conftest import shared_pcaps
from decoders.decode import DecodeState, decode_file
from tshark_oracle import fields

SIGNALING = "s1ap or bssap"
CAPTURES = shared_pcaps()


def _records(path):
    state = DecodeState()
    by_frame = defaultdict(list)
    for table in decode_file(path, state):
        for rec in table.to_pylist():
            by_frame[rec["frame"]].append(rec)
    return by_frame, state


def _ours(records, name):
    return {r[name] for r in records if r.get(name) is not None}


def _hex(values):
    return {int(v, 16) for v in values}


def _compare(path):
    """Per-frame sets of identities and locations: ours vs tshark's, as a list of mismatches."""
    ours, state = _records(path)
    theirs = fields(path, ["e212.imsi", "s1ap.tAC", "nas_eps.emm.tai_tac", "s1ap.CellIdentity", "gsm_a.lac",
                           "gsm_a.bssmap.cell_lac", "gsm_a.bssmap.cell_ci", "s1ap.ENB_UE_S1AP_ID", "s1ap.MME_UE_S1AP_ID"], SIGNALING)
    mismatches = []
    for frame, row in theirs.items():
        records = ours.get(frame, [])
        checks = [
            ("imsi", _ours(records, "imsi"), set(row["e212.imsi"])),
            ("enb_ue_id", _ours(records, "enb_ue_id"), {int(v) for v in row["s1ap.ENB_UE_S1AP_ID"]}),
            ("mme_ue_id", _ours(records, "mme_ue_id"), {int(v) for v in row["s1ap.MME_UE_S1AP_ID"]}),
        ]
        # A record keeps one location per message; tshark lists every TAC/cell a frame mentions (S1 Setup's
        # supported TAs, Paging's TAI list), so ours must be among them, and present whenever a message has one.
        for name, wire in (("tac", {int(v) for v in row["s1ap.tAC"] + row["nas_eps.emm.tai_tac"]}), ("eci", _hex(row["s1ap.CellIdentity"])),
                           ("lac", _hex(row["gsm_a.lac"] + row["gsm_a.bssmap.cell_lac"])), ("ci", _hex(row["gsm_a.bssmap.cell_ci"]))):
            got = _ours(records, name)
            if not got <= wire or (wire and not got and name in ("eci", "ci")):
                mismatches.append((frame, name, sorted(got), sorted(wire)))
        mismatches += [(frame, name, sorted(got), sorted(want)) for name, got, want in checks if got != want]
    extra = sorted(set(ours) - set(theirs))
    return mismatches, extra, len(theirs), state


@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_identities_and_cells_agree_with_tshark(path):
    mismatches, extra, frames, _ = _compare(path)
    assert not mismatches, f"{len(mismatches)} of {frames} frames differ, e.g. {mismatches[:5]}"
    assert not extra, f"records in frames tshark shows no signaling in: {extra[:10]}"


def test_simulated_capture_agrees_with_tshark(city):
    mismatches, extra, frames, state = _compare(city / "capture.pcap")
    assert frames > 1000
    assert not mismatches, f"{len(mismatches)} of {frames} frames differ, e.g. {mismatches[:5]}"
    assert not extra
    assert not state.anomalies, state.anomalies


@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_sigloc_decode_exits_zero(path, tmp_path):
    out = tmp_path / "out.jsonl"
    proc = subprocess.run([sys.executable, "-c", "from appliance.cli import main; main()", "decode", str(path),
                           "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    signaling = fields(path, ["frame.protocols"], SIGNALING)
    assert bool(records) == bool(signaling)
    assert all(set(r) >= {"frame", "ts", "iface", "proto", "msg"} for r in records)
