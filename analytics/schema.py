"""The store's tables and their versioned migrations (documented in docs/schema.md).

Raw tables mirror the record types (``ts`` and the subscriber key first, every column commented);
materialised views keep the aggregates the footfall and origin reports read, so a report over months
scans thousands of aggregate rows instead of billions of events. Each migration is a list of DDL
statements rendered for one node (MergeTree) or, when a cluster name is configured, for a cluster
(ReplicatedMergeTree ``*_local`` tables ON CLUSTER, plus a Distributed table under the plain name, so
readers and writers use the same names either way).
"""

from dataclasses import dataclass, field, replace

import pyarrow as pa

from geofence.campaigns import DECISION_SCHEMA

DATABASE = "sigloc"
DEFAULT_TZ = "Asia/Shanghai"  # the clients' calendar: daily aggregates cut days at local midnight

# Days kept per table; raw events are the bulk and the most sensitive, aggregates are what clients buy.
DEFAULT_TTL_DAYS = {
    "events": 30, "triggers": 180, "deliveries": 400,
    "footfall_cell_hourly": 730, "footfall_fence_hourly": 730, "visitors_daily": 730, "origin_daily": 730,
}
# Lower bounds (seconds) of the dwell histogram buckets: < 15 min, 15-30 min, 30-60 min, 1-2 h, > 2 h.
DWELL_BUCKETS_S = (0, 900, 1800, 3600, 7200)

# What the campaign engine decided per candidate (geofence.campaigns.DECISION_SCHEMA: subscriber already
# pseudonymised with the store's key), plus the nearest outlet and the outbox status where known.
DELIVERY_SCHEMA = pa.schema([*DECISION_SCHEMA, ("outlet", pa.string()), ("status", pa.string())])

SUBSCRIBER = ("subscriber", "String", "keyed HMAC-SHA256 of the IMSI (hex, 16 bytes); empty if unresolved")
HOME = [
    ("home_country", "LowCardinality(String)", "country of the subscriber home network (from MCC)"),
    ("home_province", "LowCardinality(String)", "home province from number segments; empty if unknown"),
    ("home_city", "LowCardinality(String)", "home city from number segments; empty if unknown"),
]
# Retention of raw rows counts from the later of event time and storage time: a capture from last year
# analysed today is kept for the full period instead of expiring on insert.
INSERTED_AT = ("inserted_at", "DateTime('UTC') DEFAULT now()", "when the row was stored (retention counts from "
               "the later of ts and this)")
RAW_TTL = "greatest(toDateTime(ts), inserted_at)"
UNIQ = "AggregateFunction(uniq, String)"
COUNT = "SimpleAggregateFunction(sum, UInt64)"


@dataclass(frozen=True)
class Table:
    """One table: columns (name, type, comment) and the MergeTree layout that serves its queries."""

    name: str
    columns: list[tuple[str, str, str]]
    order_by: str
    partition_by: str
    ttl: str | None = None          # the DateTime expression the TTL counts from
    engine: str = "MergeTree"       # MergeTree or AggregatingMergeTree
    shard_by: str = "rand()"        # Distributed sharding key in cluster mode
    comment: str = ""


EVENTS = Table("events", [
    ("ts", "DateTime64(6, 'UTC')", "time of the message that revealed the behaviour"),
    SUBSCRIBER,
    ("probe", "LowCardinality(String)", "probe id"),
    ("iface", "LowCardinality(String)", "A or S1"),
    ("event", "LowCardinality(String)", "behaviour event kind (docs/events.md)"),
    ("cell", "LowCardinality(String)", "cell key mcc-mnc-lac-ci or mcc-mnc-eci"),
    ("prev_cell", "LowCardinality(String)", "previous cell key for cell_change"),
    *HOME,
    ("roaming", "LowCardinality(String)", "local, other_province, international or unknown"),
    ("imei_tac", "LowCardinality(String)", "first 8 IMEI digits (device model); empty if unknown"),
    ("detail", "String", "event detail: update type, number, call outcome, old->new IMEI TAC, roaming kind"),
    ("cause", "Nullable(Int32)", "protocol cause value when the event has one"),
    INSERTED_AT,
], order_by="(cell, ts)", partition_by="toYYYYMMDD(ts)", ttl=RAW_TTL,
    shard_by="cityHash64(subscriber)", comment="behaviour events, one row per event")

TRIGGERS = Table("triggers", [
    ("ts", "DateTime64(6, 'UTC')", "time of the event that crossed the fence boundary"),
    SUBSCRIBER,
    ("fence", "LowCardinality(String)", "fence name"),
    ("kind", "LowCardinality(String)", "a Detect word: enter, exit, inside, dwell or pass_through"),
    ("cell", "LowCardinality(String)", "cell key of the event; empty on power off"),
    ("event", "LowCardinality(String)", "behaviour event that revealed the move"),
    *HOME,
    ("dwell_s", "Nullable(Float64)", "seconds since enter on exit, dwell and pass_through; null otherwise"),
    INSERTED_AT,
], order_by="(fence, ts, subscriber)", partition_by="toYYYYMMDD(ts)", ttl=RAW_TTL,
    shard_by="cityHash64(subscriber)", comment="fence detections")

DELIVERIES = Table("deliveries", [
    ("ts", "DateTime64(6, 'UTC')", "time the campaign engine decided on the trigger"),
    SUBSCRIBER,
    ("campaign", "LowCardinality(String)", "campaign id"),
    ("fence", "LowCardinality(String)", "fence whose trigger started the delivery"),
    ("kind", "LowCardinality(String)", "detection word (enter, exit, dwell, ...); empty for a behaviour event"),
    ("event", "LowCardinality(String)", "behaviour event behind the candidate (docs/events.md)"),
    ("cell", "LowCardinality(String)", "cell key of the detection or event"),
    ("outlet", "LowCardinality(String)", "nearest outlet (business hall) to the cell; empty if unknown"),
    ("decision", "LowCardinality(String)", "geofence.policy Decision: allowed, blocked or control"),
    ("reason", "LowCardinality(String)", "geofence.policy Reason: none, opt_out, quiet_hours, ...; why not sent"),
    ("send_at", "Nullable(DateTime64(6, 'UTC'))", "when the message goes out; null unless allowed"),
    ("status", "LowCardinality(String)", "outbox status (appliance.delivery): pending, delivered or dead"),
    INSERTED_AT,
], order_by="(campaign, ts, subscriber)", partition_by="toYYYYMM(ts)", ttl=RAW_TTL,
    shard_by="cityHash64(subscriber)", comment="campaign decisions: every candidate a rule accepted, and why it "
    "was sent, held back or blocked")

FOOTFALL_CELL_HOURLY = Table("footfall_cell_hourly", [
    ("hour", "DateTime('UTC')", "start of the hour (UTC)"),
    ("cell", "LowCardinality(String)", "cell key"),
    ("visitors", UNIQ, "uniq state of subscribers seen in the cell in the hour (uniqMerge)"),
    ("events", COUNT, "events in the cell in the hour"),
], order_by="(cell, hour)", partition_by="toYYYYMM(hour)", ttl="toDateTime(hour)", engine="AggregatingMergeTree",
    comment="hourly footfall per cell, from events with a resolved subscriber")

FOOTFALL_FENCE_HOURLY = Table("footfall_fence_hourly", [
    ("hour", "DateTime('UTC')", "start of the hour (UTC)"),
    ("fence", "LowCardinality(String)", "fence name"),
    ("visitors", UNIQ, "uniq state of subscribers that entered the fence in the hour"),
    ("enters", COUNT, "enter triggers in the hour"),
    ("exits", COUNT, "exit triggers in the hour"),
], order_by="(fence, hour)", partition_by="toYYYYMM(hour)", ttl="toDateTime(hour)", engine="AggregatingMergeTree",
    comment="hourly footfall per fence, from triggers")

VISITORS_DAILY = Table("visitors_daily", [
    ("day", "Date", "local calendar day (store time zone)"),
    ("fence", "LowCardinality(String)", "fence name"),
    ("visitors", UNIQ, "uniq state of subscribers that entered the fence that day"),
], order_by="(fence, day)", partition_by="toYYYYMM(day)", ttl="toDateTime(day)", engine="AggregatingMergeTree",
    comment="unique visitors per fence and day")

ORIGIN_DAILY = Table("origin_daily", [
    ("day", "Date", "local calendar day (store time zone)"),
    ("fence", "LowCardinality(String)", "fence name"),
    *HOME,
    ("visitors", UNIQ, "uniq state of subscribers of this home that entered the fence that day"),
], order_by="(fence, day, home_country, home_province, home_city)", partition_by="toYYYYMM(day)", ttl="toDateTime(day)",
    engine="AggregatingMergeTree", comment="visitor origin per fence and day")

DWELL_DAILY = Table("dwell_daily", [
    ("day", "Date", "local calendar day of the enter"),
    ("fence", "LowCardinality(String)", "fence name"),
    ("bucket_s", "UInt32", "lower bound of the dwell bucket in seconds (0, 900, 1800, 3600, 7200)"),
    ("visits", "UInt64", "closed visits (enter followed by exit) in the bucket"),
], order_by="(fence, day, bucket_s)", partition_by="tuple()",
    comment="dwell histogram per fence and day, recomputed by a refreshable view")

TABLES = [EVENTS, TRIGGERS, DELIVERIES, FOOTFALL_CELL_HOURLY, FOOTFALL_FENCE_HOURLY, VISITORS_DAILY, ORIGIN_DAILY,
          DWELL_DAILY]

# Aggregate views: (target table, source table, SELECT over the source). ``{tz}`` is the store time zone.
VIEWS = [
    (FOOTFALL_CELL_HOURLY, EVENTS, """
SELECT toStartOfHour(ts) AS hour, cell, uniqState(subscriber) AS visitors, toUInt64(count()) AS events
FROM {src} WHERE subscriber != '' AND cell != '' GROUP BY hour, cell"""),
    (FOOTFALL_FENCE_HOURLY, TRIGGERS, """
SELECT toStartOfHour(ts) AS hour, fence, uniqStateIf(subscriber, kind = 'enter') AS visitors,
       toUInt64(countIf(kind = 'enter')) AS enters, toUInt64(countIf(kind = 'exit')) AS exits
FROM {src} GROUP BY hour, fence"""),
    (VISITORS_DAILY, TRIGGERS, """
SELECT toDate(ts, '{tz}') AS day, fence, uniqState(subscriber) AS visitors
FROM {src} WHERE kind = 'enter' GROUP BY day, fence"""),
    (ORIGIN_DAILY, TRIGGERS, """
SELECT toDate(ts, '{tz}') AS day, fence, home_country, home_province, home_city, uniqState(subscriber) AS visitors
FROM {src} WHERE kind = 'enter' GROUP BY day, fence, home_country, home_province, home_city"""),
]

_BUCKET = ", ".join(f"d < {hi}, {lo}" for lo, hi in zip(DWELL_BUCKETS_S, DWELL_BUCKETS_S[1:]))
# A visit is an enter up to the subscriber's next enter/exit trigger at the same fence when that is an exit
# (the pairing the footfall report uses); open visits have no dwell yet and are left out.
DWELL_SELECT = """
SELECT toDate(t_in, '{tz}') AS day, fence, toUInt32(multiIf(%s, %d)) AS bucket_s, toUInt64(count()) AS visits
FROM (
    SELECT fence, kind, ts AS t_in, leadInFrame(kind, 1, '') OVER w AS k_next,
           toFloat64(leadInFrame(ts, 1, ts) OVER w - ts) AS d
    FROM {src} WHERE kind IN ('enter', 'exit')
    WINDOW w AS (PARTITION BY fence, subscriber ORDER BY ts ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING)
)
WHERE kind = 'enter' AND k_next = 'exit'
GROUP BY day, fence, bucket_s""" % (_BUCKET, DWELL_BUCKETS_S[-1])


@dataclass
class Layout:
    """How DDL is rendered: database, optional cluster, TTL days per table, time zone of daily aggregates."""

    db: str = DATABASE
    cluster: str | None = None
    ttl_days: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_TTL_DAYS))
    tz: str = DEFAULT_TZ

    @property
    def on_cluster(self) -> str:
        return f" ON CLUSTER `{self.cluster}`" if self.cluster else ""

    def local(self, table: Table) -> str:
        """The table rows are written to: ``<name>_local`` on each shard in cluster mode."""
        return f"{self.db}.{table.name}_local" if self.cluster else f"{self.db}.{table.name}"

    def ttl_days_of(self, table: Table) -> int | None:
        return None if table.ttl is None else self.ttl_days.get(table.name)

    def ttl_alter(self, table: Table) -> str:
        """TTL is a store option, not part of a migration: the store sets it after migrating, and again
        whenever the configured days change."""
        return (f"ALTER TABLE {self.local(table)}{self.on_cluster} MODIFY TTL {table.ttl} "
                f"+ INTERVAL {int(self.ttl_days_of(table))} DAY")

    def engine(self, table: Table) -> str:
        if not self.cluster:
            return table.engine
        # {shard} and {replica} are server macros; the path is unique per table.
        return f"Replicated{table.engine}('/clickhouse/tables/{{shard}}/{self.db}/{table.name}', '{{replica}}')"

    def create(self, table: Table, per_node: bool = False) -> list[str]:
        """CREATE for one table; ``per_node`` keeps a plain MergeTree under the plain name on every node."""
        columns = ",\n".join(f"    {n} {t} COMMENT '{c}'" for n, t, c in table.columns)
        clustered = self.cluster and not per_node
        name = self.local(table) if clustered else f"{self.db}.{table.name}"
        engine = self.engine(table) if clustered else table.engine
        # Dedup of retried inserts needs a block-hash window on non-replicated tables (replicated ones have it).
        settings = "" if clustered else "\nSETTINGS non_replicated_deduplication_window = 1000"
        ddl = [f"CREATE TABLE IF NOT EXISTS {name}{self.on_cluster} (\n{columns}\n) ENGINE = {engine}"
               f"\nPARTITION BY {table.partition_by}\nORDER BY {table.order_by}{settings}"
               f"\nCOMMENT '{table.comment}'"]
        if clustered:
            ddl.append(f"CREATE TABLE IF NOT EXISTS {self.db}.{table.name}{self.on_cluster} AS {name} "
                       f"ENGINE = Distributed(`{self.cluster}`, {self.db}, {table.name}_local, {table.shard_by})")
        return ddl

    def view(self, target: Table, source: Table, select: str) -> list[str]:
        """A materialised view on each shard's local source into its local target, then a backfill of rows
        already stored (single node only: on a cluster each shard would need its own INSERT)."""
        body = select.format(src=self.local(source), tz=self.tz)
        ddl = [f"CREATE MATERIALIZED VIEW IF NOT EXISTS {self.db}.{target.name}_mv{self.on_cluster} "
               f"TO {self.local(target)} AS{body}"]
        if not self.cluster:
            ddl.append(f"INSERT INTO {self.local(target)}{body}")
        return ddl

    def dwell_view(self) -> list[str]:
        """Dwell needs enter and exit together, which an insert-time view never sees, so a refreshable view
        recomputes the histogram from all triggers every hour; on a cluster every node keeps its own copy."""
        return self.create(DWELL_DAILY, per_node=True) + [
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {self.db}.dwell_daily_mv{self.on_cluster} "
            f"REFRESH EVERY 1 HOUR TO {self.db}.dwell_daily AS"
            f"{DWELL_SELECT.format(src=f'{self.db}.triggers', tz=self.tz)}"]


MIGRATIONS_TABLE = "schema_migrations"


# Columns added to the raw tables after version 1 (which has the columns of stores made before migrations).
ADDED_IN_5 = [(EVENTS, ["inserted_at"]), (TRIGGERS, ["dwell_s", "inserted_at"])]


def _raw(layout: Layout) -> list[str]:
    return [s for table, later in ADDED_IN_5
            for s in layout.create(replace(table, columns=[c for c in table.columns if c[0] not in later]))]


def _deliveries(layout: Layout) -> list[str]:
    return layout.create(DELIVERIES)


def _aggregates(layout: Layout) -> list[str]:
    ddl = []
    for target, source, select in VIEWS:
        ddl += layout.create(target) + layout.view(target, source, select)
    return ddl


def _dwell(layout: Layout) -> list[str]:
    return layout.dwell_view()


def _added_columns(layout: Layout) -> list[str]:
    ddl = []
    for table, names in ADDED_IN_5:
        targets = [layout.local(table)] + ([f"{layout.db}.{table.name}"] if layout.cluster else [])
        for name, kind, comment in (c for c in table.columns if c[0] in names):
            ddl += [f"ALTER TABLE {t}{layout.on_cluster} ADD COLUMN IF NOT EXISTS {name} {kind} COMMENT '{comment}'"
                    for t in targets]
    return ddl


# Merge about twenty parts at a time instead of ClickHouse's five: at a million events a second in
# million-row parts a day's partition gets thousands of parts, and each row is then rewritten about
# log20 instead of log5 times by background merges, which otherwise take as much CPU as the inserts.
EVENTS_MERGE_SELECTOR_BASE = 20


def _events_merge_wider(layout: Layout) -> list[str]:
    return [f"ALTER TABLE {layout.local(EVENTS)}{layout.on_cluster} "
            f"MODIFY SETTING merge_selector_base = {EVENTS_MERGE_SELECTOR_BASE}"]


# (version, name, statements). Append only: an applied migration is never edited, a change is a new one.
MIGRATIONS = [
    (1, "raw events and triggers", _raw),
    (2, "deliveries to the campaign engine", _deliveries),
    (3, "hourly and daily footfall and origin aggregates", _aggregates),
    (4, "dwell histogram per fence and day", _dwell),
    (5, "dwell_s of triggers; inserted_at of events and triggers", _added_columns),
    (6, "events merge about twenty parts at a time", _events_merge_wider),
]


def migrations_table_ddl(layout: Layout) -> str:
    engine = (f"ReplicatedMergeTree('/clickhouse/tables/{layout.db}/{MIGRATIONS_TABLE}', '{{replica}}')"
              if layout.cluster else "MergeTree")
    return (f"CREATE TABLE IF NOT EXISTS {layout.db}.{MIGRATIONS_TABLE}{layout.on_cluster} (\n"
            f"    version UInt32 COMMENT 'migration number (analytics/schema.py MIGRATIONS)',\n"
            f"    name String COMMENT 'what the migration does',\n"
            f"    applied_at DateTime('UTC') DEFAULT now() COMMENT 'when it was applied'\n"
            f") ENGINE = {engine} ORDER BY version")
