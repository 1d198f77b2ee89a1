import pytest

from agent_session_exporter.timeparse import parse_timestamp, to_iso

T = 1705407629.0  # 2024-01-16T12:20:29Z


@pytest.mark.parametrize(
    "value",
    [
        "2024-01-16T12:20:29Z",
        "2024-01-16T12:20:29.000Z",
        "2024-01-16T13:20:29+01:00",
        "2024-01-16 12:20:29+00:00",
        "2024-01-16 12:20:29",
        "2024-01-16T12:20:29",
        T,
        int(T),
        str(int(T)),
        int(T * 1000),
        T * 1000,
        int(T * 1_000_000),
        int(T * 1_000_000_000),
        # RFC 822, as one Dify version serialises the run detail's created_at
        "Tue, 16 Jan 2024 12:20:29 -0000",
        "Tue, 16 Jan 2024 13:20:29 +0100",
        "Tue, 16 Jan 2024 12:20:29 GMT",
    ],
)
def test_every_documented_form_parses_to_unix_seconds(value):
    assert parse_timestamp(value) == pytest.approx(T)


@pytest.mark.parametrize("value", [None, ""])
def test_null_and_empty_are_none(value):
    assert parse_timestamp(value) is None


@pytest.mark.parametrize("value", ["yesterday", True, -5, float("nan"), [], {}, 1e25, "Tue, 99 Jan 2024 12:20:29"])
def test_garbage_raises_value_error(value):
    with pytest.raises(ValueError):
        parse_timestamp(value)


def test_to_iso_round_trips_and_truncates_to_microseconds():
    assert to_iso(T) == "2024-01-16T12:20:29.000000Z"
    assert parse_timestamp(to_iso(T + 0.1234567)) <= T + 0.1234567
    assert parse_timestamp(to_iso(T + 0.1234567)) == pytest.approx(T + 0.123456, abs=2e-6)
