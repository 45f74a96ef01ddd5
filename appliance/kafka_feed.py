"""The trigger feed on Kafka: every outbox record published once per trigger, keyed by subscriber, at least once.

The webhook outbox has one status per record, so Kafka keeps its own outbox (``outbox-kafka.db`` beside
``outbox.db``) that *follows* the main one by sequence number: each pass copies the records added since the last
copied ``seq`` (kept in ``outbox-kafka.cursor``; a crash between copy and cursor write copies again, and the ids
make that a no-op), then publishes what is due. Each record thus reaches both sinks, each with its own tries and
dead letters, and the SSE stream and counts still read the main outbox.

A message is the webhook's exact body as value, the subscriber pseudonym as key (so one subscriber's triggers stay
in order on one partition; ``murmur2_random`` puts a key where Java clients would), and the webhook's
``Idempotency-Key`` and ``X-Sigloc-Signature`` as headers, so a receiver verifies both feeds the same way. The
producer is idempotent with ``acks=all``; a record is marked delivered only from its delivery report, and a
report with an error counts a try with the same backoff and dead-letter rule as a webhook POST. While the cluster
is unreachable only the oldest due record is tried each pass (as the webhook sender stops at the first connection
error), so an outage does not burn every record's retry budget.
"""

import json
import logging
import os
import random
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

from appliance.delivery import Entry, Outbox, retry_at, sign

log = logging.getLogger("sigloc.kafka")

# Set by sigloc so at-least-once and per-key order hold; a kafka_config entry may not change them.
RESERVED = ("bootstrap.servers", "enable.idempotence", "acks", "partitioner", "message.timeout.ms",
            "on_delivery", "error_cb", "logger")
_BATCH = 500


def check_config(delivery: dict[str, Any]) -> tuple[str, str] | None:
    """The first problem with the Kafka keys of ``[delivery]`` as (key, message), or None; run at config load."""
    if not delivery.get("kafka_brokers"):
        return None
    try:
        import confluent_kafka  # noqa: F401, PLC0415  (optional extra)
    except ImportError:
        return "kafka_brokers", "Kafka is configured but confluent-kafka is not installed (pip install 'sigloc[kafka]')"
    for name, value in delivery.get("kafka_config", {}).items():
        if name in RESERVED:
            return f"kafka_config.{name}", "is set by sigloc (idempotent producer, acks=all) and may not be changed"
        if isinstance(value, dict | list):
            return f"kafka_config.{name}", f"expected a string, number or boolean, got {type(value).__name__}"
    return None


class KafkaSender:
    """Publishes the records of ``source`` (the main outbox) to one topic; ``run`` loops, ``deliver_due`` one pass."""

    def __init__(self, source: Outbox, state_dir: str | Path, brokers: str, topic: str, secret: bytes,
                 max_tries: int = 8, backoff_s: float = 1.0, max_backoff_s: float = 600.0, timeout_s: float = 10.0,
                 config: dict[str, Any] | None = None, rng: random.Random | None = None):
        state_dir = Path(state_dir)
        self.source, self.topic, self.secret = source, topic, secret
        self.outbox = Outbox(state_dir / "outbox-kafka.db")
        self.cursor_path = state_dir / "outbox-kafka.cursor"
        self.max_tries, self.backoff_s, self.max_backoff_s, self.timeout_s = max_tries, backoff_s, max_backoff_s, \
            timeout_s
        self.rng = rng or random.Random()
        self.sent = self.errors = 0
        self._conf = {**(config or {}), "bootstrap.servers": brokers, "enable.idempotence": True, "acks": "all",
                      "partitioner": "murmur2_random", "message.timeout.ms": int(timeout_s * 1000),
                      "error_cb": self._on_error, "logger": log}
        self._conf.setdefault("request.timeout.ms", min(30000, int(timeout_s * 1000)))
        self._reachable = False  # until a delivery report says otherwise: the first pass sends one record
        self._fatal = None
        self._inflight: set[int] = set()  # seq of records produced whose delivery report has not come yet
        self.producer = self._producer()

    def _producer(self):
        from confluent_kafka import KafkaException, Producer  # noqa: PLC0415  (optional extra)
        try:
            return Producer(self._conf)
        except KafkaException as err:  # an unknown or invalid kafka_config property
            raise ValueError(f"delivery.kafka_config: {err.args[0].str()}") from None

    def _on_error(self, err) -> None:
        """Client-level errors; connection trouble is already in librdkafka's log and in the delivery reports."""
        if err.fatal():  # an idempotent producer that lost its sequence state: start a new one next pass
            self._fatal = err
            log.error("kafka: %s", err.str())
        else:
            log.debug("kafka: %s", err.str())

    # -- following the main outbox --------------------------------------------------------------------

    def _cursor(self) -> int:
        try:
            return int(self.cursor_path.read_text())
        except FileNotFoundError:
            return 0

    def follow(self) -> int:
        """Copy the main outbox's new records into the Kafka outbox; returns how many were new."""
        cursor, added = self._cursor(), 0
        while rows := self.source.since(cursor, _BATCH):
            added += self.outbox.put(json.loads(body) for _, body in rows)
            cursor = rows[-1][0]
            tmp = self.cursor_path.with_suffix(".tmp")
            tmp.write_text(str(cursor))
            os.replace(tmp, self.cursor_path)
        return added

    # -- publishing -----------------------------------------------------------------------------------

    def _report(self, entry: Entry, err, msg) -> None:
        """Delivery report (runs inside poll/flush on the sender thread): the only place a record is settled."""
        self._inflight.discard(entry.seq)
        if err is None:
            self.outbox.delivered(entry)
            self.sent += 1
            self._reachable = True
            return
        self.errors += 1
        self.outbox.failed(entry, err.str(), retry_at(entry.tries + 1, self.max_tries, self.backoff_s,
                                                      self.max_backoff_s, self.rng))
        if err.retriable() or err.code() < 0:  # librdkafka's own errors (timeouts, transport): cluster unreachable
            self._reachable = False

    def deliver_due(self) -> int:
        """Copy new records, publish what is due and wait for the reports; returns how many were delivered."""
        if self._fatal is not None:
            log.warning("kafka: producer failed (%s); starting a new one", self._fatal.str())
            self._fatal, self._inflight = None, set()
            self.producer = self._producer()
        self.follow()
        sent, probe = self.sent, not self._reachable
        self._publish(self.outbox.due(1 if probe else _BATCH))
        if probe and self._reachable:  # the probe got through: the rest of what is due goes in this pass
            self._publish(self.outbox.due(_BATCH))
        return self.sent - sent

    def _publish(self, entries: list[Entry]) -> None:
        """Produce each entry and wait for every delivery report (they arrive within message.timeout.ms)."""
        from confluent_kafka import KafkaException  # noqa: PLC0415  (optional extra)
        for entry in entries:
            if entry.seq in self._inflight:
                continue
            body = entry.body.encode()
            headers = [("Idempotency-Key", entry.id), ("X-Sigloc-Signature", sign(self.secret, body, int(time.time())))]
            key = json.loads(body).get("subscriber")
            while True:
                try:
                    self.producer.produce(self.topic, value=body, key=key, headers=headers,
                                          on_delivery=partial(self._report, entry))
                    self._inflight.add(entry.seq)
                    break
                except BufferError:  # local queue full: let reports drain it
                    self.producer.poll(0.5)
                except KafkaException as err:  # refused before sending (e.g. larger than message.max.bytes)
                    self._report(entry, err.args[0], None)
                    break
        self.producer.flush(self.timeout_s + 5)

    def run(self, stop: threading.Event, idle_s: float = 0.2) -> None:
        while not stop.is_set():
            if not self.deliver_due():
                with self.source.changed:
                    self.source.changed.wait(idle_s)

    def close(self) -> None:
        self.producer.flush(self.timeout_s)
        self.outbox.close()


def from_config(delivery: dict[str, Any], source: Outbox, state_dir: Path, secret: bytes) -> KafkaSender | None:
    """The daemon's Kafka sender from ``[delivery]``, or None when ``kafka_brokers`` is empty."""
    if not delivery["kafka_brokers"]:
        return None
    return KafkaSender(source, state_dir, delivery["kafka_brokers"], delivery["kafka_topic"], secret,
                       max_tries=delivery["max_tries"], backoff_s=delivery["backoff_s"],
                       config=delivery["kafka_config"])
