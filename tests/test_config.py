from pathlib import Path

import pytest

from agent_session_exporter.config import ConfigError, load_config, parse_config, parse_duration

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
    ({"provider": "bogus"}, r"source 'wb': provider: must be one of whatabot, dify"),
    ({"base_url": "ftp://x"}, r"source 'wb': base_url: must be an http:// or https:// URL"),
    ({"page_size": 500}, r"source 'wb': page_size: .*less than or equal to 100"),
    ({"page_size": 50.0}, r"source 'wb': page_size"),
    ({"interval": "soon"}, r"source 'wb': interval: must be a duration"),
    ({"interval": 0.5}, r"source 'wb': interval: .*greater than or equal to 1"),
    ({"timeout": 0}, r"source 'wb': timeout"),
    ({"api_key": None}, r"source 'wb': api_key: required for provider whatabot"),
    ({"surprise": 1}, r"source 'wb': surprise: unknown key"),
    ({"provider": "honeyhive"}, r"source 'wb': project: required"),
    ({"api": "events"}, r"source 'wb': api: unknown key"),
    ({"provider": "honeyhive", "project": "p", "api": "graphql"}, r"source 'wb': api: Input should be 'sessions'"),
    ({"provider": "honeyhive", "project": "p", "api": "events", "page_size": 8000},
     r"source 'wb': page_size: the events API allows at most 7500"),
    ({"provider": "kapso", "workflow_ids": []}, r"source 'wb': workflow_ids: "),
    ({"provider": "kapso", "max_workflows": 0}, r"source 'wb': max_workflows: "),
    ({"provider": "dify", "session_url": "https://x.example/{run}"}, r"source 'wb': session_url: unknown placeholder"),
    ({"provider": "dify", "session_url": "https://x.example/runs"}, r"source 'wb': session_url: must contain"),
    ({"provider": "dify", "session_url": "ftp://x.example/{session_id}"},
     r"source 'wb': session_url: must start with http:// or https://"),
    ({"provider": "kapso", "workflow_ids": "wf-1"}, r"source 'wb': workflow_ids: must be a list"),
    ({"provider": "kapso", "workflow_ids": ["a", "a"]}, r"source 'wb': workflow_ids: duplicate"),
    ({"project": "p"}, r"source 'wb': project: unknown key"),
    ({"basic_auth": {"username": "u"}}, r"source 'wb': basic_auth.password: required"),
    ({"name": "has space"}, r"source 'has space': name"),
])
def test_invalid_values_name_the_source_and_the_key(change, key):
    with pytest.raises(ConfigError, match=key):
        parse_config(minimal(**change), {})


def test_every_error_is_reported_in_one_run():
    raw = {"interval": "never", "sources": [
        {"name": "wb", "provider": "whatabot", "base_url": "https://x", "api_key": "k", "page_size": 0},
        {"name": "dy", "provider": "dify", "base_url": "gopher://x", "api_key": "k", "retries": -1},
        {"provider": "kapso", "base_url": "https://x", "api_key": "k", "workflow_ids": "wf"}]}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, {})
    assert str(caught.value).splitlines() == [
        "interval: must be a duration such as 30s, 10m or 24h, got 'never'",
        "source 'wb': page_size: Input should be greater than or equal to 1",
        "source 'dy': base_url: must be an http:// or https:// URL",
        "source 'dy': retries: Input should be greater than or equal to 0",
        "sources[2]: name: required",
        "sources[2]: workflow_ids: must be a list of workflow ids",
    ]


def test_duplicate_source_names_are_refused():
    raw = minimal()
    raw["sources"].append(dict(raw["sources"][0]))
    with pytest.raises(ConfigError, match=r"sources: duplicate source name 'wb'"):
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
    with pytest.raises(ConfigError, match=r"source 'wb': api_key_file: cannot read"):
        parse_config(minimal(api_key=None, api_key_file=str(tmp_path / "missing")), {})


@pytest.mark.parametrize("text, seconds", [(30, 30), ("90", 90), ("30s", 30), ("10m", 600), ("24h", 86400),
                                           ("7d", 604800), ("0", 0), ("1.5h", 5400)])
def test_durations(text, seconds):
    assert parse_duration(text, "k") == seconds


def test_buckets_must_increase():
    with pytest.raises(ConfigError, match="duration_buckets"):
        parse_config({**minimal(), "duration_buckets": [5, 1]}, {})


def test_the_published_schema_accepts_the_example_and_is_current():
    import json

    import jsonschema
    import yaml

    from agent_session_exporter.config import config_schema, config_schema_text

    published = EXAMPLE.parent / "config.schema.json"
    assert published.read_text() == config_schema_text(), "regenerate: agent-session-exporter --config.schema"
    assert EXAMPLE.read_text().startswith("# yaml-language-server: $schema=./config.schema.json")
    schema = config_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load(EXAMPLE.read_text()), schema)
    with __import__("pytest").raises(jsonschema.ValidationError):
        jsonschema.validate({"sources": [{"name": "a", "provider": "kapso", "base_url": "https://x",
                                          "api_key": "k", "page_size": 500, "workflow_ids": ["w"]}]}, schema)
    assert json.loads(config_schema_text())["title"] == "agent-session-exporter configuration"
