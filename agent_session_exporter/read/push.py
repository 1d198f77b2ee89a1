"""The options of a source that takes pushes: the secret its webhooks are signed with, or whether it
reads its upstream's event stream; and how many lookups its pushes may cause. A push is only ever a
hint to look a session up (``count/hints.py``); what counts is what the lookup reads."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from agent_session_exporter.read.source import SourceBase

#: A shorter webhook secret is refused: an HMAC key that short can be guessed.
MIN_SECRET_LENGTH = 16


class PushLookups(SourceBase):
    """What every source taking pushes has: how many lookups its pushes may cause."""

    max_push_lookups_per_minute: float = Field(
        60.0,
        gt=0,
        description=(
            "at most this many sessions looked up per minute because of pushes (a burst of a tenth of it at once); "
            "the rest wait, each id once"
        ),
    )


class StreamSource(PushLookups):
    """A source whose upstream streams its activity (Syntropic137's ``GET /sse/activity``): ``push: sse``
    keeps one connection to it open (``streams.py``)."""

    push: Literal["sse"] | None = Field(
        None,
        description=(
            "sse: read the upstream's event stream, each session's end a hint to look it up at once (polling "
            "still counts whatever the stream misses); off by default"
        ),
    )


class PushSource(PushLookups):
    """A source whose upstream can push webhooks (Kapso's project webhooks): its ``webhook_secret`` turns
    ``POST /webhooks/<provider>/<name>`` on for it on the exporter's webhook listener."""

    webhook_secret: str | None = Field(
        None,
        repr=False,
        min_length=MIN_SECRET_LENGTH,
        description=(
            "the secret the upstream signs its webhooks with (HMAC-SHA256 of the body); with it, pushes to "
            "POST /webhooks/<provider>/<name> on --web.webhook-address are taken as hints to look sessions up"
        ),
    )
    webhook_secret_file: str | None = Field(None, description="read webhook_secret from this file (a mounted secret)")

    @model_validator(mode="after")
    def _webhook_secret(self) -> PushSource:
        # Each message names the key, never its value (as the api_key checks do).
        if self.webhook_secret and self.webhook_secret_file:
            raise ValueError("webhook_secret_file: give webhook_secret or webhook_secret_file, not both")
        if self.webhook_secret_file:
            try:
                secret = Path(self.webhook_secret_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"webhook_secret_file: cannot be read ({exc.strerror or type(exc).__name__})") from None
            if len(secret) < MIN_SECRET_LENGTH:
                raise ValueError(f"webhook_secret_file: the secret must have at least {MIN_SECRET_LENGTH} characters")
            object.__setattr__(self, "webhook_secret", secret)
        return self

    @property
    def secrets(self) -> list[str]:
        return super().secrets + ([self.webhook_secret] if self.webhook_secret else [])
