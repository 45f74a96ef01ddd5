"""Counters and gauges for Prometheus: what an engineer watches on the probe (``/metrics``, text format 0.0.4).

A handful of labelled counters do not need a client library; each metric is declared once with its help text,
and the pipeline threads increment them under one lock.
"""

import threading
from collections import defaultdict

# name → (type, help); the names are the Prometheus contract, so they live in one place.
METRICS: dict[str, tuple[str, str]] = {
    "sigloc_packets_total": ("counter", "Signaling payloads taken from captures"),
    "sigloc_messages_total": ("counter", "Signaling messages decoded"),
    "sigloc_decode_errors_total": ("counter", "Packets or messages skipped, by reason"),
    "sigloc_capture_drops_total": ("counter", "Frames the kernel dropped before capture"),
    "sigloc_events_total": ("counter", "Behaviour events derived, by kind"),
    "sigloc_detections_total": ("counter", "Fence detections, by kind"),
    "sigloc_triggers_total": ("counter", "Campaign triggers, by decision"),
    "sigloc_files_total": ("counter", "Capture files processed from watched directories"),
    "sigloc_spool_depth": ("gauge", "Batches waiting in the spool for ClickHouse"),
    "sigloc_outbox": ("gauge", "Trigger records in an outbox (sink: webhook for the main one, kafka), by status: pending, delivered, dead"),
    "sigloc_lag_seconds": ("gauge", "Wall-clock time minus the newest event time processed"),
}


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
                     for k, v in sorted(labels.items()))
    return "{" + inner + "}"


class Metrics:
    def __init__(self):
        self._values: dict[str, dict[tuple, float]] = defaultdict(dict)
        self._lock = threading.Lock()

    def inc(self, name: str, value: float = 1, **labels: str) -> None:
        if name not in METRICS:
            raise KeyError(f"undeclared metric {name}")
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._values[name]
            series[key] = series.get(key, 0) + value

    def set(self, name: str, value: float, **labels: str) -> None:
        if name not in METRICS:
            raise KeyError(f"undeclared metric {name}")
        with self._lock:
            self._values[name][tuple(sorted(labels.items()))] = value

    def value(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._values[name].get(tuple(sorted(labels.items())), 0)

    def total(self, name: str) -> float:
        with self._lock:
            return sum(self._values[name].values())

    def render(self) -> str:
        lines = []
        with self._lock:
            for name, (kind, text) in METRICS.items():
                lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
                for key, value in sorted(self._values.get(name, {}).items()) or [((), 0)]:
                    lines.append(f"{name}{_labels(dict(key))} {value:g}")
        return "\n".join(lines) + "\n"
