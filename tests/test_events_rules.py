"""Event rules on hand-made message records (the fields decoders/records.py defines, as decoders set them)."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decoders.events import CALL_OUTCOME_OF_CAUSE, EventConfig, EventDeriver
from decoders.records import MESSAGE_SCHEMA, RecordBuilder

IMSI = "460001234567890"
CELL = {"mcc": "460", "mnc": "00", "lac": 0x1101, "ci": 31}


def _messages(records: list[dict]):
    """Records in capture order, one frame each, 0.1 s apart."""
    builder = RecordBuilder(MESSAGE_SCHEMA)
    for n, rec in enumerate(records, 1):
        builder.append({"frame": n, "ts": 1_000.0 + n / 10, **rec})
    return builder.table()


def _events(records: list[dict], finish: bool = True) -> list[dict]:
    deriver = EventDeriver()
    out = deriver.feed(_messages(records)).to_pylist()
    return out + deriver.finish().to_pylist() if finish else out


def _a(msg: str, uplink: bool = True, conn: int = 7, proto: str = "dtap", **fields) -> dict:
    return {"iface": "A", "proto": proto, "msg": msg, "uplink": uplink, "conn": conn, **fields}


def _cc(msg: str, cause: int | None = None, uplink: bool = True) -> dict:
    """A CC message; a Cause IE (TS 24.008 §10.5.4.11) is reported with cause_group "cc"."""
    return _a(msg, uplink, **({"cause": cause, "cause_group": "cc"} if cause is not None else {}))


def _call_start(mobile_originated: bool = True) -> list[dict]:
    first = "cm_service_request" if mobile_originated else "paging_response"
    setup = (_a("setup", True, called="8613905700001") if mobile_originated
             else _a("setup", False, calling="8613905700001"))
    return [_a("complete_layer3_information", proto="bssmap", **CELL), _a(first, imsi=IMSI), setup]


def _clear(conn: int = 7) -> list[dict]:
    return [_a("clear_command", False, conn=conn, proto="bssmap"),
            _a("clear_complete", True, conn=conn, proto="bssmap")]


def _outcomes(events: list[dict]) -> list[tuple]:
    return [(e["detail"], e["cause"], e["frame"]) for e in events if e["event"] == "call_outcome"]


def test_answered_call_ends_at_release_complete_with_the_clearing_cause():
    records = _call_start() + [_cc("alerting", uplink=False), _cc("connect", uplink=False), _cc("connect_acknowledge"),
                               _cc("disconnect", 16), _cc("release", 16, uplink=False), _cc("release_complete")]
    events = _events(records + _clear())
    assert _outcomes(events) == [("answered", 16, len(records))]
    outcome = next(e for e in events if e["event"] == "call_outcome")
    assert (outcome["imsi"], outcome["cell"], outcome["iface"]) == (IMSI, "460-00-4353-31", "A")


@pytest.mark.parametrize("cause, detail", [(17, "busy"), (18, "no_answer"), (19, "no_answer"), (21, "rejected"),
                                           (1, "vacant_number"), (34, "failed"), (16, "failed")])
@pytest.mark.parametrize("mobile_originated", [True, False])
def test_unanswered_call_named_by_its_cause(cause, detail, mobile_originated):
    records = _call_start(mobile_originated) + [_cc("disconnect", cause, uplink=not mobile_originated),
                                                _cc("release", cause, uplink=mobile_originated),
                                                _cc("release_complete", uplink=not mobile_originated)]
    assert _outcomes(_events(records + _clear())) == [(detail, cause, len(records))]


def test_first_cause_counts_and_release_complete_alone_may_carry_it():
    records = _call_start() + [_cc("disconnect", 17, uplink=False), _cc("release", 31), _cc("release_complete", 41)]
    assert _outcomes(_events(records)) == [("busy", 17, len(records))]
    records = _call_start(False) + [_cc("release_complete", 17)]  # user determined user busy, TS 24.008 §5.2.2.3.1
    assert _outcomes(_events(records)) == [("busy", 17, len(records))]


def test_call_without_clearing_ends_with_its_connection():
    ringing = _call_start() + [_cc("alerting", uplink=False)]
    events = _events(ringing + _clear())
    assert _outcomes(events) == [("unknown", None, len(ringing) + 2)]  # at Clear Complete
    talking = _call_start() + [_cc("connect", uplink=False)]
    assert _outcomes(_events(talking, finish=False)) == []
    assert _outcomes(_events(talking)) == [("answered", None, len(talking))]  # capture ended: its last message


def test_one_outcome_per_call_and_none_without_setup():
    one = [_cc("disconnect", 17, uplink=False), _cc("release", 17), _cc("release_complete", uplink=False)]
    records = _call_start() + one + [_a("setup", True, called="8613905700002")] + one
    assert [o[0] for o in _outcomes(_events(records + _clear()))] == ["busy", "busy"]
    no_call = [_a("complete_layer3_information", proto="bssmap", **CELL), _a("cm_service_request", imsi=IMSI),
               *one, *_clear()]
    assert _outcomes(_events(no_call)) == []


def _s1(msg: str, proto: str = "nas-eps", uplink: bool = True, **fields) -> dict:
    return {"iface": "S1", "proto": proto, "msg": msg, "uplink": uplink, **fields}


def _attach(mme_ue_id: int, identity: dict, eci: int = 0x1A00101) -> list[dict]:
    """Initial UE Message with an Attach Request naming the IMSI, then an Identity Response on that context."""
    ids = {"mme_ue_id": mme_ue_id, "enb_ue_id": mme_ue_id, "assoc": 0}
    return [_s1("initial_ue_message", "s1ap", enb_ue_id=mme_ue_id, assoc=0, mcc="460", mnc="00", tac=0x5101, eci=eci),
            _s1("attach_request", imsi=IMSI, update_type="combined"),
            _s1("uplink_nas_transport", "s1ap", mcc="460", mnc="00", tac=0x5101, eci=eci, **ids),
            _s1("identity_response", **identity),
            _s1("ue_context_release_complete", "s1ap", **ids)]


def test_imei_change_compares_tac_and_serial_whichever_identity_was_asked():
    first = _attach(1, {"imei": "353328110000013"})
    same_phone = _attach(2, {"imeisv": "35332811000001" + "07"})      # same TAC and serial, another SVN
    other_phone = _attach(3, {"imeisv": "86891104123456" + "01"})
    back = _attach(4, {"imei": "353328110000013"})
    events = _events(first + same_phone + other_phone + back)
    changes = [(e["detail"], e["frame"], e["imei"]) for e in events if e["event"] == "imei_change"]
    other_at = len(first + same_phone) + 4
    assert changes == [("35332811->86891104", other_at, "868911041234567"),
                       ("86891104->35332811", other_at + len(other_phone), "353328110000013")]
    change = next(e for e in events if e["event"] == "imei_change")
    assert (change["imsi"], change["cell"], change["iface"]) == (IMSI, "460-00-27263233", "S1")


def test_imei_before_the_imsi_waits_for_it():
    known = [_a("complete_layer3_information", proto="bssmap", **CELL), _a("location_updating_request", tmsi=5,
                                                                           imsi=IMSI, update_type="imsi_attach"),
             _a("identity_response", imei="353328110000013"), *_clear()]
    # A TMSI nobody has resolved yet: the IMEI comes first, the IMSI later on the same connection.
    unknown = [_a("complete_layer3_information", proto="bssmap", conn=8, **CELL),
               _a("location_updating_request", conn=8, tmsi=99, update_type="imsi_attach"),
               _a("identity_response", conn=8, imei="868911041234567"),
               _a("identity_response", conn=8, imsi=IMSI)]
    events = _events(known + unknown)
    assert [(e["event"], e["detail"]) for e in events if e["event"] in ("power_on", "imei_change")] == [
        ("power_on", "imsi_attach"), ("power_on", "imsi_attach"), ("imei_change", "35332811->86891104")]


def _lu(conn: int, imsi: str, ci: int, update_type: str = "imsi_attach") -> list[dict]:
    return [_a("complete_layer3_information", proto="bssmap", conn=conn, **{**CELL, "ci": ci}),
            _a("location_updating_request", conn=conn, imsi=imsi, update_type=update_type), *_clear(conn)]


@pytest.mark.parametrize("home_mcc, roamers", [("460", ["234150000000001"]), ("234", [IMSI])])
def test_roaming_in_once_at_the_first_located_event(home_mcc, roamers):
    records = [*_lu(1, "234150000000001", 31), *_lu(2, IMSI, 32), *_lu(3, "234150000000001", 33, "normal")]
    events = EventDeriver(EventConfig(home_mcc=home_mcc)).feed(_messages(records)).to_pylist()
    arrivals = [e for e in events if e["event"] == "roaming_in"]
    assert [e["imsi"] for e in arrivals] == roamers
    first = next(e for e in events if e["imsi"] == roamers[0] and e["event"] == "power_on")
    assert [(e["ts"], e["frame"], e["cell"], e["detail"]) for e in arrivals] == [
        (first["ts"], first["frame"], first["cell"], "international")]


_A_MESSAGES = ["complete_layer3_information", "handover_performed", "clear_complete", "paging", "setup", "alerting",
               "connect", "disconnect", "release", "release_complete", "location_updating_request",
               "identity_response", "imsi_detach_indication", "cp_data"]
_S1_MESSAGES = ["initial_ue_message", "uplink_nas_transport", "ue_context_release_complete", "attach_request",
                "identity_response", "detach_request", "tracking_area_update_request"]
_record = st.one_of(
    st.fixed_dictionaries({
        "iface": st.just("A"), "proto": st.sampled_from(["bssmap", "dtap"]), "msg": st.sampled_from(_A_MESSAGES),
        "uplink": st.booleans(), "conn": st.none() | st.integers(0, 3), "tmsi": st.none() | st.integers(0, 3),
        "imsi": st.none() | st.sampled_from([IMSI, "234150000000001"]),
        "imei": st.none() | st.sampled_from(["353328110000013", "868911041234567"]),
        "lac": st.none() | st.integers(1, 2), "ci": st.none() | st.integers(1, 3),
        "cause": st.none() | st.integers(0, 127), "cause_group": st.none() | st.just("cc"),
        "update_type": st.none() | st.sampled_from(["imsi_attach", "normal"])}),
    st.fixed_dictionaries({
        "iface": st.just("S1"), "proto": st.sampled_from(["s1ap", "nas-eps"]), "msg": st.sampled_from(_S1_MESSAGES),
        "uplink": st.booleans(), "mme_ue_id": st.none() | st.integers(0, 2), "enb_ue_id": st.none() | st.integers(0, 2),
        "assoc": st.just(0), "m_tmsi": st.none() | st.integers(0, 3),
        "imsi": st.none() | st.sampled_from([IMSI, "234150000000001"]),
        "imeisv": st.none() | st.sampled_from(["3533281100000107", "8689110412345601"]),
        "tac": st.none() | st.just(1), "eci": st.none() | st.integers(1, 3),
        "update_type": st.none() | st.sampled_from(["combined", "switch_off_eps"])}))


@settings(max_examples=200, deadline=None)
@given(st.lists(_record, max_size=40))
def test_any_record_sequence_derives_well_formed_events(records):
    events = _events(records)
    outcomes = [e for e in events if e["event"] == "call_outcome"]
    assert len(outcomes) <= sum(r["msg"] == "setup" and r["proto"] == "dtap" and r["conn"] is not None
                                for r in records)
    assert {e["detail"] for e in outcomes} <= {"answered", "failed", "unknown", *CALL_OUTCOME_OF_CAUSE.values()}
    assert len({e["imsi"] for e in events if e["event"] == "roaming_in"}) == sum(
        e["event"] == "roaming_in" for e in events)
    for e in events:
        if e["event"] == "imei_change":
            assert re.fullmatch(r"\d{8}->\d{8}", e["detail"]) and e["imsi"], e


def test_other_province_visitor_is_roaming_in_only_with_a_lookup():
    shanghai, unknown = "460002100000001", "460009990000001"
    records = [*_lu(1, shanghai, 31), *_lu(2, IMSI, 32), *_lu(3, unknown, 33)]
    province = {"4600021": "Shanghai", "4600012": "Zhejiang"}
    lookup = lambda imsi: province.get(imsi[:7], "")  # noqa: E731  ("" as Origins answers an unknown segment)
    with_lookup = EventConfig(province_of=lookup, home_province="Zhejiang")
    for config, want in [(EventConfig(), []), (with_lookup, [(shanghai, "domestic")])]:
        events = EventDeriver(config).feed(_messages(records)).to_pylist()
        assert [(e["imsi"], e["detail"]) for e in events if e["event"] == "roaming_in"] == want


def test_scenario_file_names_an_unknown_field(tmp_path):
    path = tmp_path / "scenario.json"
    path.write_text('{"long_stay_s": 60, "border_cells": ["460-00-1-1"]}')
    config = EventConfig.from_scenario(path, probe="p")
    assert (config.long_stay_s, config.border_cells, config.probe) == (60, frozenset({"460-00-1-1"}), "p")
    path.write_text('{"long_stay": 60}')
    with pytest.raises(ValueError, match=r"scenario.json: unknown field 'long_stay'"):
        EventConfig.from_scenario(path)
