"""A durable local spool for insert batches the store could not take.

Each batch is one Arrow IPC file ``<seq>.<table>.arrow`` whose schema metadata carries the table name and
the insert deduplication token. A file appears only complete (written to ``.tmp``, fsynced, renamed,
directory fsynced), so a crash leaves either the whole batch or nothing. Replay goes in sequence order
and deletes a file only after its insert succeeded; a crash between the two re-sends the batch with the
same token, which ClickHouse drops as a duplicate.
"""

import os
import re
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

_NAME = re.compile(r"^(\d{12})\.(\w+)\.arrow$")


class SpoolError(RuntimeError):
    """A spool file is unreadable or lacks its table/token metadata; the message names the file."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def files(self) -> list[Path]:
        """Complete spool files in replay order (left-over ``.tmp`` files of a crash are not batches)."""
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir() if _NAME.match(p.name))

    def __len__(self) -> int:
        return len(self.files())

    def put(self, table_name: str, batch: pa.Table, token: str) -> Path:
        """Write one batch durably; it is replayed after every batch spooled before it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        files = self.files()
        seq = int(_NAME.match(files[-1].name).group(1)) + 1 if files else 1
        path = self.directory / f"{seq:012d}.{table_name}.arrow"
        tmp = path.with_name(path.name + ".tmp")
        meta = {**(batch.schema.metadata or {}), b"sigloc.table": table_name.encode(), b"sigloc.token": token.encode()}
        batch = batch.replace_schema_metadata(meta)
        with open(tmp, "wb") as f:
            with ipc.new_file(f, batch.schema) as writer:
                writer.write_table(batch)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(self.directory)
        return path

    @staticmethod
    def read(path: Path) -> tuple[str, str, pa.Table]:
        """(table name, token, batch) of one spool file."""
        try:
            with ipc.open_file(path) as reader:
                batch = reader.read_all()
        except (OSError, pa.ArrowInvalid) as err:
            raise SpoolError(f"{path}: unreadable spool file: {err}") from err
        meta = batch.schema.metadata or {}
        if b"sigloc.table" not in meta or b"sigloc.token" not in meta:
            raise SpoolError(f"{path}: spool file lacks field 'sigloc.table' or 'sigloc.token' in its metadata")
        rest = {k: v for k, v in meta.items() if not k.startswith(b"sigloc.")}
        batch = batch.replace_schema_metadata(rest or None)
        return meta[b"sigloc.table"].decode(), meta[b"sigloc.token"].decode(), batch

    def replay(self, insert: Callable[[str, pa.Table, str], None]) -> int:
        """Insert every spooled batch in order; stops at (and raises) the first failure, keeping that file
        and all later ones. Returns the number of batches replayed."""
        done = 0
        for path in self.files():
            name, token, batch = self.read(path)
            insert(name, batch, token)
            path.unlink()
            _fsync_dir(self.directory)
            done += 1
        for tmp in self.directory.glob("*.tmp") if self.directory.is_dir() else []:
            tmp.unlink()  # half-written by a crash; its batch was never acknowledged as spooled
        return done
