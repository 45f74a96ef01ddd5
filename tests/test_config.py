"""The daemon's TOML configuration: the shipped example validates, and each kind of mistake names file, line, key."""

import shutil
from pathlib import Path

import pytest

from appliance.config import ConfigError, load_config

EXAMPLE = Path(__file__).parent.parent / "deploy" / "sigloc.example.toml"


@pytest.fixture
def site(tmp_path):
    """A copy of the example config with the files and directories it names."""
    shutil.copy(EXAMPLE, tmp_path / "sigloc.toml")
    for name in ("cells.csv", "number_segments.csv", "opt_out.txt"):
        (tmp_path / name).write_text("")
    for name in ("fences", "campaigns", "incoming"):
        (tmp_path / name).mkdir()
    return tmp_path


def edit(site: Path, old: str, new: str) -> Path:
    path = site / "sigloc.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


def line_of(path: Path, needle: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), start=1) if needle in line)


def test_example_config_validates_with_defaults_and_resolved_paths(site):
    config = load_config(site / "sigloc.toml")
    assert config.probe["home_plmn"] == "460-00"
    assert config.store["raw_ttl_days"] == 30
    assert config.reference["cells"] == str(site / "cells.csv")
    assert config.reference["tac"] == ""  # not given: default
    assert config.delivery["backoff_s"] == 1.0
    assert [s["kind"] for s in config.sources] == ["dumpcap", "directory"]
    assert config.sources[1]["path"] == str(site / "incoming")


@pytest.mark.parametrize("old,new,needle,message", [
    ("raw_ttl_days = 30", "raw_ttl_days = \"30\"", "raw_ttl_days", "store.raw_ttl_days: expected int, got str"),
    ("raw_ttl_days = 30", "raw_ttl_days = 0", "raw_ttl_days", "store.raw_ttl_days: 0 is outside 1..3650"),
    ("min_overlap = 0.3", "min_ovrlap = 0.3", "min_ovrlap", "fences.min_ovrlap: unknown key"),
    ("mtp3 = \"auto\"", "mtp3 = \"ansi\"", "mtp3 =", "probe.mtp3: 'ansi' is not one of auto, itu, chinese"),
    ("home_plmn = \"460-00\"", "home_plmn = \"46000\"", "home_plmn", "probe.home_plmn: '46000' is not in the"),
    ("timezone = \"Asia/Shanghai\"", "timezone = \"Mars/Olympus\"", "timezone", "not an IANA time zone"),
    ("opt_out = \"opt_out.txt\"", "opt_out = \"missing.txt\"", "opt_out", "campaigns.opt_out: file 'missing.txt'"),
    ("path = \"incoming\"", "path = \"nowhere\"", "path = \"nowhere\"", "source.path: directory 'nowhere'"),
    ("interface = \"ens1f0\"\n", "", "[[source]]", "source.interface: a dumpcap source needs interface"),
    ("kind = \"directory\"", "kind = \"ftp\"", "kind = \"ftp\"", "source.kind: 'ftp' is not one of"),
    ("ring_dir = \"/var/lib/sigloc/ring\"", "ring_mb = 0", "ring_mb", "source.ring_mb: 0 is outside 1..16384"),
    ("[web]", "[webui]", "[webui]", "webui: unknown section"),
    ("cells = \"cells.csv\"", "", "[reference]", "reference.cells: required key is missing"),
])
def test_mistakes_name_file_line_and_key(site, old, new, needle, message):
    path = edit(site, old, new)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}:{line_of(path, needle)}: ")
    assert message in str(err.value)


def test_broken_toml_is_reported_with_its_position(site):
    path = edit(site, "[store]", "[store")
    with pytest.raises(ConfigError, match=r"sigloc.toml: not valid TOML: .*line \d+"):
        load_config(path)


def test_check_config_command(site, capsys):
    from click.testing import CliRunner
    from appliance.cli import cli
    ok = CliRunner().invoke(cli, ["check-config", str(site / "sigloc.toml")])
    assert ok.exit_code == 0 and "sigloc.toml: ok" in ok.output and "source directory" in ok.output
