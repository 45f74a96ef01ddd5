"""Malformed packets in the simulated capture (simulator/damage.py): tshark calls exactly the inserted packets
malformed, sigloc counts each under its reason and takes the same messages and events as from the clean capture."""

import shutil
import subprocess
from collections import Counter

import pytest

from capture.stack import read_payloads
from decoders.decode import DecodeState
from decoders.events import events_from_file
from simulator.damage import add_malformed
from tshark_oracle import TSHARK, require_tshark

REASONS = {"chunk_cut": "sctp.chunk_truncated", "chunk_length": "sctp.chunk_too_small"}


@pytest.fixture(scope="module")
def damaged(city, tmp_path_factory):
    path = tmp_path_factory.mktemp("damaged") / "capture.pcap"
    shutil.copy(city / "capture.pcap", path)
    return path, add_malformed(path, 0.02, seed=3)


def _payloads(path):
    rows, anomalies = [], Counter()
    for batch in read_payloads(path):
        rows += [(float(batch.ts[i]), int(batch.proto[i]), batch.endpoints[batch.src[i]], batch.payload(i))
                 for i in range(len(batch))]
        anomalies = Counter(dict(batch.anomalies))
    return rows, anomalies


def _malformed_frames(path) -> int:
    out = subprocess.run([TSHARK, "-r", str(path), "-Y", "_ws.malformed or _ws.expert.severity >= error", "-T",
                          "fields", "-e", "frame.number"], capture_output=True, text=True, check=True).stdout
    return len(out.split())


def test_tshark_finds_exactly_the_inserted_packets_malformed(city, damaged):
    require_tshark()
    path, counts = damaged
    assert set(counts) == set(REASONS) and all(n > 5 for n in counts.values())
    assert _malformed_frames(city / "capture.pcap") == 0
    assert _malformed_frames(path) == sum(counts.values())


def test_each_inserted_packet_is_counted_and_no_message_changes(city, damaged):
    path, counts = damaged
    clean, clean_anomalies = _payloads(city / "capture.pcap")
    got, anomalies = _payloads(path)
    assert got == clean
    assert anomalies - clean_anomalies == Counter({REASONS[kind]: n for kind, n in counts.items()})


def test_events_are_those_of_the_clean_capture(city, damaged):
    def events(p):
        table = events_from_file(p, state=DecodeState()).drop_columns(["frame"])
        return table.to_pylist()
    assert events(damaged[0]) == events(city / "capture.pcap")


def test_simulate_with_a_malformed_share_keeps_the_truth(tmp_path):
    """``sigloc simulate --malformed-share``: the same truth and messages as without, plus the damaged packets it
    reports, each counted by the stack under its reason."""
    from click.testing import CliRunner  # noqa: PLC0415

    from appliance.cli import cli  # noqa: PLC0415
    args = ["simulate", "--subscribers", "40", "--hours", "0.5", "--seed", "5"]
    clean, damaged = tmp_path / "clean", tmp_path / "damaged"
    assert CliRunner().invoke(cli, [*args, str(clean)]).exit_code == 0
    result = CliRunner().invoke(cli, [*args, "--malformed-share", "0.05", str(damaged)])
    assert result.exit_code == 0, result.output
    line = next(s for s in result.output.splitlines() if s.startswith("malformed packets inserted: "))
    counts = {kind: int(n) for kind, n in (part.split() for part in line.split(": ")[1].split(", "))}
    assert set(counts) == set(REASONS)
    assert (damaged / "truth.jsonl").read_bytes() == (clean / "truth.jsonl").read_bytes()
    got, anomalies = _payloads(damaged / "capture.pcap")
    want, clean_anomalies = _payloads(clean / "capture.pcap")
    assert got == want
    assert anomalies - clean_anomalies == Counter({REASONS[kind]: n for kind, n in counts.items()})
