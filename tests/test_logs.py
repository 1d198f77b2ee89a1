import io
import json

import structlog

from agent_session_exporter.logs import REDACTED, configure_logging, redactor


def test_known_secrets_are_redacted_from_every_field_of_every_line():
    stream = io.StringIO()
    configure_logging("debug", json=True, stream=stream)
    redactor.set_secrets(["sk-live-abcdef123456", "pw-9876"])
    try:
        log = structlog.get_logger()
        log.warning(
            "request failed for sk-live-abcdef123456",
            url="https://x/?key=sk-live-abcdef123456",
            nested={"auth": ["Bearer sk-live-abcdef123456"]},
            error=ValueError("pw-9876 rejected"),
        )
    finally:
        redactor.set_secrets([])
    text = stream.getvalue()
    assert "sk-live-abcdef123456" not in text and "pw-9876" not in text
    line = json.loads(text)
    assert line["msg"] == f"request failed for {REDACTED}"
    assert line["nested"] == {"auth": [f"Bearer {REDACTED}"]}
    assert line["error"] == f"ValueError: {REDACTED} rejected"


def test_logfmt_on_request():
    stream = io.StringIO()
    configure_logging("info", json=False, stream=stream)
    structlog.get_logger().info("hello", source="a")
    assert stream.getvalue().split(" ", 1)[1] == "level=info msg=hello source=a\n"


def test_logfmt_is_real_logfmt_with_time_level_msg_first():
    import logfmtkv

    stream = io.StringIO()
    configure_logging("info", json=False, stream=stream)
    redactor.set_secrets(["sk-live-abcdef123456"])
    try:
        structlog.get_logger().warning(
            "cycle failed: 2 pages",
            source="my source",
            errors=["a b", 'quote "x"'],
            detail={"k": "v w"},
            count=3,
            key="sk-live-abcdef123456",
        )
    finally:
        redactor.set_secrets([])
    line = stream.getvalue().strip()
    parsed = logfmtkv.parse(line)
    assert list(parsed)[:3] == ["time", "level", "msg"]
    assert parsed["msg"] == "cycle failed: 2 pages" and parsed["source"] == "my source" and parsed["count"] == "3"
    assert json.loads(parsed["errors"]) == ["a b", 'quote "x"'] and json.loads(parsed["detail"]) == {"k": "v w"}
    assert parsed["key"] == REDACTED and "'" not in line  # no Python reprs


def test_json_lines_start_with_time_level_msg():
    stream = io.StringIO()
    configure_logging("info", json=True, stream=stream)
    structlog.get_logger().info("hello", source="a")
    assert list(json.loads(stream.getvalue()))[:3] == ["time", "level", "msg"]


def test_logfmt_lines_carry_no_control_character_from_a_value():
    """An upstream id is never altered, and may hold ``\\r`` or a lone surrogate: its logfmt line
    stays one line that cannot overwrite or forge another."""
    import logfmtkv

    stream = io.StringIO()
    configure_logging("info", json=False, stream=stream)
    structlog.get_logger().warning("invalid upstream items skipped", example_id="run\r level=error msg=forged\x00\ud800")
    text = stream.getvalue()
    assert text.count("\n") == 1 and "\r" not in text and "\x00" not in text
    text.encode()  # no lone surrogate left
    assert logfmtkv.parse(text.strip())["example_id"] == "run\\x0d level=error msg=forged\\x00\\ud800"
