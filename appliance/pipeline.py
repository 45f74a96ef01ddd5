"""The main job, end to end: capture → messages → events → fence triggers → ClickHouse → report.

Each stage is a library call on Arrow batches; this module only wires them and counts what passed.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from analytics.origin import Origins
from analytics.report import DEFAULT_K, build_report, write_report
from analytics.store import Store
from appliance.decode_worker import DecodeWorker
from capture.errors import Anomalies
from decoders.decode import DecodeState, decode_file
from decoders.events import EventConfig, EventDeriver
from geofence.cells import Catalogue
from geofence.fences import DEFAULT_MIN_OVERLAP, compile_fence, load_fence
from geofence.match import FenceMatcher


@dataclass
class JobResult:
    payloads: int = 0
    messages: int = 0
    events: int = 0
    triggers: int = 0
    fence: str = ""
    fence_cells: list[str] = field(default_factory=list)
    events_by_kind: dict[str, int] = field(default_factory=dict)
    anomalies: Anomalies = field(default_factory=Anomalies)
    report: Path | None = None
    origin: object = None  # the report's origin-by-country table
    visitors: int = 0


def run_job(capture: str | os.PathLike, cells: str | os.PathLike, fence_path: str | os.PathLike,
            store_url: str, out_dir: str | os.PathLike, segments: str | os.PathLike | None = None,
            config: EventConfig | None = None, k: int = DEFAULT_K, min_overlap: float = DEFAULT_MIN_OVERLAP,
            progress: Callable[[str, int], None] | None = None,
            restore: str | os.PathLike | None = None, workers: int = 2) -> JobResult:
    """Run the whole job on one capture file (or directory) and write the fence's report; ``restore`` is an
    identity-store snapshot from an earlier run (who the TMSIs belong to, when everyone was last seen). With
    ``workers`` > 1 the capture decodes in a worker process while this one derives, matches and stores."""
    config = config or EventConfig()
    result = JobResult()
    catalogue = Catalogue.load(cells)
    fence = load_fence(fence_path)
    result.fence, result.fence_cells = fence.name, compile_fence(fence, catalogue, min_overlap)
    matcher = FenceMatcher([c.key for c in catalogue.cells], {fence.name: result.fence_cells})
    origins = Origins.load(segments, home_mcc=config.home_mcc)
    store = Store(store_url, pipelined=True)  # the engine inserts one batch while this thread derives the next
    state = DecodeState()
    deriver = EventDeriver(config)
    if restore:
        deriver.restore(restore)
    start = end = None
    try:
        def absorb(events: pa.Table, batch_no: int) -> None:
            nonlocal start, end
            if not len(events):
                return
            events = events.sort_by([("ts", "ascending"), ("frame", "ascending")])
            triggers = matcher.match(events)
            token = f"{Path(capture).name}:{batch_no}"
            result.events += store.insert_events(events, origins, token=f"ev:{token}")
            result.triggers += store.insert_triggers(triggers, origins, token=f"tr:{token}")
            for kind, n in zip(*pc.value_counts(events["event"]).flatten()):
                result.events_by_kind[kind.as_py()] = result.events_by_kind.get(kind.as_py(), 0) + n.as_py()
            lo, hi = pc.min_max(events["ts"]).values()
            start = lo.as_py().timestamp() if start is None else min(start, lo.as_py().timestamp())
            end = hi.as_py().timestamp() if end is None else max(end, hi.as_py().timestamp())

        batch_no, worker = 0, DecodeWorker("auto") if workers > 1 else None
        try:
            batches = worker.decode(Path(capture)) if worker else decode_file(capture, state)
            for batch_no, messages in enumerate(batches, start=1):
                result.messages += len(messages)
                absorb(deriver.feed(messages), batch_no)
                if progress:
                    progress("decode", len(messages))
        finally:
            if worker:
                worker.close()
        absorb(deriver.finish(), batch_no + 1)
        result.payloads, result.anomalies = (state.payloads, state.anomalies) if worker is None else (
            worker.stats[0], Anomalies(worker.stats[1]))
        if start is not None:
            report = build_report(store, fence.name, result.fence_cells, start, end, k=k)
            result.report = write_report(report, out_dir, fence, catalogue, result.fence_cells)
            result.origin, result.visitors = report.by_country, report.visitors
    finally:
        store.close()
    return result
