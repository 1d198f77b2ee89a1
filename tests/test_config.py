import re
from pathlib import Path

import pytest

from agent_session_exporter.config import Config, ConfigError, load_config, parse_config, parse_duration, parse_listen
from agent_session_exporter.read.providers import PROVIDER_CLASSES

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.yaml"


def minimal(**source):
    entry = {"name": "wb", "provider": "whatabot", "base_url": "https://api.whatabot.app/api/v1", "api_key": "k"}
    entry.update(source)
    return {"sources": [entry]}


def test_example_config_loads_with_its_variables_set():
    env = {
        v: "secret-value"
        for v in ("WHATABOT_API_KEY", "DIFY_API_KEY", "HH_API_KEY", "KAPSO_API_KEY", "N8N_API_KEY", "SYNTROPIC_PASSWORD")
    }
    config = load_config(EXAMPLE, env)
    assert [s.provider for s in config.sources] == ["whatabot", "dify", "syntropic137", "honeyhive", "kapso", "n8n"]
    assert config.sources[0].interval == 15 and config.sources[1].interval == config.interval == 30
    assert config.sources[0].api_key == "secret-value"
    assert config.listen == "0.0.0.0:9817" and config.state_path == "state.db"


def test_missing_environment_variable_names_the_key():
    assert _errors(minimal(api_key="${NOPE}")) == ["source 'wb': api_key: environment variable NOPE is not set"]
    assert _errors({**minimal(), "state_path": "${NOPE}/s.db"}) == ["state_path: environment variable NOPE is not set"]


@pytest.mark.parametrize(
    "change, key",
    [
        ({"provider": "bogus"}, r"source 'wb': provider: must be one of whatabot, dify"),
        ({"base_url": "ftp://x"}, r"source 'wb': base_url: must be an http:// or https:// URL"),
        ({"page_size": 500}, r"source 'wb': page_size: .*less than or equal to 100"),
        ({"page_size": 50.0}, r"source 'wb': page_size"),
        ({"interval": "soon"}, r"source 'wb': interval: must be a duration"),
        ({"interval": 0.5}, r"source 'wb': interval: .*greater than or equal to 1"),
        ({"timeout": 0}, r"source 'wb': timeout"),
        ({"api_key": None}, r"source 'wb': api_key: required for provider whatabot"),
        ({"surprise": 1}, r"source 'wb': surprise: unknown key"),
        ({"provider": "honeyhive", "api": "events"}, r"source 'wb': project: required with api: events"),
        ({"provider": "honeyhive", "api": "sessions"}, r"source 'wb': project: required with api: sessions"),
        (
            {"provider": "honeyhive", "session_url": "https://h.example/{project}/{session_id}"},
            r"source 'wb': session_url: \{project\} needs project",
        ),
        ({"api": "events"}, r"source 'wb': api: unknown key"),
        ({"provider": "honeyhive", "project": "p", "api": "graphql"}, r"source 'wb': api: Input should be 'search'"),
        ({"provider": "honeyhive", "page_size": 1001}, r"source 'wb': page_size: the search API allows at most 1000"),
        (
            {"provider": "honeyhive", "project": "p", "api": "events", "page_size": 8000},
            r"source 'wb': page_size: the events API allows at most 7500",
        ),
        ({"provider": "kapso", "workflow_ids": []}, r"source 'wb': workflow_ids: "),
        ({"provider": "kapso", "max_workflows": 0}, r"source 'wb': max_workflows: "),
        ({"provider": "dify", "session_url": "https://x.example/{run}"}, r"source 'wb': session_url: unknown placeholder"),
        ({"provider": "dify", "session_url": "https://x.example/runs"}, r"source 'wb': session_url: must contain"),
        (
            {"provider": "dify", "session_url": "ftp://x.example/{session_id}"},
            r"source 'wb': session_url: must start with http:// or https://",
        ),
        ({"provider": "kapso", "workflow_ids": "wf-1"}, r"source 'wb': workflow_ids: must be a list"),
        ({"provider": "kapso", "workflow_ids": ["a", "a"]}, r"source 'wb': workflow_ids: duplicate"),
        ({"project": "p"}, r"source 'wb': project: unknown key"),
        ({"basic_auth": {"username": "u"}}, r"source 'wb': basic_auth.password: required"),
        ({"name": "has space"}, r"sources\[0\]: name: String should match pattern"),  # an invalid name is not shown
    ],
)
def test_invalid_values_name_the_source_and_the_key(change, key):
    with pytest.raises(ConfigError, match=key):
        parse_config(minimal(**change), {})


def test_every_error_is_reported_in_one_run():
    raw = {
        "interval": "never",
        "sources": [
            {"name": "wb", "provider": "whatabot", "base_url": "https://x", "api_key": "k", "page_size": 0},
            {"name": "dy", "provider": "dify", "base_url": "gopher://x", "api_key": "k", "retries": -1},
            {"provider": "kapso", "base_url": "https://x", "api_key": "k", "workflow_ids": "wf"},
        ],
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, {})
    assert str(caught.value).splitlines() == [
        "interval: must be a duration such as 30s, 10m or 24h",
        "source 'wb': page_size: Input should be greater than or equal to 1",
        "source 'dy': base_url: must be an http:// or https:// URL",
        "source 'dy': retries: Input should be greater than or equal to 0",
        "sources[2]: name: required",
        "sources[2]: workflow_ids: must be a list of workflow ids",
    ]


def test_duplicate_source_names_are_refused():
    raw = minimal()
    raw["sources"].append(dict(raw["sources"][0]))
    assert _errors(raw) == ["source 'wb': name: must be unique"]


def test_syntropic_needs_no_key_and_accepts_basic_auth():
    config = parse_config(
        {
            "sources": [
                {
                    "name": "sy",
                    "provider": "syntropic137",
                    "base_url": "http://s:8137",
                    "basic_auth": {"username": "u", "password": "${PW}"},
                }
            ]
        },
        {"PW": "pw"},
    )
    assert config.sources[0].basic_auth.password == "pw"
    assert "pw" not in repr(config)


def test_api_key_file(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("from-file\n")
    config = parse_config(minimal(api_key=None, api_key_file=str(key_file)), {})
    assert config.sources[0].api_key == "from-file"
    with pytest.raises(ConfigError, match=r"source 'wb': api_key_file: cannot be read"):
        parse_config(minimal(api_key=None, api_key_file=str(tmp_path / "missing")), {})


@pytest.mark.parametrize(
    "text, seconds", [(30, 30), ("90", 90), ("30s", 30), ("10m", 600), ("24h", 86400), ("7d", 604800), ("0", 0), ("1.5h", 5400)]
)
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
        jsonschema.validate(
            {
                "sources": [
                    {
                        "name": "a",
                        "provider": "kapso",
                        "base_url": "https://x",
                        "api_key": "k",
                        "page_size": 500,
                        "workflow_ids": ["w"],
                    }
                ]
            },
            schema,
        )
    assert json.loads(config_schema_text())["title"] == "agent-session-exporter configuration"


SECRET = "sk-live-4f9c2a7e1b8d0365"
#: The one format of an error line: where (a source by its name, an entry by its index, or the top
#: level), the key path, the rule.
ERROR_LINE = r"^(source '[A-Za-z0-9_.:-]+': |sources\[\d+\]: )?[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_]+|\[\d+\])*: .+$"
PASTED = [
    SECRET,
    f"{SECRET} x",
    f"https://x/{SECRET}",
    f"https://x{{session_id}}{SECRET}",
    f"//{SECRET}:1",
    [SECRET],
    {"a": SECRET},
    12,
]


def _errors(raw: dict, environ: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, environ or {})
    return str(caught.value).splitlines()


def test_a_secret_in_the_wrong_key_is_never_echoed():
    """Every key of every provider, and every top-level key, given a pasted secret: each error names the
    source, the key and the rule, never the value."""
    extras = {"kapso": {"workflow_ids": ["w"]}, "honeyhive": {"project": "p"}}
    configs = []
    for provider, cls in PROVIDER_CLASSES.items():
        for key in cls.Config.model_fields:
            for value in PASTED:
                entry = {
                    "name": "n",
                    "provider": provider,
                    "base_url": "https://x",
                    **extras.get(provider, {}),
                    **({} if key in ("api_key", "api_key_file", "basic_auth") else {"api_key": "k"}),
                    key: value,
                }
                configs.append({"sources": [entry]})
    for key in Config.model_fields:
        for value in PASTED:
            configs.append({"sources": [{"name": "n", "provider": "dify", "base_url": "https://x", "api_key": "k"}], key: value})
    named = {"name": "n", "provider": "dify", "base_url": "https://x", "api_key": "k"}
    configs += [
        {"sources": [{**named, "name": f"{SECRET} x"}]},
        {"sources": [{**named, "name": f"{SECRET} x"}, {**named, "name": f"{SECRET} x"}]},
        {"sources": [{**named, "basic_auth": {"username": SECRET, "password": 1}}]},
    ]
    seen = 0
    for raw in configs:
        try:
            parse_config(raw, {})
        except ConfigError as exc:
            for line in str(exc).splitlines():
                seen += 1
                assert "4f9c2a7e" not in line, line
                assert re.match(ERROR_LINE, line), line
    assert seen > 300  # the values were refused, not taken


@pytest.mark.parametrize(
    "change, line",
    [
        ({"interval": SECRET}, "source 'wb': interval: must be a duration such as 30s, 10m or 24h"),
        ({"timeout": [SECRET]}, "source 'wb': timeout: must be a duration such as 30s, 10m or 24h"),
        ({"api_key": None, "api_key_file": SECRET}, "source 'wb': api_key_file: cannot be read (No such file or directory)"),
        ({"name": f"{SECRET} x"}, "sources[0]: name: String should match pattern '^[A-Za-z0-9_.:-]{1,64}$'"),
        ({"api_key_file": "/nonexistent"}, "source 'wb': api_key_file: give api_key or api_key_file, not both"),
    ],
)
def test_an_error_names_the_source_the_key_and_the_rule(change, line):
    assert _errors(minimal(**change)) == [line]


def test_listen_errors_name_the_key_once_and_not_the_value():
    assert _errors({**minimal(), "listen": SECRET}) == ["listen: must be HOST:PORT"]
    assert _errors({**minimal(), "listen": f"h:{SECRET}"}) == ["listen: port must be a number from 0 to 65535"]
    with pytest.raises(ConfigError) as caught:
        parse_listen(f"x:{SECRET}", "--web.listen-address")
    assert str(caught.value) == "--web.listen-address: port must be a number from 0 to 65535"


def test_an_empty_key_file_is_named_without_its_path(tmp_path):
    empty = tmp_path / SECRET
    empty.write_text("\n")
    assert _errors(minimal(api_key=None, api_key_file=str(empty))) == ["source 'wb': api_key_file: the file is empty"]


def test_every_error_is_reported_in_one_run_unset_variables_included():
    raw = {
        "interval": "soon",
        "sources": [
            {
                "name": "wb",
                "provider": "whatabot",
                "base_url": "https://api.whatabot.app/api/v1",
                "api_key": "${NOPE}",
                "page_size": 0,
            },
            {"name": "dy", "provider": "dify", "base_url": "https://api.dify.ai/v1", "api_key": "k", "timeout": "${ALSO_NOPE}"},
        ],
    }
    assert sorted(_errors(raw)) == sorted(
        [
            "source 'wb': api_key: environment variable NOPE is not set",
            "source 'dy': timeout: environment variable ALSO_NOPE is not set",
            "source 'wb': page_size: Input should be greater than or equal to 1",
            "interval: must be a duration such as 30s, 10m or 24h",
        ]
    )


def test_a_honeyhive_source_reads_the_search_by_default_and_needs_no_project():
    source = parse_config(
        {"sources": [{"name": "hh", "provider": "honeyhive", "api_key": "k", "base_url": "https://api.dp1.us.honeyhive.ai"}]}, {}
    ).sources[0]
    assert (source.api, source.project, source.page_size, source.deprecated) == ("search", None, 1000, None)
    older = parse_config(
        {
            "sources": [
                {
                    "name": "hh",
                    "provider": "honeyhive",
                    "api_key": "k",
                    "project": "p",
                    "base_url": "https://api.honeyhive.ai",
                    "api": "sessions",
                }
            ]
        },
        {},
    ).sources[0]
    assert older.api == "sessions" and "set api: search" in (older.deprecated or "")
