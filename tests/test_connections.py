"""The connection pass (decoders/connections.py) against the record-at-a-time reference, Correlator.observe_*:
each message's context and every release, in order, come out the same — on the simulated city, on every shared
capture, and on random message streams that reuse S1AP IDs and SCCP connections, cut into batches of any size.
And its hash tables against a dict."""

import pyarrow as pa
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import decoders.connections as connections
from conftest import shared_pcaps
from decoders.correlate import Correlator
from decoders.decode import decode_file
from decoders.events import _Kinds, _pass_kind
from decoders.records import MESSAGE_SCHEMA, RecordBuilder
from test_events_fast import _message, _record


class _Numbering:
    """Contexts numbered in order of first appearance, whatever names them (an object, an id)."""

    def __init__(self):
        self.of: dict = {}

    def __call__(self, key) -> int:
        return self.of.setdefault(key, len(self.of))


def _reference(tables: list[pa.Table]) -> tuple[list, list]:
    correlator, number, held = Correlator(), _Numbering(), []
    contexts, releases, row = [], [], 0
    for table in tables:
        for rec in table.to_pylist():
            ctx = None
            if _pass_kind((rec["proto"], rec["msg"])) != connections.SKIP:  # what the deriver skips
                ctx = correlator.observe(rec)
            held.append(ctx)  # alive, so that no two contexts share an id()
            contexts.append(None if ctx is None else number(id(ctx)))
            releases += [(row, number(id(c))) for c in correlator.released]
            held += correlator.released
            correlator.released.clear()
            row += 1
    return contexts, releases


def _walked(tables: list[pa.Table]) -> tuple[list, list]:
    index, number = connections.ConnectionIndex(), _Numbering()
    contexts, releases, start = [], [], 0
    for table in tables:
        kinds = _Kinds(table)
        walk = index.walk(kinds.where(_pass_kind, "int8"), table["assoc"], table["mme_ue_id"], table["enb_ue_id"],
                          table["conn"])
        rows = iter(zip(walk.released_row.tolist(), walk.released_id.tolist()))
        pending = next(rows, None)
        for i, cid in enumerate(walk.ctx.tolist()):
            contexts.append(None if cid < 0 else number(cid))
            while pending is not None and pending[0] == i:
                releases.append((start + i, number(pending[1])))
                pending = next(rows, None)
        start += len(table)
    return contexts, releases


def _same(tables: list[pa.Table]) -> int:
    want, got = _reference(tables), _walked(tables)
    assert got[0] == want[0], next(i for i, (a, b) in enumerate(zip(*want[:1], *got[:1])) if a != b)
    assert got[1] == want[1]
    return sum(c is not None for c in got[0])


@pytest.mark.parametrize("batch", [None, 997])
def test_city_contexts_equal_the_reference(city, batch):
    tables = list(decode_file(city / "capture.pcap"))
    if batch:
        whole = pa.concat_tables(tables)
        tables = [whole.slice(i, batch) for i in range(0, len(whole), batch)]
    assert _same(tables) > 1000


def test_shared_captures_contexts_equal_the_reference():
    assert sum(_same(list(decode_file(path))) for path in shared_pcaps()) > 0


@settings(max_examples=400, deadline=None)
@given(st.lists(_message, min_size=1, max_size=120), st.integers(1, 40))
# A path switch: the eNB UE ID is the target eNB's, the MME UE ID names the context (not the one the eNB ID had).
@example([("initial_ue", 0, 0, 0, 0), ("ics_request", 0, 1, 0, 0), ("path_switch", 0, 0, 0, 0),
          ("release_complete", 0, 0, 0, 0)], 4)
def test_random_streams_contexts_equal_the_reference(steps, batch):
    builder = RecordBuilder(MESSAGE_SCHEMA)
    builder.extend([_record(n, *step) for n, step in enumerate(steps, 1)])
    whole = builder.table()
    _same([whole.slice(i, batch) for i in range(0, len(whole), batch)])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["put", "pop", "get"]), st.integers(-3, 40), st.integers(0, 2)),
                max_size=300))
def test_hash_table_equals_a_dict(ops):
    """Linear probing with backward-shift deletion, grown at half full, through the same calls the pass makes."""
    keys, vals = connections._empty_table()
    meta, want = connections.np.zeros(6, connections.np.int64), {}
    for n, (op, a, b) in enumerate(ops):
        if op == "put":
            if 2 * (meta[connections._N_SCCP] + 1) > len(vals):
                keys, vals = connections._rehashed(keys, vals, 2 * len(vals))
            assert connections._put(keys, vals, meta, connections._N_SCCP, a, b, n) == want.get((a, b), -1)
            want[a, b] = n
        elif op == "pop":
            assert connections._pop(keys, vals, meta, connections._N_SCCP, a, b) == want.pop((a, b), -1)
        assert meta[connections._N_SCCP] == len(want)
        assert all(connections._get(keys, vals, ka, kb) == v for (ka, kb), v in want.items())
        assert connections._get(keys, vals, a, b) == want.get((a, b), -1)
