"""A test read as programs read it: one JSON document. Every value passes the log redactor, so no
configured secret is printed, whatever an upstream echoed."""

from __future__ import annotations

import json
from typing import Any

from agent_session_exporter.logs import redactor
from agent_session_exporter.model import SessionRecord
from agent_session_exporter.testread.capture import redacted_body
from agent_session_exporter.testread.render import Report, Shown
from agent_session_exporter.testread.verdicts import Verdict
from agent_session_exporter.timeparse import to_iso


def _record(record: SessionRecord, page: int, verdict: Verdict | None) -> dict[str, Any]:
    def iso(value: float | None) -> str | None:
        return None if value is None else to_iso(value)

    return {
        "page": page,
        "id": record.session_id,
        "status": record.status,
        "known_status": record.known_status,
        "phase": record.phase.value,
        "outcome": record.outcome.value if record.outcome else None,
        "key_time": iso(record.key_time),
        "started_at": iso(record.started_at),
        "finished_at": iso(record.finished_at),
        "duration_seconds": record.duration_seconds,
        "warnings": record.warnings,
        "tokens": record.tokens,
        "cost_usd": record.cost_usd,
        "model": record.model,
        "workflow": record.workflow,
        "workflow_name": record.workflow_name,
        "error_text": record.error_text,
        "error_message": record.error_message,
        "dropped_figures": list(record.dropped_figures),
        "verdict": None if verdict is None else verdict.value,
    }


def _request(page: Shown) -> dict[str, Any]:
    e = page.exchange
    return {
        "page": e.page,
        "retry": e.retry,
        "method": e.method,
        "target": e.target,
        "body": redacted_body(e.body) if e.body else None,
        "status": e.outcome,
        "bytes": e.size,
        "seconds": None if e.seconds is None else round(e.seconds, 6),
        "rows": e.rows,
        "records": len(e.records),
        "refused": len(e.refused),
        "not_sessions": e.not_sessions,
        "surplus": e.surplus,
        "records_not_shown": page.hidden,
    }


def render_json(report: Report) -> str:
    shown = report.shown()
    judgement = report.judgement
    tally = judgement.tally()
    document = {
        "source": report.source.name,
        "provider": report.source.provider,
        "base_url": report.base_url,
        "auth": report.credentials,
        "since": to_iso(report.since),
        "limits": {"max_pages": report.max_pages, "max_records": report.max_records},
        "notes": report.notes,
        "requests": [_request(page) for page in shown],
        "items": [_record(r, s.exchange.page, report.verdict(r)) for s in shown for r in s.records],
        "refused": [{"page": s.exchange.page, "reason": reason, "id": sid} for s in shown for reason, sid in s.refused],
        "read": "failed" if report.error else f"{report.stopped}_limit" if report.stopped else "complete",
        "error": report.error,
        "would_count": None
        if report.error
        else {
            **{v.value: tally[v] for v in Verdict},
            "unknown_statuses": dict(judgement.unknown_statuses),
            "errors": sum(judgement.increments.errors.values()),
        },
    }
    return json.dumps(redactor.redact(document), ensure_ascii=False, indent=2) + "\n"
