"""The README's provider table is held against the providers' own declarations."""

from __future__ import annotations

import re
from pathlib import Path

from exporter.providers import PROVIDER_CLASSES

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
