"""The probe daemon under load: pipeline throughput with 1 and 2 workers, and API latency while it runs.

For each worker count a fresh daemon (embedded chdb, one fence, one active campaign, webhook receiver on
loopback) watches a directory; the simulated capture is dropped in and the time until its last batch is filed
is the throughput. During the second run four clients poll the API and one follows the SSE feed; their latencies
(p50/p99) and errors are printed. Peer: the same job as a one-shot ``run_job`` call (no daemon, no web app).

    .venv/bin/python bench/bench_appliance.py [--subscribers 1000 --hours 4]
"""

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from common import ROOT, captures, parser

sys.path.insert(0, str(ROOT / "tests"))

from test_daemon import site  # noqa: E402  (the probe installation the end-to-end test uses)
from test_delivery import Receiver, free_port  # noqa: E402

from appliance.config import load_config  # noqa: E402
from appliance.daemon import Daemon  # noqa: E402
from appliance.pipeline import run_job  # noqa: E402


def run_daemon(city: Path, capture: Path, workers: int, load: bool) -> dict:
    root = Path(tempfile.mkdtemp(prefix="sigloc-bench-probe-"))
    receiver, web_port = Receiver(), free_port()
    config = load_config(site(root, city, receiver.port, web_port))
    config.workers["count"] = workers
    daemon = Daemon(config, root / "state", poll_s=0.05)
    token = daemon.probe.accounts.new_token("bench", "admin")
    daemon.start()
    base, auth = f"http://127.0.0.1:{web_port}", {"Authorization": f"Bearer {token}"}
    latencies, errors, done = [], [], threading.Event()

    def poll():
        paths = ["/healthz", "/api/status", "/api/fences", "/api/triggers/counts", "/metrics"]
        n = 0
        while not done.is_set():
            start = time.perf_counter()
            try:
                with urllib.request.urlopen(urllib.request.Request(base + paths[n % len(paths)], headers=auth),
                                            timeout=30) as r:
                    r.read()
                latencies.append(time.perf_counter() - start)
            except Exception as err:  # counted, not raised: errors under load are the measurement
                errors.append(repr(err))
            n += 1

    while not daemon.server.started:
        time.sleep(0.05)
    clients = [threading.Thread(target=poll, daemon=True) for _ in range(4 if load else 0)]
    for c in clients:
        c.start()
    start = time.perf_counter()
    shutil.copy(capture, root / "incoming" / capture.name)
    while daemon.probe.metrics.total("sigloc_files_total") < 1:
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    done.set()
    for c in clients:
        c.join(30)
    messages = daemon.probe.metrics.total("sigloc_messages_total")
    triggers = len(daemon.probe.outbox.since(0, 1_000_000))
    daemon.shutdown()
    receiver.stop()
    shutil.rmtree(root, ignore_errors=True)
    out = {"workers": workers, "seconds": elapsed, "messages": messages, "triggers": triggers,
           "msg_per_s": messages / elapsed}
    if load:
        ms = sorted(x * 1000 for x in latencies)
        out.update(requests=len(ms), errors=len(errors), p50_ms=statistics.median(ms),
                   p99_ms=ms[int(0.99 * (len(ms) - 1))])
    return out


def one_shot(capture: Path) -> dict:
    city = capture.parent
    start = time.perf_counter()
    job = run_job(capture, city / "cells.csv", city / "west_lake.geojson",
                  f"chdb://{tempfile.mkdtemp(prefix='sigloc-bench-job-')}", tempfile.mkdtemp(),
                  segments=city / "number_segments.csv")
    seconds = time.perf_counter() - start
    return {"messages": job.messages, "seconds": seconds, "msg_per_s": job.messages / seconds}


def child(kind: str, capture: Path, workers: int = 1, load: bool = False) -> dict:
    """One measurement in a fresh interpreter: chDB opens one data directory per process."""
    code = (f"import sys, json; sys.path.insert(0, {str(ROOT / 'bench')!r}); import bench_appliance as b; "
            f"from pathlib import Path; p = Path({str(capture)!r}); "
            + ("print(json.dumps(b.one_shot(p)))" if kind == "job" else
               f"print(json.dumps(b.run_daemon(p.parent, p, {workers}, {load})))"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    args = parser(__doc__).parse_args()
    args.subscribers = args.subscribers if args.subscribers != 2000 else 1000
    capture = captures(args)[0]
    job = child("job", capture)
    print(f"one-shot run_job: {job['messages']} messages in {job['seconds']:.1f} s = {job['msg_per_s']:,.0f} msg/s")
    rows = [child("daemon", capture, 1), child("daemon", capture, 2), child("daemon", capture, 2, load=True)]
    print("| daemon | workers | API load | messages | seconds | msg/s | triggers | requests | errors | p50 ms | "
          "p99 ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r, load in zip(rows, (False, False, True)):
        extra = f"{r['requests']} | {r['errors']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f}" if load else "– | – | – | –"
        print(f"| sigloc run --config | {r['workers']} | {'4 pollers' if load else 'none'} | {r['messages']:,.0f} | "
              f"{r['seconds']:.1f} | {r['msg_per_s']:,.0f} | {r['triggers']} | {extra} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
