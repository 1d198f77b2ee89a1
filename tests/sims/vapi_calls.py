"""Simulated Vapi calls: each one a planned life (statuses at given instants, an ``endedReason``), read
at any instant as the Call object of the API reference.

Times are integer milliseconds since the epoch (the API writes ISO 8601 with milliseconds), costs
integer micro-dollars, so every total is exact."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from .vapi_reasons import CALL_TYPES, PHONE_TYPES, fitting, outcome_of, phase_of

ORG_ID = "5f6c2a1e-8d3b-4c7a-9e1f-0a2b3c4d5e6f"
ASSISTANT_IDS = (
    "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9",
    "1c2d3e4f-5061-4728-93a4-b5c6d7e8f9a0",
    "2d3e4f50-6172-4839-a4b5-c6d7e8f9a0b1",
)
PHONE_NUMBER_IDS = ("9a8b7c6d-5e4f-4321-8fed-cba987654321", "8b7c6d5e-4f3a-4210-9edc-ba9876543210")
#: The models of transient assistants (``call.assistant.model.model``; a saved assistant's is not in the call).
MODELS = ("gpt-4o", "gpt-4.1-mini", "claude-sonnet-4-20250514")
TYPE_WEIGHTS = {"outboundPhoneCall": 45, "inboundPhoneCall": 35, "webCall": 15, "vapi.websocketCall": 5}
#: Defaults a sensible bot reaches: most calls succeed, errors and timeouts stay a few percent.
OUTCOME_WEIGHTS = {"success": 78, "cancelled": 9, "error": 8, "timeout": 5}
#: The usual reasons of each outcome and their weight; the rest of the outcome's reasons share ``TAIL``.
COMMON = {
    "success": {
        "customer-ended-call": 50,
        "assistant-ended-call": 20,
        "assistant-said-end-call-phrase": 8,
        "assistant-forwarded-call": 6,
    },
    "cancelled": {"customer-did-not-answer": 40, "customer-busy": 15, "voicemail": 20, "manually-canceled": 5},
    "timeout": {"silence-timed-out": 60, "exceeded-max-duration": 25},
    "error": {
        "pipeline-error-openai-llm-failed": 10,
        "call.in-progress.error-vapifault-worker-died": 8,
        "phone-call-provider-closed-websocket": 8,
        "call.start.error-subscription-concurrency-limit-reached": 6,
    },
}
TAIL = 20


@lru_cache(maxsize=1 << 16)
def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@dataclass(frozen=True)
class Usage:
    """What a call used, known once it ends: tokens and characters, and its cost in micro-dollars."""

    prompt: int = 0
    completion: int = 0
    cached: int = 0
    tts_characters: int = 0
    transport: int = 0
    stt: int = 0
    llm: int = 0
    tts: int = 0
    vapi: int = 0

    @property
    def total(self) -> int:
        return self.transport + self.stt + self.llm + self.tts + self.vapi

    @staticmethod
    def of(talk_ms: int, rng: random.Random) -> Usage:
        """Usage of a call that talked ``talk_ms`` (none for one that never connected)."""
        if talk_ms <= 0:
            return Usage()
        seconds = talk_ms / 1000
        prompt = int(seconds * rng.uniform(40, 160))
        completion = int(seconds * rng.uniform(4, 20))
        chars = int(seconds * rng.uniform(5, 15))
        return Usage(
            prompt=prompt,
            completion=completion,
            cached=int(prompt * rng.uniform(0, 0.6)),
            tts_characters=chars,
            transport=talk_ms * 10_000 // 60_000,
            stt=talk_ms * 10_000 // 60_000,
            llm=prompt * 3 + completion * 15,
            tts=chars * 30,
            vapi=talk_ms * 50_000 // 60_000,
        )

    def tokens(self) -> dict[str, int]:
        return {
            "llmPromptTokens": self.prompt,
            "llmCompletionTokens": self.completion,
            "llmCachedPromptTokens": self.cached,
            "ttsCharacters": self.tts_characters,
        }


@dataclass
class CallPlan:
    """One call's whole life: ``steps`` are (ms, status), ascending; the call exists from the first."""

    id: str
    type: str
    steps: list[tuple[int, str]]
    reason: str | None
    usage_seed: int
    assistant_id: str | None = None
    model: str | None = None
    phone_number_id: str | None = None
    customer_number: str | None = None
    ended_message: str | None = None
    #: Fixed by a test (``add_call(usage=...)``); otherwise drawn from ``usage_seed`` and the talk time.
    usage_override: Usage | None = None

    @property
    def created_ms(self) -> int:
        return self.steps[0][0]

    def visible(self, now_ms: int) -> bool:
        return self.created_ms <= now_ms

    def status_at(self, now_ms: int) -> str:
        return [status for at, status in self.steps if at <= now_ms][-1]

    def updated_ms(self, now_ms: int) -> int:
        return [at for at, _ in self.steps if at <= now_ms][-1]

    def _first(self, status: str, now_ms: int) -> int | None:
        return next((at for at, s in self.steps if s == status and at <= now_ms), None)

    def started_ms(self, now_ms: int) -> int | None:
        return self._first("in-progress", now_ms)

    def ended_ms(self, now_ms: int) -> int | None:
        return self._first("ended", now_ms)

    def usage(self) -> Usage:
        if self.usage_override is not None:
            return self.usage_override
        started, ended = self.started_ms(1 << 62), self.ended_ms(1 << 62)
        talk = ended - started if started is not None and ended is not None else 0
        return _usage(talk, self.usage_seed)

    def render(self, now_ms: int) -> dict[str, Any]:
        """The Call object as ``GET /call`` shows it at ``now_ms``."""
        item: dict[str, Any] = {
            "id": self.id,
            "orgId": ORG_ID,
            "createdAt": iso(self.created_ms),
            "updatedAt": iso(self.updated_ms(now_ms)),
            "type": self.type,
            "status": self.status_at(now_ms),
        }
        if self.type in PHONE_TYPES:
            item |= {
                "phoneCallProvider": "twilio",
                "phoneCallTransport": "pstn",
                "phoneNumberId": self.phone_number_id,
                "customer": {"number": self.customer_number},
            }
        if self.assistant_id is not None:
            item["assistantId"] = self.assistant_id
        else:
            item["assistant"] = {"name": "transient", "model": {"provider": "openai", "model": self.model}}
        started, ended = self.started_ms(now_ms), self.ended_ms(now_ms)
        if started is not None:
            item["startedAt"] = iso(started)
        if ended is None:
            return item
        item["endedAt"] = iso(ended)
        if self.reason is not None:
            item["endedReason"] = self.reason
        if self.ended_message:
            item["endedMessage"] = self.ended_message
        u = self.usage()
        item["cost"] = u.total / 1e6
        item["costBreakdown"] = {
            "transport": u.transport / 1e6,
            "stt": u.stt / 1e6,
            "llm": u.llm / 1e6,
            "tts": u.tts / 1e6,
            "vapi": u.vapi / 1e6,
            "total": u.total / 1e6,
        } | u.tokens()
        item["costs"] = [
            {"type": "transport", "minutes": self._minutes(started, ended), "cost": u.transport / 1e6},
            {
                "type": "transcriber",
                "transcriber": {"provider": "deepgram", "model": "nova-3"},
                "minutes": self._minutes(started, ended),
                "cost": u.stt / 1e6,
            },
            {
                "type": "model",
                "model": {"provider": "openai", "model": self.model or "gpt-4o"},
                "promptTokens": u.prompt,
                "completionTokens": u.completion,
                "cachedPromptTokens": u.cached,
                "cost": u.llm / 1e6,
            },
            {
                "type": "voice",
                "voice": {"provider": "11labs", "voiceId": "burt"},
                "characters": u.tts_characters,
                "cost": u.tts / 1e6,
            },
            {"type": "vapi", "subType": "normal", "minutes": self._minutes(started, ended), "cost": u.vapi / 1e6},
        ]
        return item

    @staticmethod
    def _minutes(started: int | None, ended: int) -> float:
        return 0.0 if started is None else (ended - started) / 60_000


@lru_cache(maxsize=1 << 16)
def _usage(talk_ms: int, seed: int) -> Usage:
    return Usage.of(talk_ms, random.Random(seed))


def _weighted(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def pick_reason(rng: random.Random, outcome: str, call_type: str) -> str:
    allowed = fitting(outcome, call_type)
    common = {r: w for r, w in COMMON[outcome].items() if r in allowed}
    tail = [r for r in allowed if r not in common]
    if tail and rng.random() < TAIL / (TAIL + sum(common.values())):
        return rng.choice(tail)
    return _weighted(rng, common) if common else rng.choice(tail)


def plan_steps(
    rng: random.Random,
    created_ms: int,
    call_type: str,
    reason: str | None,
    talk_ms: int | None = None,
    scheduled_share: float = 0.08,
) -> list[tuple[int, str]]:
    """The statuses a call of ``call_type`` goes through to end with ``reason`` (None: it never ends):
    [scheduled ->] queued -> [ringing ->] in-progress [-> forwarding] -> ended, cut at the reason's phase.
    ``scheduled_share`` of outbound calls are scheduled 5 s to 2 min ahead."""
    phase = "in-progress" if reason is None else phase_of(reason)
    steps: list[tuple[int, str]] = []
    t = created_ms
    if phase == "scheduled" or (call_type == "outboundPhoneCall" and rng.random() < scheduled_share):
        steps.append((t, "scheduled"))
        t += rng.randint(5_000, 120_000)
    if phase != "scheduled":
        steps.append((t, "queued"))
        t += rng.randint(100, 2_000)
        if phase != "queued" and call_type in PHONE_TYPES:
            steps.append((t, "ringing"))
            t += rng.randint(1_000, 20_000)
        if phase not in ("queued", "ringing"):
            steps.append((t, "in-progress"))
            if reason is None:
                return steps
            long_call = rng.random() < 0.05
            t += talk_ms if talk_ms is not None else rng.randint(300_000, 1_800_000) if long_call else rng.randint(5_000, 300_000)
            if phase == "forwarding":
                steps.append((t, "forwarding"))
                t += rng.randint(2_000, 30_000)
    steps.append((t, "ended"))
    return steps


def new_call(rng: random.Random, created_ms: int, outcome_weights: dict[str, float] | None = None) -> CallPlan:
    """A call drawn from ``rng``: its type, assistant, outcome, reason and life."""
    call_type = _weighted(rng, TYPE_WEIGHTS)
    outcome = _weighted(rng, outcome_weights or OUTCOME_WEIGHTS)
    reason = pick_reason(rng, outcome, call_type)
    return make_call(rng, created_ms, call_type, reason, plan_steps(rng, created_ms, call_type, reason))


def make_call(
    rng: random.Random,
    created_ms: int,
    call_type: str,
    reason: str | None,
    steps: list[tuple[int, str]],
    assistant_id: str | None = "",
    usage: Usage | None = None,
) -> CallPlan:
    """A call with a given life; ``assistant_id`` "" draws one (one call in ten a transient assistant)."""
    if call_type not in CALL_TYPES:
        raise ValueError(f"unknown call type {call_type!r}")
    transient = rng.random() < 0.1
    if assistant_id == "":
        assistant_id = None if transient else rng.choice(ASSISTANT_IDS)
    outcome = outcome_of(reason) if reason else None
    return CallPlan(
        id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        type=call_type,
        steps=steps,
        reason=reason,
        usage_seed=rng.getrandbits(63),
        assistant_id=assistant_id,
        model=rng.choice(MODELS) if assistant_id is None else None,
        phone_number_id=rng.choice(PHONE_NUMBER_IDS) if call_type in PHONE_TYPES else None,
        customer_number=f"+1555{rng.randrange(10**7):07d}" if call_type in PHONE_TYPES else None,
        ended_message=f"{reason} (simulated)" if outcome in ("error", "timeout") else None,
        usage_override=usage,
    )
