"""The error hierarchy every parser in sigloc raises, and the anomaly counter that records them.

Per-packet problems never escape a batch: a parser raises one of these, the batch loop catches it,
counts it under a dotted reason (``sctp.chunk_too_small``) and moves on (STYLE.md rule 5).
"""

from collections import Counter


class DecodeError(Exception):
    """A packet or message could not be decoded; ``reason`` is the dotted counter name."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class Truncated(DecodeError):
    """The bytes end before a length or fixed field says they should."""


class Malformed(DecodeError):
    """A field holds a value the specification does not allow."""


class Unsupported(DecodeError):
    """Valid, but not something sigloc decodes (yet); kept distinct so it is not counted as damage."""


class Anomalies(Counter):
    """Counts of skipped or damaged input by dotted reason, e.g. ``{"sctp.chunk_too_small": 3}``."""

    def count(self, err: DecodeError) -> None:
        self[err.reason] += 1
