"""Decoding in a worker process: capture files in, message tables out, while the caller works on the last ones."""

from multiprocessing import get_context
from pathlib import Path

import pyarrow as pa

from decoders.decode import DecodeState, decode_file


class DecodeWorker:
    """A decoder in its own process: paths go in, Arrow IPC batches stream back as they are decoded, so decoding
    and what the caller does with the batches (events, matching, the store) run on two cores."""

    def __init__(self, mtp3: str):
        ctx = get_context("spawn")  # a clean interpreter: the daemon's threads and chdb must not be forked
        self.jobs, self.results = ctx.Queue(), ctx.Queue(maxsize=8)
        self.process = ctx.Process(target=_decode_loop, args=(self.jobs, self.results, mtp3), daemon=True,
                                   name="sigloc-decode")
        self.process.start()
        self.stats: tuple[int, dict[str, int]] = (0, {})

    def decode(self, path: Path):
        self.jobs.put(str(path))
        while True:
            kind, value = self.results.get()
            if kind == "batch":
                yield pa.ipc.open_stream(value).read_all()
            elif kind == "done":
                self.stats = value
                return
            else:
                raise RuntimeError(f"decode worker failed on {path}: {value}")

    def close(self) -> None:
        self.jobs.put(None)
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()


def _decode_loop(jobs, results, mtp3: str) -> None:
    while (path := jobs.get()) is not None:
        state = DecodeState()
        try:
            for messages in decode_file(path, state, mtp3_standard=mtp3):
                sink = pa.BufferOutputStream()
                with pa.ipc.new_stream(sink, messages.schema) as writer:
                    writer.write_table(messages)
                results.put(("batch", sink.getvalue().to_pybytes()))
        except Exception as err:  # reported to the daemon, which logs it; the worker takes the next file
            results.put(("error", repr(err)))
            continue
        results.put(("done", (state.payloads, dict(state.anomalies))))
