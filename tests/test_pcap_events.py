"""Behaviour events of the real captures (../shared/pcaps) against hand-reviewed expected files, suricata-verify
style: tests/events_expected/<capture stem>.events.jsonl, written by make_expected.py and checked event by event
against the packets (tests/events_expected/REVIEW.md). A change in what the deriver reports shows up as a diff here;
refresh with make_expected.py only after reviewing the new events the same way.
"""

import sys
from pathlib import Path

import pytest

from conftest import SHARED_PCAPS
from test_events_rules import _events

sys.path.insert(0, str(Path(__file__).parent / "events_expected"))
from make_expected import KNOWN_WRONG, captures, expected_path, write_events  # noqa: E402

CAPTURES = captures()
SHARED = pytest.mark.skipif(not SHARED_PCAPS.is_dir(), reason=f"{SHARED_PCAPS} is absent")


@SHARED
def test_every_capture_has_an_expected_file():
    assert len(CAPTURES) >= 15
    stale = {p.name for p in expected_path(CAPTURES[0]).parent.glob("*.events.jsonl")} - {
        expected_path(c).name for c in CAPTURES}
    assert not stale, f"expected files without a capture: {sorted(stale)}"
    for capture in CAPTURES:
        assert expected_path(capture).exists(), f"{capture.name}: run tests/events_expected/make_expected.py"


@SHARED
@pytest.mark.parametrize("capture", [
    pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=KNOWN_WRONG[c.name])) if c.name in KNOWN_WRONG else c
    for c in CAPTURES], ids=[c.name for c in CAPTURES])
def test_events_equal_the_reviewed_file(capture, tmp_path):
    out = tmp_path / "events.jsonl"
    write_events(capture, out)
    got = out.read_text().splitlines()
    want = expected_path(capture).read_text().splitlines()
    assert got == want


# -- regressions found reviewing the captures (hand-made records, as the decoders set them) --------------------------
X, Y = "001010123456819", "311980000000725"
C1, C2, C3 = ({"mcc": "001", "mnc": "01", "tac": 1, "eci": eci} for eci in (25601, 7895936, 17275823))


def _s1ap(msg: str, enb: int | None, mme: int | None = None, cell: dict | None = None, assoc: int = 0) -> dict:
    return {"iface": "S1", "proto": "s1ap", "msg": msg, "assoc": assoc, "enb_ue_id": enb, "mme_ue_id": mme,
            **(cell or {})}


def _nas(msg: str, uplink: bool = True, **fields) -> dict:
    return {"iface": "S1", "proto": "nas-eps", "msg": msg, "uplink": uplink, **fields}


def _attach(enb: int, cell: dict, **identity) -> list[dict]:
    return [_s1ap("initial_ue_message", enb, cell=cell), _nas("attach_request", update_type="eps", **identity)]


def _kinds(records: list[dict], finish: bool = True) -> list[tuple]:
    """(event, IMSI, frame, previous cell) in frame order; each record is a frame of its own here."""
    return sorted(((e["event"], e["imsi"], e["frame"], e["prev_cell"]) for e in _events(records, finish)
                   if e["event"] != "roaming_in"), key=lambda e: e[2])


def test_mme_ue_id_of_a_connection_whose_release_went_unseen_names_the_new_one():
    """testcups frames 768-795: the MME reused MME UE S1AP ID 209 for the second Attach; the first connection's
    release was never seen. The second Attach (GUTI unknown) waited for its IMSI on the eNB's new context and was
    lost when the downlink found the old context by the MME ID."""
    records = [*_attach(5, C1, imsi=X), _s1ap("downlink_nas_transport", 5, 9), _nas("attach_accept", False),
               *_attach(6, C1, m_tmsi=0xC4FF0000),
               _s1ap("downlink_nas_transport", 6, 9), _nas("identity_request", False),
               _s1ap("uplink_nas_transport", 6, 9, C1), _nas("identity_response", imsi=Y)]
    assert _kinds(records) == [("power_on", X, 2, None), ("power_on", Y, 6, None)]


def test_context_displaced_from_both_s1ap_ids_is_released_with_what_waits_on_it():
    """testepc frame 66: a switch-off Detach with an unknown S-TMSI, whose connection was never released, waited
    for the end of input (which a live probe never reaches); it is reported (IMSI empty) once both its S1AP IDs
    name other connections."""
    records = [_s1ap("initial_ue_message", 5, cell=C1),
               _nas("detach_request", update_type="switch_off_eps", m_tmsi=0x02000BE6),
               _s1ap("downlink_nas_transport", 5, 9),
               *_attach(5, C2, imsi=X), _s1ap("downlink_nas_transport", 5, 9)]
    assert _kinds(records, finish=False) == [("power_off", None, 2, None), ("power_on", X, 5, None)]


def test_handover_target_enb_id_does_not_take_a_stale_context():
    """Path Switch Request: the MME UE S1AP ID names the context even when the target eNB's ID held another that
    has no MME UE S1AP ID yet (the case the first regression above otherwise gives to the eNB's context)."""
    records = [_s1ap("initial_ue_message", 3, cell=C3, assoc=1), _nas("service_request"),    # never answered
               *_attach(5, C1, imsi=X), _s1ap("downlink_nas_transport", 5, 9),
               _s1ap("path_switch_request", 3, 9, C2, assoc=1)]
    assert _kinds(records) == [("power_on", X, 4, None), ("cell_change", X, 6, "001-01-25601")]


def test_power_on_in_another_cell_is_no_cell_change():
    """testattach frames 188-391: repeated Attach Requests from other cells without a Detach gave a cell_change at
    each, and at the fifth a fast_cell_switching; the power on's cell becomes the last cell instead."""
    records = [*_attach(5, C1, imsi=X), _s1ap("downlink_nas_transport", 5, 9),
               *_attach(6, C2, imsi=X), _s1ap("downlink_nas_transport", 6, 10),
               _s1ap("uplink_nas_transport", 6, 10, C3), _nas("tracking_area_update_request", update_type="periodic")]
    assert _kinds(records) == [("power_on", X, 2, None), ("power_on", X, 5, None),
                               ("cell_change", X, 7, "001-01-7895936"), ("location_update", X, 8, None)]
    lac = {"mcc": "460", "mnc": "00", "lac": 0x1101}
    a = [{"iface": "A", "proto": "bssmap", "msg": "complete_layer3_information", "conn": 1, **lac, "ci": 31},
         {"iface": "A", "proto": "dtap", "msg": "location_updating_request", "conn": 1, "uplink": True,
          "update_type": "normal", "imsi": "460001234567890"},
         {"iface": "A", "proto": "bssmap", "msg": "complete_layer3_information", "conn": 2, **lac, "ci": 32},
         {"iface": "A", "proto": "dtap", "msg": "location_updating_request", "conn": 2, "uplink": True,
          "update_type": "imsi_attach", "imsi": "460001234567890"}]
    assert [e["event"] for e in _events(a)] == ["location_update", "power_on"]
