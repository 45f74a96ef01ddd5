"""Partial messages waiting for their missing pieces (IP fragments, SCCP XUDT segments): one expiry mechanism.

A partial message is dropped, and counted under its layer's reason, when it has waited ``timeout`` seconds of
capture time, when ``limit`` others are open and room is needed (the oldest goes), when a new message takes its
key, or when the capture ends before it completes.
"""

from capture.errors import Anomalies

SWEEP = 1.0  # seconds of capture time between looks for expired entries


class Pending(dict):
    """key -> partial message (any object with a ``first`` capture time), in arrival order."""

    def __init__(self, anomalies: Anomalies, reason: str, timeout: float, limit: int):
        super().__init__()
        self.anomalies, self.reason, self.timeout, self.limit = anomalies, reason, timeout, limit
        self._swept = 0.0

    def expire(self, ts: float) -> None:
        """Drop what has waited too long; cheap when called for every piece."""
        if self and ts - self._swept > SWEEP:
            self._swept = ts
            for key in [k for k, entry in self.items() if ts - entry.first > self.timeout]:
                self.abandon(key)

    def start(self, key, entry):
        """Open ``entry`` under ``key``, abandoning whatever held the key, or the oldest entry when full."""
        if key in self:
            self.abandon(key)
        elif len(self) >= self.limit:
            self.abandon(next(iter(self)))
        self[key] = entry
        return entry

    def abandon(self, key) -> None:
        del self[key]
        self.anomalies[self.reason] += 1

    def finish(self) -> None:
        """End of capture: what is still open will never complete."""
        self.anomalies[self.reason] += len(self)
        self.clear()
