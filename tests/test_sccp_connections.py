"""The SCCP connection tracker's bound (``Connections(limit=...)``): which connections go when it is reached, and
what a message of an evicted connection then gets.

The oracle is the tracker's own documented behaviour for a reference it never saw (a DT1 of a connection whose CR
was not captured opens a connection with unknown SSN), and its per-message path (``track``) against its batch path
(``track_many``) on the same messages.
"""

import numpy as np

from capture import sccp
from capture.errors import Anomalies
from packets import sccp_address, sccp_cr, sccp_dt1

BSC, MSC = 1, 2  # node indices: CRs go BSC -> MSC and bind the BSC's reference; DT1s back address it


def _cr(ref: int) -> sccp.Message:
    return sccp.parse(memoryview(sccp_cr(ref, sccp_address(254), b"\x00\x01\x55")))


def _dt1(ref: int) -> sccp.Message:
    return sccp.parse(memoryview(sccp_dt1(ref, b"\x01\x80\x01\x24")))


def _messages(touch_first: bool, last: int) -> list[tuple[sccp.Message, int, int, float]]:
    """Four CRs (references 10-13) fill a tracker of limit 4; optionally a DT1 on the first makes it the most
    recently used; a fifth CR (reference 14) then needs room; then a DT1 on each of the three that are kept and one
    on reference ``last`` (which opens a connection: the fourth live one, below the limit)."""
    out = [(_cr(10 + i), BSC, MSC, float(i)) for i in range(4)]
    if touch_first:
        out.append((_dt1(10), MSC, BSC, 4.0))
    out.append((_cr(14), BSC, MSC, 5.0))
    kept = (10, 13, 14) if touch_first else (12, 13, 14)
    out += [(_dt1(ref), MSC, BSC, 6.0 + i) for i, ref in enumerate((*kept, last))]
    return out


def _per_message(messages, limit: int = 4) -> tuple[list, Anomalies]:
    anomalies = Anomalies()
    connections = sccp.Connections(anomalies, limit=limit)
    found = [connections.track(msg, src, dst, ts) for msg, src, dst, ts in messages]
    return [(c.id, c.ssn) for c in found], anomalies


def test_least_recently_used_connections_expire_first():
    """At the limit the least recently used half goes (the DT1 at t=4 keeps reference 10's connection, so 11 and 12
    go); a DT1 on an evicted reference then gets what a DT1 on a reference never seen gets: a new connection of
    unknown SSN, nothing counted but the expiry."""
    got, anomalies = _per_message(_messages(True, 11))
    crs, touch, fifth, kept, evicted = got[:4], got[4], got[5], got[6:9], got[9]
    assert [c for c, _ in crs] == [0, 1, 2, 3] and all(ssn == 254 for _, ssn in crs)
    assert touch == crs[0] and fifth == (4, 254)
    assert kept == [crs[0], crs[3], fifth]  # still tied to their CRs
    assert evicted == (5, 0) and dict(anomalies) == {"sccp.connection_expired": 2}
    for gone in (11, 12):
        assert _per_message(_messages(True, gone)) == _per_message(_messages(True, 99))


def test_ties_expire_the_older_connection_first():
    """With no message since their CRs, the first two CRs are the least recently used: 10 and 11 go."""
    got, anomalies = _per_message(_messages(False, 10))
    assert got[5:8] == [(2, 254), (3, 254), (4, 254)] and got[8] == (5, 0)
    assert dict(anomalies) == {"sccp.connection_expired": 2}
    assert _per_message(_messages(False, 11)) == _per_message(_messages(False, 99)) == (got, anomalies)


def test_batch_tracking_evicts_alike():
    """``track_many`` (the compiled fast path) gives the ids, SSNs and expiry count ``track`` gives."""
    for messages in (_messages(True, 11), _messages(False, 10), _messages(True, 99)):
        expected, expected_anomalies = _per_message(messages)
        columns = tuple(np.array(values) for values in zip(*(
            (m.type, src, dst, m.src_ref, m.dst_ref, sccp.subsystem(m), -1 if m.called is None else m.called.ssn,
             ts, m.more) for m, src, dst, ts in messages)))
        n = len(messages)
        out = (np.full(n, -1, np.int64), columns[5].copy(), np.full(n, -1, np.int64), np.zeros(n, np.bool_))
        anomalies = Anomalies()
        sccp.Connections(anomalies, limit=4).track_many(columns, 0, n, out)
        assert list(zip(out[0].tolist(), out[1].tolist())) == expected
        assert anomalies == expected_anomalies
