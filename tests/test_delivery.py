"""The trigger feed: signed webhooks on loopback, retried through an outage, none lost and none duplicated."""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from appliance.delivery import DEAD, DELIVERED, Outbox, WebhookSender, sign, sse_stream, trigger_id, verify
from test_config import site  # noqa: F401  (the example-config fixture)

SECRET = b"shared-secret"


class Receiver:
    """A campaign engine stand-in: checks signatures, can answer 503, remembers every id it accepted."""

    def __init__(self, port: int = 0):
        self.accepted: list[str] = []
        self.bodies: dict[str, dict] = {}
        self.bad_signatures = 0
        self.fail_next = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if not verify(SECRET, body, self.headers.get("X-Sigloc-Signature", "")):
                    outer.bad_signatures += 1
                    self.send_response(401)
                elif outer.fail_next > 0:
                    outer.fail_next -= 1
                    self.send_response(503)
                else:
                    key = self.headers["Idempotency-Key"]
                    outer.accepted.append(key)
                    outer.bodies[key] = json.loads(body)
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/triggers"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def triggers(n: int, campaign: str = "welcome") -> list[dict]:
    return [{"campaign": campaign, "subscriber": f"sub{i:04d}", "fence": "west_lake", "kind": "enter",
             "ts": f"2026-12-02T09:{i // 60:02d}:{i % 60:02d}Z", "cell": "460-00-4096-1"} for i in range(n)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def drain(sender: WebhookSender, outbox: Outbox, until_s: float = 20.0) -> None:
    deadline = time.monotonic() + until_s
    while outbox.counts()["pending"] and time.monotonic() < deadline:
        if not sender.deliver_due():
            time.sleep(0.02)


def test_signature_verifies_and_rejects_tampering_and_stale_timestamps():
    body = b'{"a": 1}'
    header = sign(SECRET, body, int(time.time()))
    assert verify(SECRET, body, header)
    assert not verify(SECRET, b'{"a": 2}', header)
    assert not verify(b"other", body, header)
    assert not verify(SECRET, body, sign(SECRET, body, int(time.time()) - 3600))
    assert not verify(SECRET, body, "garbage")


def test_same_trigger_twice_is_one_outbox_row(tmp_path):
    outbox = Outbox(tmp_path / "outbox.db")
    assert outbox.put(triggers(5)) == 5
    assert outbox.put(triggers(5)) == 0  # a replayed capture produces the same triggers
    assert outbox.counts()["pending"] == 5
    assert trigger_id(triggers(1)[0]) == trigger_id(dict(reversed(list(triggers(1)[0].items()))))


def test_receiver_down_then_up_gets_every_trigger_once(tmp_path):
    port = free_port()
    outbox = Outbox(tmp_path / "outbox.db")
    sender = WebhookSender(outbox, f"http://127.0.0.1:{port}/triggers", SECRET, max_tries=50, backoff_s=0.01,
                           max_backoff_s=0.05)
    outbox.put(triggers(30))
    for _ in range(3):  # nobody listens: connection refused, retried later
        sender.deliver_due()
        time.sleep(0.06)
    assert outbox.counts()[DELIVERED] == 0 and sender.errors >= 3
    receiver = Receiver(port)
    receiver.fail_next = 7  # back, but overloaded for a few requests
    try:
        outbox.put(triggers(50)[30:])
        drain(sender, outbox)
    finally:
        receiver.stop()
    expected = {trigger_id(t) for t in triggers(50)}
    assert set(receiver.accepted) == expected
    assert len(receiver.accepted) == len(expected)  # none duplicated
    assert receiver.bad_signatures == 0
    assert outbox.counts() == {"pending": 0, DELIVERED: 50, DEAD: 0}
    some = triggers(50)[42]
    assert receiver.bodies[trigger_id(some)]["subscriber"] == some["subscriber"]


def test_outbox_survives_restart_and_resumes(tmp_path):
    outbox = Outbox(tmp_path / "outbox.db")
    outbox.put(triggers(10))
    outbox.close()
    receiver = Receiver()
    try:
        reopened = Outbox(tmp_path / "outbox.db")
        drain(WebhookSender(reopened, receiver.url, SECRET), reopened)
    finally:
        receiver.stop()
    assert len(set(receiver.accepted)) == len(receiver.accepted) == 10


def test_dead_letter_after_max_tries_and_requeue(tmp_path):
    outbox = Outbox(tmp_path / "outbox.db")
    sender = WebhookSender(outbox, f"http://127.0.0.1:{free_port()}/x", SECRET, max_tries=3, backoff_s=0.001,
                           max_backoff_s=0.001)
    outbox.put(triggers(1))
    for _ in range(5):
        sender.deliver_due()
        time.sleep(0.01)
    assert outbox.counts()[DEAD] == 1
    assert outbox.requeue_dead() == 1 and outbox.counts()["pending"] == 1


def test_engineer_requeues_dead_letters_from_the_cli(site):  # noqa: F811  (pytest fixture)
    """`sigloc outbox status|requeue CONFIG` on the probe's outboxes, beside a daemon that holds them open."""
    from click.testing import CliRunner  # noqa: PLC0415

    from appliance.cli import cli  # noqa: PLC0415
    config = str(site / "sigloc.toml")
    assert "no outbox in" in CliRunner().invoke(cli, ["outbox", "status", config]).output
    webhook, kafka = Outbox(site / "sigloc-state" / "outbox.db"), Outbox(site / "sigloc-state" / "outbox-kafka.db")
    webhook.put(triggers(3))
    kafka.put(triggers(3))
    for box, dead in ((webhook, 2), (kafka, 1)):
        for entry in box.due()[:dead]:
            box.failed(entry, "HTTP 503", None)
    status = CliRunner().invoke(cli, ["outbox", "status", config])
    assert status.exit_code == 0
    assert status.output.splitlines() == ["webhook: pending 1, delivered 0, dead 2",
                                          "kafka: pending 2, delivered 0, dead 1"]
    out = CliRunner().invoke(cli, ["outbox", "requeue", config, "--sink", "webhook"])
    assert out.exit_code == 0 and out.output.strip() == "webhook: 2 dead letter(s) back to pending"
    assert webhook.counts() == {"pending": 3, DELIVERED: 0, DEAD: 0}  # the open handle sees it at once
    assert kafka.counts()[DEAD] == 1
    assert CliRunner().invoke(cli, ["outbox", "requeue", config]).output.splitlines() == [
        "webhook: 0 dead letter(s) back to pending", "kafka: 1 dead letter(s) back to pending"]
    assert len(kafka.due()) == 3 and kafka.counts()[DEAD] == 0


def test_wrong_secret_is_refused_by_the_receiver_and_retried(tmp_path):
    receiver = Receiver()
    outbox = Outbox(tmp_path / "outbox.db")
    try:
        outbox.put(triggers(2))
        sender = WebhookSender(outbox, receiver.url, b"wrong", max_tries=2, backoff_s=0.001, max_backoff_s=0.001)
        for _ in range(4):
            sender.deliver_due()
            time.sleep(0.01)
    finally:
        receiver.stop()
    assert receiver.accepted == [] and receiver.bad_signatures == 4
    assert outbox.counts()[DEAD] == 2


def test_sse_stream_resumes_after_last_event_id(tmp_path):
    outbox = Outbox(tmp_path / "outbox.db")
    outbox.put(triggers(5))
    stop = threading.Event()
    frames = sse_stream(outbox, last_id=0, stop=stop, heartbeat_s=0.05)
    first = [next(frames) for _ in range(5)]
    ids = [int(f.split("\n")[0].removeprefix("id: ")) for f in first]
    assert ids == sorted(ids) and len(set(ids)) == 5
    resumed = sse_stream(outbox, last_id=ids[2], stop=stop, heartbeat_s=0.05)
    again = [next(resumed) for _ in range(2)]
    assert again == first[3:]
    assert next(resumed) == ": keep-alive\n\n"  # nothing new yet
    outbox.put(triggers(6)[5:])
    late = next(resumed)
    assert json.loads(late.split("data: ", 1)[1])["subscriber"] == "sub0005"
    stop.set()


def test_higher_priority_is_delivered_first(tmp_path):
    receiver = Receiver()
    outbox = Outbox(tmp_path / "outbox.db")
    try:
        outbox.put(triggers(3, "mass"), priority=0)
        outbox.put(triggers(3, "care"), priority=5)
        drain(WebhookSender(outbox, receiver.url, SECRET), outbox)
    finally:
        receiver.stop()
    assert [receiver.bodies[k]["campaign"] for k in receiver.accepted] == ["care"] * 3 + ["mass"] * 3
