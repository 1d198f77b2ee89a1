from pathlib import Path

import pytest

from exporter.config import ConfigError, load_config, parse_config, parse_duration

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.yaml"


def minimal(**source):
    entry = {"name": "wb", "provider": "whatabot", "base_url": "https://api.whatabot.app/api/v1", "api_key": "k"}
    entry.update(source)
    return {"sources": [entry]}


def test_example_config_loads_with_its_variables_set():
    env = {v: "secret-value" for v in ("WHATABOT_API_KEY", "DIFY_API_KEY", "HH_API_KEY", "KAPSO_API_KEY",
                                        "SYNTROPIC_PASSWORD")}
    config = load_config(EXAMPLE, env)
    assert [s.provider for s in config.sources] == ["whatabot", "dify", "syntropic137", "honeyhive", "kapso"]
    assert config.sources[0].interval == 15 and config.sources[1].interval == config.interval == 30
    assert config.sources[0].api_key == "secret-value"
    assert config.listen == "0.0.0.0:9817" and config.state_path == "state.db"


def test_missing_environment_variable_names_the_key():
    with pytest.raises(ConfigError, match=r"sources\[0\]\.api_key: environment variable NOPE is not set"):
        parse_config(minimal(api_key="${NOPE}"), {})


@pytest.mark.parametrize("change, key", [
    ({"provider": "bogus"}, r"sources\[0\]\.provider"),
    ({"base_url": "ftp://x"}, r"sources\[0\]\.base_url"),
    ({"page_size": 500}, r"sources\[0\]\.page_size"),
    ({"interval": "soon"}, r"sources\[0\]\.interval"),
    ({"timeout": 0}, r"sources\[0\]\.timeout"),
    ({"api_key": None}, r"sources\[0\]\.api_key"),
    ({"surprise": 1}, r"sources\[0\]\.surprise: unknown key"),
    ({"provider": "honeyhive"}, r"sources\[0\]\.project: required"),
    ({"api": "events"}, r"sources\[0\]\.api: only for provider honeyhive"),
    ({"provider": "honeyhive", "project": "p", "api": "graphql"}, r"sources\[0\]\.api: must be one of"),
    ({"provider": "honeyhive", "project": "p", "api": "events", "page_size": 8000}, r"sources\[0\]\.page_size"),
    ({"provider": "kapso"}, r"sources\[0\]\.workflow_ids: required"),
    ({"project": "p"}, r"sources\[0\]\.project: only for provider honeyhive"),
    ({"basic_auth": {"username": "u"}}, r"sources\[0\]\.basic_auth"),
])
def test_invalid_values_name_the_offending_key(change, key):
    with pytest.raises(ConfigError, match=key):
        parse_config(minimal(**change), {})


def test_duplicate_source_names_are_refused():
    raw = minimal()
    raw["sources"].append(dict(raw["sources"][0]))
    with pytest.raises(ConfigError, match=r"sources\[1\]\.name: duplicate"):
        parse_config(raw, {})


def test_syntropic_needs_no_key_and_accepts_basic_auth():
    config = parse_config({"sources": [{"name": "sy", "provider": "syntropic137", "base_url": "http://s:8137",
                                         "basic_auth": {"username": "u", "password": "${PW}"}}]}, {"PW": "pw"})
    assert config.sources[0].basic_auth.password == "pw"
    assert "pw" not in repr(config)


def test_api_key_file(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("from-file\n")
    config = parse_config(minimal(api_key=None, api_key_file=str(key_file)), {})
    assert config.sources[0].api_key == "from-file"
    with pytest.raises(ConfigError, match=r"sources\[0\]\.api_key_file: cannot read"):
        parse_config(minimal(api_key=None, api_key_file=str(tmp_path / "missing")), {})


@pytest.mark.parametrize("text, seconds", [(30, 30), ("90", 90), ("30s", 30), ("10m", 600), ("24h", 86400),
                                           ("7d", 604800), ("0", 0), ("1.5h", 5400)])
def test_durations(text, seconds):
    assert parse_duration(text, "k") == seconds


def test_buckets_must_increase():
    with pytest.raises(ConfigError, match="duration_buckets"):
        parse_config({**minimal(), "duration_buckets": [5, 1]}, {})
