"""The `sigloc` command as a user runs it: real subprocesses, exit codes, one-line errors."""

import json
import re
import subprocess
import sys
from pathlib import Path

SIGLOC = [sys.executable, "-c", "from appliance.cli import main; main()"]


def sigloc(*args, cwd=None):
    return subprocess.run([*SIGLOC, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600)


def _one_line_error(proc):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_text_file_is_not_a_capture(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("this is not a capture\n" * 20)
    line = _one_line_error(sigloc("decode", path))
    assert str(path) in line and line.startswith("sigloc: error:")


def test_truncated_capture_decodes_what_is_complete_and_fails(city, tmp_path):
    data = (city / "capture.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) // 2 + 7])
    proc = sigloc("decode", cut)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "truncated" in proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(records) > 100  # the complete first half was decoded


def test_missing_file_and_bad_catalogue(tmp_path, city):
    proc = sigloc("decode", tmp_path / "nope.pcap")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    bad = tmp_path / "cells.csv"
    bad.write_text((city / "cells.csv").read_text().replace(",30.19,", ",30.1x,", 1))
    line = _one_line_error(sigloc("fence", "compile", city / "west_lake.geojson", "--cells", bad))
    assert re.search(r"cells\.csv:2: field 'lat': '30\.1x' is not a number", line)


def test_decode_formats_and_filters(city, tmp_path):
    proc = sigloc("decode", city / "capture.pcap", "--proto", "nas-eps", "--msg", "attach_request")
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert records and all(r["msg"] == "attach_request" and r["iface"] == "S1" for r in records)
    assert all(set(r) >= {"frame", "ts", "iface", "proto", "msg"} for r in records)
    out = tmp_path / "m.parquet"
    assert sigloc("decode", city / "capture.pcap", "--format", "parquet", "-o", out).returncode == 0
    import pyarrow.parquet as pq
    from decoders.records import MESSAGE_SCHEMA
    assert pq.read_table(out).schema.names == MESSAGE_SCHEMA.names
    csv_out = sigloc("decode", city / "capture.pcap", "--format", "csv", "--proto", "bssmap").stdout.splitlines()
    assert csv_out[0].startswith('"frame","ts","iface"') and len(csv_out) > 10


def test_fence_compile_lists_lake_cells(city):
    proc = sigloc("fence", "compile", city / "west_lake.geojson", "--cells", city / "cells.csv")
    assert proc.returncode == 0, proc.stderr
    keys = proc.stdout.split()
    assert keys and all(re.fullmatch(r"460-00-\d+(-\d+)?", k) for k in keys)


def test_demo_end_to_end(tmp_path):
    proc = sigloc("demo", "--out", tmp_path / "demo", "--subscribers", 120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert re.search(r"messages: \d+\s+events: \d+\s+triggers: [1-9]\d*", out), out
    report = Path(re.search(r"^report: (.+report\.html)$", out, re.M).group(1))
    page = report.read_text()
    assert "Origin by country" in page and "<iframe src=\"map.html\"" in page
    map_page = (report.parent / "map.html").read_text()
    assert "assets/leaflet.js" in map_page
    assert not re.search(r"""(src|href)=["']https?://""", map_page + page), "reports must not load from the network"
    assert (report.parent / "origin_country.csv").read_text().startswith("origin,visitors,share")


def test_run_with_a_decode_worker_equals_one_process(city, tmp_path):
    """`sigloc run` decodes in a worker process by default (two cores); the job's counts, events by kind, skipped
    input and origin table are those of decoding in the job's own process."""
    outputs = []
    for workers in (1, 2):
        proc = sigloc("run", city / "capture.pcap", "--cells", city / "cells.csv", "--fence",
                      city / "west_lake.geojson", "--segments", city / "number_segments.csv", "--clickhouse",
                      f"chdb://{tmp_path / f'store{workers}'}", "--out", tmp_path / f"report{workers}",
                      "--workers", workers, "-k", 1)
        assert proc.returncode == 0, proc.stderr[-2000:]
        outputs.append(re.sub(r"^report: .*$", "", proc.stdout, flags=re.M))
    assert re.search(r"messages: [1-9]\d*\s+events: [1-9]\d*", outputs[0]) and "events by kind: " in outputs[0]
    assert outputs[0] == outputs[1]


def test_bench_runs_the_suite(tmp_path):
    """`sigloc bench` is bench/suite.py: its options, and a bad one refused by the suite itself."""
    proc = sigloc("bench", "--help")
    assert proc.returncode == 0 and "--sizes" in proc.stdout and "--peers-max" in proc.stdout
    proc = sigloc("bench", "--sizes", "many")
    assert proc.returncode == 2 and "invalid int value: 'many'" in proc.stderr
