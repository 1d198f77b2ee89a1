"""The demo never pages: its traffic stays under every shipped alert's threshold, window by window,
as the rules compute them (the rule tests prove the alerts fire on the failures they are for)."""

from __future__ import annotations

from agent_session_exporter.demo.server import Simulators

from .helpers import FakeClock

THREE_HOURS = 3 * 3600


def test_demo_traffic_stays_under_every_alert_threshold():
    clock = FakeClock()
    simulators = Simulators(clock=clock)  # the demo's own rate and outcomes
    minutes: list[dict[str, tuple[int, int, int, float, int]]] = []
    for second in range(0, THREE_HOURS, 5):
        clock.advance(5)
        simulators.tick()
        if second % 60 == 0:
            minutes.append(
                {
                    p: (
                        sum(f.truth.finished.values()),
                        f.truth.errors,
                        sum(n for (status, outcome), n in f.truth.finished.items() if outcome == "timeout"),
                        sum(f.truth.cost.values()),
                        sum(1 for s in f.sessions.values() if s.running),
                    )
                    for p, f in simulators.factories.items()
                }
            )
    worst = {"error": 0.0, "timeout": 0.0, "cost": 0.0, "active": 0}
    for end in range(15, len(minutes)):
        for provider, (finished, errors, timeouts, _, active) in minutes[end].items():
            f0, e0, t0, _, _ = minutes[end - 15][provider]
            if finished - f0 >= 20:  # the alerts' traffic guard
                worst["error"] = max(worst["error"], (errors - e0) / (finished - f0))
                worst["timeout"] = max(worst["timeout"], (timeouts - t0) / (finished - f0))
            worst["active"] = max(worst["active"], active)
    for end in range(60, len(minutes)):
        for provider, values in minutes[end].items():
            worst["cost"] = max(worst["cost"], values[3] - minutes[end - 60][provider][3])
    assert worst["error"] < 0.20, worst  # AgentSessionsHighErrorRatio
    assert worst["timeout"] < 0.10, worst  # AgentSessionsHighTimeoutRatio
    assert worst["cost"] < 50, worst  # AgentSessionCostHigh (USD per hour)
    assert worst["active"] < 100, worst  # AgentSessionsActiveStuckHigh
    assert worst["error"] > 0 and worst["cost"] > 0  # the demo does fail and spend, just not enough to page
