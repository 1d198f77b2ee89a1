"""Upstream strings made safe: ids kept or refused, never altered; other text cleaned; error texts
redacted, then cut."""

from __future__ import annotations

import pytest

from agent_session_exporter.logs import redactor
from agent_session_exporter.model import InvalidRecord, Phase, SessionRecord
from agent_session_exporter.safetext import MAX_ERROR_EXCERPT, check_id, is_safe, make_safe, safe_text


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("completed", "completed"),
        ("a\r# HELP x\nb", "a\ufffd# HELP x\ufffdb"),
        ("tab\there\x00nul\x7fdel", "tab\ufffdhere\ufffdnul\ufffddel"),
        ("c1\x80\x85\x9f", "c1\ufffd\ufffd\ufffd"),
        ("lone\ud800high\udfff", "lone\ufffdhigh\ufffd"),
        ("\ud83d\ude00", "\ufffd\ufffd"),  # surrogate code points, even paired, are no UTF-8
        ('quote" back\\slash', 'quote" back\\slash'),
        ("é ü 😀 \u00a0 \ufffd", "é ü 😀 \u00a0 \ufffd"),
    ],
)
def test_control_characters_and_surrogates_become_the_replacement_character(raw, clean):
    assert safe_text(raw) == clean and len(safe_text(raw)) == len(raw)
    assert is_safe(clean) and is_safe(raw) == (raw == clean)


def test_ids_are_kept_as_they_are_or_refused():
    for kept in ("x" * 256, "é" * 128, "a\r\nb", str(2**64 + 1)):
        assert check_id(kept) is kept
    for refused, reason in (("x" * 257, "id_too_long"), ("é" * 129, "id_too_long"), ("a\ud800", "id_not_utf8")):
        with pytest.raises(InvalidRecord) as info:
            check_id(refused)
        assert info.value.reason == reason


def test_an_error_text_has_secrets_redacted_before_it_is_cut():
    """An upstream may echo the key it was sent: a key straddling the excerpt's end must not show in
    part (cut first, then redacted, its first characters would stay)."""
    key = "sk-live-4f9c2e7d1a8b6c3e5f0a9d2b7c4e1f8a"
    text = "x" * (MAX_ERROR_EXCERPT - 20) + f" key {key} refused"  # the key straddles the cut
    redactor.set_secrets([key])
    try:
        record = SessionRecord("s1", "failed", Phase.FINISHED, 1.0, error_message=text)
        make_safe(record)
    finally:
        redactor.set_secrets([])
    assert record.error_message is not None and len(record.error_message) <= MAX_ERROR_EXCERPT
    assert key[:4] not in record.error_message and "[REDACTED]" in record.error_message
