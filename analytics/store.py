"""The ClickHouse event store: one code path for the embedded engine and a ClickHouse server or cluster.

``chdb://<dir>`` opens the in-process chDB engine on a data directory (one process owns a directory);
``http(s)://host:port`` talks to a server. Both go through clickhouse-connect and take Arrow tables.
The schema (analytics/schema.py, docs/schema.md) is migrated to the newest version when the store opens.
IMSIs never reach the database: rows carry a keyed HMAC of the IMSI (the key lives in a file beside,
not inside, the store) plus the home country/province/city derived before hashing, which is all a
visitor-origin report needs. When the store cannot be reached, batches — already pseudonymised — wait
in a local spool (analytics/spool.py) and are replayed, in order, once it answers again.
"""

import logging
import hmac
import os
import secrets
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import clickhouse_connect
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from clickhouse_connect.driver.exceptions import ClickHouseError

from analytics.origin import Origins
from analytics.schema import (DATABASE, DEFAULT_TTL_DAYS, DEFAULT_TZ, MIGRATIONS, MIGRATIONS_TABLE, TABLES,
                              Layout, migrations_table_ddl)
from analytics.spool import Spool

__all__ = ["DATABASE", "Store", "StoreError", "StoreUnreachable"]


SUBJECT_CACHE_MAX = 5_000_000  # distinct IMSIs kept in the per-store lookup cache before it starts afresh
# Embedded engine: background merges run at the lowest CPU priority. Every batch spans the whole day's
# partition, so merges rewrite rows at ~3 s of CPU per million (about three inserts' worth) and, at equal
# priority, take the cores the inserts need during a traffic peak; niced, they use the cores the ingest
# leaves idle and catch up after the peak (parts_to_delay_insert still throttles a peak that never ends).
MERGE_NICE = 19


log = logging.getLogger("sigloc")

def _narrow(column: pa.DictionaryArray) -> pa.DictionaryArray:
    """The same dictionary array with the smallest index type its dictionary allows: a column of a few
    probes or event kinds then costs a byte a row instead of four to serialise, send and parse."""
    size = len(column.dictionary)
    index = pa.int8() if size <= 127 else pa.int16() if size <= 32767 else pa.int32()
    if column.indices.type == index:
        return column
    return pa.DictionaryArray.from_arrays(column.indices.cast(index), column.dictionary)


def _dict(column: pa.ChunkedArray | pa.Array, fill: str = "") -> pa.Array:
    """A string column dictionary-encoded: LowCardinality columns and repeated values load faster."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return _narrow(pc.dictionary_encode(pc.fill_null(column, fill)))


class StoreError(RuntimeError):
    """The store URL or schema is wrong, the store cannot be reached, or it refused a batch."""


class StoreUnreachable(StoreError):
    """The store does not answer (server down, embedded engine failing): batches go to the spool."""


def _pseudonym_key(path: Path) -> bytes:
    """The HMAC key: SIGLOC_PSEUDONYM_KEY (hex) if set, else a key file created once beside the store."""
    env = os.environ.get("SIGLOC_PSEUDONYM_KEY")
    if env:
        return bytes.fromhex(env)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return bytes.fromhex(path.read_text().strip())


PSEUDONYM_HEX = 32  # a pseudonym: the first 16 bytes of the IMSI's HMAC-SHA256, in hex


def _digit_keys(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Which ``values`` are digit strings of up to 17 digits (every IMSI), and those as distinct int64 keys:
    value and length, so that "05" is not "5"."""
    digits = pc.fill_null(pc.match_substring_regex(values, r"^[0-9]{1,17}$"), False).to_numpy(zero_copy_only=False)
    numbers = values.filter(digits)
    keys = pc.add(pc.multiply(pc.cast(numbers, pa.int64()), 32), pc.cast(pc.utf8_length(numbers), pa.int64()))
    return digits, keys.to_numpy(zero_copy_only=False)


def _grown(array: np.ndarray, capacity: int, used: int) -> np.ndarray:
    """``array`` (a row per IMSI code) with room for ``capacity`` rows, its first ``used`` kept."""
    out = np.zeros((capacity, *array.shape[1:]), array.dtype)
    out[:used] = array[:used]
    return out


class _Subjects:
    """One Origins' per-IMSI lookups, integer-coded: the HMAC and the home lookup run once per IMSI (until
    SUBJECT_CACHE_MAX IMSIs, then the store starts afresh), and a batch costs NumPy searches and takes over its
    distinct IMSIs: IMSIs are numbered through a sorted array of int64 keys (anything not a digit string, the
    null included, through a dict), pseudonyms are kept as bytes in a NumPy array, the homes as codes into small
    dictionaries (a few dozen provinces)."""

    HOME_COLUMNS = (("home_country", "country"), ("home_province", "province"), ("home_city", "city"),
                    ("roaming", "roaming"))

    def __init__(self, origins: Origins | None, pseudonym):
        self.origins = origins  # held, so that its id (the cache key) cannot be reused by another Origins
        self.pseudonym = pseudonym
        self.size = 0  # IMSIs numbered
        self.keys = np.zeros(0, np.int64)   # sorted digit keys (_digit_keys) ...
        self.key_codes = np.zeros(0, np.int64)  # ... and their codes
        self.others: dict[str | None, int] = {}  # code of each value that is not a digit string
        self.pseudonyms = np.zeros((1024, PSEUDONYM_HEX), np.uint8)  # [IMSI code] -> pseudonym bytes
        self.empty = np.zeros(1024, bool)  # [IMSI code] -> its pseudonym is "" (no IMSI)
        self.values = [{} for _ in self.HOME_COLUMNS]  # per home column: value -> its code
        self.homes = np.zeros((1024, len(self.HOME_COLUMNS)), np.int32)  # [IMSI code, column] -> value code

    def _codes(self, distinct: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """Each distinct value's code, unseen ones numbered next in order; and the positions numbered now."""
        codes = np.full(len(distinct), -1, np.int64)
        digits, keys = _digit_keys(distinct)
        numbers = np.flatnonzero(digits)
        at = np.minimum(np.searchsorted(self.keys, keys), max(len(self.keys) - 1, 0))
        if len(self.keys):
            found = self.keys[at] == keys
            codes[numbers[found]] = self.key_codes[at[found]]
        others = np.flatnonzero(~digits)
        if len(others):
            names = distinct.take(others).to_pylist()
            codes[others] = np.fromiter((self.others.get(name, -1) for name in names), np.int64, len(names))
        new = np.flatnonzero(codes < 0)
        if len(new):
            codes[new] = np.arange(self.size, self.size + len(new))
            self.size += len(new)
            fresh = codes[numbers] >= codes[new[0]]  # the digit keys numbered now
            order = np.argsort(keys[fresh])
            spots = np.searchsorted(self.keys, keys[fresh][order])
            self.keys = np.insert(self.keys, spots, keys[fresh][order])
            self.key_codes = np.insert(self.key_codes, spots, codes[numbers[fresh]][order])
            self.others.update((distinct[i].as_py(), int(codes[i])) for i in others[codes[others] >= codes[new[0]]])
        return codes, new

    def _learn(self, new: list[str | None]) -> None:
        """Pseudonyms and homes of the IMSIs just numbered (the last len(new) codes)."""
        first = self.size - len(new)
        if self.size > len(self.empty):
            self.pseudonyms, self.empty, self.homes = (_grown(a, 2 * self.size, first)
                                                       for a in (self.pseudonyms, self.empty, self.homes))
        pseudonyms = [self.pseudonym(x) for x in new]
        self.empty[first:self.size] = [not p for p in pseudonyms]
        self.pseudonyms[first:self.size][~self.empty[first:self.size]] = np.frombuffer(
            "".join(pseudonyms).encode(), np.uint8).reshape(-1, PSEUDONYM_HEX)
        if self.origins is None:
            return
        homes = [self.origins.home(x) for x in new]
        for c, ((_, attribute), values) in enumerate(zip(self.HOME_COLUMNS, self.values)):
            self.homes[first:self.size, c] = [values.setdefault(getattr(h, attribute), len(values)) for h in homes]

    def columns(self, distinct: pa.Array, rows: pa.Array) -> dict[str, pa.Array]:
        """The columns for rows that are ``distinct[rows[i]]``."""
        codes, new = self._codes(distinct)
        if len(new):
            self._learn(distinct.take(pa.array(new)).to_pylist())
        present = ~self.empty[codes]
        offsets = np.zeros(len(codes) + 1, np.int32)
        np.cumsum(present * PSEUDONYM_HEX, out=offsets[1:])
        text = pa.StringArray.from_buffers(len(codes), pa.py_buffer(offsets),
                                           pa.py_buffer(self.pseudonyms[codes[present]].tobytes()))
        out = {"subscriber": pa.DictionaryArray.from_arrays(rows, text)}
        if self.origins is not None:
            rows = rows.to_numpy(zero_copy_only=False)
            for c, ((name, _), values) in enumerate(zip(self.HOME_COLUMNS, self.values)):
                out[name] = _narrow(pa.DictionaryArray.from_arrays(
                    pa.array(self.homes[codes, c][rows]), pa.array(list(values), pa.string())))
        return out


class Store:
    """Open (and migrate) the store at ``url``.

    ``spool_dir`` defaults to ``<dir>.spool`` beside an embedded store and ``sigloc.spool`` for a server;
    ``cluster`` renders Replicated + Distributed tables; ``ttl_days`` overrides DEFAULT_TTL_DAYS per table
    (an open store whose TTL differs is altered); ``tz`` is the calendar of the daily aggregates.
    ``pipelined`` sends each batch from a worker thread while the caller prepares the next one (the
    engine releases the GIL); a batch is then stored once ``flush()`` (or a query, replay or close)
    returns, and an insert error surfaces there or at the next insert.
    """

    def __init__(self, url: str, key_file: str | Path | None = None, *, spool_dir: str | Path | None = None,
                 cluster: str | None = None, ttl_days: dict[str, int] | None = None, tz: str = DEFAULT_TZ,
                 pipelined: bool = False):
        parsed = urlparse(url)
        if parsed.scheme == "chdb":
            data_dir = Path((parsed.netloc + parsed.path) or "sigloc-data")
            self._connect_args = {"interface": "chdb", "path": str(data_dir),
                                  "chdb_options": {"os_threads_nice_value_merge_mutate": MERGE_NICE}}
            key_file = key_file or data_dir.parent / f"{data_dir.name}.pseudonym.key"
            spool_dir = spool_dir or data_dir.parent / f"{data_dir.name}.spool"
        elif parsed.scheme in ("http", "https"):
            self._connect_args = {"dsn": url}
            key_file = key_file or Path("sigloc.pseudonym.key")
            spool_dir = spool_dir or Path("sigloc.spool")
        else:
            raise StoreError(f"store URL {url!r}: use chdb://<dir> or http(s)://host:port")
        unknown = set(ttl_days or {}) - set(DEFAULT_TTL_DAYS)
        if unknown:
            raise StoreError(f"ttl_days: no table {', '.join(sorted(unknown))} (tables: {', '.join(DEFAULT_TTL_DAYS)})")
        self.url = url
        self.layout = Layout(DATABASE, cluster, {**DEFAULT_TTL_DAYS, **(ttl_days or {})}, tz)
        self.spool = Spool(spool_dir)
        self._key = _pseudonym_key(Path(key_file))
        self._subject_cache: dict[int, _Subjects] = {}  # id(origins) -> its lookups
        self.client = None
        self._sender = ThreadPoolExecutor(1, thread_name_prefix="sigloc-store") if pipelined else None
        self._in_flight: Future | None = None
        self.applied_migrations: list[int] = []  # versions this open applied (empty when already current)
        try:
            self._connect()
        except StoreUnreachable as err:  # inserts go to the spool meanwhile; the next insert, query or replay()
            log.warning("%s; spooling to %s until it answers", err, self.spool.directory)  # tries again

    # -- connection and schema ------------------------------------------------------------------------

    def _connect(self):
        if self.client is not None:
            return self.client
        try:
            if "path" in self._connect_args:
                Path(self._connect_args["path"]).mkdir(parents=True, exist_ok=True)
            self.client = clickhouse_connect.get_client(**self._connect_args)
        except (ClickHouseError, OSError) as err:  # clickhouse-connect raises many kinds; callers need one
            raise StoreUnreachable(f"cannot open store {self.url}: {err}") from err
        try:
            self._migrate()
            self._sync_ttl()
        except (StoreError, ClickHouseError) as err:
            kind = StoreError if self._reachable() else StoreUnreachable
            self._drop_client()
            if isinstance(err, StoreError):
                raise
            raise kind(f"store {self.url}: schema migration failed: {err}") from err
        return self.client

    def _drop_client(self) -> None:
        if self.client is not None:
            try:
                self.client.close()
            except ClickHouseError:
                pass  # already broken: that is why it is dropped
        self.client = None

    def _migrate(self) -> None:
        """Apply, in order and once each, the migrations the store has not seen; refuse a newer store."""
        db, on_cluster = self.layout.db, self.layout.on_cluster
        self.client.command(f"CREATE DATABASE IF NOT EXISTS {db}{on_cluster}")
        self.client.command(migrations_table_ddl(self.layout))
        applied = {int(v) for (v,) in self.client.query(f"SELECT version FROM {db}.{MIGRATIONS_TABLE}").result_rows}
        known = {v for v, _, _ in MIGRATIONS}
        if applied - known:
            raise StoreError(f"store {self.url} has schema version {max(applied)}, newer than this sigloc "
                             f"(knows up to {max(known)}); upgrade sigloc")
        self.applied_migrations = []
        for version, name, statements in MIGRATIONS:
            if version in applied:
                continue
            for ddl in statements(self.layout):
                self.client.command(ddl)
            self.client.insert(f"{db}.{MIGRATIONS_TABLE}", [[version, name]], column_names=["version", "name"])
            self.applied_migrations.append(version)

    def _sync_ttl(self) -> None:
        """Make each table's TTL the configured one."""
        for table in TABLES:
            days = self.layout.ttl_days_of(table)
            if days is None:
                continue
            engine = self.client.command(f"SELECT engine_full FROM system.tables WHERE database = '{self.layout.db}' "
                                         f"AND name = '{self.layout.local(table).split('.', 1)[1]}'")
            if f"+ toIntervalDay({int(days)})" not in str(engine):
                self.client.command(self.layout.ttl_alter(table))

    def refresh_aggregates(self) -> None:
        """Recompute the refreshable aggregates (dwell) now instead of at the next hourly refresh."""
        self.flush()
        client = self._connect()
        client.command(f"SYSTEM REFRESH VIEW {self.layout.db}.dwell_daily_mv")
        client.command(f"SYSTEM WAIT VIEW {self.layout.db}.dwell_daily_mv")

    # -- pseudonyms and homes -------------------------------------------------------------------------

    def pseudonym(self, imsi: str | None) -> str:
        if not imsi:
            return ""
        return hmac.digest(self._key, imsi.encode(), "sha256")[:PSEUDONYM_HEX // 2].hex()

    def _subjects(self, imsis: pa.ChunkedArray | pa.Array, origins: Origins | None) -> dict[str, pa.Array]:
        """Pseudonym and home columns for the rows' IMSIs, dictionary-encoded over the batch's own distinct IMSIs
        (a batch costs what its distinct IMSIs cost however many the store has seen)."""
        imsis = imsis.combine_chunks() if isinstance(imsis, pa.ChunkedArray) else imsis
        subjects = self._subject_cache.get(id(origins))
        if subjects is None or subjects.size > SUBJECT_CACHE_MAX:
            subjects = self._subject_cache[id(origins)] = _Subjects(origins, self.pseudonym)
        encoded = pc.dictionary_encode(imsis, null_encoding="encode")  # distinct IMSIs and each row's, one pass
        return subjects.columns(encoded.dictionary, encoded.indices)

    # -- ingest ---------------------------------------------------------------------------------------

    def insert_events(self, events: pa.Table, origins: Origins, token: str | None = None) -> int:
        if not len(events):
            return 0
        who = self._subjects(events["imsi"], origins)
        table = pa.table({
            "ts": events["ts"], "subscriber": who["subscriber"], "probe": _dict(events["probe"]),
            "iface": _dict(events["iface"]), "event": _dict(events["event"]),
            "cell": _dict(events["cell"]), "prev_cell": _dict(events["prev_cell"]),
            "home_country": who["home_country"], "home_province": who["home_province"],
            "home_city": who["home_city"], "roaming": who["roaming"],
            "imei_tac": _dict(pc.utf8_slice_codeunits(events["imei"], 0, 8)),
            "detail": pc.fill_null(events["detail"], ""), "cause": events["cause"],
        })
        self._submit("events", table, token)
        return len(table)

    def insert_triggers(self, triggers: pa.Table, origins: Origins, token: str | None = None) -> int:
        if not len(triggers):
            return 0
        who = self._subjects(triggers["imsi"], origins)
        table = pa.table({
            "ts": triggers["ts"], "subscriber": who["subscriber"], "fence": _dict(triggers["fence"]),
            "kind": _dict(triggers["kind"]), "cell": _dict(triggers["cell"]), "event": _dict(triggers["event"]),
            "home_country": who["home_country"], "home_province": who["home_province"],
            "home_city": who["home_city"],
            "dwell_s": (triggers["dwell_s"] if "dwell_s" in triggers.column_names
                        else pa.nulls(len(triggers), pa.float64())),
        })
        self._submit("triggers", table, token)
        return len(table)

    def insert_deliveries(self, deliveries: pa.Table, token: str | None = None) -> int:
        """The campaign engine's decision log (geofence.campaigns.DECISION_SCHEMA, ``subscriber`` already
        pseudonymised with this store's key); ``outlet`` and ``status`` columns are optional."""
        if not len(deliveries):
            return 0
        n = len(deliveries)
        text = lambda name: _dict(deliveries[name] if name in deliveries.column_names  # noqa: E731
                                  else pa.nulls(n, pa.string()))
        table = pa.table({
            "ts": deliveries["ts"], "subscriber": pc.fill_null(deliveries["subscriber"], ""),
            **{name: text(name) for name in ("campaign", "fence", "kind", "event", "cell", "outlet", "decision",
                                             "reason")},
            "send_at": deliveries["send_at"], "status": text("status"),
        })
        self._submit("deliveries", table, token)
        return len(table)

    def _send(self, name: str, table: pa.Table, token: str) -> None:
        """One insert; ClickHouse drops a block it has seen with the same token, in the table and in the
        aggregates its views feed, so a retried or replayed batch is never counted twice."""
        settings = {"insert_deduplication_token": token, "deduplicate_blocks_in_dependent_materialized_views": 1}
        if self.layout.cluster:
            settings["distributed_foreground_insert"] = 1  # the token must reach the shards with the rows
        self._connect().insert_arrow(f"{self.layout.db}.{name}", table, settings=settings)

    def _submit(self, name: str, table: pa.Table, token: str | None) -> None:
        """Insert now, or hand the batch to the sender once the previous one is done (one in flight keeps
        the order and bounds the memory)."""
        if self._sender is None:
            self._insert(name, table, token)
            return
        self.flush()
        self._in_flight = self._sender.submit(self._insert, name, table, token)

    def flush(self) -> None:
        """Wait for the batch in flight (pipelined mode) and raise its error, if any."""
        if self._in_flight is not None:
            done, self._in_flight = self._in_flight, None
            done.result()

    def _insert(self, name: str, table: pa.Table, token: str | None) -> None:
        """Insert one batch, or spool it when the store is unreachable. Spooled batches go first, so rows
        reach the store in the order they were handed over."""
        token = token or f"auto:{uuid.uuid4().hex}"  # a spooled batch must be replayable without doubling
        try:
            if len(self.spool):
                self.spool.replay(self._send)
            self._send(name, table, token)
        except (StoreError, ClickHouseError) as err:
            if self._reachable():
                raise StoreError(f"store {self.url} refused a batch for {name}: {err}") from err
            self._drop_client()
            self.spool.put(name, table, token)

    def _reachable(self) -> bool:
        try:
            return self.client is not None and bool(self.client.ping())
        except ClickHouseError:
            return False

    def replay(self) -> int:
        """Insert every spooled batch now; returns how many. Raises StoreError while still unreachable."""
        self.flush()
        try:
            return self.spool.replay(self._send)
        except (StoreError, ClickHouseError) as err:
            if not self._reachable():
                self._drop_client()
            files = self.spool.files()
            raise StoreError(f"store {self.url}: {len(files)} batch(es) stay spooled in {self.spool.directory}, "
                             f"replay stopped at {files[0].name if files else '?'}: {err}") from err

    # -- reading --------------------------------------------------------------------------------------

    def history(self, subscriber: str, campaign: str | None = None, limit: int = 500):
        """One subscriber's events, fence detections and campaign decisions, oldest first: the complaint-handling
        answer to "why did subscriber X get message Y" (``subscriber`` is the pseudonym, never the IMSI)."""
        where = "subscriber = {s:String}"
        params = {"s": subscriber, "n": limit}
        decisions = where + (" AND campaign = {c:String}" if campaign else "")
        if campaign:
            params["c"] = campaign
        return {
            "events": self.query(f"SELECT ts, event, cell, prev_cell, detail FROM {{db}}.events WHERE {where} "
                                 "ORDER BY ts LIMIT {n:UInt32}", params),
            "detections": self.query(f"SELECT ts, fence, kind, cell, event, dwell_s FROM {{db}}.triggers "
                                     f"WHERE {where} ORDER BY ts LIMIT {{n:UInt32}}", params),
            "decisions": self.query(f"SELECT ts, campaign, fence, kind, event, cell, decision, reason, send_at "
                                    f"FROM {{db}}.deliveries WHERE {decisions} ORDER BY ts LIMIT {{n:UInt32}}",
                                    params),
        }

    def query(self, sql: str, parameters: dict | None = None):
        """Rows of a query as a pandas DataFrame (reports are small aggregates); ``{db}`` names the database,
        ``{name:Type}`` placeholders are bound server-side from ``parameters``. Spooled batches are replayed
        first so a report sees every row handed to the store."""
        self.flush()
        if len(self.spool):
            self.replay()
        try:
            return self._connect().query_df(sql.replace("{db}", self.layout.db), parameters=parameters)
        except StoreError:
            raise
        except ClickHouseError as err:
            if self._reachable():
                raise
            self._drop_client()
            raise StoreError(f"store {self.url} unreachable: {err}") from err

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self._sender is not None:
                self._sender.shutdown()
            self._drop_client()
