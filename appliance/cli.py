"""The ``sigloc`` command: thin click commands over the library, one-line errors, no tracebacks for bad input."""

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import click
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from rich.progress import Progress

from analytics.origin import SegmentError
from analytics.report import DEFAULT_K
from analytics.store import StoreError
from appliance.config import ConfigError, load_config
from capture.errors import DecodeError
from capture.live import DEFAULT_BPF, DumpcapSource, PacketSocketSource, Stop
from decoders.decode import DecodeState, decode_batches, decode_file
from decoders.events import EventConfig, derive_events
from decoders.tables import TableError
from geofence.cells import Catalogue, CatalogueError
from geofence.fences import DEFAULT_MIN_OVERLAP, FenceError, compile_fence, load_fence

TRUNCATED_FILE = "pcap.truncated_record"
USER_ERRORS = (ConfigError, TableError, DecodeError, CatalogueError, FenceError, SegmentError, StoreError,
               FileNotFoundError, IsADirectoryError, PermissionError)


def _write(tables, fmt: str, out: str | None) -> int:
    """Write a stream of tables as JSONL (default, nulls omitted), CSV or Parquet; return rows written."""
    rows = 0
    if fmt == "parquet":
        if not out:
            raise click.UsageError("--format parquet needs --output FILE")
        writer = None
        for t in tables:
            writer = writer or pq.ParquetWriter(out, t.schema)
            writer.write_table(t)
            rows += len(t)
        if writer:
            writer.close()
        return rows
    stream = open(out, "w", encoding="utf-8") if out else sys.stdout
    try:
        header = True
        for t in tables:
            rows += len(t)
            if fmt == "csv":
                t = t.set_column(t.schema.get_field_index("ts"), "ts", pc.strftime(t["ts"], "%Y-%m-%dT%H:%M:%S.%fZ"))
                buf = pa.BufferOutputStream()
                pacsv.write_csv(t, buf, pacsv.WriteOptions(include_header=header))
                stream.write(buf.getvalue().to_pybytes().decode())
                header = False
                continue
            for rec in t.to_pylist():
                rec["ts"] = rec["ts"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                stream.write(json.dumps({k: v for k, v in rec.items() if v is not None}) + "\n")
    finally:
        if out:
            stream.close()
    return rows


def _filter(table: pa.Table, proto: str | None, msg: str | None, imsi: str | None) -> pa.Table:
    mask = None
    for column, value in (("proto", proto), ("msg", msg), ("imsi", imsi)):
        if value:
            m = pc.equal(table[column], value)
            mask = m if mask is None else pc.and_(mask, m)
    return table if mask is None else table.filter(pc.fill_null(mask, False))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli():
    """sigloc: decode A-interface and S1-MME signaling into subscriber behaviour, fences and reports."""


_format = click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "parquet"]), default="jsonl",
                       show_default=True, help="Output format.")
_output = click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
_mtp3 = click.option("--mtp3", type=click.Choice(["auto", "itu", "chinese"]), default="auto", show_default=True,
                     help="MTP3 point-code layout of M2UA/MTP links (Chinese networks use 24-bit codes).")


@cli.command()
@click.argument("capture", type=click.Path(exists=True))
@_format
@_output
@click.option("--proto", type=click.Choice(["bssmap", "dtap", "s1ap", "nas-eps"]), help="Only this protocol.")
@click.option("--msg", help="Only this message name, e.g. attach_request.")
@click.option("--imsi", help="Only messages carrying this IMSI.")
@_mtp3
def decode(capture, fmt, output, proto, msg, imsi, mtp3):
    """One record per signaling message of a pcap/pcapng file (or a directory of rotated files)."""
    state = DecodeState()
    tables = (_filter(t, proto, msg, imsi) for t in decode_file(capture, state, mtp3_standard=mtp3))
    rows = _write(tables, fmt, output)
    _summary(f"{rows} messages from {state.payloads} signaling payloads", state, capture)


@cli.command()
@click.argument("capture", type=click.Path(exists=True))
@_format
@_output
@click.option("--probe", default="probe-1", show_default=True, help="Probe id stamped on every event.")
@click.option("--home-plmn", default="460-00", show_default=True, help="MCC-MNC assumed for cells without PLMN.")
@_mtp3
def events(capture, fmt, output, probe, home_plmn, mtp3):
    """Behaviour events (power on/off, location update, cell change, calls, SMS) with IMSIs resolved."""
    mcc, _, mnc = home_plmn.partition("-")
    state = DecodeState()
    stream = derive_events(decode_file(capture, state, mtp3_standard=mtp3), EventConfig(probe, mcc, mnc))
    rows = _write((t.sort_by([("ts", "ascending"), ("frame", "ascending")]) for t in stream), fmt, output)
    _summary(f"{rows} events from {state.messages} messages", state, capture)


def _summary(line: str, state: DecodeState, capture: str) -> None:
    """Counts on stderr; a capture cut short (a partly written file, a failed copy) is an error exit."""
    anomalies = ", ".join(f"{k}={v}" for k, v in state.anomalies.most_common(6))
    click.echo(line + (f"; skipped: {anomalies}" if anomalies else ""), err=True)
    if state.anomalies.get(TRUNCATED_FILE):
        click.echo(f"sigloc: error: {capture}: capture is truncated; decoded the complete frames before the cut",
                   err=True)
        sys.exit(1)


@cli.command()
@click.argument("interface")
@_format
@_output
@click.option("--source", type=click.Choice(["dumpcap", "socket"]), default="dumpcap", show_default=True,
              help="dumpcap ring buffer (line rate, kernel BPF) or an AF_PACKET TPACKET_V3 ring (small setups).")
@click.option("--ring", "ring_dir", default="sigloc-ring", show_default=True, type=click.Path(file_okay=False),
              help="Directory of dumpcap's ring files.")
@click.option("--filter", "bpf", default=DEFAULT_BPF, show_default=True, help="BPF capture filter (dumpcap).")
@click.option("--duration", type=float, help="Stop after this many seconds.")
@click.option("--packets", type=int, help="Stop after this many frames.")
@_mtp3
def capture(interface, fmt, output, source, ring_dir, bpf, duration, packets, mtp3):
    """Decode live signaling from a network interface (mirror port) until stopped (Ctrl-C, --duration, --packets)."""
    stop = Stop(duration=duration, packets=packets, event=threading.Event())
    signal.signal(signal.SIGTERM, lambda *_: stop.event.set())
    if source == "dumpcap":
        live = DumpcapSource(interface, ring_dir, bpf=bpf, stop=stop, mtp3_standard=mtp3)
    else:
        live = PacketSocketSource(interface, stop=stop, mtp3_standard=mtp3)
    state = DecodeState()
    try:
        rows = _write(decode_batches(live, state), fmt, output)
    except KeyboardInterrupt:
        stop.event.set()
        rows = state.messages
    stats = live.stats
    click.echo(f"captured {stats.frames} frames on {interface} (kernel: {stats.received} received, "
               f"{stats.dropped} dropped)", err=True)
    _summary(f"{rows} messages from {state.payloads} signaling payloads", state, interface)


@cli.command()
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--subscribers", default=300, show_default=True, help="How many subscribers live in the city.")
@click.option("--hours", default=4.0, show_default=True, help="Length of the simulated morning.")
@click.option("--seed", default=7, show_default=True, help="Random seed (same seed, same capture).")
@click.option("--share-4g", default=0.6, show_default=True, help="Share of subscribers on LTE (the rest on GSM).")
@click.option("--bundle-share", default=0.25, show_default=True,
              help="Share of the messages sent within 5 ms of the next one from the same side that share its SCTP "
                   "packet.")
@click.option("--fragment-share", default=0.01, show_default=True,
              help="Share of messages split into 2-3 SCTP DATA fragments (larger than a packet: always).")
@click.option("--a-transport", type=click.Choice(["m3ua", "ipa"]), default="m3ua", show_default=True,
              help="A interface over M3UA/SCTP, or IPA/SCCPlite over TCP (port 5000).")
@click.option("--point-codes", type=click.Choice(["itu", "24bit"]), default="itu", show_default=True,
              help="A-interface point codes: 14-bit ITU, or 24-bit (8-8-8; SCCP addresses then SSN-only).")
@click.option("--malformed-share", default=0.0, show_default=True,
              help="Share of SCTP packets followed by a damaged copy (truncated chunk, bad chunk length).")
def simulate(out_dir, subscribers, hours, seed, share_4g, bundle_share, fragment_share, a_transport, point_codes,
             malformed_share):
    """Write a synthetic city's capture (A + S1), ground truth, cell catalogue, fence and number segments."""
    from simulator.pcap import SctpPacking  # noqa: PLC0415  (only this command needs the simulator)
    from simulator.scenario import simulate as run  # noqa: PLC0415
    with Progress(transient=True) as bar:
        task = bar.add_task("simulating", total=subscribers)
        info = run(out_dir, subscribers=subscribers, hours=hours, seed=seed, share_4g=share_4g,
                   packing=SctpPacking(bundle_share=bundle_share, fragment_share=fragment_share),
                   a_transport=a_transport, point_codes=point_codes, malformed_share=malformed_share,
                   progress=lambda n, total: bar.update(task, completed=n))
    click.echo(f"{info['messages']} messages for {info['subscribers']} subscribers in {info['capture']}")
    if info["malformed"]:
        click.echo("malformed packets inserted: " + ", ".join(f"{k} {v}" for k, v in sorted(info["malformed"].items())))


@cli.group()
def fence():
    """Geofences: compile a drawn area to the cells that serve it."""


@fence.command("compile")
@click.argument("fence_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--cells", "cells_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Cell catalogue CSV (engineering-parameter sheet).")
@click.option("--min-overlap", default=DEFAULT_MIN_OVERLAP, show_default=True,
              help="Share of a cell's footprint that must lie inside the fence.")
def fence_compile(fence_file, cells_file, min_overlap):
    """List the cells (keys) a GeoJSON fence compiles to."""
    keys = compile_fence(load_fence(fence_file), Catalogue.load(cells_file), min_overlap)
    click.echo("\n".join(keys))
    click.echo(f"{len(keys)} cells", err=True)


@cli.command()
@click.argument("capture", type=click.Path(exists=True), required=False)
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="Run as the probe daemon with this sigloc.toml (sources, store, fences, campaigns, web app).")
@click.option("--cells", "cells_file", type=click.Path(exists=True, dir_okay=False), help="Cell catalogue CSV.")
@click.option("--fence", "fence_file", type=click.Path(exists=True, dir_okay=False),
              help="GeoJSON fence to report on.")
@click.option("--segments", type=click.Path(exists=True, dir_okay=False), help="Number-segment CSV (home province).")
@click.option("--clickhouse", "store_url", default="chdb://sigloc-data", show_default=True,
              help="chdb://<dir> for the embedded engine, or http(s)://host:port for a server.")
@click.option("--out", "out_dir", default="out/report", show_default=True, type=click.Path(file_okay=False))
@click.option("-k", "k", default=DEFAULT_K, show_default=True, help="Suppress counts below k in the report.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 2),
              help="2: decode in a worker process beside events, matching and the store (two cores).")
def run(capture, config_file, cells_file, fence_file, segments, store_url, out_dir, k, workers):
    """The main job on one capture (events and fence triggers into ClickHouse, then the fence report), or,
    with --config, the probe daemon until SIGTERM."""
    if config_file:
        if capture:
            raise click.UsageError("give either a CAPTURE (one job) or --config (the daemon), not both")
        from appliance.daemon import Daemon, json_logging  # noqa: PLC0415
        json_logging()
        config = load_config(config_file)
        Daemon(config, Path(config.probe["state_dir"])).run_forever()
        return
    if not (capture and cells_file and fence_file):
        raise click.UsageError("a one-off job needs CAPTURE, --cells and --fence (or use --config FILE)")
    _run_job(capture, cells_file, fence_file, segments, store_url, out_dir, k, workers=workers)


def _run_job(capture, cells_file, fence_file, segments, store_url, out_dir, k, restore=None, workers=2):
    from appliance.pipeline import run_job  # noqa: PLC0415  (keeps `sigloc decode` start-up light)
    with Progress(transient=True) as bar:
        task = bar.add_task("decode → events → fences → ClickHouse", total=None)
        result = run_job(capture, cells_file, fence_file, store_url, out_dir, segments=segments, k=k,
                         progress=lambda stage, n: bar.advance(task, n), restore=restore, workers=workers)
    click.echo(f"messages: {result.messages}  events: {result.events}  triggers: {result.triggers}  "
               f"fence '{result.fence}': {len(result.fence_cells)} cells, {result.visitors} visitors")
    click.echo("events by kind: " + ", ".join(f"{k}={v}" for k, v in sorted(result.events_by_kind.items())))
    if result.anomalies:
        click.echo("skipped: " + ", ".join(f"{k}={v}" for k, v in result.anomalies.most_common(6)))
    if result.origin is not None:
        click.echo("visitor origin (country):")
        for row in result.origin.itertuples():
            count = "<k" if row.visitors is None or str(row.visitors) == "<NA>" else row.visitors
            click.echo(f"  {row.origin:<24} {count}")
    click.echo(f"report: {result.report.resolve() if result.report else '(no events, no report)'}")
    return result


@cli.command()
@click.option("--out", "out_dir", default="out/demo", show_default=True, type=click.Path(file_okay=False),
              help="Where the simulated city, the store and the report go.")
@click.option("--subscribers", default=300, show_default=True)
@click.option("--clickhouse", "store_url", default=None, help="Store URL (default chdb://<out>/clickhouse).")
@click.option("-k", "k", default=10, show_default=True, help="Suppress report counts below k.")
def demo(out_dir, subscribers, store_url, k):
    """Simulate a city morning, then run the main job on it and print where the report is."""
    from simulator.scenario import simulate as run_sim  # noqa: PLC0415
    started = time.monotonic()
    out = Path(out_dir)
    city = out / "city"
    with Progress(transient=True) as bar:
        task = bar.add_task("simulating the city", total=subscribers)
        info = run_sim(city, subscribers=subscribers, progress=lambda n, total: bar.update(task, completed=n))
    click.echo(f"simulated {info['subscribers']} subscribers, {info['messages']} messages → {info['capture']}")
    store_url = store_url or f"chdb://{out / 'clickhouse'}"
    _run_job(info["capture"], city / "cells.csv", city / "west_lake.geojson", city / "number_segments.csv",
             store_url, out / "report", k, restore=info["previous_state"])
    click.echo(f"done in {time.monotonic() - started:.0f} s")


@cli.group()
def report():
    """Client reports from the store (footfall, visitor origin, campaign effect): report.html + one CSV per table."""


def _instant(value: str, tz: str) -> float:
    """--from/--to: ISO 8601 date or date-time (in --tz unless it carries an offset) or epoch seconds."""
    from analytics.report import instant  # noqa: PLC0415
    try:
        return instant(value, tz)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


def _report_options(fn):
    for option in reversed([
        click.option("--clickhouse", "store_url", default="chdb://sigloc-data", show_default=True,
                     help="chdb://<dir> for the embedded engine, or http(s)://host:port for a server."),
        click.option("--from", "start", required=True, help="Period start: 2026-05-01, 2026-05-01T08:00 or epoch s."),
        click.option("--to", "end", required=True, help="Period end (same forms as --from)."),
        click.option("--out", "out_dir", default="out/report", show_default=True, type=click.Path(file_okay=False)),
        click.option("-k", "k", default=DEFAULT_K, show_default=True, help="Suppress counts below k."),
        click.option("--tz", default="Asia/Shanghai", show_default=True, help="The client's time zone."),
    ]):
        fn = option(fn)
    return fn


def _open_store(store_url):
    from analytics.store import Store  # noqa: PLC0415
    return Store(store_url)


@report.command("footfall")
@click.option("--fence", required=True, help="Fence name (as in the triggers table).")
@_report_options
@click.option("--cells", "cells_file", type=click.Path(exists=True, dir_okay=False),
              help="Cell catalogue CSV: with --fence-file, adds a map of visitors per fence cell.")
@click.option("--fence-file", type=click.Path(exists=True, dir_okay=False), help="The fence's GeoJSON (for the map).")
def report_footfall(fence, store_url, start, end, out_dir, k, tz, cells_file, fence_file):
    """Unique visitors per hour and day, the hourly curve, peak hour, dwell, repeat and new vs returning."""
    from analytics.footfall import write_footfall_report  # noqa: PLC0415
    if bool(cells_file) != bool(fence_file):
        raise click.UsageError("the map needs both --cells and --fence-file")
    t0, t1 = _instant(start, tz), _instant(end, tz)
    store = _open_store(store_url)
    try:
        shape = catalogue = None
        if fence_file:
            shape, catalogue = load_fence(fence_file), Catalogue.load(cells_file)
        path = write_footfall_report(store, fence, t0, t1, out_dir, k=k, tz=tz, shape=shape, catalogue=catalogue)
    finally:
        store.close()
    click.echo(f"report: {path.resolve()}")


@report.command("origin")
@click.option("--fence", required=True, help="Fence name (as in the triggers table).")
@_report_options
@click.option("--resident-nights", default=3, show_default=True, help="Nights (00-06) in one cell for it to be a home.")
@click.option("--commuter-days", default=3, show_default=True, help="Days inside to count as commuter.")
@click.option("--lookback-days", default=14.0, show_default=True,
              help="Nights before the period that count towards the home cell.")
@click.option("--cells", "cells_file", type=click.Path(exists=True, dir_okay=False),
              help="Cell catalogue CSV: with --fence-file, the fence's cells (default: those its triggers name).")
@click.option("--fence-file", type=click.Path(exists=True, dir_okay=False), help="The fence's GeoJSON.")
def report_origin(fence, store_url, start, end, out_dir, k, tz, resident_nights, commuter_days, lookback_days,
                  cells_file, fence_file):
    """Visitors by home country, province and city, resident/commuter/tourist/day-tripper, share per day, and a
    map of visitors by home province."""
    from analytics.footfall import write_origin_report  # noqa: PLC0415
    if bool(cells_file) != bool(fence_file):
        raise click.UsageError("the fence's cells need both --cells and --fence-file")
    t0, t1 = _instant(start, tz), _instant(end, tz)
    cells = compile_fence(load_fence(fence_file), Catalogue.load(cells_file)) if fence_file else None
    store = _open_store(store_url)
    try:
        path = write_origin_report(store, fence, t0, t1, out_dir, k=k, tz=tz, resident_nights=resident_nights,
                                   commuter_days=commuter_days, lookback_days=lookback_days, cells=cells)
    finally:
        store.close()
    click.echo(f"report: {path.resolve()}")


@report.command("effect")
@_report_options
@click.option("--outcomes", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Outcome CSV: imsi or msisdn, outcome, ts (subscriptions, purchases).")
@click.option("--mass-send", type=click.Path(exists=True, dir_okay=False),
              help="CSV (imsi or msisdn) of a mass send's recipients: the baseline group.")
@click.option("--opt-outs", type=click.Path(exists=True, dir_okay=False), help="Opt-out/complaint CSV: imsi or "
              "msisdn, ts.")
@click.option("--msisdn", "msisdn_file", type=click.Path(exists=True, dir_okay=False),
              help="IMSI→MSISDN table (imsi, msisdn) to resolve MSISDN keys.")
@click.option("--campaign", help="Only this campaign (default: every campaign with decisions in the period).")
@click.option("--window-days", default=7.0, show_default=True, help="How long after the message an outcome counts.")
def report_effect(store_url, start, end, out_dir, k, tz, outcomes, mass_send, opt_outs, msisdn_file, campaign,
                  window_days):
    """Conversion of triggered vs control vs mass send with 95 % Wilson intervals; opt-outs per campaign."""
    from analytics.effect import effect, msisdn_index, read_subscribers  # noqa: PLC0415
    from analytics.report import period_text, write_page  # noqa: PLC0415
    from decoders.tables import read_msisdn  # noqa: PLC0415
    t0, t1 = _instant(start, tz), _instant(end, tz)
    index = msisdn_index(read_msisdn(msisdn_file)) if msisdn_file else None
    store = _open_store(store_url)
    try:
        read = lambda path, fields=(): read_subscribers(path, store.pseudonym, index, fields, tz)  # noqa: E731
        results = read(outcomes, ("outcome", "ts"))
        rep = effect(store, t0, t1, results, read(mass_send) if mass_send else None,
                     read(opt_outs, ("ts",)) if opt_outs else None, campaign, k, window_days)
    finally:
        store.close()
    intro = (f"Decisions {period_text(t0, t1, tz)}; an outcome counts within {window_days:g} days of the message. "
             f"{results.attrs['unmatched']} outcome row(s) named an MSISDN not in the IMSI→MSISDN table.")
    path = write_page(out_dir, "Campaign effect", intro, rep.tables(), EFFECT_TITLES, k)
    click.echo(f"report: {path.resolve()}")


EFFECT_TITLES = {"conversion": "Conversion by group (95 % Wilson interval)",
                 "difference": "Difference in conversion (95 % Newcombe interval)",
                 "opt_outs": "Opt-outs and complaints per campaign"}


@cli.group()
def outbox():
    """The probe's trigger outboxes (webhook/stream and Kafka): counts, and dead letters back to pending."""


def _outboxes(config_file: str, sink: str) -> list[tuple[str, Path]]:
    """The outbox files of the probe's state_dir that exist, by sink (the daemon creates them)."""
    state = Path(load_config(config_file).probe["state_dir"])
    files = [("webhook", state / "outbox.db"), ("kafka", state / "outbox-kafka.db")]
    found = [(name, path) for name, path in files if sink in ("all", name) and path.is_file()]
    if not found:
        raise click.UsageError(f"no {'' if sink == 'all' else sink + ' '}outbox in {state}")
    return found


_CONFIG_ARG = click.argument("config_file", type=click.Path(exists=True, dir_okay=False))
_SINK_OPTION = click.option("--sink", type=click.Choice(["all", "webhook", "kafka"]), default="all", show_default=True)


@outbox.command("status")
@_CONFIG_ARG
@_SINK_OPTION
def outbox_status(config_file, sink):
    """Trigger records per status in each outbox (safe while the daemon runs: SQLite WAL)."""
    from appliance.delivery import Outbox  # noqa: PLC0415
    for name, path in _outboxes(config_file, sink):
        box = Outbox(path)
        click.echo(f"{name}: " + ", ".join(f"{status} {n}" for status, n in box.counts().items()))
        box.close()


@outbox.command("requeue")
@_CONFIG_ARG
@_SINK_OPTION
def outbox_requeue(config_file, sink):
    """Put the dead letters back to pending with a fresh retry budget, e.g. after a receiver outage longer than
    max_tries covers; the running daemon's sender picks them up."""
    from appliance.delivery import Outbox  # noqa: PLC0415
    for name, path in _outboxes(config_file, sink):
        box = Outbox(path)
        click.echo(f"{name}: {box.requeue_dead()} dead letter(s) back to pending")
        box.close()


@cli.command("check-config")
@click.argument("config_file", type=click.Path(exists=True, dir_okay=False))
def check_config(config_file):
    """Validate a sigloc.toml (keys, types, ranges, referenced files) and print what the daemon would run."""
    config = load_config(config_file)
    click.echo(f"{config.path}: ok")
    for src in config.sources:
        click.echo(f"  source {src['kind']}: {src['path'] or src['interface']}")
    click.echo(f"  store {config.store['url']} (spool {config.store['spool']}, raw events kept "
               f"{config.store['raw_ttl_days']} d)")
    click.echo(f"  cells {config.reference['cells']}; fences {config.fences['dir']}; "
               f"campaigns {config.campaigns['dir']}")


@cli.command(context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("options", nargs=-1, type=click.UNPROCESSED)
def bench(options):
    """Every benchmark on cities of increasing size, peers alongside (bench/suite.py; `sigloc bench --help`)."""
    suite = Path(__file__).resolve().parent.parent / "bench" / "suite.py"
    if not suite.exists():
        raise click.UsageError(f"sigloc bench runs the source tree's {suite}, which is not here")
    sys.exit(subprocess.call([sys.executable, str(suite), *options]))


def main() -> None:
    """Entry point: known bad input becomes one line on stderr and exit status 2."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except USER_ERRORS as err:
        click.echo(f"sigloc: error: {err}", err=True)
        sys.exit(2)
