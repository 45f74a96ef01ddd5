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
from decoders.bssmap import decode_bssap, decode_bssap_le
from decoders.records import MESSAGE_SCHEMA, RecordBuilder, timestamps
from decoders.s1ap import decode_s1ap
from decoders.s1ap_fast import decode_s1ap_batch

_PROTO_NAMES = {PROTO_S1AP: "s1ap", PROTO_BSSAP: "bssmap", PROTO_BSSAP_LE: "bssmap-le"}
# The CR of an A-interface connection comes from the BSC, except for an incoming handover.
_CR_FROM_MSC = {"handover_request"}


@dataclass
class DecodeState:
    """What the decoder keeps between batches of one run."""

    anomalies: Anomalies = field(default_factory=Anomalies)
    bsc_side: dict[int, int] = field(default_factory=dict)  # SCCP connection id -> BSC endpoint index
    payloads: int = 0
    messages: int = 0
    fast: bool = True  # S1AP through the compiled decoders.s1ap_fast first; False: all through the Python reference


def decode_batch(batch: PayloadBatch, state: DecodeState) -> pa.Table:
    """Decode every payload of ``batch`` into MESSAGE_SCHEMA rows (several per payload when nested).

    With ``state.fast``, the S1AP payloads go through the compiled pass first and only those it leaves
    (count -1) through ``decode_s1ap``; the rows come out in payload order either way."""
    out = RecordBuilder(MESSAGE_SCHEMA)
    state.anomalies.update(batch.anomalies)
    data = batch.data
    counts = np.zeros(len(batch), np.int64)  # records per payload: the transport context columns are repeated by these
    columns = (batch.proto, batch.src, batch.dst, batch.conn, batch.sccp_type, batch.offset, batch.length)
    fast, todo = None, None
    if state.fast:
        s1ap = np.flatnonzero(batch.proto == PROTO_S1AP)
        if len(s1ap):
            fast_counts, fast_columns = decode_s1ap_batch(data, batch.offset[s1ap], batch.length[s1ap])
            done = s1ap[fast_counts >= 0]
            counts[done] = fast_counts[fast_counts >= 0]
            todo = np.ones(len(batch), bool)
            todo[done] = False
            todo = np.flatnonzero(todo)
            columns = tuple(c[todo] for c in columns)
            fast = done, fast_columns
    python_counts = []
    add_count, add_records, count_err = python_counts.append, out.extend, state.anomalies.count
    # Plain Python lists once per batch: indexing NumPy arrays per payload would cost more than the decoding.
    for proto, src, dst, conn, sccp_type, start, length in zip(*(c.tolist() for c in columns)):
        payload = data[start:start + length]
        try:
            if proto == PROTO_S1AP:
                records = decode_s1ap(payload)
            elif proto == PROTO_BSSAP or proto == PROTO_BSSAP_LE:
                records = _decode_bssap(payload, proto, src, dst, conn, sccp_type, state)
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
    if fast is None:
        table = out.table(given)
    else:
        table = _merge(out.table(), todo, *fast, counts, given)
    errors = table["error"]
    if errors.null_count < len(errors):  # each partly decoded message counts as an anomaly of its reason
        counted = pc.value_counts(errors.drop_null())
        for reason, n in zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist()):
            if reason:
                state.anomalies[reason] += n
    state.messages += len(table)
    return table


def _merge(python: pa.Table, todo: np.ndarray, done: np.ndarray, fast: dict[str, pa.Array], counts: np.ndarray,
           given: dict[str, pa.Array]) -> pa.Table:
    """The Python path's rows (payloads ``todo``) and the compiled path's (payloads ``done``) in payload order."""
    first_row = np.cumsum(counts) - counts

    def destinations(payloads: np.ndarray) -> np.ndarray:
        n = counts[payloads]
        within = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        return np.repeat(first_row[payloads], n) + within

    rows, python_rows, python_at, fast_at = int(counts.sum()), len(python), destinations(todo), destinations(done)
    order = np.empty(rows, np.int64)
    order[python_at] = np.arange(python_rows)
    order[fast_at] = np.arange(python_rows, rows)
    # A column only one side fills is that side's values spread out (nulls at the other side's rows): one take.
    python_only, fast_only = np.full(rows, -1, np.int64), np.full(rows, -1, np.int64)
    python_only[python_at] = np.arange(python_rows)
    fast_only[fast_at] = np.arange(rows - python_rows)
    spread = {side: pa.array(index, mask=index < 0) for side, index in (("python", python_only), ("fast", fast_only))}
    order = pa.array(order)
    arrays = []
    for f in MESSAGE_SCHEMA:
        if f.name in given:
            arrays.append(given[f.name])
            continue
        slow_values, fast_values = python[f.name].combine_chunks(), fast.get(f.name)
        if fast_values is None or fast_values.null_count == len(fast_values):
            arrays.append(pa.nulls(rows, f.type) if slow_values.null_count == python_rows
                          else slow_values.take(spread["python"]))
        elif slow_values.null_count == python_rows:
            arrays.append(fast_values.take(spread["fast"]))
        else:
            arrays.append(pa.concat_arrays([slow_values, fast_values]).take(order))
    return pa.Table.from_arrays(arrays, schema=MESSAGE_SCHEMA)


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
