"""Every record field and event kind is documented in docs/events.md (STYLE rule 6)."""

import re
from pathlib import Path

import pytest

from decoders.records import EVENT_SCHEMA, MESSAGE_SCHEMA, EventKind
from geofence.match import TRIGGER_SCHEMA, Detect

DOC = (Path(__file__).parent.parent / "docs" / "events.md").read_text()


def _section(title: str) -> str:
    start = DOC.index(title)
    nxt = DOC.find("\n#", start + 1)  # up to the next heading of any level
    return DOC[start: nxt if nxt > 0 else None]


@pytest.mark.parametrize("title, schema", [("## Message records", MESSAGE_SCHEMA),
                                           ("## Behaviour events", EVENT_SCHEMA),
                                           ("## Fence triggers", TRIGGER_SCHEMA)])
def test_every_field_documented(title, schema):
    documented = re.findall(r"^\| `(\w+)` \|", _section(title), re.M)
    assert documented == schema.names


def test_every_event_kind_and_detect_word_documented():
    kinds = re.findall(r"^\| `(\w+)` \|", _section("### Event kinds"), re.M)
    assert kinds == [k.value for k in EventKind]
    for word in Detect:
        assert f"`{word.value}`" in _section("## Fence triggers")
