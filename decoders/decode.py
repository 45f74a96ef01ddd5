"""From payload batches to message tables: dispatch each signaling payload to its decoder.

The transport stack says which payload is S1AP and which is BSSAP; this module adds the per-run facts
a single message cannot know (which side of an SCCP connection is the BSC, hence DTAP direction) and
turns every decoder failure into a counted anomaly plus, for damaged messages, a record with ``error``.
"""

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa

from capture.errors import Anomalies, DecodeError, Unsupported
from capture.payloads import PROTO_BSSAP, PROTO_BSSAP_LE, PROTO_S1AP, PayloadBatch
from capture.sccp import SCCP_CR
from capture.stack import read_payloads
from decoders.bssmap import decode_bssap, decode_bssap_le
from decoders.records import MESSAGE_SCHEMA, RecordBuilder
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
    for i in range(len(batch)):
        proto = int(batch.proto[i])
        conn = int(batch.conn[i])
        context = {
            "frame": int(batch.frame[i]),
            "ts": float(batch.ts[i]),
            "iface": "S1" if proto == PROTO_S1AP else "A",
            "assoc": int(batch.assoc[i]),
            "conn": conn if conn >= 0 else None,
        }
        try:
            if proto == PROTO_S1AP:
                records = decode_s1ap(batch.payload(i))
            elif proto in (PROTO_BSSAP, PROTO_BSSAP_LE):
                records = _decode_bssap(batch, i, conn, state)
            else:
                continue
        except Unsupported as err:
            state.anomalies.count(err)
            continue
        except DecodeError as err:
            state.anomalies.count(err)
            records = [{"proto": _PROTO_NAMES[proto], "msg": "malformed", "error": err.reason}]
        for record in records:
            if record.get("error"):
                state.anomalies[record["error"]] += 1
            out.append({**record, **context})
    state.messages += len(out)
    return out.table()


def _decode_bssap(batch: PayloadBatch, i: int, conn: int, state: DecodeState) -> list[dict]:
    src, dst = int(batch.src[i]), int(batch.dst[i])
    bsc = state.bsc_side.get(conn)
    decode = decode_bssap_le if int(batch.proto[i]) == PROTO_BSSAP_LE else decode_bssap
    records = decode(batch.payload(i), None if bsc is None else src == bsc)
    if conn >= 0 and bsc is None and int(batch.sccp_type[i]) == SCCP_CR and records:
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
