"""Decoder throughput on the same payloads: sigloc's decoders against pycrate, in the same run.

    .venv/bin/python bench/bench_decoders.py [CAPTURE ...]   # default: a simulated city of 2000 subscribers

The payloads are taken from the capture once (``read_payloads``), then each decoder is timed alone:
S1AP PDUs with their NAS (ours: per PDU with ``decode_s1ap``, and as one batch through the compiled
``decode_s1ap_batch`` plus ``decode_s1ap`` for the PDUs it leaves) against pycrate's S1AP ``from_aper`` +
``get_val`` (S1AP only, NAS left as bytes: the peer does less work); the layer-3 messages of DTAP against
pycrate's ``parse_NAS_MO`` (then ``parse_NAS_MT`` when that fails); BSSAP payloads whole (BSSMAP and DTAP; per
payload with ``decode_bssap``, and as one batch through the compiled ``decode_bssap_batch`` plus ``decode_bssap``
for the payloads it leaves), against pycrate's ``TS48008_BSSMAP.BSSMAP`` for BSSMAP (the layer 3 a Complete Layer
3 Information carries left as bytes: the peer does less work) and its NAS parsers for DTAP.
"""


import numpy as np
from common import best_of, captures, parser  # puts the project on sys.path

from capture.errors import DecodeError  # noqa: E402
from capture.payloads import PROTO_BSSAP, PROTO_S1AP  # noqa: E402
from capture.stack import read_payloads  # noqa: E402
from decoders.bssap_fast import decode_bssap_batch  # noqa: E402
from decoders.bssmap import decode_bssap  # noqa: E402
from decoders.dtap import decode_l3  # noqa: E402
from decoders.s1ap import decode_s1ap  # noqa: E402
from decoders.s1ap_fast import decode_s1ap_batch  # noqa: E402


def rate(items, fn, runs: int) -> tuple[float, int]:
    """Items per second of the best of ``runs`` passes, and how many items raised in the last pass."""
    def one_pass() -> int:
        failed = 0
        for item in items:
            try:
                fn(item)
            except Exception:  # noqa: BLE001  (a peer's failure is counted, not fatal)
                failed += 1
        return failed

    seconds, failed = best_of(runs, one_pass)
    return (len(items) / seconds if seconds else 0.0), failed


def batch_rate(pdus: list[bytes], compiled, reference, runs: int) -> tuple[float, int]:
    """PDUs per second of a compiled pass (``decode_s1ap_batch``, ``decode_bssap_batch``) over all PDUs as one
    buffer, the Python ``reference`` taking what it leaves, and how many of those raised a DecodeError (counted
    by decode_batch) in the last pass."""
    data = b"".join(pdus)
    lengths = np.array([len(p) for p in pdus], np.int64)
    starts = np.cumsum(lengths) - lengths

    def one_pass() -> int:
        counts = compiled(data, starts, lengths)[0]
        failed = 0
        for i in np.flatnonzero(counts < 0).tolist():
            try:
                reference(pdus[i])
            except DecodeError:
                failed += 1
        return failed

    seconds, failed = best_of(runs, one_pass)
    return (len(pdus) / seconds if seconds else 0.0), failed


def payloads(paths):
    s1ap, bssap = [], []
    for path in paths:
        for batch in read_payloads(path):
            for i in range(len(batch)):
                if batch.proto[i] == PROTO_S1AP:
                    s1ap.append(batch.payload(i))
                elif batch.proto[i] == PROTO_BSSAP:
                    bssap.append((batch.payload(i), None))
    return s1ap, bssap


def main() -> None:
    args = parser(__doc__).parse_args()
    s1ap, bssap = payloads(captures(args))
    l3 = [p[3:] for p, _ in bssap if p[0] == 1]  # DTAP: discriminator, DLCI, length, then the L3 message

    from pycrate_asn1dir import S1AP  # the peer, only here
    from pycrate_mobile.NAS import parse_NAS_MO, parse_NAS_MT
    from pycrate_mobile.TS48008_BSSMAP import BSSMAP
    pdu = S1AP.S1AP_PDU_Descriptions.S1AP_PDU

    def pycrate_s1ap(data):
        pdu.from_aper(data)
        return pdu.get_val()

    def pycrate_l3(data):
        """The payload alone does not say its direction: try the phone's side, then the network's."""
        if parse_NAS_MO(data)[1] and parse_NAS_MT(data)[1]:
            raise ValueError("undecodable")

    def pycrate_bssap(data):
        """BSSMAP (discriminator 0) after its length octet; DTAP after discriminator, DLCI and length."""
        if data[0] == 0:
            BSSMAP().from_bytes(data[2:])
        else:
            pycrate_l3(data[3:])

    pycrate_s1ap_rate = rate(s1ap, pycrate_s1ap, args.runs)
    pycrate_bssap_rate = rate([p for p, _ in bssap], pycrate_bssap, args.runs)
    rows = [
        ("S1AP + NAS-EPS", len(s1ap), rate(s1ap, decode_s1ap, args.runs), pycrate_s1ap_rate),
        ("S1AP + NAS-EPS, compiled", len(s1ap), batch_rate(s1ap, decode_s1ap_batch, decode_s1ap, args.runs),
         pycrate_s1ap_rate),
        ("DTAP layer 3", len(l3), rate(l3, lambda m: decode_l3(m, None), args.runs), rate(l3, pycrate_l3, args.runs)),
        ("BSSAP (BSSMAP + DTAP)", len(bssap), rate(bssap, lambda m: decode_bssap(*m), args.runs), pycrate_bssap_rate),
        ("BSSAP, compiled", len(bssap), batch_rate([p for p, _ in bssap], decode_bssap_batch,
                                                   lambda p: decode_bssap(p, None), args.runs), pycrate_bssap_rate),
    ]
    print(f"{'decoder':<26} {'messages':>9} {'sigloc msg/s':>13} {'pycrate msg/s':>14} {'ratio':>7}  peer failures")
    for name, n, (ours, _), peer in (row for row in rows if row[1]):
        print(f"{name:<26} {n:>9} {ours:>13,.0f} {peer[0]:>14,.0f} {ours / peer[0]:>6.0f}×  {peer[1]}")


if __name__ == "__main__":
    main()
