"""The two record types every stage passes as Arrow batches: decoded messages and behaviour events.

Defined once here and documented field by field in ``docs/events.md`` (a test keeps the two in step).
Decoders return plain dicts keyed by these column names; ``RecordBuilder`` turns a run of them into
one Arrow table, so nothing downstream handles per-message Python objects.
"""

import itertools
from enum import StrEnum

import numpy as np
import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")

MESSAGE_SCHEMA = pa.schema([
    ("frame", pa.uint32()),        # 1-based frame number in the capture
    ("ts", TS),                    # capture time of the frame
    ("iface", pa.string()),        # "A" or "S1"
    ("proto", pa.string()),        # bssmap, dtap, s1ap, nas-eps, bssmap-le
    ("msg", pa.string()),          # message name, snake_case spec name
    ("uplink", pa.bool_()),        # True phone/BSC/eNodeB -> core, False core -> RAN, null unknown
    ("imsi", pa.string()),
    ("imei", pa.string()),
    ("imeisv", pa.string()),
    ("tmsi", pa.uint32()),         # TMSI/P-TMSI (A interface)
    ("m_tmsi", pa.uint32()),       # M-TMSI from a GUTI or S-TMSI (S1)
    ("mmec", pa.int16()),          # MME code of the GUTI / S-TMSI
    ("mcc", pa.string()),
    ("mnc", pa.string()),
    ("lac", pa.int32()),
    ("ci", pa.int32()),
    ("tac", pa.int32()),
    ("eci", pa.int32()),           # 28-bit E-UTRAN cell identity
    ("mme_ue_id", pa.int64()),     # MME-UE-S1AP-ID
    ("enb_ue_id", pa.int64()),     # eNB-UE-S1AP-ID
    ("assoc", pa.int32()),         # transport association (SCTP association / IPA link) index
    ("conn", pa.int64()),          # SCCP connection id, unique within a run; null if connectionless
    ("cause", pa.int32()),
    ("cause_group", pa.string()),  # s1ap: radioNetwork/transport/nas/protocol/misc; else emm, mm, cc, bssmap, rp, cp, lcs
    ("update_type", pa.string()),  # LU/attach/TAU/detach/CM service type, e.g. imsi_attach, periodic, switch_off
    ("called", pa.string()),       # called party / SMS destination digits
    ("calling", pa.string()),      # calling party digits
    ("ciphered", pa.bool_()),      # NAS payload ciphered: content not decoded
    ("error", pa.string()),        # decode error reason (dotted) when the message was only partly decoded
])

MESSAGE_FIELDS = frozenset(MESSAGE_SCHEMA.names)


class EventKind(StrEnum):
    """Behaviour event names, spelled the same in code, ClickHouse, the API and the docs."""

    POWER_ON = "power_on"
    POWER_OFF = "power_off"
    LOCATION_UPDATE = "location_update"
    CELL_CHANGE = "cell_change"
    MO_CALL = "mo_call"
    MT_CALL = "mt_call"
    CALL_OUTCOME = "call_outcome"
    SMS_MO = "sms_mo"
    IMEI_CHANGE = "imei_change"
    ROAMING_IN = "roaming_in"
    ROAMING_OUT = "roaming_out"
    FAST_CELL_SWITCHING = "fast_cell_switching"
    LONG_STAY = "long_stay"
    SILENT_POWER_ON = "silent_power_on"
    FREQUENT_ON_OFF = "frequent_on_off"


EVENT_SCHEMA = pa.schema([
    ("ts", TS),                    # time of the message that revealed the behaviour
    ("probe", pa.string()),        # probe id from the configuration
    ("iface", pa.string()),        # "A" or "S1"
    ("event", pa.string()),        # an EventKind value
    ("imsi", pa.string()),         # resolved subscriber; null if never resolved
    ("imei", pa.string()),         # last IMEI seen for the subscriber
    ("tmsi", pa.uint32()),
    ("m_tmsi", pa.uint32()),
    ("mcc", pa.string()),          # serving network of the cell
    ("mnc", pa.string()),
    ("lac", pa.int32()),
    ("tac", pa.int32()),
    ("ci", pa.int32()),
    ("eci", pa.int32()),
    ("cell", pa.string()),         # cell key: "mcc-mnc-lac-ci" (2G) or "mcc-mnc-eci" (4G)
    ("prev_cell", pa.string()),    # previous cell key of the subscriber (cell_change)
    ("cause", pa.int32()),
    ("detail", pa.string()),       # event-specific: update type, number, call outcome, TACs (docs/events.md)
    ("frame", pa.uint32()),        # frame of the message that revealed the behaviour
])


def cell_key(mcc: str | None, mnc: str | None, lac: int | None = None, ci: int | None = None,
             eci: int | None = None) -> str | None:
    """The single cell key used everywhere (events, catalogue, fences): CGI or ECGI in dashed form."""
    if eci is not None:
        return f"{mcc}-{mnc}-{eci}"
    if lac is not None and ci is not None:
        return f"{mcc}-{mnc}-{lac}-{ci}"
    return None


class RecordBuilder:
    """Accumulates records (dicts keyed by column name) and emits them as one Arrow table.

    Records are kept as they are until ``table``, which scatters each record's own items into per-column
    lists: a record carries a handful of the schema's fields, so this touches only those, and a column
    no record set becomes an all-null array without a Python list. Appended dicts must not change after.
    """

    def __init__(self, schema: pa.Schema):
        self.schema = schema
        self._records: list[dict] = []

    def append(self, record: dict) -> None:
        self._records.append(record)

    def extend(self, records: list[dict]) -> None:
        self._records += records

    def __len__(self) -> int:
        return len(self._records)

    def table(self, given: dict[str, pa.Array] | None = None) -> pa.Table:
        """Everything appended so far as one table; the builder starts empty again.

        ``given`` holds whole columns built by the caller (one value per record, e.g. a batch's frame
        numbers); they replace whatever the records say for those names."""
        records, self._records = self._records, []
        rows = len(records)
        columns: dict[str, list] = {}  # a plain dict: the interpreter's fast path for subscripts
        for row, record in enumerate(records):
            for name, value in record.items():
                try:
                    columns[name][row] = value
                except KeyError:  # the first record with this field: its column, all None so far
                    columns[name] = [None] * rows
                    columns[name][row] = value
        given = given or {}
        arrays = [given[f.name] if f.name in given
                  else _column(columns[f.name], f.type) if f.name in columns
                  else pa.nulls(rows, f.type) for f in self.schema]
        return pa.Table.from_arrays(arrays, schema=self.schema)


def _column(values: list, type_: pa.DataType) -> pa.Array:
    """Timestamps arrive as float epoch seconds; everything else is already its Arrow type."""
    if type_ == TS:
        micros = [None if v is None else round(v * 1_000_000) for v in values]
        return pa.array(micros, type=pa.int64()).cast(TS)
    return pa.array(values, type=type_)


def timestamps(seconds: np.ndarray) -> pa.Array:
    """Float epoch seconds as a TS column, rounded to the microsecond exactly as ``_column`` does."""
    return pa.array(np.rint(seconds * 1_000_000).astype(np.int64)).cast(TS)


def value_codes(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list]:
    """A string column (of a Table or a RecordBatch) as codes into its distinct values, in order of first
    appearance (a null is the last value, None)."""
    encoded = (column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column).dictionary_encode()
    values = encoded.dictionary.to_pylist()
    return encoded.indices.fill_null(len(values)).to_numpy(zero_copy_only=False), [*values, None]


def key_codes(index: dict, keys: list) -> tuple[np.ndarray, np.ndarray]:
    """Each of the distinct ``keys``' code in ``index`` (key -> code), unseen ones numbered next, in order:
    one dict probe per key. Returns the codes and the positions of the keys numbered now."""
    codes = np.fromiter(map(index.get, keys, itertools.repeat(-1)), np.int64, len(keys))
    new = np.flatnonzero(codes < 0)
    if len(new):
        first = len(index)
        codes[new] = np.arange(first, first + len(new))
        index.update(zip([keys[i] for i in new.tolist()], range(first, first + len(new))))
    return codes, new
