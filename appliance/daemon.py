"""The probe daemon (``sigloc run --config``): sources → one pipeline → store, trigger outbox, web app.

Every source (a dumpcap ring on a mirror port, a directory other probes drop capture files into) decodes in its
own thread with its own transport state and hands message tables to one pipeline thread. One pipeline, because
identity correlation must see a subscriber's messages in order and in one place: a TMSI learnt on one link
resolves messages on the next. The pipeline derives events, matches fences, runs the campaigns and their contact
policy, writes events/detections/decisions to ClickHouse (spooled while it is down) and triggers to the
durable outbox, from which the sender threads deliver webhooks and Kafka messages.

Restart safety: a capture file is entered in the ledger only after its last batch went through the pipeline, so
a killed daemon redoes at most the file it was in; the store drops the repeated batches by their insert tokens
(``<file>:<batch>``) and the outbox drops repeated triggers by their ids.
SIGHUP reloads fences, campaigns and contact lists between batches; SIGTERM stops the sources, drains the queue,
flushes open subscriber contexts and stops.
"""

import json
import logging
import queue
import secrets
import signal
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from analytics.origin import Origins
from analytics.store import Store
from appliance.auth import Accounts
from appliance.config import Config
from appliance.decode_worker import DecodeWorker
from appliance.delivery import Outbox, WebhookSender
from appliance.kafka_feed import from_config as kafka_sender
from appliance.metrics import Metrics
from capture.live import DumpcapSource, PacketSocketSource, Stop
from decoders.decode import DecodeState, decode_batches, decode_file
from decoders.events import EventConfig, EventDeriver
from decoders.tables import read_msisdn, read_profiles, read_tac
from geofence.campaigns import CampaignEngine, CampaignStore, Subscribers, cell_sites
from geofence.cells import Catalogue
from geofence.fences import FenceSet, load_fence
from geofence.match import DetectConfig, FenceMatcher
from geofence.outlets import Outlets
from geofence.policy import ContactPolicy, PolicyConfig

log = logging.getLogger("sigloc")

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".gz")
_DONE = object()


class Ledger:
    """Capture files fully processed (name, size, mtime), so a restart skips them and redoes a partial one."""

    def __init__(self, path: Path):
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, mtime REAL, "
                         "done REAL)")
        self._lock = threading.Lock()

    def done(self, path: Path) -> bool:
        st = path.stat()
        with self._lock:
            row = self._db.execute("SELECT size, mtime FROM files WHERE path = ?", (str(path),)).fetchone()
        return row == (st.st_size, st.st_mtime)

    def mark(self, path: Path, size: int, mtime: float) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)", (str(path), size, mtime,
                                                                                  time.time()))


class Probe:
    """Everything the pipeline thread owns, usable without threads (tests, ``process`` one table at a time)."""

    def __init__(self, config: Config, state_dir: Path):
        self.config, self.state_dir = config, state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        probe, store = config.probe, config.store
        mcc, _, mnc = probe["home_plmn"].partition("-")
        self.metrics = Metrics()
        self.store = Store(store["url"], key_file=store["pseudonym_key_file"] or None, spool_dir=store["spool"],
                           cluster=store["cluster"] or None, ttl_days={"events": store["raw_ttl_days"]},
                           tz=probe["timezone"])
        ref = config.reference
        self.catalogue = Catalogue.load(ref["cells"])
        home = {"home_province": probe["home_province"]} if probe["home_province"] else {}
        self.origins = Origins.load(ref["segments"] or None, home_mcc=mcc, **home)
        self.deriver = EventDeriver(EventConfig(
            probe["id"], mcc, mnc, province_of=lambda imsi: self.origins.home(imsi).province,
            home_province=probe["home_province"] or None))
        self.identity_snapshot = state_dir / "identity.json.gz"
        if self.identity_snapshot.exists():
            self.deriver.restore(self.identity_snapshot)
        self.fences = FenceSet(self.catalogue, min_overlap=config.fences["min_overlap"])
        f = config.fences
        self.matcher = FenceMatcher(self.catalogue.keys, config=DetectConfig(
            dwell_s=f["dwell_s"] or None, pass_through_s=f["pass_through_s"] or None,
            exit_after_s=f["exit_after_s"] or None, exit_confirm=f["exit_confirm"]))
        self.campaign_store = CampaignStore(config.campaigns["dir"])
        quiet = config.campaigns["quiet_hours"].split("-")
        self.policy = ContactPolicy(PolicyConfig(
            tz=probe["timezone"], quiet_hours=(quiet[0], quiet[1]),
            opt_out=config.campaigns["opt_out"] or None, blacklist=config.campaigns["blacklist"] or None,
            red_list=config.campaigns["red_list"] or None), self.store.pseudonym)
        self.subscribers = Subscribers(
            origins=self.origins, msisdn=read_msisdn(ref["msisdn"]) if ref["msisdn"] else {},
            tac=read_tac(ref["tac"]) if ref["tac"] else {},
            profiles=read_profiles(ref["profiles"]) if ref["profiles"] else None)
        self.outlets = Outlets.load(ref["outlets"]) if ref["outlets"] else None
        self.outbox = Outbox(state_dir / "outbox.db")
        self.accounts = Accounts(state_dir / "accounts.db")
        self.ledger = Ledger(state_dir / "ledger.db")
        self.lock = threading.RLock()  # pipeline batches vs reloads from the web app or SIGHUP
        self.engine: CampaignEngine | None = None
        self.reload()

    # -- reload ---------------------------------------------------------------------------------------

    def reload(self) -> None:
        """Fences, campaigns and contact lists from disk; matcher state (who is inside what) is kept."""
        with self.lock:
            on_disk = {}
            for path in sorted(Path(self.config.fences["dir"]).glob("*.json")):
                fence = load_fence(path)
                on_disk[fence.name] = fence
            for name in set(self.fences.fences) - set(on_disk):
                self.fences.remove(name)
            self.fences.put(*on_disk.values())
            self.policy.reload()
            self.fences_changed()
            log.info("reloaded %d fences, %d campaigns", len(on_disk), len(self.engine.campaigns))

    def fences_changed(self) -> None:
        """Swap recompiled fences into the matcher and rebuild the campaign engine around them."""
        with self.lock:
            self.matcher.swap(self.fences.membership(self.matcher.membership))
            self.engine = CampaignEngine(
                self.campaign_store.load_all(), self.policy, self.store.pseudonym, self.subscribers,
                fence_cells={n: self.fences.cells_of(n) for n in self.fences.fences},
                cell_sites=cell_sites(self.catalogue), outlets=self.outlets, tz=self.config.probe["timezone"])

    def campaigns_changed(self) -> None:
        with self.lock:
            self.engine.campaigns = self.campaign_store.load_all()

    # -- the pipeline ---------------------------------------------------------------------------------

    def process(self, messages: pa.Table, token: str) -> None:
        with self.lock:
            self._absorb(self.deriver.feed(messages), token)
        self.metrics.inc("sigloc_messages_total", len(messages))

    def flush(self, token: str) -> None:
        """End of input: close every open subscriber context and process what that emits."""
        with self.lock:
            self._absorb(self.deriver.finish(), token)

    def _absorb(self, events: pa.Table, token: str) -> None:
        if not len(events):
            return
        events = events.sort_by([("ts", "ascending"), ("frame", "ascending")])
        detections = self.matcher.match(events)
        result = self.engine.run(detections, events)
        self.store.insert_events(events, self.origins, token=f"ev:{token}")
        self.store.insert_triggers(detections, self.origins, token=f"tr:{token}")
        self.store.insert_deliveries(result.decisions, token=f"de:{token}")
        self.outbox.put(_records(result.triggers))
        for name, column, label in (("sigloc_events_total", events["event"], "kind"),
                                    ("sigloc_detections_total", detections["kind"], "kind"),
                                    ("sigloc_triggers_total", result.decisions["decision"], "decision")):
            for value, n in zip(*pc.value_counts(column).flatten()):
                self.metrics.inc(name, n.as_py(), **{label: value.as_py()})
        newest = pc.max(events["ts"]).as_py()
        self.metrics.set("sigloc_lag_seconds", max(0.0, time.time() - newest.timestamp()))
        self.metrics.set("sigloc_spool_depth", len(self.store.spool))

    def decode_stats(self, payloads: int, anomalies: dict[str, int]) -> None:
        self.metrics.inc("sigloc_packets_total", payloads)
        for reason, n in anomalies.items():
            self.metrics.inc("sigloc_decode_errors_total", n, reason=reason)

    def snapshot(self) -> None:
        """Save the identity store (TMSI → IMSI, last seen, open contexts) so a restart resumes with it."""
        with self.lock:
            self.deriver.snapshot(self.identity_snapshot)

    def close(self) -> None:
        self.store.close()
        self.outbox.close()
        self.accounts.close()


def _records(triggers: pa.Table) -> list[dict]:
    """Trigger records as the campaign engine receives them (times as ISO 8601 UTC)."""
    out = []
    for rec in triggers.to_pylist():
        for key in ("ts", "send_at"):
            if isinstance(rec.get(key), datetime):
                rec[key] = rec[key].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        out.append({k: v for k, v in rec.items() if v is not None})
    return out


class Daemon:
    """Threads around a Probe: sources, the pipeline, the webhook and Kafka senders and (optionally) the web app."""

    def __init__(self, config: Config, state_dir: Path, poll_s: float = 1.0, web: bool = True):
        self.config, self.poll_s, self.web = config, poll_s, web
        self.probe = Probe(config, state_dir)
        self.queue: queue.Queue = queue.Queue(maxsize=64)  # backpressure: a slow store slows the sources
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.server = None
        delivery = config.delivery
        self.sender = self.kafka = None
        if delivery["webhook"] or delivery["kafka_brokers"]:  # both feeds sign with the same secret
            secret = Path(delivery["secret_file"]).read_bytes().strip() if delivery["secret_file"] else \
                _secret(state_dir / "webhook.secret")
            self.kafka = kafka_sender(delivery, self.probe.outbox, state_dir, secret)
        if delivery["webhook"]:
            self.sender = WebhookSender(self.probe.outbox, delivery["webhook"], secret,
                                        max_tries=delivery["max_tries"], backoff_s=delivery["backoff_s"])

    def start(self) -> None:
        self._thread(self._pipeline, "pipeline")
        for i, src in enumerate(self.config.sources):
            target = self._watch if src["kind"] == "directory" else self._live
            self._thread(target, f"source-{i}", src)
        if self.sender:
            self._thread(self.sender.run, "sender", self.stop)
        if self.kafka:
            self._thread(self.kafka.run, "kafka", self.stop)
        if self.web:
            self._start_web()

    def _thread(self, target, name: str, *args) -> None:
        thread = threading.Thread(target=target, name=name, args=args, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _start_web(self) -> None:
        import uvicorn  # noqa: PLC0415  (only the daemon serves the web app)

        from appliance.web import WebState, create_app  # noqa: PLC0415
        host, _, port = self.config.web["listen"].rpartition(":")
        state = WebState(accounts=self.probe.accounts, fences=self.probe.fences,
                         fences_dir=Path(self.config.fences["dir"]), metrics=self.probe.metrics,
                         outbox=self.probe.outbox, kafka_outbox=self.kafka.outbox if self.kafka else None,
                         tiles=self.config.web["tiles"],
                         reports_dir=self.probe.state_dir / "reports", campaigns=self.probe.campaign_store,
                         store=self.probe.store, tz=self.config.probe["timezone"],
                         on_fences_changed=self.probe.fences_changed,
                         on_campaigns_changed=self.probe.campaigns_changed, lock=self.probe.lock)
        self.server = uvicorn.Server(uvicorn.Config(create_app(state), host=host.strip("[]"), port=int(port),
                                                    log_level="warning"))
        self.server.install_signal_handlers = lambda: None  # the daemon owns SIGTERM/SIGHUP
        self._thread(self.server.run, "web")

    # -- sources --------------------------------------------------------------------------------------

    def _watch(self, src: dict) -> None:
        """Poll a directory for capture files; a file is taken once its size stopped changing (copy done).

        With ``workers.count`` > 1 the files decode in a worker process that streams batches back while the
        pipeline works on the previous ones (decode and identity/matching run on two cores); with 1 they decode
        in this thread. Either way files are handed over in name order, so identity state sees time order.
        """
        root, sizes = Path(src["path"]), {}
        decoder = DecodeWorker(self.config.probe["mtp3"]) if self.config.workers["count"] > 1 else None
        try:
            while not self.stop.is_set():
                for path in sorted(p for p in root.iterdir() if p.suffix in CAPTURE_SUFFIXES and p.is_file()):
                    st = path.stat()
                    if self.probe.ledger.done(path):
                        continue
                    if sizes.get(path) != st.st_size:  # new or still growing: look again next poll
                        sizes[path] = st.st_size
                        continue
                    if self.stop.is_set():
                        break
                    try:
                        self._hand_over(path, st, decoder)
                    except Exception:  # an unreadable file is logged, counted and filed; the probe goes on
                        log.exception("capture file %s could not be decoded", path)
                        self.probe.metrics.inc("sigloc_decode_errors_total", reason="file.unreadable")
                        self.probe.ledger.mark(path, st.st_size, st.st_mtime)
                self.stop.wait(self.poll_s)
        finally:
            if decoder:
                decoder.close()

    def _hand_over(self, path: Path, st, decoder: "DecodeWorker | None") -> None:
        """Queue one file's message batches for the pipeline, then the marker that files it in the ledger."""
        if decoder is None:
            state = DecodeState()
            batches = decode_file(path, state, mtp3_standard=self.config.probe["mtp3"])
        else:
            batches = decoder.decode(path)
        for n, messages in enumerate(batches):
            self.queue.put((messages, f"{path.name}:{st.st_size}:{n}"))
        payloads, anomalies = (state.payloads, dict(state.anomalies)) if decoder is None else decoder.stats
        self.queue.put((_DONE, (path, st.st_size, st.st_mtime, payloads, anomalies)))

    def _live(self, src: dict) -> None:
        stop = Stop(event=self.stop)
        mtp3 = self.config.probe["mtp3"]
        if src["kind"] == "dumpcap":
            live = DumpcapSource(src["interface"], src["ring_dir"], bpf=src["filter"] or None, stop=stop,
                                 mtp3_standard=mtp3)
        else:
            live = PacketSocketSource(src["interface"], stop=stop, mtp3_standard=mtp3, ring_bytes=src["ring_mb"] << 20)
        state = DecodeState()
        started = int(time.time())
        for n, messages in enumerate(decode_batches(live, state)):
            self.queue.put((messages, f"{src['interface']}:{started}:{n}"))
            self.probe.metrics.set("sigloc_capture_drops_total", live.stats.dropped, interface=src["interface"])
        self.probe.decode_stats(state.payloads, state.anomalies)

    # -- pipeline -------------------------------------------------------------------------------------

    def _pipeline(self) -> None:
        while True:
            try:
                item, info = self.queue.get(timeout=0.2)
            except queue.Empty:
                if self.stop.is_set():
                    break
                continue
            try:
                if item is _DONE:
                    path, size, mtime, payloads, anomalies = info
                    self.probe.decode_stats(payloads, anomalies)
                    self.probe.snapshot()
                    self.probe.ledger.mark(path, size, mtime)
                    self.probe.metrics.inc("sigloc_files_total")
                    log.info("processed %s", path)
                else:
                    self.probe.process(item, info)
            except Exception:  # one bad batch must not stop the probe; it is logged with its token
                log.exception("pipeline batch %s failed", info if item is not _DONE else info[0])
                self.probe.metrics.inc("sigloc_decode_errors_total", reason="pipeline.batch_failed")
        self.probe.flush(f"shutdown:{int(time.time())}")

    # -- lifecycle ------------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop sources, drain the queue, flush contexts, give the sender one last pass, close."""
        self.stop.set()
        if self.server:
            self.server.should_exit = True
        for thread in self.threads:
            thread.join(timeout=60)
        if self.sender:
            self.sender.deliver_due()
        if self.kafka:
            self.kafka.deliver_due()
            self.kafka.close()
        self.probe.close()

    def run_forever(self) -> None:
        """Serve until SIGTERM/SIGINT; SIGHUP reloads."""
        signal.signal(signal.SIGHUP, lambda *_: self.probe.reload())
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        self.start()
        try:
            while not self.stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        self.shutdown()


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
               "level": record.levelname.lower(), "thread": record.threadName, "msg": record.getMessage()}
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def json_logging(level: int = logging.INFO) -> None:
    """Structured logs on stderr, one JSON object a line (journald and log shippers take them as they are)."""
    handler = logging.StreamHandler()
    handler.setFormatter(_JsonFormatter())
    log.addHandler(handler)
    log.setLevel(level)


def _secret(path: Path) -> bytes:
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_bytes().strip()
