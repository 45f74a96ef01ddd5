"""The daemon's configuration: one TOML file, validated at start so a typo stops the probe with the key's name.

Every key is declared once in ``SCHEMA`` (section → key → Key); anything not declared is an error rather than
silently ignored, because a misspelt ``opt_out`` that is ignored means messages to people who said no.
Errors name the file, the line and the dotted key (``sigloc.toml:12: store.raw_ttl_days: ...``).
"""

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from appliance.kafka_feed import check_config


class ConfigError(ValueError):
    """A configuration problem; the message names the file, line and key."""


@dataclass(frozen=True)
class Key:
    kind: type | tuple[type, ...]
    default: Any = None
    required: bool = False
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    path: str = ""  # "file"/"dir": must exist; "new"/"newfile": a directory/file created later
    # (all resolved against the config file's directory)
    pattern: str = ""


_PLMN = r"^\d{3}-\d{2,3}$"
_LISTEN = r"^[\w.\-\[\]:]+:\d{1,5}$"

SCHEMA: dict[str, dict[str, Key]] = {
    "probe": {
        "id": Key(str, "probe-1"),
        "home_plmn": Key(str, "460-00", pattern=_PLMN),
        "home_province": Key(str, ""),
        "timezone": Key(str, "Asia/Shanghai"),
        "mtp3": Key(str, "auto", choices=("auto", "itu", "chinese")),
        "state_dir": Key(str, "sigloc-state", path="new"),
    },
    "store": {
        "url": Key(str, "chdb://sigloc-data", pattern=r"^(chdb|https?)://"),
        "spool": Key(str, "sigloc-spool", path="new"),
        "raw_ttl_days": Key(int, 30, low=1, high=3650),
        "cluster": Key(str, ""),
        "pseudonym_key_file": Key(str, "", path="newfile"),  # created on first start; keep it off the store host
    },
    "reference": {
        "cells": Key(str, required=True, path="file"),
        "segments": Key(str, "", path="file"),
        "tac": Key(str, "", path="file"),
        "msisdn": Key(str, "", path="file"),
        "profiles": Key(str, "", path="file"),
        "outlets": Key(str, "", path="file"),
    },
    "fences": {
        "dir": Key(str, "fences", path="dir"),
        "min_overlap": Key(float, 0.3, low=0.0, high=1.0),
        "dwell_s": Key(float, 1800.0, low=0.0, high=30 * 86400),  # 0 turns dwell detection off
        "pass_through_s": Key(float, 600.0, low=0.0, high=86400),  # 0 turns pass-through off
        "exit_after_s": Key(float, 120.0, low=0.0, high=86400),  # hysteresis: 0 = exit at first sighting
        "exit_confirm": Key(int, 2, low=1, high=100),  # ... or after this many sightings outside
    },
    "campaigns": {
        "dir": Key(str, "campaigns", path="dir"),
        "opt_out": Key(str, "", path="file"),
        "blacklist": Key(str, "", path="file"),
        "red_list": Key(str, "", path="file"),
        "quiet_hours": Key(str, "22:00-08:00", pattern=r"^\d{2}:\d{2}-\d{2}:\d{2}$"),
    },
    "delivery": {
        "webhook": Key(str, "", pattern=r"^(https?://.*)?$"),
        "secret_file": Key(str, "", path="file"),
        "max_tries": Key(int, 8, low=1, high=100),
        "backoff_s": Key(float, 1.0, low=0.01, high=3600),
        # Kafka (optional extra sigloc[kafka]): "" = off; librdkafka properties such as TLS/SASL in kafka_config
        "kafka_brokers": Key(str, "", pattern=r"^([\w.\-\[\]:]+:\d{1,5}(,[\w.\-\[\]:]+:\d{1,5})*)?$"),
        "kafka_topic": Key(str, "sigloc-triggers", pattern=r"^[A-Za-z0-9._\-]{1,249}$"),
        "kafka_config": Key(dict, {}),
    },
    "web": {
        "listen": Key(str, "127.0.0.1:8080", pattern=_LISTEN),
        "tiles": Key(str, ""),
    },
    "workers": {
        "count": Key(int, 2, low=1, high=256),
        "batch_frames": Key(int, 65536, low=1024, high=1 << 24),
    },
}

# [[source]] tables: live interfaces (dumpcap ring buffer or AF_PACKET) and watched directories of capture files.
SOURCE_SCHEMA: dict[str, Key] = {
    "kind": Key(str, required=True, choices=("dumpcap", "socket", "directory")),
    "interface": Key(str, ""),
    "path": Key(str, ""),
    "filter": Key(str, ""),
    "ring_dir": Key(str, "sigloc-ring", path="new"),
    "ring_mb": Key(int, 64, low=1, high=16384),  # a socket source's TPACKET_V3 ring, in 1 MiB blocks
}


@dataclass
class Config:
    """Validated settings: ``config.section["key"]``; paths already resolved against the file's directory."""

    path: Path
    sections: dict[str, dict[str, Any]]
    sources: list[dict[str, Any]] = field(default_factory=list)

    def __getattr__(self, name: str) -> dict[str, Any]:
        try:
            return self.__dict__["sections"][name]
        except KeyError:
            raise AttributeError(name) from None


def _line_of(text: str, section: str | None, key: str | None, index: int = 0) -> int:
    """Line number of ``key`` inside ``[section]`` (the index-th ``[[section]]``), else of the header, else 1."""
    lines = text.splitlines()
    header = re.compile(r"^\s*\[\[?\s*([\w.\-]+)\s*\]\]?\s*(#.*)?$")
    current, seen, header_line = None, -1, 1
    for n, line in enumerate(lines, start=1):
        m = header.match(line)
        if m:
            current = m.group(1)
            if current == section:
                seen += 1
                if seen == index:
                    header_line = n
            continue
        in_target = (current == section and seen == index) or (section is None and current is None)
        if in_target and key and re.match(rf"^\s*\"?{re.escape(key)}\"?\s*=", line):
            return n
    return header_line if section else 1


def _check(path: Path, text: str, where: str, section: str, index: int, key: str, spec: Key, value: Any) -> Any:
    def fail(problem: str):
        raise ConfigError(f"{path}:{_line_of(text, section, key, index)}: {where}: {problem}")

    kinds = spec.kind if isinstance(spec.kind, tuple) else (spec.kind,)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        fail(f"expected {' or '.join(k.__name__ for k in kinds)}, got {type(value).__name__} {value!r}")
    if spec.choices and value not in spec.choices:
        fail(f"{value!r} is not one of {', '.join(map(str, spec.choices))}")
    if spec.low is not None and value < spec.low or spec.high is not None and value > spec.high:
        fail(f"{value} is outside {spec.low}..{spec.high}")
    if spec.pattern and not re.match(spec.pattern, value):
        fail(f"{value!r} is not in the expected form ({spec.pattern})")
    if spec.path and value:
        resolved = (path.parent / value).resolve()
        if spec.path == "file" and not resolved.is_file():
            fail(f"file {value!r} does not exist")
        if spec.path == "dir" and not resolved.is_dir():
            fail(f"directory {value!r} does not exist")
        if spec.path == "new" and resolved.exists() and not resolved.is_dir():
            fail(f"{value!r} exists and is not a directory")
        if spec.path == "newfile" and not resolved.parent.is_dir():
            fail(f"directory of {value!r} does not exist")
        value = str(resolved)
    return value


def _section(path: Path, text: str, name: str, index: int, table: Any, schema: dict[str, Key]) -> dict[str, Any]:
    label = f"[[{name}]] #{index + 1}" if name == "source" else f"[{name}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{path}:{_line_of(text, None, name)}: {name}: expected a table {label}")
    unknown = sorted(set(table) - set(schema))
    if unknown:
        raise ConfigError(f"{path}:{_line_of(text, name, unknown[0], index)}: {name}.{unknown[0]}: unknown key "
                          f"(known: {', '.join(schema)})")
    out = {}
    for key, spec in schema.items():
        if key not in table:
            if spec.required:
                raise ConfigError(f"{path}:{_line_of(text, name, None, index)}: {name}.{key}: required key is "
                                  f"missing from {label}")
            out[key] = _check(path, text, f"{name}.{key}", name, index, key, spec, spec.default) \
                if spec.path else spec.default
            continue
        out[key] = _check(path, text, f"{name}.{key}", name, index, key, spec, table[key])
    return out


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML file; the first problem raises ConfigError naming file, line and key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    unknown = sorted(set(doc) - set(SCHEMA) - {"source"})
    if unknown:
        raise ConfigError(f"{path}:{_line_of(text, unknown[0], None)}: {unknown[0]}: unknown section "
                          f"(known: {', '.join([*SCHEMA, 'source'])})")
    sections = {name: _section(path, text, name, 0, doc.get(name, {}), schema) for name, schema in SCHEMA.items()}
    try:
        ZoneInfo(sections["probe"]["timezone"])
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{path}:{_line_of(text, 'probe', 'timezone')}: probe.timezone: "
                          f"{sections['probe']['timezone']!r} is not an IANA time zone") from None
    if problem := check_config(sections["delivery"]):
        key, message = problem
        raise ConfigError(f"{path}:{_line_of(text, 'delivery', key.split('.')[0])}: delivery.{key}: {message}")
    raw_sources = doc.get("source", [])
    if not isinstance(raw_sources, list):
        raise ConfigError(f"{path}:{_line_of(text, None, 'source')}: source: write sources as [[source]] tables")
    sources = []
    for i, table in enumerate(raw_sources):
        src = _section(path, text, "source", i, table, SOURCE_SCHEMA)
        need = "path" if src["kind"] == "directory" else "interface"
        if not src[need]:
            raise ConfigError(f"{path}:{_line_of(text, 'source', None, i)}: source.{need}: a {src['kind']} source "
                              f"needs {need} ([[source]] #{i + 1})")
        if src["kind"] == "directory":
            src["path"] = _check(path, text, "source.path", "source", i, "path", Key(str, path="dir"), src["path"])
        sources.append(src)
    return Config(path, sections, sources)
