"""Fuzzing the decoders: ≥ 1 M mutated S1AP and BSSAP payloads through ``decode_batch``, zero uncaught exceptions.

    .venv/bin/python bench/bench_decoder_fuzz.py [CAPTURE ...] [--messages N]   # default: ../shared/pcaps + a city

The payloads of the sources (every shared capture and a simulated city, read with ``read_payloads``) are mutated
once per round, keeping their transport context (protocol, endpoints, SCCP connection and message type): bits
flipped, octets overwritten with edge values (0, 0x7F, 0x80, 0xFF, a length one more or less than what follows),
truncation, octets inserted, deleted or appended; a quarter of the edits land in the first 16 octets, where the
message type, the IE counts and the first length determinants are. Each round's mutants go through ``decode_batch`` in
batches as the transport stack would hand them over. A decode error is the expected outcome for damage (counted
by reason); anything else ``decode_batch`` raises is a crash: the payload that raised is written to the output
folder and the run exits with status 1. tests/test_s1ap.py, test_bssap.py and test_dtap.py keep smaller
Hypothesis runs in CI.
"""

import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from common import ROOT, captures, parser  # puts the project on sys.path

import numpy as np  # noqa: E402

from capture.errors import Anomalies  # noqa: E402
from capture.payloads import PayloadBatch  # noqa: E402
from capture.stack import read_payloads  # noqa: E402
from decoders.decode import DecodeState, decode_batch  # noqa: E402

SHARED = ROOT.parent / "shared" / "pcaps"
BATCH = 50_000  # mutants per decode_batch call


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One random edit of a payload (see the module docstring); mostly small, so that most mutants still get past
    the first octets and the decoders' deeper paths see odd values."""
    out = bytearray(data)
    n = len(out)
    at = (rng.randrange(min(n, 16)) if rng.random() < 0.25 else rng.randrange(n)) if n else 0
    edit = rng.choices(range(7), weights=(30, 15, 15, 10, 10, 10, 10))[0]
    if edit == 0 and n:
        out[at] ^= 1 << rng.randrange(8)
    elif edit == 1 and n:
        out[at] = rng.choice((0, 0x7F, 0x80, 0xFF, rng.randrange(256)))
    elif edit == 2 and n:
        out[at] = max(0, min(255, n - at - 1 + rng.choice((-1, 1))))  # a length that overshoots or stops short
    elif edit == 3:
        del out[rng.randrange(n + 1):]
    elif edit == 4:
        out.insert(at, rng.randrange(256))
    elif edit == 5 and n:
        del out[at]
    else:
        out += bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    return bytes(out)


def mutated(rng: random.Random, batch: PayloadBatch) -> PayloadBatch:
    """``batch`` with every payload mutated once, the transport context kept."""
    payloads = [mutate(rng, batch.payload(i)) for i in range(len(batch))]
    lengths = np.array([len(p) for p in payloads], np.int32)
    offsets = np.cumsum(lengths, dtype=np.int64) - lengths
    return replace(batch, offset=offsets, length=lengths, data=b"".join(payloads), anomalies=Anomalies())


def split(batch: PayloadBatch, size: int) -> list[PayloadBatch]:
    """Row slices of at most ``size`` payloads (with their bytes re-based)."""
    out = []
    for lo in range(0, len(batch), size):
        rows = slice(lo, lo + size)
        start = int(batch.offset[lo]) if len(batch.offset[rows]) else 0
        end = int(batch.offset[rows][-1] + batch.length[rows][-1]) if len(batch.offset[rows]) else 0
        out.append(replace(batch, frame=batch.frame[rows], ts=batch.ts[rows], proto=batch.proto[rows],
                           assoc=batch.assoc[rows], src=batch.src[rows], dst=batch.dst[rows],
                           conn=batch.conn[rows], sccp_type=batch.sccp_type[rows],
                           offset=batch.offset[rows] - start, length=batch.length[rows],
                           data=batch.data[start:end]))
    return out


def crash_of(batch: PayloadBatch) -> tuple[int, str]:
    """The first payload of a batch that makes ``decode_batch`` raise on its own, and the exception."""
    for i, one in enumerate(split(batch, 1)):
        try:
            decode_batch(one, DecodeState())
        except Exception as err:  # noqa: BLE001  (what the bench is looking for)
            return i, repr(err)
    return 0, "raised only with the whole batch"


def main() -> None:
    args = parser(__doc__)
    args.add_argument("--messages", type=int, default=1_000_000, help="mutated payloads, at least")
    args.add_argument("--seed", type=int, default=1)
    args = args.parse_args()
    shared = sorted(p for p in SHARED.glob("*") if p.suffix in (".pcap", ".pcapng", ".cap"))
    paths = shared + captures(args)
    sources = [part for path in paths for batch in read_payloads(path) if len(batch) for part in split(batch, BATCH)]
    payloads = sum(map(len, sources))
    rng = random.Random(args.seed)
    out = Path(tempfile.mkdtemp(prefix="sigloc-decoder-fuzz-"))
    state, crashes, total, rounds, seconds = DecodeState(), [], 0, 0, 0.0
    while total < args.messages:
        for source in sources:
            batch = mutated(rng, source)
            start = time.perf_counter()
            try:
                decode_batch(batch, state)
            except Exception:  # noqa: BLE001
                i, error = crash_of(batch)
                sample = out / f"crash_{len(crashes)}_proto{int(batch.proto[i])}.bin"
                sample.write_bytes(batch.payload(i))
                crashes.append(f"{sample.name}: {error}")
            seconds += time.perf_counter() - start
            total += len(batch)
        rounds += 1
    print(f"{total:,} mutated payloads ({rounds} rounds over {payloads:,} payloads of {len(paths)} captures); "
          f"{state.messages:,} message records; decode_batch {total / seconds:,.0f} payloads/s")
    reasons = Anomalies({reason: n for reason, n in state.anomalies.items() if n})
    print(f"decode errors, by reason ({sum(reasons.values()):,} in all, {len(reasons)} reasons); the 25 most common:")
    for reason, count in reasons.most_common(25):
        print(f"  {reason:<44} {count:>9,}")
    print(f"crashes: {len(crashes)} (samples in {out})")
    for line in crashes[:20]:
        print("  " + line)
    if crashes:
        sys.exit(1)


if __name__ == "__main__":
    main()
