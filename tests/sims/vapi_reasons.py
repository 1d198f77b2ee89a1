"""Vapi's ``endedReason`` values: what each one means for an operator (``outcome_of``) and at which
point of a call's life it can happen (``phase_of``, ``fits``). The table and its reasons are in
``vapi_docs.md``; the values are the API reference's enum, copied into ``vapi_ended_reasons.txt``."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

OUTCOMES = ("success", "error", "timeout", "cancelled")
CALL_TYPES = ("inboundPhoneCall", "outboundPhoneCall", "webCall", "vapi.websocketCall")
PHONE_TYPES = ("inboundPhoneCall", "outboundPhoneCall")

#: The conversation took place and was ended on purpose: by the assistant, the customer, a configured hook,
#: a transfer the assistant made, or the carrier's normal completion.
SUCCESS = frozenset(
    {
        "assistant-ended-call",
        "assistant-ended-call-after-message-spoken",
        "assistant-ended-call-with-hangup-task",
        "assistant-said-end-call-phrase",
        "assistant-forwarded-call",
        "customer-ended-call",
        "call.in-progress.twilio-completed-call",
        "call.in-progress.sip-completed-call",
        "vonage-completed",
        "call.ringing.hook-executed-say",
        "call.ringing.hook-executed-transfer",
        "call.ending.hook-executed-say",
        "call.ending.hook-executed-transfer",
    }
)
#: A time limit ended the call: the customer's silence, the call's maximum duration, the assistant's join,
#: a warm transfer's limits.
TIMEOUT = frozenset(
    {
        "silence-timed-out",
        "exceeded-max-duration",
        "assistant-join-timed-out",
        "call.in-progress.error-warm-transfer-max-duration",
        "call.in-progress.error-warm-transfer-silence-timeout",
        "call.in-progress.error-warm-transfer-microphone-timeout",
    }
)
#: The conversation did not happen or did not reach its end, and nothing failed: nobody answered, the line
#: was busy, voicemail, the callee unavailable (SIP 408/480, which the docs call "normal behavior"), the
#: customer left before or during a transfer, a person cancelled or deleted the call.
CANCELLED = frozenset(
    {
        "customer-busy",
        "customer-did-not-answer",
        "voicemail",
        "manually-canceled",
        "scheduled-call-deleted",
        "call-deleted",
        "customer-did-not-give-microphone-permission",
        "twilio-reported-customer-misdialed",
        "call.ringing.sip-inbound-caller-hungup-before-call-connect",
        "call.forwarding.operator-busy",
        "call.forwarding.no-answer",
        "call.in-progress.error-assistant-did-not-receive-customer-audio",
        "call.in-progress.error-providerfault-outbound-sip-408-request-timeout",
        "call.in-progress.error-providerfault-outbound-sip-480-temporarily-unavailable",
        "customer-ended-call-before-warm-transfer",
        "customer-ended-call-after-warm-transfer-attempt",
        "customer-ended-call-during-transfer",
    }
)
#: Values outside today's enum that older docs show (``assistant-error`` in the 2024 reference).
LEGACY_ERRORS = frozenset({"assistant-error"})
#: Any other value of the enum is a failure of the platform, a provider, the configuration or the account.
_ERROR_SHAPE = re.compile(
    r"error|fail|fault|not-found|not-valid|not-available|rejected|disconnected|"
    r"closed-websocket|worker-shutdown|no-call-received|neither-assistant|returned-"
)


def outcome_of(reason: str) -> str:
    """The outcome an operator alerting on bot failures gives a call that ended with ``reason``;
    ``unknown`` for a value neither the enum nor the rules know."""
    for outcome, reasons in (("success", SUCCESS), ("timeout", TIMEOUT), ("cancelled", CANCELLED)):
        if reason in reasons:
            return outcome
    if reason in LEGACY_ERRORS or _ERROR_SHAPE.search(reason):
        return "error"
    return "unknown"


def phase_of(reason: str) -> str:
    """The last status a call ending with ``reason`` had: ``scheduled``, ``queued`` (it never connected),
    ``ringing`` (nobody answered), ``forwarding`` (a transfer), or ``in-progress``."""
    if reason == "scheduled-call-deleted":
        return "scheduled"
    if (
        reason.startswith(("call.start.", "call-start-", "assistant-not-", "assistant-request-"))
        or reason
        in {
            "twilio-failed-to-connect-call",
            "vonage-failed-to-connect-call",
            "vonage-rejected",
            "phone-call-provider-bypass-enabled-but-no-call-received",
            "manually-canceled",
            "customer-did-not-give-microphone-permission",
        }
        or re.search(r"transport-never-connected|worker-not-available|sip-outbound-call-failed-to-connect", reason)
    ):
        return "queued"
    if (
        reason.startswith("call.ringing.")
        or reason in {"customer-busy", "customer-did-not-answer", "twilio-reported-customer-misdialed"}
        or re.search(r"outbound-sip-\d{3}-|sip-inbound-call-failed-to-connect", reason)
    ):
        return "ringing"
    if (
        reason.startswith("call.forwarding.")
        or reason == "assistant-forwarded-call"
        or ("transfer" in reason and not reason.startswith("call.ending."))
    ):
        return "forwarding"
    return "in-progress"


def fits(reason: str, call_type: str) -> bool:
    """Whether a call of ``call_type`` can end with ``reason`` (no busy line on a web call, no microphone
    prompt on a phone call, no outbound SIP failure on an inbound call)."""
    phone = call_type in PHONE_TYPES
    if reason == "customer-did-not-give-microphone-permission":
        return call_type == "webCall"
    telephony = re.search(
        r"twilio|vonage|sip|phone-call-provider|customer-busy|customer-did-not-answer|voicemail|"
        r"misdialed|call\.ringing\.|call\.forwarding\.|transfer|number",
        reason,
    )
    if not phone:
        return not telephony and phase_of(reason) not in ("ringing", "forwarding")
    if call_type == "inboundPhoneCall":
        return not re.search(r"outbound|customer-busy|customer-did-not-answer|misdialed|scheduled", reason)
    return "inbound" not in reason


@cache
def ended_reasons() -> tuple[str, ...]:
    """Every ``endedReason`` of the API reference's enum, in its order."""
    lines = (Path(__file__).with_name("vapi_ended_reasons.txt")).read_text(encoding="utf-8").splitlines()
    return tuple(line for line in lines if line and not line.startswith("#"))


@cache
def reasons_by_outcome() -> dict[str, tuple[str, ...]]:
    return {outcome: tuple(r for r in ended_reasons() if outcome_of(r) == outcome) for outcome in OUTCOMES}


@cache
def fitting(outcome: str, call_type: str) -> tuple[str, ...]:
    """The reasons of ``outcome`` a call of ``call_type`` can end with."""
    return tuple(r for r in reasons_by_outcome()[outcome] if fits(r, call_type))
