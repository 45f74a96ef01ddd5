"""Operator reference tables (decoders/tables.py) and MSISDN number segments (analytics/origin.py)."""

import re

import pyarrow as pa
import pytest

from analytics.origin import Origins, SegmentError, read_segments
from decoders.tables import TableError, read_msisdn, read_profiles, read_tac


def _csv(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_msisdn_table(tmp_path):
    path = _csv(tmp_path, "m.csv", "IMSI,MSISDN\n460005710000001,+86 139-0571-0001\n460005710000002,13905710002\n")
    assert read_msisdn(path) == {"460005710000001": "8613905710001", "460005710000002": "13905710002"}


@pytest.mark.parametrize("body, message", [
    ("imsi,msisdn\n46000x,139\n", "m.csv:2: field 'imsi': '46000x' is not 6-15 digits"),
    ("imsi,msisdn\n460005710000001,13905710001\n460005710000001,13905710002\n",
     "m.csv:3: field 'imsi': 460005710000001 already listed on line 2"),
    ("imsi,msisdn\n460005710000001,call me\n", "m.csv:2: field 'msisdn': 'call me' is not a phone number"),
    ("imsi,phone\n460005710000001,139\n", "m.csv:1: missing column(s): msisdn"),
])
def test_msisdn_table_errors(tmp_path, body, message):
    with pytest.raises(TableError, match=re.escape(message)):
        read_msisdn(_csv(tmp_path, "m.csv", body))


def test_unreadable_file_named(tmp_path):
    with pytest.raises(TableError, match="nope.csv: cannot read"):
        read_tac(tmp_path / "nope.csv")


def test_tac_table(tmp_path):
    path = _csv(tmp_path, "tac.csv", "tac,brand,model\n35332011,Apple,iPhone 15\n86754303,Huawei,Mate 60\n")
    assert read_tac(path) == {"35332011": ("Apple", "iPhone 15"), "86754303": ("Huawei", "Mate 60")}


@pytest.mark.parametrize("body, message", [
    ("tac,brand,model\n3533201,Apple,x\n", "tac.csv:2: field 'tac': '3533201' is not 8 digits"),
    ("tac,brand,model\n35332011,,x\n", "tac.csv:2: field 'brand': empty"),
    ("tac,brand,model\n35332011,A,x\n35332011,B,y\n", "tac.csv:3: field 'tac': 35332011 already listed on line 2"),
    ("tac,model\n35332011,x\n", "tac.csv:1: missing column(s): brand"),
])
def test_tac_table_errors(tmp_path, body, message):
    with pytest.raises(TableError, match=re.escape(message)):
        read_tac(_csv(tmp_path, "tac.csv", body))


def test_profiles_types_and_nulls(tmp_path):
    path = _csv(tmp_path, "p.csv", "msisdn,plan,arpu,age_band\n+8613905710001,gold,188.5,30-39\n"
                                   "13905710002,silver,,40-49\n")
    p = read_profiles(path)
    assert p.key == "msisdn" and p.tags == ["plan", "arpu", "age_band"]
    assert p.table["msisdn"].to_pylist() == ["8613905710001", "13905710002"]
    assert p.table["arpu"].type == pa.float64() and p.table["arpu"].to_pylist() == [188.5, None]
    assert p.table["plan"].type == pa.string() and p.table["age_band"].to_pylist() == ["30-39", "40-49"]
    assert p.row_of == {"8613905710001": 0, "13905710002": 1}


@pytest.mark.parametrize("body, message", [
    ("plan,arpu\ngold,1\n", "p.csv:1: need exactly one subscriber column, imsi or msisdn"),
    ("imsi,msisdn,plan\n1,2,gold\n", "p.csv:1: need exactly one subscriber column"),
    ("imsi\n460005710000001\n", "p.csv:1: no tag columns besides imsi"),
    ("imsi,plan\n4600x,gold\n", "p.csv:2: field 'imsi': '4600x' is not digits"),
    ("imsi,plan\n460005710000001,gold\n460005710000001,silver\n",
     "p.csv:3: field 'imsi': 460005710000001 already listed on line 2"),
    ("imsi,plan\n", "p.csv: no subscribers"),
])
def test_profiles_errors(tmp_path, body, message):
    with pytest.raises(TableError, match=re.escape(message)):
        read_profiles(_csv(tmp_path, "p.csv", body))


SEGMENTS = ("kind,prefix,province,city\nimsi,46000571,Zhejiang,Hangzhou\nmsisdn,1390571,Zhejiang,Hangzhou\n"
            "msisdn,1390210,Shanghai,Shanghai\n")


def test_msisdn_segments_give_home_when_imsi_ranges_do_not(tmp_path):
    origins = Origins.load(_csv(tmp_path, "seg.csv", SEGMENTS))
    assert origins.msisdn_segments == {"1390571": ("Zhejiang", "Hangzhou"), "1390210": ("Shanghai", "Shanghai")}
    # IMSI segment known: it wins over the MSISDN
    assert origins.home("460005710000001", "8613902100001").province == "Zhejiang"
    # IMSI range unknown: the MSISDN segment (country code 86 stripped) answers
    home = origins.home("460009990000001", "8613902101234")
    assert (home.province, home.city, home.roaming) == ("Shanghai", "Shanghai", "other_province")
    assert origins.home("460009990000001", "13905719999").roaming == "local"
    assert origins.home("460009990000001", "13800000000").roaming == "unknown"
    assert origins.home("460009990000001").roaming == "unknown"
    assert origins.home("262019990000001", "8613905710001").roaming == "international"


def test_simulator_segment_file_loads(tmp_path):
    from simulator.city import write_number_segments
    path = tmp_path / "segments.csv"
    write_number_segments(path)
    assert read_segments(path, "msisdn")["1390571"] == ("Zhejiang", "Hangzhou")
    assert read_segments(path)["46000571"] == ("Zhejiang", "Hangzhou")


@pytest.mark.parametrize("row, message", [
    ("msisdn,139057,Zhejiang,Hangzhou", "seg.csv:2: field 'prefix': MSISDN segment '139057' is not 7 digits"),
    ("imsi,4600,Zhejiang,Hangzhou", "seg.csv:2: field 'prefix': IMSI prefix '4600' is not 5-15 digits"),
    ("imei,35332011,Zhejiang,Hangzhou", "seg.csv:2: field 'kind': 'imei' is not imsi or msisdn"),
    ("msisdn,139x571,Zhejiang,Hangzhou", "seg.csv:2: field 'prefix': '139x571' is not digits"),
])
def test_segment_errors(tmp_path, row, message):
    with pytest.raises(SegmentError, match=re.escape(message)):
        read_segments(_csv(tmp_path, "seg.csv", "kind,prefix,province,city\n" + row + "\n"))
