"""The ClickHouse event store: one code path for the embedded engine and a ClickHouse server.

``chdb://<dir>`` opens the in-process chDB engine on a data directory (one process owns a directory);
``http(s)://host:port`` talks to a server. Both go through clickhouse-connect and take Arrow tables.
IMSIs never reach the database: rows carry a keyed HMAC of the IMSI (the key lives in a file beside,
not inside, the store) plus the home country/province/city derived before hashing, which is all a
visitor-origin report needs.
"""

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from urllib.parse import urlparse

import clickhouse_connect
import pyarrow as pa
import pyarrow.compute as pc

from analytics.origin import Origins

DATABASE = "sigloc"

EVENTS_DDL = """
CREATE TABLE IF NOT EXISTS {db}.events (
    ts DateTime64(6, 'UTC') COMMENT 'time of the message that revealed the behaviour',
    subscriber String COMMENT 'keyed HMAC-SHA256 of the IMSI (hex, 16 bytes); empty if unresolved',
    probe LowCardinality(String) COMMENT 'probe id',
    iface LowCardinality(String) COMMENT 'A or S1',
    event LowCardinality(String) COMMENT 'behaviour event kind (docs/events.md)',
    cell String COMMENT 'cell key mcc-mnc-lac-ci or mcc-mnc-eci',
    prev_cell String COMMENT 'previous cell key for cell_change',
    home_country LowCardinality(String) COMMENT 'country of the subscriber home network (from MCC)',
    home_province LowCardinality(String) COMMENT 'home province from number segments; empty if unknown',
    home_city LowCardinality(String) COMMENT 'home city from number segments; empty if unknown',
    roaming LowCardinality(String) COMMENT 'local, other_province, international or unknown',
    imei_tac String COMMENT 'first 8 IMEI digits (device model); empty if unknown',
    detail String COMMENT 'event detail: update type, number, call outcome, old->new IMEI TAC, roaming kind',
    cause Nullable(Int32) COMMENT 'protocol cause value when the event has one'
) ENGINE = MergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (ts, subscriber)
SETTINGS non_replicated_deduplication_window = 1000
"""

TRIGGERS_DDL = """
CREATE TABLE IF NOT EXISTS {db}.triggers (
    ts DateTime64(6, 'UTC') COMMENT 'time of the event that crossed the fence boundary',
    subscriber String COMMENT 'keyed HMAC-SHA256 of the IMSI (hex, 16 bytes)',
    fence LowCardinality(String) COMMENT 'fence name',
    kind LowCardinality(String) COMMENT 'enter or exit',
    cell String COMMENT 'cell key of the event; empty on power off',
    event LowCardinality(String) COMMENT 'behaviour event that revealed the move',
    home_country LowCardinality(String) COMMENT 'country of the subscriber home network',
    home_province LowCardinality(String) COMMENT 'home province from number segments',
    home_city LowCardinality(String) COMMENT 'home city from number segments'
) ENGINE = MergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (fence, ts, subscriber)
SETTINGS non_replicated_deduplication_window = 1000
"""


class StoreError(RuntimeError):
    """The store URL is wrong or the store cannot be reached."""


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


class Store:
    def __init__(self, url: str, key_file: str | Path | None = None):
        parsed = urlparse(url)
        try:
            if parsed.scheme == "chdb":
                data_dir = Path((parsed.netloc + parsed.path) or "sigloc-data")
                data_dir.mkdir(parents=True, exist_ok=True)
                self.client = clickhouse_connect.get_client(interface="chdb", path=str(data_dir))
                key_file = key_file or data_dir.parent / f"{data_dir.name}.pseudonym.key"
            elif parsed.scheme in ("http", "https"):
                self.client = clickhouse_connect.get_client(dsn=url)
                key_file = key_file or Path("sigloc.pseudonym.key")
            else:
                raise StoreError(f"store URL {url!r}: use chdb://<dir> or http(s)://host:port")
        except StoreError:
            raise
        except Exception as err:  # clickhouse-connect raises many kinds; the caller needs one
            raise StoreError(f"cannot open store {url}: {err}") from err
        self.url = url
        self._key = _pseudonym_key(Path(key_file))
        self.client.command(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
        self.client.command(EVENTS_DDL.format(db=DATABASE))
        self.client.command(TRIGGERS_DDL.format(db=DATABASE))

    def pseudonym(self, imsi: str | None) -> str:
        if not imsi:
            return ""
        return hmac.new(self._key, imsi.encode(), hashlib.sha256).hexdigest()[:32]

    def _subjects(self, imsis: pa.Array, origins: Origins) -> dict[str, pa.Array]:
        values = imsis.to_pylist()
        homes = [origins.home(x) for x in values]
        return {
            "subscriber": pa.array([self.pseudonym(x) for x in values], pa.string()),
            "home_country": pa.array([h.country for h in homes], pa.string()),
            "home_province": pa.array([h.province for h in homes], pa.string()),
            "home_city": pa.array([h.city for h in homes], pa.string()),
            "roaming": pa.array([h.roaming for h in homes], pa.string()),
        }

    def insert_events(self, events: pa.Table, origins: Origins, token: str | None = None) -> int:
        if not len(events):
            return 0
        who = self._subjects(events["imsi"], origins)
        imei = events["imei"].to_pylist()
        table = pa.table({
            "ts": events["ts"], "subscriber": who["subscriber"], "probe": events["probe"],
            "iface": events["iface"], "event": events["event"],
            "cell": pc.fill_null(events["cell"], ""), "prev_cell": pc.fill_null(events["prev_cell"], ""),
            "home_country": who["home_country"], "home_province": who["home_province"],
            "home_city": who["home_city"], "roaming": who["roaming"],
            "imei_tac": pa.array([(x or "")[:8] for x in imei], pa.string()),
            "detail": pc.fill_null(events["detail"], ""), "cause": events["cause"],
        })
        self._insert("events", table, token)
        return len(table)

    def insert_triggers(self, triggers: pa.Table, origins: Origins, token: str | None = None) -> int:
        if not len(triggers):
            return 0
        who = self._subjects(triggers["imsi"], origins)
        table = pa.table({
            "ts": triggers["ts"], "subscriber": who["subscriber"], "fence": triggers["fence"],
            "kind": triggers["kind"], "cell": pc.fill_null(triggers["cell"], ""), "event": triggers["event"],
            "home_country": who["home_country"], "home_province": who["home_province"],
            "home_city": who["home_city"],
        })
        self._insert("triggers", table, token)
        return len(table)

    def _insert(self, name: str, table: pa.Table, token: str | None) -> None:
        """Insert one batch; a retried batch with the same token is dropped by ClickHouse's dedup."""
        settings = {"insert_deduplication_token": token} if token else None
        self.client.insert_arrow(f"{DATABASE}.{name}", table, settings=settings)

    def query(self, sql: str, parameters: dict | None = None):
        """Rows of a query as a pandas DataFrame (reports are small aggregates); ``{db}`` names the database,
        ``{name:Type}`` placeholders are bound server-side from ``parameters``."""
        return self.client.query_df(sql.replace("{db}", DATABASE), parameters=parameters)

    def close(self) -> None:
        self.client.close()
