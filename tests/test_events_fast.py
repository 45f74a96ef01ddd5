"""The feed loop's short cuts (decoders/events.py: the rows left to the connection pass, the rows taken in short)
against its general path: with every row visited and taken whole instead, the events and the whole identity
store come out the same — on the simulated city,
on every shared capture, and on random message streams that reuse S1AP IDs and SCCP connections (stale index
entries, MME IDs moving between contexts, releases never seen)."""

import gzip
import json

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import decoders.events as events_module
from conftest import shared_pcaps
from decoders.correlate import UeContext
from decoders.decode import decode_file
from decoders.events import EventConfig, EventDeriver
from decoders.records import MESSAGE_SCHEMA, RecordBuilder

T0 = 1_777_593_600.0


def _general_only(monkeypatch):
    """Every row is visited and taken whole: no row left to the connection pass alone, none taken in short."""
    monkeypatch.setattr(events_module, "_visits", lambda kinds, walk, messages: (
        np.arange(len(walk.ctx)), [events_module._FULL] * len(walk.ctx)))


def _contexts(deriver: EventDeriver) -> list:
    """The open contexts (one no visited message named yet is a fresh one) with what the connection index holds
    of each (the IDs it thinks it is indexed under, closed), and which context each index entry names."""
    sccp, by_mme, by_enb, current = deriver.connections.entries()
    a_side = {cid for _, cid in sccp}
    ids = list(dict.fromkeys([*(entry[-1] for entry in (*sccp, *by_mme, *by_enb)), current]))
    held = deriver.connections.slot_state()
    contexts = []
    for cid in ids:
        c = deriver._contexts.get(cid) or UeContext("A" if cid in a_side else "S1")
        contexts.append((c.iface, c.imsi, c.presented_tmsi, c.new_tmsi, c.imei, c.cell, list(c.pending),
                         held.get(cid)))
    number = {cid: n for n, cid in enumerate(ids)}
    return [contexts, *([(*entry[:-1], number[entry[-1]]) for entry in table] for table in (sccp, by_mme, by_enb)),
            number[current]]


def _derive(tables: list[pa.Table], config: EventConfig, tmp_path, name: str) -> tuple[list, list, dict]:
    deriver = EventDeriver(config)
    out, states = [], []
    for table in tables:
        out.append(deriver.feed(table).to_pylist())
        states.append(_contexts(deriver))
    deriver.snapshot(tmp_path / f"{name}.json.gz")  # the store with connections still open
    out.append(deriver.finish().to_pylist())
    with gzip.open(tmp_path / f"{name}.json.gz", "rt") as f:
        return out, states, json.load(f)


def _both(tables: list[pa.Table], config: EventConfig, tmp_path, monkeypatch) -> tuple:
    fast = _derive(tables, config, tmp_path, "fast")
    with monkeypatch.context() as patch:
        _general_only(patch)
        general = _derive(tables, config, tmp_path, "general")
    return fast, general


@pytest.mark.parametrize("batch", [None, 2000, 7, "record batches"])
def test_city_fast_equals_general(city, tmp_path, monkeypatch, batch):
    tables = list(decode_file(city / "capture.pcap"))
    whole = pa.concat_tables(tables)
    if batch == "record batches":  # what the daemon feeds
        tables = whole.to_batches(max_chunksize=3000)
    elif batch:
        tables = [whole.slice(i, batch) for i in range(0, len(whole), batch)]
    config = EventConfig.from_scenario(city / "scenario.json")
    fast, general = _both(tables, config, tmp_path, monkeypatch)
    assert sum(map(len, fast[0])) > 500
    assert fast == general


def test_shared_captures_fast_equals_general(tmp_path, monkeypatch):
    compared = 0
    for path in shared_pcaps():
        tables = list(decode_file(path))
        fast, general = _both(tables, EventConfig(), tmp_path, monkeypatch)
        assert fast == general, path.name
        compared += sum(map(len, fast[0]))
    assert compared > 0


# One message: (kind, association or SCCP connection, eNB UE ID, MME UE ID, identity) from small ranges, so that
# IDs collide.
_KINDS = {
    "initial_ue": ("s1ap", "initial_ue_message"), "ics_request": ("s1ap", "initial_context_setup_request"),
    "downlink": ("s1ap", "downlink_nas_transport"), "uplink": ("s1ap", "uplink_nas_transport"),
    "release_command": ("s1ap", "ue_context_release_command"),
    "release_complete": ("s1ap", "ue_context_release_complete"), "path_switch": ("s1ap", "path_switch_request"),
    "service_request": ("nas-eps", "service_request"), "attach_request": ("nas-eps", "attach_request"),
    "attach_accept": ("nas-eps", "attach_accept"), "eps_identity": ("nas-eps", "identity_response"),
    "tau_request": ("nas-eps", "tracking_area_update_request"),
    "cl3": ("bssmap", "complete_layer3_information"), "clear_command": ("bssmap", "clear_command"),
    "clear_complete": ("bssmap", "clear_complete"), "cm_service": ("dtap", "cm_service_request"),
    "lu_accept": ("dtap", "location_updating_accept"), "identity": ("dtap", "identity_response"),
    "setup": ("dtap", "setup"), "alerting": ("dtap", "alerting"), "connect": ("dtap", "connect"),
    "disconnect": ("dtap", "disconnect"), "release_complete_cc": ("dtap", "release_complete"),
    "cp_ack": ("dtap", "cp_ack"), "malformed": ("s1ap", "malformed"),
}
_message = st.tuples(st.sampled_from(sorted(_KINDS)), st.integers(0, 1), st.integers(0, 2), st.integers(0, 2),
                     st.integers(0, 3))


def _record(n: int, kind: str, a: int, b: int, mme: int, v: int) -> dict:
    proto, msg = _KINDS[kind]
    rec = {"frame": n, "ts": T0 + n * 0.5, "iface": "S1" if proto in ("s1ap", "nas-eps") else "A",
           "proto": proto, "msg": msg, "uplink": kind not in ("downlink", "ics_request", "attach_accept")}
    imsi, imei = f"46000571000000{v}", f"35391110560{v}{v}{v}{v}"
    if proto == "s1ap":
        rec.update(assoc=a, enb_ue_id=b, mme_ue_id=None if kind == "initial_ue" else mme)
        if kind in ("initial_ue", "uplink", "path_switch"):
            rec.update(mcc="460", mnc="00", tac=7, eci=100 + v)
        if kind == "initial_ue" and v:
            rec["m_tmsi"] = 1000 + v
    elif proto == "nas-eps":
        rec.update({"attach_request": {"imsi": imsi, "update_type": "eps_attach"},
                    "attach_accept": {"m_tmsi": 1000 + v}, "eps_identity": {"imeisv": imei + "01"},
                    "tau_request": {"m_tmsi": 1000 + v, "update_type": "periodic"}}.get(kind, {}))
    else:
        rec["conn"] = a
        rec.update({"cl3": {"mcc": "460", "mnc": "00", "lac": 1, "ci": 10 + v}, "cm_service": {"tmsi": 50 + v},
                    "lu_accept": {"tmsi": 60 + v}, "identity": {"imsi": imsi} if mme else {"imei": imei},
                    "setup": {"called": "1380000", "calling": "1390000"},
                    "disconnect": {"cause": 17 + v, "cause_group": "cc"}}.get(kind, {}))
    return rec


@settings(max_examples=300, deadline=None)
@given(st.lists(_message, min_size=1, max_size=80), st.integers(1, 9))
def test_random_streams_fast_equals_general(tmp_path_factory, steps, batch):
    builder = RecordBuilder(MESSAGE_SCHEMA)
    builder.extend([_record(n, *step) for n, step in enumerate(steps, 1)])
    whole = builder.table()
    tables = [whole.slice(i, batch) for i in range(0, len(whole), batch)]
    tmp_path = tmp_path_factory.mktemp("stream")
    with pytest.MonkeyPatch.context() as monkeypatch:
        fast, general = _both(tables, EventConfig(), tmp_path, monkeypatch)
    assert fast == general
