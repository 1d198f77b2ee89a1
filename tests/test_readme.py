"""The README's provider table is held against the providers' own declarations."""

from __future__ import annotations

import re
from pathlib import Path

from agent_session_exporter.read.providers import PROVIDER_CLASSES

README = Path(__file__).resolve().parent.parent / "README.md"
HEADER = "| provider | active statuses | final statuses → outcome | error text | figures |"


def provider_rows() -> dict[str, list[str]]:
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index(HEADER) + 2
    rows = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def test_the_readme_states_each_providers_statuses_outcomes_and_figures():
    rows = provider_rows()
    assert set(rows) == set(PROVIDER_CLASSES)
    for name, cls in PROVIDER_CLASSES.items():
        active, final, _, figures = rows[name]
        assert set(re.findall(r"`([^`]+)`", active)) == {s for s, o in cls.STATUSES.items() if o is None}, name
        finals = dict(re.findall(r"`([^`]+)`[^;]*?→ (\w+)", final))
        listed = set(re.findall(r"`([^`]+)`", final))
        assert listed == {s for s, o in cls.STATUSES.items() if o is not None}, name
        for status, outcome in cls.STATUSES.items():
            if outcome is not None and status in finals:
                assert finals[status] == outcome.value, (name, status)
        declared = set() if figures == "none" else {f.strip() for f in figures.split(",")}
        assert declared == set(cls.FIGURES), name


async def test_every_metric_the_exporter_exposes_is_in_the_readme_table(clock):
    """Dashboards and alert rules are written from the README: a metric it does not list is one
    nobody can rely on."""
    from prometheus_client.parser import text_string_to_metric_families

    from agent_session_exporter.app import Exporter
    from agent_session_exporter.demo.runner import demo_config, running_simulators
    from agent_session_exporter.demo.server import Simulators

    async with running_simulators(Simulators(clock=clock), tick_every=None) as base_url:
        exporter = Exporter(demo_config(base_url, listen="127.0.0.1:0"), clock=clock)
        await exporter.open()
        try:
            await exporter.run_once()
            text = exporter.render_metrics().decode()
        finally:
            await exporter.close()
    exposed = {family.name for family in text_string_to_metric_families(text) if family.name.startswith("agent_session")}
    documented = set(re.findall(r"^\| `(agent_session[a-z_]*)` \|", README.read_text(encoding="utf-8"), re.M))
    counters = {name for name in documented if name.endswith("_total")}
    assert exposed >= {"agent_sessions_finished", "agent_session_exporter_sweep_probes"}
    missing = {name for name in exposed if name not in documented and f"{name}_total" not in counters}
    assert not missing, f"exposed but not in the README's metric table: {sorted(missing)}"
