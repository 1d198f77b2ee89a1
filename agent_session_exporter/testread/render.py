"""A test read as people read it (aligned text; ``render_json.py``: as programs do). Every line and
value passes the log redactor, so no configured secret is printed, whatever an upstream echoed."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

import yarl

from agent_session_exporter.logs import REDACTED, redactor
from agent_session_exporter.model import SessionRecord
from agent_session_exporter.read.http_client import HeaderAuth
from agent_session_exporter.read.source import SourceBase
from agent_session_exporter.safetext import safe_text
from agent_session_exporter.testread.capture import Exchange, redacted_body
from agent_session_exporter.testread.verdicts import PENDING, SKIPPED, VERDICT_TEXT, Judgement, Verdict


@dataclass
class Shown:
    """What of one exchange's page is shown: the first records of the read, up to its record limit."""

    exchange: Exchange
    records: list[SessionRecord]
    refused: list[tuple[str, str | None]]
    hidden: int


@dataclass
class Report:
    source: SourceBase
    since: float
    max_pages: int
    max_records: int
    exchanges: list[Exchange]
    auth: HeaderAuth | None = None
    #: Why the read failed (one line), or None.
    error: str | None = None
    #: The limit that ended the read (``page``, ``record``), or None.
    stopped: str | None = None
    judgement: Judgement = field(default_factory=Judgement)
    #: What the provider says of how it reads (``describe``), and what of the source is deprecated.
    notes: list[str] = field(default_factory=list)

    def shown(self) -> list[Shown]:
        left, cut = self.max_records, []
        for exchange in self.exchanges:
            records = exchange.records[:left]
            refused = exchange.refused[: left - len(records)]
            taken = len(records) + len(refused)
            left -= taken
            cut.append(Shown(exchange, records, refused, len(exchange.records) + len(exchange.refused) - taken))
        return cut

    def verdict(self, record: SessionRecord) -> Verdict | None:
        """The record's verdict; None when the read failed (a failed cycle counts nothing)."""
        return None if self.error is not None else self.judgement.verdicts[id(record)]

    def shown_records(self) -> list[SessionRecord]:
        return [record for shown in self.shown() for record in shown.records]

    @property
    def credentials(self) -> str:
        if self.source.basic_auth is not None:
            return f"Authorization: Basic {REDACTED}"
        if self.source.api_key is None or self.auth is None:
            return "none"
        return f"{self.auth.header}: {self.auth.prefix}{REDACTED}"

    @property
    def base_url(self) -> str:
        return safe_text(redactor.redact(str(yarl.URL(self.source.base_url).with_user(None))))

    @property
    def ending(self) -> str:
        if self.error is not None:
            return f"failed: {self.error}"
        if self.stopped is not None:
            flag = (
                f"--test-read.max-pages {self.max_pages}"
                if self.stopped == "page"
                else f"--test-read.max-records {self.max_records}"
            )
            return f"stopped at the {self.stopped} limit ({flag}); the exporter would read on"
        return "complete"


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _text(value: str | None) -> str:
    return "-" if value is None else safe_text(value)


def _number(value: float) -> str:
    return f"{value:g}" if value < 1e15 else f"{value:.6g}"


def _details(record: SessionRecord, key_time: float) -> str:
    parts = []
    if record.started_at is not None and record.started_at != key_time:
        parts.append(f"start {_when(record.started_at)}")
    if record.finished_at is not None:
        parts.append(f"end {_when(record.finished_at)}")
    if record.warnings:
        parts.append(f"warnings {_number(record.warnings)}")
    if record.tokens:
        parts.append("tokens " + ", ".join(f"{_text(kind)} {_number(n)}" for kind, n in sorted(record.tokens.items())))
    if record.cost_usd is not None:
        parts.append(f"cost {record.cost_usd:.6g} USD")
    if record.model:
        parts.append(f"model {_text(record.model)}")
    if record.workflow or record.workflow_name:
        name = f" ({_text(record.workflow_name)})" if record.workflow_name else ""
        parts.append(f"workflow {_text(record.workflow) or '-'}{name}")
    if record.error_text or record.error_message:
        parts.append(f"error {json.dumps(_text(record.error_message or ''), ensure_ascii=False)}")
    if record.dropped_figures:
        parts.append("unusable figures left out: " + ", ".join(record.dropped_figures))
    return " · ".join(parts)


def _row(record: SessionRecord, verdict: Verdict | None) -> list[str]:
    known = "" if record.known_status else " (unknown)"
    duration = "-" if record.duration_seconds is None else f"{record.duration_seconds:.3f} s"
    return [
        _text(record.session_id),
        _text(record.status) + known,
        record.phase.value,
        record.outcome.value if record.outcome else "-",
        _when(record.key_time),
        duration,
        "-" if verdict is None else VERDICT_TEXT[verdict],
    ]


_HEADINGS = ["ID", "STATUS", "PHASE", "OUTCOME", "KEY TIME", "DURATION", "VERDICT"]


def _answer(exchange: Exchange) -> str:
    if exchange.outcome is None:
        return "no answer (the read ended first)"
    parts = [exchange.outcome]
    if exchange.size is not None:
        parts.append(f"{exchange.size} bytes")
    if exchange.seconds is not None:
        parts.append(f"{exchange.seconds:.3f} s")
    if exchange.rows is None:
        if exchange.outcome.isdigit() and int(exchange.outcome) < 400:
            parts.append("no items read from it")
    else:
        parts.append(
            f"{exchange.rows} rows: {len(exchange.records)} records, {len(exchange.refused)} refused, "
            f"{exchange.not_sessions} not sessions"
        )
    return " · ".join(parts)


def _summary(report: Report) -> list[str]:
    judgement = report.judgement
    tally = judgement.tally()
    records = report.shown_records()
    outcomes = Counter(r.outcome.value for r in records if judgement.verdicts[id(r)] is Verdict.NEW_FINAL and r.outcome)
    refused = Counter(reason for shown in report.shown() for reason, _ in shown.refused)
    refused.update({"future_timestamp": tally[Verdict.FUTURE_TIMESTAMP]} if tally[Verdict.FUTURE_TIMESTAMP] else {})

    def line(label: str, counts: dict[str, int]) -> str:
        detail = " · ".join(f"{name} {count}" for name, count in counts.items() if count)
        return f"  {label:<10}{sum(counts.values()):>6}   {detail}".rstrip()

    lines = [
        "would count, against an empty state (the records shown):",
        line("counted", dict(outcomes)),
        line("pending", {v.value.split("_")[1]: tally[v] for v in PENDING}),
        line("skipped", {SKIPPED[v]: tally[v] for v in SKIPPED}),
        line("refused", dict(refused)),
    ]
    adds = _increments(judgement)
    if adds:
        lines.append(f"  {'adds':<10}{'':>6}   {adds}")
    if judgement.unknown_statuses:
        unknown = ", ".join(f"{_text(s)} ({n})" for s, n in judgement.unknown_statuses.items())
        lines.append(f"  unknown statuses (not in the provider's table): {unknown}")
    return lines


def _increments(judgement: Judgement) -> str:
    totals = judgement.increments
    parts = []
    if errors := sum(totals.errors.values()):
        parts.append(f"errors {errors}")
    if warnings := sum(totals.warnings.values()):
        parts.append(f"warnings {_number(warnings)}")
    tokens: dict[str, float] = {}
    for (_, kind), value in totals.tokens.items():
        tokens[kind] = tokens.get(kind, 0.0) + value
    if tokens:
        parts.append("tokens " + ", ".join(f"{_text(k)} {_number(v)}" for k, v in sorted(tokens.items())))
    if cost := sum(totals.cost.values()):
        parts.append(f"cost {cost:.6g} USD")
    return " · ".join(parts)


def render_text(report: Report) -> str:
    source = report.source
    lines = [
        f"test read of source {source.name!r} (provider {source.provider})",
        f"  base_url  {report.base_url}",
        f"  auth      {report.credentials}",
        f"  window    key times from {_when(report.since)} UTC (initial_lookback {source.initial_lookback:g}s, an empty state)",
        f"  limits    {report.max_pages} pages, {report.max_records} records",
        *(f"  note      {note}" for note in report.notes),
        "",
    ]
    shown = report.shown()
    rows = [_row(r, report.verdict(r)) for s in shown for r in s.records]
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(_HEADINGS)]

    def aligned(cells: list[str]) -> str:
        return "    " + "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    for page in shown:
        exchange = page.exchange
        retry = " (retry)" if exchange.retry else ""
        lines.append(f"page {exchange.page}  {exchange.method} {exchange.target}{retry}")
        if exchange.body:
            body = redacted_body(exchange.body)
            lines.append(f"  body {body if len(body) <= 400 else body[:400] + '...'}")
        lines.append(f"  {_answer(exchange)}")
        if page.records:
            lines.append(aligned(_HEADINGS))
        for record in page.records:
            lines.append(aligned(_row(record, report.verdict(record))))
            if details := _details(record, record.key_time):
                lines.append(" " * 6 + details)
        lines += [f"    refused  {reason}  id {_text(sid)}" for reason, sid in page.refused]
        if page.hidden:
            lines.append(f"    ... {page.hidden} more records not shown (--test-read.max-records {report.max_records})")
        if exchange.surplus:
            lines.append(f"    ... {exchange.surplus} rows past the page size asked for, ignored")
    requests = len(report.exchanges)
    retries = sum(e.retry for e in report.exchanges)
    size = sum(e.size or 0 for e in report.exchanges)
    lines += ["", f"read: {report.ending}", f"  requests {requests} (retries {retries}) · bytes {size}"]
    if report.error is None:
        lines += _summary(report)
    return "".join(redactor.redact(line) + "\n" for line in lines)
