"""The trigger feed: a durable outbox and at-least-once webhook delivery the campaign engine can trust.

A trigger is written to the outbox (SQLite, one file, committed before anything is sent) under an id derived from
what it is — campaign, subscriber, fence, kind, time — so the same trigger produced twice (a replayed capture, a
restart) is one row, and the receiver can drop a retried POST by its ``Idempotency-Key``. Every POST is signed:
``X-Sigloc-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` with the shared secret, the scheme Stripe
and GitHub receivers already know. A failed POST is retried with exponential backoff (full jitter) until
``max_tries``, then moved to the dead letters with its last error, where an engineer can see and requeue it.
Subscribers of the Server-Sent Events stream read the same outbox by sequence number, so ``Last-Event-ID``
resume is a range query.
"""

import hashlib
import hmac
import json
import random
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"

_DDL = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- feed order; the SSE event id
    id TEXT NOT NULL UNIQUE,                -- idempotency key
    body TEXT NOT NULL,                     -- the JSON sent
    priority INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'pending',
    tries INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    delivered REAL
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_try);
"""


def trigger_id(record: dict) -> str:
    """Idempotency key: the same trigger (campaign, subscriber, fence, kind, time) always gets the same id."""
    parts = [str(record.get(k, "")) for k in ("campaign", "subscriber", "fence", "kind", "ts")]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The signature header value for one POST body."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: bytes, body: bytes, header: str, tolerance_s: float = 300, now: float | None = None) -> bool:
    """What a receiver runs: signature matches and the timestamp is fresh (replay protection)."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (ValueError, KeyError):
        return False
    if abs((now or time.time()) - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, body, timestamp), header)


@dataclass
class Entry:
    seq: int
    id: str
    body: str
    tries: int


class Outbox:
    """Durable queue of trigger records; safe to share between the pipeline thread and senders."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_DDL)
        self._lock = threading.Lock()
        self.changed = threading.Condition()

    def put(self, records: Iterable[dict], priority: int = 0) -> int:
        """Queue records (JSON-able dicts); returns how many were new (a known id is ignored)."""
        rows = []
        now = time.time()
        for rec in records:
            rec = dict(rec)
            rec.setdefault("id", trigger_id(rec))
            rows.append((rec["id"], json.dumps(rec, sort_keys=True, default=str), priority, now))
        with self._lock:
            before = self._db.total_changes
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT OR IGNORE INTO outbox (id, body, priority, created) VALUES (?, ?, ?, ?)",
                                 rows)
            self._db.execute("COMMIT")
            added = self._db.total_changes - before
        if added:
            with self.changed:
                self.changed.notify_all()
        return added

    def due(self, limit: int = 100, now: float | None = None) -> list[Entry]:
        """Pending entries whose retry time has come, highest priority first, then feed order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, id, body, tries FROM outbox WHERE status = ? AND next_try <= ? "
                "ORDER BY priority DESC, seq LIMIT ?", (PENDING, now or time.time(), limit)).fetchall()
        return [Entry(*r) for r in rows]

    def delivered(self, entry: Entry) -> None:
        with self._lock:
            self._db.execute("UPDATE outbox SET status = ?, tries = tries + 1, delivered = ? WHERE seq = ?",
                             (DELIVERED, time.time(), entry.seq))

    def failed(self, entry: Entry, error: str, retry_at: float | None) -> None:
        """Record a failed try; ``retry_at`` None moves the entry to the dead letters."""
        with self._lock:
            self._db.execute("UPDATE outbox SET status = ?, tries = tries + 1, next_try = ?, last_error = ? "
                             "WHERE seq = ?", (DEAD if retry_at is None else PENDING, retry_at or 0, error[:500],
                                               entry.seq))

    def requeue_dead(self) -> int:
        """An engineer's fix after an outage longer than the retry budget: dead letters go back to pending."""
        with self._lock:
            cur = self._db.execute("UPDATE outbox SET status = ?, tries = 0, next_try = 0 WHERE status = ?",
                                   (PENDING, DEAD))
        return cur.rowcount

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall()
        return {PENDING: 0, DELIVERED: 0, DEAD: 0, **dict(rows)}

    def per_campaign(self) -> dict[str, int]:
        """Triggers queued or sent per campaign: the live counts on the campaigns page."""
        with self._lock:
            rows = self._db.execute("SELECT json_extract(body, '$.campaign'), count(*) FROM outbox "
                                    "GROUP BY 1").fetchall()
        return {str(c): n for c, n in rows}

    def of_subscriber(self, subscriber: str, limit: int = 200) -> list[dict]:
        """Every queued or sent trigger of one subscriber with its delivery state (complaint handling)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT body, status, tries, last_error, delivered FROM outbox "
                "WHERE json_extract(body, '$.subscriber') = ? ORDER BY seq LIMIT ?", (subscriber, limit)).fetchall()
        return [{**json.loads(b), "status": st, "tries": t, "last_error": e, "delivered_at": d}
                for b, st, t, e, d in rows]

    def since(self, seq: int, limit: int = 500) -> list[tuple[int, str]]:
        """(seq, body) of every record after ``seq``: the SSE stream and its Last-Event-ID resume."""
        with self._lock:
            return self._db.execute("SELECT seq, body FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                                    (seq, limit)).fetchall()

    def close(self) -> None:
        self._db.close()


def retry_at(tries: int, max_tries: int, backoff_s: float, max_backoff_s: float, rng: random.Random) -> float | None:
    """When a record that failed its ``tries``-th delivery is due again (exponential backoff, capped, jittered so
    senders do not retry in step), or None once ``max_tries`` are spent: a dead letter. Shared by every sink."""
    if tries >= max_tries:
        return None
    delay = min(max_backoff_s, backoff_s * 2 ** (tries - 1))
    return time.time() + rng.uniform(delay / 2, delay)


def sse_stream(outbox: Outbox, last_id: int = 0, stop: threading.Event | None = None,
               heartbeat_s: float = 15.0) -> Iterator[str]:
    """Server-Sent Events frames from ``last_id`` on; a comment line every ``heartbeat_s`` keeps proxies open."""
    stop = stop or threading.Event()
    while not stop.is_set():
        rows = outbox.since(last_id)
        for seq, body in rows:
            last_id = seq
            yield f"id: {seq}\nevent: trigger\ndata: {body}\n\n"
        if not rows:
            with outbox.changed:  # never yield while holding it: the next step may run on another thread
                woken = outbox.changed.wait(heartbeat_s)
            if not woken:
                yield ": keep-alive\n\n"


class WebhookSender:
    """Delivers due outbox entries to one URL; ``run`` loops until stopped, ``deliver_due`` does one pass."""

    def __init__(self, outbox: Outbox, url: str, secret: bytes, max_tries: int = 8, backoff_s: float = 1.0,
                 max_backoff_s: float = 600.0, timeout_s: float = 10.0, rng: random.Random | None = None):
        self.outbox, self.url, self.secret = outbox, url, secret
        self.max_tries, self.backoff_s, self.max_backoff_s, self.timeout_s = max_tries, backoff_s, max_backoff_s, \
            timeout_s
        self.rng = rng or random.Random()
        self.sent = self.errors = 0

    def _post(self, entry: Entry) -> None:
        body = entry.body.encode()
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json",
            "Idempotency-Key": entry.id,
            "X-Sigloc-Signature": sign(self.secret, body, int(time.time())),
        })
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            if not 200 <= response.status < 300:
                raise urllib.error.HTTPError(self.url, response.status, response.reason, response.headers, None)

    def deliver_due(self) -> int:
        """One pass over what is due; returns how many were delivered."""
        done = 0
        for entry in self.outbox.due():
            try:
                self._post(entry)
            except (OSError, urllib.error.URLError) as err:  # HTTPError is a URLError; refused/timeout are OSError
                self.errors += 1
                self.outbox.failed(entry, str(err), retry_at(entry.tries + 1, self.max_tries, self.backoff_s,
                                                             self.max_backoff_s, self.rng))
                if not isinstance(err, urllib.error.HTTPError):
                    break  # the receiver is unreachable: the rest of this pass would fail the same way
                continue
            self.outbox.delivered(entry)
            self.sent += 1
            done += 1
        return done

    def run(self, stop: threading.Event, idle_s: float = 0.2) -> None:
        while not stop.is_set():
            if not self.deliver_due():
                with self.outbox.changed:
                    self.outbox.changed.wait(idle_s)
