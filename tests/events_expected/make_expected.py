"""Write tests/events_expected/<capture stem>.events.jsonl from the shared captures (../shared/pcaps).

Run by hand after a change in event derivation, then review the diff against the packets (REVIEW.md says
how each event was checked) before committing; tests/test_pcap_events.py compares, it never writes.
The lines are what ``sigloc events`` prints: JSONL in EVENT_SCHEMA field order, nulls omitted, times
as ISO strings with microseconds.
"""

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE.parent.parent), str(HERE.parent)]  # the project and tests/, when run as a script

from appliance.cli import _write  # noqa: E402  (the `sigloc events` JSONL writer)
from conftest import SHARED_PCAPS, shared_pcaps  # noqa: E402
from decoders.events import events_from_file  # noqa: E402

# Captures whose signaling sigloc does not see as A or S1 (RANAP, A-bis RSL, BSSMAP inside MAP): no file.
NOT_A_OR_S1 = {"wiresharkwiki__3G-2G-HO.pcap", "wiresharkwiki__3gpp_mc.cap", "wiresharkwiki__iPhone_A_bis_card.pcap"}
# Captures whose reviewed events differ from what sigloc derives today, because of a bug outside the event
# stage: their file holds the reviewed events, is not overwritten here, and the test expects failure (strictly,
# so the fix shows up as an unexpected pass and the entry goes).
KNOWN_WRONG: dict[str, str] = {}  # capture name -> the bug, as REVIEW.md has it


def captures() -> list[Path]:
    """The shared captures that have an expected-events file."""
    return [p for p in shared_pcaps() if p.name not in NOT_A_OR_S1]


def expected_path(capture: Path) -> Path:
    return HERE / f"{capture.stem}.events.jsonl"


def write_events(capture: Path, out: Path) -> int:
    """Derive ``capture``'s events with the default EventConfig and write them to ``out``; return the count."""
    return _write([events_from_file(capture)], "jsonl", str(out))


def main() -> None:
    if not SHARED_PCAPS.is_dir():
        sys.exit(f"{SHARED_PCAPS}: no such directory")
    for capture in captures():
        if capture.name in KNOWN_WRONG:
            print(f"kept  {capture.name}: {KNOWN_WRONG[capture.name]}")
            continue
        print(f"{write_events(capture, expected_path(capture)):4d}  {capture.name}")


if __name__ == "__main__":
    main()
