"""The batch the transport stack hands to the decoders: signaling payloads with their transport context.

One ``PayloadBatch`` covers a block of frames. Payload bytes live in one buffer addressed by
``offset``/``length``, so a batch of a million messages is a handful of NumPy arrays, not a million
Python objects.
"""

from dataclasses import dataclass, field

import numpy as np

from capture.errors import Anomalies

PROTO_S1AP = 1   # S1AP PDU (SCTP PPID 18 or port 36412)
PROTO_BSSAP = 2  # BSSAP (BSSMAP or DTAP) carried in SCCP user data (SSN 254, or unknown SSN and BSSAP-shaped)
PROTO_BSSAP_LE = 3  # BSSAP-LE (TS 49.031, Lb interface BSC/MSC - SMLC) in SCCP user data (SSN 250/252)


@dataclass
class PayloadBatch:
    """Columnar signaling payloads, in capture order."""

    frame: np.ndarray      # uint32, 1-based frame number in the source
    ts: np.ndarray         # float64, epoch seconds
    proto: np.ndarray      # uint8, PROTO_S1AP, PROTO_BSSAP or PROTO_BSSAP_LE
    assoc: np.ndarray      # int32, index into ``associations`` (SCTP association, IPA TCP link)
    src: np.ndarray        # int32, index into ``endpoints``: the sender (IP:port or signalling point code)
    dst: np.ndarray        # int32, index into ``endpoints``: the receiver
    conn: np.ndarray       # int64, SCCP connection id (unique per run, never reused); -1 connectionless
    sccp_type: np.ndarray  # uint8, SCCP message type (capture.sccp, Q.713 §2.1) that carried the payload; 0 for S1AP
    offset: np.ndarray     # int64, start of the payload in ``data``
    length: np.ndarray     # int32, payload length
    data: bytes            # all payload bytes of the batch
    endpoints: list[str] = field(default_factory=list)     # e.g. "10.0.0.1:36412", "pc:1-2-3"
    associations: list[str] = field(default_factory=list)  # e.g. "10.0.0.1:36412-10.0.0.2:5000"
    anomalies: Anomalies = field(default_factory=Anomalies)  # what the transport stack skipped, by reason

    def __len__(self) -> int:
        return len(self.frame)

    def payload(self, i: int) -> bytes:
        start = int(self.offset[i])
        return self.data[start:start + int(self.length[i])]
