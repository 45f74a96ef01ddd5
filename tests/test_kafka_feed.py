"""The Kafka trigger feed against librdkafka's mock cluster (a Kafka protocol broker), read back by kafka-python.

The cluster is started through librdkafka's C API (``rd_kafka_mock_cluster_new``, the one Confluent's own tests
use; the Python binding does not wrap it) so the test can take brokers down and up. The consumer is kafka-python,
an independent pure-Python implementation of the protocol, so keys, headers and partitions are checked by code
that shares nothing with the producer.
"""

import ctypes
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

confluent_kafka = pytest.importorskip("confluent_kafka")
kafka = pytest.importorskip("kafka")  # kafka-python(-ng)
from kafka.partitioner.default import murmur2  # noqa: E402

from appliance.auth import Accounts  # noqa: E402
from appliance.config import ConfigError, load_config  # noqa: E402
from appliance.delivery import DEAD, DELIVERED, PENDING, Outbox, verify  # noqa: E402
from appliance.kafka_feed import KafkaSender, check_config  # noqa: E402
import test_daemon  # noqa: E402  (its probe installation and the library's expected triggers)
from test_config import edit, line_of, site  # noqa: E402, F401  (the example-config fixture)
from test_delivery import Receiver, free_port  # noqa: E402

SECRET = b"kafka-test-secret"
TOPIC = "sigloc-triggers"
PARTITIONS = 3


class MockCluster:
    """Three mock brokers owned by a bare librdkafka handle; ``down``/``up`` take every broker off and back."""

    def __init__(self, brokers: int = 3):
        libs = os.path.join(os.path.dirname(confluent_kafka.__file__), os.pardir, "confluent_kafka.libs")
        found = glob.glob(os.path.join(libs, "librdkafka*.so*"))
        if not found:
            pytest.skip("confluent-kafka wheel without its bundled librdkafka (mock cluster API not reachable)")
        lib = self.lib = ctypes.CDLL(found[0])
        lib.rd_kafka_conf_new.restype = ctypes.c_void_p
        lib.rd_kafka_conf_set.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                          ctypes.c_size_t]
        lib.rd_kafka_new.restype = ctypes.c_void_p
        lib.rd_kafka_new.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        lib.rd_kafka_destroy.argtypes = [ctypes.c_void_p]
        lib.rd_kafka_mock_cluster_new.restype = ctypes.c_void_p
        lib.rd_kafka_mock_cluster_new.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.rd_kafka_mock_cluster_destroy.argtypes = [ctypes.c_void_p]
        lib.rd_kafka_mock_cluster_bootstraps.restype = ctypes.c_char_p
        lib.rd_kafka_mock_cluster_bootstraps.argtypes = [ctypes.c_void_p]
        lib.rd_kafka_mock_topic_create.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
        lib.rd_kafka_mock_broker_set_down.argtypes = [ctypes.c_void_p, ctypes.c_int32]
        lib.rd_kafka_mock_broker_set_up.argtypes = [ctypes.c_void_p, ctypes.c_int32]
        errstr = ctypes.create_string_buffer(512)
        conf = lib.rd_kafka_conf_new()
        lib.rd_kafka_conf_set(conf, b"log_level", b"0", errstr, 512)  # the holder never connects anywhere
        self.rk = lib.rd_kafka_new(0, conf, errstr, 512)
        assert self.rk, errstr.value
        self.cluster = lib.rd_kafka_mock_cluster_new(self.rk, brokers)
        assert self.cluster
        self.brokers = brokers
        self.bootstrap = lib.rd_kafka_mock_cluster_bootstraps(self.cluster).decode()
        assert lib.rd_kafka_mock_topic_create(self.cluster, TOPIC.encode(), PARTITIONS, brokers) == 0

    def down(self) -> None:
        for broker in range(1, self.brokers + 1):
            self.lib.rd_kafka_mock_broker_set_down(self.cluster, broker)

    def up(self) -> None:
        for broker in range(1, self.brokers + 1):
            self.lib.rd_kafka_mock_broker_set_up(self.cluster, broker)

    def close(self) -> None:
        self.lib.rd_kafka_mock_cluster_destroy(self.cluster)
        self.lib.rd_kafka_destroy(self.rk)


@pytest.fixture
def cluster():
    mock = MockCluster()
    yield mock
    mock.close()


def consume(bootstrap: str, expect: int, timeout_s: float = 20.0) -> list:
    """Every message on the topic from the start, read by kafka-python until ``expect`` arrived and 2 s of quiet."""
    consumer = kafka.KafkaConsumer(TOPIC, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                   group_id=None, consumer_timeout_ms=2000)
    got, deadline = [], time.time() + timeout_s
    while time.time() < deadline:
        got += list(consumer)  # stops after 2 s without a message
        if len(got) >= expect:
            break
    consumer.close()
    return got


def triggers(n: int) -> list[dict]:
    """n records of 4 subscribers, shaped like the daemon's (pseudonymised subscriber, ISO times)."""
    return [{"campaign": "welcome", "subscriber": f"{sub:032x}", "fence": "West Lake", "kind": "enter",
             "cell": "460-00-27279361", "ts": f"2026-05-01T01:{i:02d}:00.000000Z", "touchpoint": "sms",
             "outlet_distance_m": 412.7}
            for i in range(n) for sub in [0xA11CE + i % 4]]


def sender(source: Outbox, state_dir, bootstrap: str, **kw) -> KafkaSender:
    return KafkaSender(source, state_dir, bootstrap, TOPIC, SECRET, **kw)


def test_every_trigger_arrives_once_keyed_by_subscriber_and_signed_like_the_webhook(cluster, tmp_path):
    source = Outbox(tmp_path / "outbox.db")
    assert source.put(triggers(20)) == 20
    bodies = {json.loads(body)["id"]: body for _, body in source.since(0)}
    kafka_sender = sender(source, tmp_path, cluster.bootstrap)
    assert kafka_sender.deliver_due() == 20
    assert kafka_sender.outbox.counts() == {PENDING: 0, DELIVERED: 20, DEAD: 0}
    assert source.counts()[PENDING] == 20  # the webhook's own status is untouched: each sink settles its copy

    got = consume(cluster.bootstrap, 20)
    assert len(got) == 20
    partitions: dict[bytes, set[int]] = {}
    for msg in got:
        headers = dict(msg.headers)
        record = json.loads(msg.value)
        key = headers["Idempotency-Key"].decode()
        assert key == record["id"] and msg.value.decode() == bodies[key]  # the webhook body, byte for byte
        assert msg.key == record["subscriber"].encode()
        assert verify(SECRET, msg.value, headers["X-Sigloc-Signature"].decode())
        assert not verify(b"other secret", msg.value, headers["X-Sigloc-Signature"].decode())
        # a consumer reading a backlog checks freshness against the message's own (produce) time
        assert verify(SECRET, msg.value, headers["X-Sigloc-Signature"].decode(), now=msg.timestamp / 1000)
        # where a Java client (murmur2, positive, mod partitions) puts the key
        assert msg.partition == (murmur2(msg.key) & 0x7FFFFFFF) % PARTITIONS
        partitions.setdefault(msg.key, set()).add(msg.partition)
    assert sorted(json.loads(m.value)["id"] for m in got) == sorted(bodies)
    assert len(partitions) == 4 and all(len(p) == 1 for p in partitions.values())
    per_key_order = [json.loads(m.value)["ts"] for m in got if m.key == got[0].key]
    assert per_key_order == sorted(per_key_order)  # one subscriber's triggers stay in order
    kafka_sender.close()

    # a restart follows on from its cursor: only the two new records are published
    source.put(triggers(22)[20:])
    restarted = sender(source, tmp_path, cluster.bootstrap)
    assert restarted.deliver_due() == 2
    got = consume(cluster.bootstrap, 22)
    assert sorted(json.loads(m.value)["id"] for m in got) == sorted(json.loads(b)["id"] for _, b in source.since(0))
    restarted.close()


def test_an_outage_keeps_records_pending_then_delivers_all_of_them_once(cluster, tmp_path):
    source = Outbox(tmp_path / "outbox.db")
    source.put(triggers(12))
    cluster.down()
    kafka_sender = sender(source, tmp_path, cluster.bootstrap, timeout_s=1.0, backoff_s=0.05, max_backoff_s=0.2,
                          max_tries=3)
    for _ in range(3):
        assert kafka_sender.deliver_due() == 0
        time.sleep(0.25)  # past the longest backoff, so the next pass has something due
    # only the oldest record is tried while the cluster is unreachable: it used its 3 tries and is a dead letter,
    # the other 11 kept their whole retry budget
    assert kafka_sender.errors == 3
    assert kafka_sender.outbox.counts() == {PENDING: 11, DELIVERED: 0, DEAD: 1}
    assert [r["tries"] for r in kafka_sender.outbox.of_subscriber(f"{0xA11CE:032x}")] == [3, 0, 0]

    cluster.up()
    deadline = time.time() + 30
    while kafka_sender.outbox.counts()[DELIVERED] + kafka_sender.outbox.counts()[DEAD] < 12:
        assert time.time() < deadline, kafka_sender.outbox.counts()
        kafka_sender.deliver_due()
        time.sleep(0.05)
    assert kafka_sender.outbox.counts() == {PENDING: 0, DELIVERED: 11, DEAD: 1}
    assert kafka_sender.outbox.requeue_dead() == 1  # an engineer's fix after the outage
    while kafka_sender.outbox.counts()[PENDING]:
        assert time.time() < deadline, kafka_sender.outbox.counts()
        kafka_sender.deliver_due()
    assert kafka_sender.outbox.counts() == {PENDING: 0, DELIVERED: 12, DEAD: 0}

    got = [json.loads(m.value)["id"] for m in consume(cluster.bootstrap, 12)]
    assert set(got) == {json.loads(b)["id"] for _, b in source.since(0)}
    # nothing reached a broker while all were down, so no try was a lost acknowledgement: no redelivery either
    assert len(got) == 12
    kafka_sender.close()


def test_a_record_the_client_refuses_is_a_failed_try_and_the_rest_still_go(cluster, tmp_path):
    source = Outbox(tmp_path / "outbox.db")
    records = triggers(4)
    records[1]["template"] = "x" * 5000  # over message.max.bytes below
    source.put(records)
    kafka_sender = sender(source, tmp_path, cluster.bootstrap, max_tries=1, config={"message.max.bytes": 2000})
    for _ in range(4):
        kafka_sender.deliver_due()
    assert kafka_sender.outbox.counts() == {PENDING: 0, DELIVERED: 3, DEAD: 1}
    [dead] = [r for r in kafka_sender.outbox.of_subscriber(records[1]["subscriber"]) if r["status"] == DEAD]
    assert dead["template"] == "x" * 5000 and "too large" in dead["last_error"].lower()
    got = consume(cluster.bootstrap, 3)
    assert sorted(json.loads(m.value)["ts"] for m in got) == sorted(r["ts"] for i, r in enumerate(records) if i != 1)
    kafka_sender.close()


def test_config_names_the_kafka_key_at_fault(site, monkeypatch):  # noqa: F811  (pytest fixture)
    path = edit(site, 'max_tries = 8', 'max_tries = 8\nkafka_brokers = "kafka-1:9092,kafka-2:9092"\n'
                                       'kafka_config = { "acks" = "1" }')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    where = f"sigloc.toml:{line_of(path, 'kafka_config')}: delivery.kafka_config.acks: is set by sigloc"
    assert where in str(err.value)

    path = edit(site, '"acks" = "1"', '"security.protocol" = "SASL_SSL", "sasl.mechanism" = "SCRAM-SHA-512"')
    config = load_config(path)
    assert config.delivery["kafka_brokers"] == "kafka-1:9092,kafka-2:9092"
    assert config.delivery["kafka_topic"] == "sigloc-triggers"
    assert config.delivery["kafka_config"]["security.protocol"] == "SASL_SSL"

    path = edit(site, 'kafka_brokers = "kafka-1:9092,kafka-2:9092"', 'kafka_brokers = "kafka-1"')
    with pytest.raises(ConfigError, match=rf"sigloc.toml:{line_of(path, 'kafka_brokers')}: delivery.kafka_brokers: "
                                          r"'kafka-1' is not in the expected form"):
        load_config(path)

    path = edit(site, 'kafka_brokers = "kafka-1"', 'kafka_brokers = "kafka-1:9092"')
    monkeypatch.setitem(sys.modules, "confluent_kafka", None)  # as if the extra were not installed
    with pytest.raises(ConfigError, match=rf"sigloc.toml:{line_of(path, 'kafka_brokers')}: delivery.kafka_brokers: "
                                          r"Kafka is configured but confluent-kafka is not installed"):
        load_config(path)


def test_an_unknown_librdkafka_property_is_refused_with_its_name(tmp_path):
    assert check_config({"kafka_brokers": "", "kafka_config": {"acks": "0"}}) is None  # Kafka off: not checked
    with pytest.raises(ValueError, match=r"delivery.kafka_config: .*no\.such\.property"):
        KafkaSender(Outbox(tmp_path / "outbox.db"), tmp_path, "127.0.0.1:9", TOPIC, SECRET,
                    config={"no.such.property": "1"})


def test_the_daemon_feeds_webhook_and_kafka_each_with_every_trigger(city, tmp_path, cluster):
    """A real ``sigloc run`` with both sinks: every expected trigger reaches the webhook and the topic."""
    root = tmp_path / "probe"
    root.mkdir()
    webhook_port = free_port()
    web_port = free_port()
    config = test_daemon.site(root, city, webhook_port, web_port)
    expected = test_daemon.expected_triggers(config, city / "capture.pcap", tmp_path / "scratch")
    assert len(expected) >= 5
    (root / "state").mkdir()
    token = Accounts(root / "state" / "accounts.db").new_token("prometheus", "engineer")

    def metrics() -> str:
        return urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{web_port}/metrics", headers={"Authorization": f"Bearer {token}"})).read().decode()

    text = config.read_text()
    config.write_text(text.replace("[delivery]\n", f'[delivery]\nkafka_brokers = "{cluster.bootstrap}"\n'))
    receiver = Receiver(webhook_port)
    daemon = subprocess.Popen([*test_daemon.SIGLOC, "run", "--config", str(config)], cwd=root,
                              stderr=subprocess.PIPE, text=True)
    try:
        shutil.copy(city / "capture.pcap", root / "incoming" / "capture.pcap")
        test_daemon.wait_for(lambda: len(receiver.accepted) >= len(expected), 120, "webhook deliveries")
        got = consume(cluster.bootstrap, len(expected), timeout_s=60)
        test_daemon.wait_for(lambda: f'sigloc_outbox{{sink="kafka",status="delivered"}} {len(expected)}' in metrics(),
                             30, "the Kafka outbox in the metrics")
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            _, stderr = daemon.communicate(timeout=120)
        finally:
            receiver.stop()
    assert daemon.returncode == 0, stderr[-3000:]
    assert sorted(receiver.accepted) == sorted(expected)
    assert sorted(dict(m.headers)["Idempotency-Key"].decode() for m in got) == sorted(expected)  # each once
    for msg in got:
        record = json.loads(msg.value)
        assert verify(test_daemon.SECRET, msg.value, dict(msg.headers)["X-Sigloc-Signature"].decode())
        assert msg.key.decode() == record["subscriber"] == expected[record["id"]]["subscriber"]
        assert "imsi" not in record
    state = root / "state"
    assert test_daemon.outbox_counts(state) == {"delivered": len(expected)}  # the webhook's outbox
    kafka_outbox = Outbox(state / "outbox-kafka.db")
    assert kafka_outbox.counts() == {PENDING: 0, DELIVERED: len(expected), DEAD: 0}
    kafka_outbox.close()
