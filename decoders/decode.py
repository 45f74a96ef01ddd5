"""From payload batches to message tables: dispatch each signaling payload to its decoder.

The transport stack says which payload is S1AP and which is BSSAP; this module adds the per-run facts
a single message cannot know (which side of an SCCP connection is the BSC, hence DTAP direction) and
turns every decoder failure into a counted anomaly plus, for damaged messages, a record with ``error``.
"""

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from capture.errors import Anomalies, DecodeError, Unsupported
from capture.payloads import PROTO_BSSAP, PROTO_BSSAP_LE, PROTO_S1AP, PayloadBatch
from capture.sccp import SCCP_CR
from capture.stack import read_payloads
from decoders.bssap_fast import MESSAGES as BSSAP_FAST_MESSAGES
from decoders.bssap_fast import Directions, decode_bssap_batch
from decoders.bssmap import decode_bssap, decode_bssap_le
from decoders.records import MESSAGE_SCHEMA, RecordBuilder, timestamps
from decoders.s1ap import decode_s1ap
from decoders.s1ap_fast import decode_s1ap_batch

_PROTO_NAMES = {PROTO_S1AP: "s1ap", PROTO_BSSAP: "bssmap", PROTO_BSSAP_LE: "bssmap-le"}
# The CR of an A-interface connection comes from the BSC, except for an incoming handover.
_CR_FROM_MSC = {"handover_request"}
_CR_FROM_MSC_FAST = [BSSAP_FAST_MESSAGES.index(name) for name in _CR_FROM_MSC]


@dataclass
class DecodeState:
    """What the decoder keeps between batches of one run."""

    anomalies: Anomalies = field(default_factory=Anomalies)
    bsc_side: dict[int, int] = field(default_factory=dict)  # SCCP connection id -> BSC endpoint index
    payloads: int = 0
    messages: int = 0
    fast: bool = True  # S1AP, BSSAP through decoders.s1ap_fast, bssap_fast first; False: all through the Python


def decode_batch(batch: PayloadBatch, state: DecodeState) -> pa.Table:
    """Decode every payload of ``batch`` into MESSAGE_SCHEMA rows (several per payload when nested).

    With ``state.fast``, the S1AP and BSSAP payloads go through the compiled passes first and only those they leave
    (count -1) through ``decode_s1ap`` / ``decode_bssap``; the rows come out in payload order either way."""
    out = RecordBuilder(MESSAGE_SCHEMA)
    state.anomalies.update(batch.anomalies)
    data = batch.data
    # records per payload (-1: not decoded yet); the transport context columns are repeated by these
    counts = np.full(len(batch), -1, np.int64)
    columns = (np.arange(len(batch)), batch.proto, batch.src, batch.dst, batch.conn, batch.sccp_type, batch.offset,
               batch.length)
    compiled, connections, todo = [], None, None  # compiled: (payloads taken, their content columns) of each pass
    if state.fast:
        s1ap, bssap = np.flatnonzero(batch.proto == PROTO_S1AP), np.flatnonzero(batch.proto == PROTO_BSSAP)
        if len(s1ap):
            fast_counts, fast_columns = decode_s1ap_batch(data, batch.offset[s1ap], batch.length[s1ap])
            compiled.append((s1ap[fast_counts >= 0], fast_columns))
            counts[s1ap] = fast_counts
        if len(bssap):
            fast_counts, bssap_columns, directions = decode_bssap_batch(data, batch.offset[bssap], batch.length[bssap])
            done = bssap[fast_counts >= 0]
            compiled.append((done, bssap_columns))
            counts[bssap] = fast_counts
            connections = _Connections(batch, done, counts[done], directions, state.bsc_side)
        if compiled:
            todo = np.flatnonzero(counts < 0)
            columns = tuple(c[todo] for c in columns)
    python_counts = []
    add_count, add_records, count_err = python_counts.append, out.extend, state.anomalies.count
    # Plain Python lists once per batch: indexing NumPy arrays per payload would cost more than the decoding.
    for index, proto, src, dst, conn, sccp_type, start, length in zip(*(c.tolist() for c in columns)):
        payload = data[start:start + length]
        try:
            if proto == PROTO_S1AP:
                records = decode_s1ap(payload)
            elif proto == PROTO_BSSAP or proto == PROTO_BSSAP_LE:
                if connections is None or conn < 0:
                    records = _decode_bssap(payload, proto, src, dst, conn, sccp_type, state)
                else:
                    connections.before(index)
                    known = conn in state.bsc_side
                    records = _decode_bssap(payload, proto, src, dst, conn, sccp_type, state)
                    if not known and conn in state.bsc_side:
                        connections.set_at[conn] = index
            else:
                add_count(0)
                continue
        except Unsupported as err:
            count_err(err)
            add_count(0)
            continue
        except DecodeError as err:
            count_err(err)
            records = [{"proto": _PROTO_NAMES[proto], "msg": "malformed", "error": err.reason}]
        add_count(len(records))
        add_records(records)
    if todo is None:
        counts[:] = python_counts
    else:
        counts[todo] = python_counts
    rows = np.repeat(np.arange(len(counts)), counts)
    conn = batch.conn[rows]
    given = {
        "frame": pa.array(batch.frame[rows], pa.uint32()),
        "ts": timestamps(batch.ts[rows]),
        "iface": pc.if_else(pa.array(batch.proto[rows] == PROTO_S1AP), "S1", "A"),
        "assoc": pa.array(batch.assoc[rows], pa.int32()),
        "conn": pa.array(conn, pa.int64(), mask=conn < 0),
    }
    if todo is None:
        table = out.table(given)
    else:
        if connections is not None:
            bssap_columns["uplink"] = connections.uplink(batch)
        python = out.table()
        table = _merge([(todo, {name: python[name].combine_chunks() for name in python.column_names}), *compiled],
                       counts, given)
    errors = table["error"]
    if errors.null_count < len(errors):  # each partly decoded message counts as an anomaly of its reason
        counted = pc.value_counts(errors.drop_null())
        for reason, n in zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist()):
            if reason:
                state.anomalies[reason] += n
    state.messages += len(table)
    return table


def _merge(sources: list[tuple[np.ndarray, dict[str, pa.Array]]], counts: np.ndarray,
           given: dict[str, pa.Array]) -> pa.Table:
    """The rows of each source (the payloads it decoded, their content columns) in payload order."""
    first_row = np.cumsum(counts) - counts
    rows = int(counts.sum())

    def destinations(payloads: np.ndarray) -> np.ndarray:
        n = counts[payloads]
        within = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        return np.repeat(first_row[payloads], n) + within

    places = [destinations(payloads) for payloads, _ in sources]
    order, start = np.empty(rows, np.int64), 0
    for at in places:
        order[at] = np.arange(start, start + len(at))
        start += len(at)
    order = pa.array(order)
    spreads = {}

    def spread(i: int) -> pa.Array:
        """Take indices that put source i's values at its rows and nulls at the others'."""
        if i not in spreads:
            index = np.full(rows, -1, np.int64)
            index[places[i]] = np.arange(len(places[i]))
            spreads[i] = pa.array(index, mask=index < 0)
        return spreads[i]

    arrays = []
    for f in MESSAGE_SCHEMA:
        if f.name in given:
            arrays.append(given[f.name])
            continue
        values = [columns.get(f.name) for _, columns in sources]
        filled = [i for i, v in enumerate(values) if v is not None and v.null_count < len(v)]
        if not filled:
            arrays.append(pa.nulls(rows, f.type))
        elif len(filled) == 1:  # a column only one source fills: its values spread out, one take
            arrays.append(values[filled[0]].take(spread(filled[0])))
        else:
            arrays.append(pa.concat_arrays([pa.nulls(len(at), f.type) if v is None else v
                                            for v, at in zip(values, places)]).take(order))
    return pa.Table.from_arrays(arrays, schema=MESSAGE_SCHEMA)


class _Connections:
    """The compiled BSSAP records' ``uplink``: their SCCP connection's BSC side (``DecodeState.bsc_side``) as it
    stands at each payload, which a CR earlier in the batch, compiled or not, may have set.

    The Python loop calls ``before`` ahead of each connection-oriented BSSAP payload it decodes, so that the compiled
    CRs before it have set their connections, and notes in ``set_at`` the connections its own CRs set; ``uplink``
    then gives every compiled record the direction ``_decode_bssap`` would have."""

    def __init__(self, batch: PayloadBatch, payloads: np.ndarray, counts: np.ndarray, directions: Directions,
                 bsc_side: dict[int, int]):
        self.payloads, self.counts, self.directions, self.bsc_side = payloads, counts, directions, bsc_side
        self.set_at: dict[int, int] = {}  # connection -> the payload of this batch whose CR set its BSC side
        conn = batch.conn[payloads]
        cr = (conn >= 0) & (batch.sccp_type[payloads] == SCCP_CR)
        from_msc = np.isin(directions.msg[np.cumsum(counts) - counts], _CR_FROM_MSC_FAST)
        bsc = np.where(from_msc, batch.dst[payloads], batch.src[payloads])
        self._crs = list(zip(payloads[cr].tolist(), conn[cr].tolist(), bsc[cr].tolist()))
        self._next = 0

    def before(self, index: int) -> None:
        """Let the compiled CRs before payload ``index`` set their connection's BSC side, as _decode_bssap does."""
        crs, i, bsc_side = self._crs, self._next, self.bsc_side
        while i < len(crs) and crs[i][0] < index:
            at, conn, bsc = crs[i]
            if conn not in bsc_side:
                bsc_side[conn] = bsc
                self.set_at[conn] = at
            i += 1
        self._next = i

    def uplink(self, batch: PayloadBatch) -> pa.Array:
        """The compiled records' uplink column, once the whole batch has been through ``before``."""
        self.before(len(batch))
        payloads, directions = self.payloads, self.directions
        conn = batch.conn[payloads]
        bsc, set_at = np.full(len(payloads), -1, np.int64), np.full(len(payloads), -1, np.int64)
        linked = np.flatnonzero(conn >= 0)
        if len(linked):
            unique, inverse = np.unique(conn[linked], return_inverse=True)
            keys = unique.tolist()
            bsc[linked] = np.array([self.bsc_side.get(c, -1) for c in keys], np.int64)[inverse]
            set_at[linked] = np.array([self.set_at.get(c, -1) for c in keys], np.int64)[inverse]
        # Known before the payload: it takes the connection's direction; the CR that sets it: its records without one.
        known, sets = (bsc >= 0) & (set_at < payloads), (bsc >= 0) & (set_at == payloads)
        rows = np.repeat(np.arange(len(payloads)), self.counts)
        default = directions.uplink
        uplink = np.where((known[rows] & directions.from_connection) | (sets[rows] & (default < 0)),
                          (batch.src[payloads] == bsc)[rows], default)
        return pa.array(uplink == 1, mask=uplink < 0)


def _decode_bssap(payload: bytes, proto: int, src: int, dst: int, conn: int, sccp_type: int,
                  state: DecodeState) -> list[dict]:
    bsc = state.bsc_side.get(conn)
    decode = decode_bssap_le if proto == PROTO_BSSAP_LE else decode_bssap
    records = decode(payload, None if bsc is None else src == bsc)
    if conn >= 0 and bsc is None and sccp_type == SCCP_CR and records:
        bsc = dst if records[0]["msg"] in _CR_FROM_MSC else src
        state.bsc_side[conn] = bsc
        for record in records:  # the CR's own messages get their direction now
            if record.get("uplink") is None:
                record["uplink"] = src == bsc
    return records


def decode_batches(batches: Iterable[PayloadBatch], state: DecodeState | None = None) -> Iterator[pa.Table]:
    """Decode payload batches from any source (a file, a live capture) as they come."""
    state = state or DecodeState()
    for batch in batches:
        state.payloads += len(batch)
        yield decode_batch(batch, state)


def decode_file(path: str | os.PathLike, state: DecodeState | None = None,
                mtp3_standard: str = "auto") -> Iterator[pa.Table]:
    """Decode a capture file (or a directory of rotated files) batch by batch."""
    yield from decode_batches(read_payloads(path, mtp3_standard=mtp3_standard), state)
