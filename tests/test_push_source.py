"""read/push.py: a source's webhook secret, given or from a file, checked by --check-config, never shown."""

from __future__ import annotations

import pytest
import structlog
import yaml

from agent_session_exporter.app import Exporter
from agent_session_exporter.config import ConfigError, config_schema, parse_config
from agent_session_exporter.logs import redactor

from .helpers import make_source, run

SECRET = "whsec-0123456789abcdef"


def kapso(**options: object) -> dict[str, object]:
    return {
        "name": "ka",
        "provider": "kapso",
        "base_url": "https://api.kapso.ai/platform/v1",
        "api_key": "k" * 20,
        "workflow_ids": ["wf-a"],
        **options,
    }


def errors(**options: object) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config({"sources": [kapso(**options)]}, {})
    return str(caught.value)


def test_the_secret_is_a_secret_of_the_source_and_not_in_its_repr():
    source = make_source("kapso", webhook_secret=SECRET)
    assert SECRET in source.secrets and SECRET not in repr(source)
    assert make_source("kapso").webhook_secret is None


def test_the_secret_is_read_from_its_file(tmp_path):
    path = tmp_path / "secret"
    path.write_text(SECRET + "\n")
    source = make_source("kapso", webhook_secret_file=str(path))
    assert source.webhook_secret == SECRET and SECRET in source.secrets


@pytest.mark.parametrize(
    "options, message",
    [
        ({"webhook_secret": "short"}, "source 'ka': webhook_secret: String should have at least 16 characters"),
        (
            {"webhook_secret": SECRET, "webhook_secret_file": "/x"},
            "source 'ka': webhook_secret_file: give webhook_secret or webhook_secret_file, not both",
        ),
        ({"webhook_secret_file": "/nonexistent/" + SECRET}, "source 'ka': webhook_secret_file: cannot be read"),
        ({"max_push_lookups_per_minute": 0}, "source 'ka': max_push_lookups_per_minute: "),
    ],
)
def test_a_bad_secret_is_refused_naming_the_key_never_the_value(options, message):
    text = errors(**options)
    assert message in text
    assert not any(value in text for value in options.values() if isinstance(value, str) and len(value) > 2)


def test_a_short_secret_file_is_refused(tmp_path):
    path = tmp_path / "secret"
    path.write_text("tiny")
    assert "webhook_secret_file: the secret must have at least 16 characters" in errors(webhook_secret_file=str(path))


def test_the_schema_has_the_push_options():
    kapso_schema = config_schema()["$defs"]["KapsoSource"]["properties"]
    assert {"webhook_secret", "webhook_secret_file", "max_push_lookups_per_minute"} <= set(kapso_schema)


def test_check_config_checks_the_secret_file_and_prints_no_secret(tmp_path):
    path = tmp_path / "secret"
    path.write_text(SECRET)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"sources": [kapso(webhook_secret_file=str(path))]}))
    result = run("--check-config", str(config))
    assert result.returncode == 0 and "config OK: 1 sources (ka)" in result.stdout
    path.unlink()
    result = run("--check-config", str(config))
    assert result.returncode == 2 and "webhook_secret_file: cannot be read" in result.stderr
    assert SECRET not in result.stdout + result.stderr


def test_the_secret_is_redacted_from_every_log_line(logs):
    Exporter(parse_config({"sources": [kapso(webhook_secret=SECRET)]}, {}))  # it hands the redactor every secret
    try:
        structlog.get_logger().warning("echo", value=f"signed with {SECRET}")
        line = logs("warning")[-1]
        assert SECRET not in str(line) and line["value"] == "signed with [REDACTED]"
    finally:
        redactor.set_secrets([])
