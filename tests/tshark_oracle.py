"""tshark as the independent oracle of the differential tests (Wireshark 4.x dissectors).

Two views of a capture: ``fields`` (tshark -T fields: one row per frame, every occurrence of each
field) and ``raw_layers`` (tshark -T json -x: the bytes Wireshark assigned to a protocol layer, one
entry per PDU when a frame carries several). Results are cached per call, since tshark is slow.
"""

import functools
import json
import shutil
import subprocess
from pathlib import Path

import pytest

TSHARK = shutil.which("tshark")
_AGGREGATOR = "\x1f"  # between occurrences of one field in a frame; never in a field value

# Per-file dissector settings a Wireshark user would also need (see ../shared/pcaps/README.md).
FILE_OPTIONS = {"wiresharkwiki__3G-2G-HO.pcap": ("mtp3.standard:Chinese-ITU",)}


def require_tshark():
    if TSHARK is None:
        pytest.fail("tshark is not installed: `make test` installs it (apt-get install tshark)")


def _options(path: Path, options: tuple[str, ...]) -> list[str]:
    args = []
    for opt in (*FILE_OPTIONS.get(Path(path).name, ()), *options):
        args += ["-o", opt]
    return args


@functools.lru_cache(maxsize=None)
def _fields(path: str, names: tuple[str, ...], display_filter: str, options: tuple[str, ...]):
    require_tshark()
    cmd = [TSHARK, "-n", "-r", path, *_options(Path(path), options), "-T", "fields", "-E", "separator=\t",
           "-E", f"aggregator={_AGGREGATOR}", "-E", "occurrence=a", "-e", "frame.number"]
    for name in names:
        cmd += ["-e", name]
    if display_filter:
        cmd += ["-Y", display_filter]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout
    rows = {}
    for line in out.splitlines():
        cols = line.split("\t")
        rows[int(cols[0])] = {name: (value.split(_AGGREGATOR) if value else [])
                              for name, value in zip(names, cols[1:] + [""] * len(names))}
    return rows


def fields(path, names, display_filter: str = "", options: tuple[str, ...] = ()) -> dict[int, dict[str, list[str]]]:
    """``{frame number: {field name: [every occurrence, in order]}}`` for frames matching the filter."""
    return _fields(str(path), tuple(names), display_filter, tuple(options))


@functools.lru_cache(maxsize=None)
def _raw_layers(path: str, layer: str, display_filter: str, options: tuple[str, ...]):
    require_tshark()
    cmd = [TSHARK, "-n", "-r", path, *_options(Path(path), options), "-T", "json", "-x", "--no-duplicate-keys",
           "-J", f"frame {layer}", "-Y", display_filter or layer]
    packets = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout)
    out = {}
    for packet in packets:
        layers = packet["_source"]["layers"]
        number = int(layers["frame"]["frame.number"])
        raw = layers.get(f"{layer}_raw")
        if raw is None:
            continue
        # One PDU: [hex, offset, length, mask, type]; several: a list of such lists.
        entries = raw if isinstance(raw[0], list) else [raw]
        out[number] = [bytes.fromhex(entry[0]) for entry in entries]
    return out


def raw_layers(path, layer: str, display_filter: str = "", options: tuple[str, ...] = ()) -> dict[int, list[bytes]]:
    """``{frame number: [bytes of each ``layer`` PDU in the frame]}``, e.g. layer ``s1ap`` or ``gsm_a.bssmap``."""
    return _raw_layers(str(path), layer, display_filter, tuple(options))
