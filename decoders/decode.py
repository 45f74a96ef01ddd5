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


def decode_batch(batch: PayloadBatch, state: DecodeState) -> pa.Table:
    """Decode every payload of ``batch`` into MESSAGE_SCHEMA rows (several per payload when nested)."""
    out = RecordBuilder(MESSAGE_SCHEMA)
    state.anomalies.update(batch.anomalies)
    data = batch.data
    counts = []  # records per payload: the transport context columns are the batch's, repeated by these
    add_count, add_records, count_err = counts.append, out.extend, state.anomalies.count
    columns = (batch.proto, batch.src, batch.dst, batch.conn, batch.sccp_type, batch.offset, batch.length)
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
    rows = np.repeat(np.arange(len(counts)), counts)
    conn = batch.conn[rows]
    table = out.table({
        "frame": pa.array(batch.frame[rows], pa.uint32()),
        "ts": timestamps(batch.ts[rows]),
        "iface": pc.if_else(pa.array(batch.proto[rows] == PROTO_S1AP), "S1", "A"),
        "assoc": pa.array(batch.assoc[rows], pa.int32()),
        "conn": pa.array(conn, pa.int64(), mask=conn < 0),
    })
    errors = table["error"]
    if errors.null_count < len(errors):  # each partly decoded message counts as an anomaly of its reason
        counted = pc.value_counts(errors.drop_null())
        for reason, n in zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist()):
            if reason:
                state.anomalies[reason] += n
    state.messages += len(table)
    return table


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
