"""The hand-built capture cases (tests/cases/<name>/, written by tests/cases/make_cases.py) against their committed
expected output and, for every case tshark decodes, against tshark as well.

The expected files pin the exact rows (frame, proto, conn, sccp_type, payload) and anomaly counts, so a change in
behaviour shows up as a diff a reviewer reads after ``make_cases.py --refresh``; tshark is the independent check
that those rows are right.
"""

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from capture.errors import Anomalies
from capture.payloads import PROTO_S1AP
from capture.stack import read_payloads
from test_capture import signaling_layers
from tshark_oracle import fields

CASES = Path(__file__).parent / "cases"
NAMES = sorted(p.name for p in CASES.iterdir() if (p / "case.json").exists())


def _ours(path: Path) -> tuple[list[dict], Anomalies]:
    rows, anomalies = [], Anomalies()
    for batch in read_payloads(path):
        anomalies.update(batch.anomalies)
        rows += [{"frame": int(batch.frame[i]), "proto": int(batch.proto[i]), "conn": int(batch.conn[i]),
                  "sccp_type": int(batch.sccp_type[i]), "payload": batch.payload(i).hex()} for i in range(len(batch))]
    return rows, anomalies


def test_every_case_has_its_files():
    assert len(NAMES) >= 12
    for name in NAMES:
        present = {p.name for p in (CASES / name).iterdir()}
        assert {"input.pcap", "README.md", "expected.jsonl", "anomalies.json"} <= present


@pytest.mark.parametrize("name", NAMES)
def test_case_equals_its_expected_output(name):
    rows, anomalies = _ours(CASES / name / "input.pcap")
    expected = [json.loads(line) for line in (CASES / name / "expected.jsonl").read_text().splitlines()]
    assert rows and rows == expected
    assert dict(anomalies) == json.loads((CASES / name / "anomalies.json").read_text())


@pytest.mark.parametrize("name", [n for n in NAMES if json.loads((CASES / n / "case.json").read_text())["tshark"]])
def test_case_equals_tshark(name):
    path = CASES / name / "input.pcap"
    oracle = json.loads((CASES / name / "case.json").read_text())
    options = tuple(oracle.get("tshark_options", ()))
    wire = signaling_layers(path, options)
    if oracle["tshark"] == "minus_retransmissions":
        flagged = set(fields(path, ["sctp.retransmission"], "sctp.retransmission", options=options))
        assert flagged
        wire = {layer: {f: p for f, p in frames.items() if f not in flagged} for layer, frames in wire.items()}
    got = {"s1ap": defaultdict(list), "bssap": defaultdict(list)}
    for row in _ours(path)[0]:
        got["s1ap" if row["proto"] == PROTO_S1AP else "bssap"][row["frame"]].append(bytes.fromhex(row["payload"]))
    assert {k: dict(v) for k, v in got.items()} == wire


def test_committed_cases_are_what_the_generator_writes():
    done = subprocess.run([sys.executable, str(CASES / "make_cases.py")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout
