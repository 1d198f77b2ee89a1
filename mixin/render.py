"""Render the monitoring mixin into the files deploy/ ships: the Prometheus rules, the Prometheus
Operator's PrometheusRule, and the Grafana dashboard. The mixin is their one source; a test fails
when a rendered file is out of date.

    python mixin/render.py          # write them
    python mixin/render.py --check  # exit 1 and name the files that differ
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import _jsonnet
import yaml

MIXIN = Path(__file__).resolve().parent
ROOT = MIXIN.parent
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
PROMETHEUS_RULE = ROOT / "deploy" / "kubernetes" / "monitoring" / "prometheusrule.yaml"
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
HEADER = "# Generated from mixin/ by `python mixin/render.py`; edit the mixin, not this file.\n"


class _BlockStrings(yaml.SafeDumper):
    """Multi-line strings (long expressions) as YAML literal blocks, as a person would write them."""


_BlockStrings.add_representer(str, lambda dumper, value: dumper.represent_scalar(
    "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None))


def mixin() -> dict[str, Any]:
    """The mixin's three parts, evaluated with its default ``_config``."""
    text = _jsonnet.evaluate_snippet("render", """
        local m = import 'mixin.libsonnet';
        {rules: m.prometheusRules, alerts: m.prometheusAlerts, dashboards: m.grafanaDashboards}
    """, jpathdir=[str(MIXIN)])
    return json.loads(text)


def _yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_BlockStrings, sort_keys=False, width=1000, allow_unicode=True)


def rendered() -> dict[Path, str]:
    """Each file deploy/ ships, as the mixin renders it."""
    parts = mixin()
    groups = parts["rules"]["groups"] + parts["alerts"]["groups"]
    rule = {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
        # `release: prometheus` is what the Operator's ruleSelector matches in a kube-prometheus-stack
        # release named "prometheus" (README, Kubernetes): set it to your Prometheus's selector.
        "metadata": {"name": "agent-session-exporter",
                     "labels": {"app.kubernetes.io/name": "agent-session-exporter", "release": "prometheus"}},
        "spec": {"groups": groups},
    }
    files = {RULES: HEADER + _yaml({"groups": groups}), PROMETHEUS_RULE: HEADER + _yaml(rule)}
    for name, dashboard in parts["dashboards"].items():
        files[DASHBOARDS / name] = json.dumps(dashboard, indent=2) + "\n"
    return files


def main(argv: list[str]) -> int:
    stale = [path for path, text in rendered().items() if not path.exists() or path.read_text() != text]
    if "--check" in argv:
        for path in stale:
            print(f"out of date: {path.relative_to(ROOT)} (run python mixin/render.py)", file=sys.stderr)
        return 1 if stale else 0
    for path, text in rendered().items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
