"""A simulator of Vapi's List Calls API (``GET /call``) and Get Call (``GET /call/{id}``), written from
Vapi's public API reference alone (``vapi_docs.md`` holds the facts and the choices made where the docs
are silent), with the exact totals a correct exporter must reach (``ground_truth``).

A test drives it by time: calls arrive on their own (a seeded, deterministic stream with bursts and
ties), live through scheduled/queued/ringing/in-progress/forwarding and end; the test moves the clock
(``advance``, or a clock it shares with the exporter), adds calls (``add_call``, ``add_burst``) and ends
them (``end_call``)::

    sim = VapiSim(seed=3, rate=1.0)
    async with sim.serve() as base_url:      # http://127.0.0.1:<port>; auth: Bearer sim.key
        sim.advance(600)
        ...                                  # the exporter polls base_url + "/call"
        truth = sim.ground_truth()           # ended calls by outcome, durations, tokens, cost
"""

from __future__ import annotations

import contextlib
import math
import random
import re
from datetime import datetime, timedelta, timezone
from typing import Any, AsyncIterator, Callable

from aiohttp import web

from .vapi_calls import CallPlan, Usage, make_call, new_call, plan_steps
from .vapi_reasons import outcome_of
from .vapi_truth import Truth

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
DEFAULT_KEY = "3f1e2d4c-5b6a-4978-8f9e-0d1c2b3a4f5e"
START = 1_780_000_000.0
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
TIME_FILTERS = tuple(f"{field}{op}" for field in ("createdAt", "updatedAt") for op in ("Gt", "Lt", "Ge", "Le"))
LIST_PARAMS = frozenset({"id", "assistantId", "phoneNumberId", "limit", *TIME_FILTERS})
UNAUTHORIZED = {
    "message": "Invalid Key. Hot tip, you may be using the private key instead of the public key, or vice versa.",
    "error": "Unauthorized",
    "statusCode": 401,
}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", re.IGNORECASE)
_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "Gt": lambda v, b: v > b,
    "Lt": lambda v, b: v < b,
    "Ge": lambda v, b: v >= b,
    "Le": lambda v, b: v <= b,
}


def _bad_request(*messages: str) -> web.HTTPBadRequest:
    """NestJS's validation error, as Vapi answers a bad parameter."""
    body = {"message": list(messages), "error": "Bad Request", "statusCode": 400}
    return web.HTTPBadRequest(text=web.json_response(body).text, content_type="application/json")


def _parse_time(name: str, raw: str) -> int:
    """An ISO 8601 query value as epoch milliseconds (truncated, as a JavaScript Date keeps them); a value
    without an offset is UTC."""
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise _bad_request(f"{name} must be a valid ISO 8601 date string") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return (value - EPOCH) // timedelta(milliseconds=1)


class VapiSim:
    """Vapi's calls over time, served by ``app()``; see the module docstring for how a test drives it.

    ``rate`` calls a second arrive on average (a Poisson count per second); every ``burst_every``
    seconds ``burst_size`` more arrive within one second; ``tie_share`` of calls take the ``createdAt``
    of the call before them (same millisecond). ``limit_over_max`` is "reject" (400, as the docs'
    ``maximum: 1000`` validates) or "clamp"; ``tie_order`` is "id" (ties newest-first by id, descending)
    or "shuffle" (ties in a different order on each request, as an unordered database may give them).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] | None = None,
        start: float = START,
        seed: int = 1,
        rate: float = 0.5,
        history: float = 0.0,
        burst_every: int = 900,
        burst_size: int = 150,
        tie_share: float = 0.05,
        outcome_weights: dict[str, float] | None = None,
        keys: tuple[str, ...] = (DEFAULT_KEY,),
        limit_over_max: str = "reject",
        tie_order: str = "id",
        strict_params: bool = True,
    ) -> None:
        self._own_clock = clock is None
        self._manual_now = start if clock is None else clock()
        self.clock: Callable[[], float] = clock or (lambda: self._manual_now)
        self.seed, self.rate, self.burst_every, self.burst_size = seed, rate, burst_every, burst_size
        self.tie_share, self.outcome_weights = tie_share, outcome_weights
        self.keys, self.limit_over_max, self.tie_order, self.strict_params = keys, limit_over_max, tie_order, strict_params
        self.calls: dict[str, CallPlan] = {}
        #: Every request that passed auth: (path, {param: value}), for tests that check what was asked.
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._next_second = math.floor(self._manual_now - history)
        self._manual_rng = random.Random(f"manual:{seed}")
        self._shuffle_rng = random.Random(f"shuffle:{seed}")

    @property
    def key(self) -> str:
        return self.keys[0]

    # -- time ----------------------------------------------------------------------------------------

    def now(self) -> float:
        return self.clock()

    def now_ms(self) -> int:
        return math.floor(self.clock() * 1000)

    def advance(self, seconds: float) -> None:
        """Move the simulator's own clock (only when no ``clock`` was given)."""
        if not self._own_clock:
            raise RuntimeError("this simulator follows a clock it was given: move that clock")
        self._manual_now += seconds

    def _generate(self, now_ms: int) -> None:
        """Draw the arrivals of every whole second up to now, each second from its own seed, so the
        stream is the same whenever and however often it is read."""
        while self._next_second * 1000 <= now_ms:
            second, self._next_second = self._next_second, self._next_second + 1
            rng = random.Random(self.seed * 1_000_003 + second)
            count = _poisson(rng, self.rate)
            if self.burst_every and second % self.burst_every == 0:
                count += self.burst_size
            created = sorted(second * 1000 + rng.randrange(1000) for _ in range(count))
            for i in range(1, len(created)):
                if rng.random() < self.tie_share:
                    created[i] = created[i - 1]
            for ms in created:
                self._keep(new_call(rng, ms, self.outcome_weights))

    def _keep(self, plan: CallPlan) -> CallPlan:
        if plan.id in self.calls:
            raise ValueError(f"duplicate call id {plan.id}")
        self.calls[plan.id] = plan
        return plan

    # -- controls ------------------------------------------------------------------------------------

    def add_call(
        self,
        *,
        at: float | None = None,
        reason: str | None = None,
        talk: float | None = None,
        call_type: str = "outboundPhoneCall",
        assistant_id: str | None = "",
        steps: list[tuple[float, str]] | None = None,
        usage: Usage | None = None,
    ) -> str:
        """Add a call created at ``at`` (default now). With ``reason`` it ends so after talking ``talk``
        seconds (default drawn); without, it stays in progress until ``end_call``. It is queued first
        (0.1 to 2 s) and, a phone call, rings (1 to 20 s); never scheduled. ``steps`` (seconds, status)
        gives any life at all, statuses outside the documented lifecycle included."""
        rng = self._manual_rng
        created = math.floor((self.now() if at is None else at) * 1000)
        if steps is not None:
            life = [(math.floor(t * 1000), status) for t, status in steps]
        else:
            life = plan_steps(rng, created, call_type, reason, None if talk is None else round(talk * 1000), 0.0)
        return self._keep(make_call(rng, created, call_type, reason, life, assistant_id, usage)).id

    def add_burst(self, n: int, *, at: float | None = None, same_instant: bool = False, **options: Any) -> list[str]:
        """Add ``n`` calls created at ``at`` (default now): all in the same millisecond, or one a millisecond."""
        start = self.now() if at is None else at
        return [self.add_call(at=start + (0 if same_instant else i / 1000), **options) for i in range(n)]

    def end_call(self, call_id: str, reason: str = "customer-ended-call", at: float | None = None) -> None:
        """End a call now (or at ``at``) with ``reason``: what it planned after that never happens."""
        plan = self.calls[call_id]
        end = math.floor((self.now() if at is None else at) * 1000)
        if plan.ended_ms(end) is not None:
            raise ValueError(f"call {call_id} has already ended")
        steps = [(t, s) for t, s in plan.steps if t <= end]
        if not steps:
            raise ValueError(f"call {call_id} does not exist yet at {end} ms")
        plan.steps = steps + [(max(end, steps[-1][0]), "ended")]
        plan.reason = reason
        plan.ended_message = f"{reason} (simulated)" if outcome_of(reason) in ("error", "timeout") else None

    def visible_calls(self, now_ms: int | None = None) -> list[CallPlan]:
        """Every call that exists at ``now_ms``, newest first (ties by id, descending)."""
        now_ms = self.now_ms() if now_ms is None else now_ms
        self._generate(now_ms)
        calls = [c for c in self.calls.values() if c.visible(now_ms)]
        return sorted(calls, key=lambda c: (c.created_ms, c.id), reverse=True)

    def ground_truth(self, now: float | None = None) -> Truth:
        """The exact totals of the calls ended by ``now`` (default the clock), and those still active."""
        now_ms = self.now_ms() if now is None else math.floor(now * 1000)
        truth = Truth(now=now_ms / 1000)
        for plan in self.visible_calls(now_ms):
            truth.add(plan, now_ms)
        return truth

    # -- HTTP ----------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/call", self._list)
        app.router.add_get("/call/{id}", self._get)
        return app

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        """Serve ``app()`` on 127.0.0.1 at a port the OS chooses; yields the base URL."""
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            yield f"http://127.0.0.1:{port}"
        finally:
            await runner.cleanup()

    @web.middleware
    async def _auth(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token.strip() not in self.keys:
            return web.json_response(UNAUTHORIZED, status=401)
        self.requests.append((request.path, dict(request.query)))
        return await handler(request)

    def _limit(self, raw: str | None) -> int:
        if raw is None:
            return DEFAULT_LIMIT
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise _bad_request("limit must be a number conforming to the specified constraints")
        if value < 0:
            raise _bad_request("limit must not be less than 0")
        if value > MAX_LIMIT:
            if self.limit_over_max != "clamp":
                raise _bad_request(f"limit must not be greater than {MAX_LIMIT}")
            value = MAX_LIMIT
        return int(value)

    async def _list(self, request: web.Request) -> web.Response:
        query = request.query
        unknown = sorted(set(query) - LIST_PARAMS)
        if unknown and self.strict_params:
            raise _bad_request(*(f"property {name} should not exist" for name in unknown))
        repeated = sorted(name for name in set(query) if len(query.getall(name)) > 1)
        if repeated:
            raise _bad_request(*(f"{name} must be a string" for name in repeated))
        limit = self._limit(query.get("limit"))
        bounds = [(name[:-2], _COMPARE[name[-2:]], _parse_time(name, query[name])) for name in TIME_FILTERS if name in query]
        now_ms = self.now_ms()
        calls = self.visible_calls(now_ms)
        if self.tie_order == "shuffle":
            calls.sort(key=lambda c: (c.created_ms, self._shuffle_rng.random()), reverse=True)
        page: list[dict[str, Any]] = []
        for plan in calls:
            if len(page) >= limit:
                break
            if "id" in query and plan.id != query["id"]:
                continue
            if "assistantId" in query and plan.assistant_id != query["assistantId"]:
                continue
            if "phoneNumberId" in query and plan.phone_number_id != query["phoneNumberId"]:
                continue
            times = {"createdAt": plan.created_ms, "updatedAt": plan.updated_ms(now_ms)}
            if all(compare(times[field], bound) for field, compare, bound in bounds):
                page.append(plan.render(now_ms))
        return web.json_response(page)

    async def _get(self, request: web.Request) -> web.Response:
        call_id = request.match_info["id"]
        if not UUID.match(call_id):
            return web.json_response(
                {"message": "Validation failed (uuid is expected)", "error": "Bad Request", "statusCode": 400}, status=400
            )
        now_ms = self.now_ms()
        self._generate(now_ms)
        plan = self.calls.get(call_id)
        if plan is None or not plan.visible(now_ms):
            return web.json_response({"message": "Not Found", "statusCode": 404}, status=404)
        return web.json_response(plan.render(now_ms))


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method; the means here are small)."""
    if mean <= 0:
        return 0
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit and count < 10_000:
        count += 1
        product *= rng.random()
    return count
