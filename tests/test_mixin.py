"""The monitoring mixin (mixin/) is the one source of the rules, the PrometheusRule and the
dashboard: what deploy/ ships is what it renders, and it follows the mixin conventions."""

from __future__ import annotations

import json
import re
import sys

import _jsonnet

from agent_session_exporter.serve.alerting import ERROR_RATIO, MIN_FINISHED

from .helpers import ROOT

sys.path.insert(0, str(ROOT / "mixin"))
try:
    import render
finally:
    sys.path.pop(0)


def test_deploy_ships_exactly_what_the_mixin_renders():
    for path, text in render.rendered().items():
        assert path.read_text() == text, f"{path.relative_to(ROOT)} is out of date: run python mixin/render.py"
    assert render.main(["--check"]) == 0


def test_every_alert_follows_the_mixin_conventions_and_its_runbook_exists():
    readme = ROOT.joinpath("README.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-") for heading in re.findall(r"^#+ (.+)$", readme, re.M)
    }
    alerts = [rule for group in render.mixin()["alerts"]["groups"] for rule in group["rules"]]
    assert len(alerts) >= 10
    for alert in alerts:
        annotations = alert["annotations"]
        assert {"summary", "description", "runbook_url"} <= set(annotations), alert["alert"]
        assert alert["labels"]["severity"] in ("critical", "warning", "info"), alert["alert"]
        url, _, anchor = annotations["runbook_url"].partition("#")
        assert url.endswith("README.md") and anchor in anchors, (alert["alert"], anchor)
        assert not annotations.get("dashboard_url", "http").startswith("/"), "a dashboard link must be absolute"
    assert "AgentSessionSourceTaskRestarting" in {a["alert"] for a in alerts}


def test_the_error_alert_uses_the_exporters_thresholds():
    (alert,) = [r for g in render.mixin()["alerts"]["groups"] for r in g["rules"] if r["alert"] == "AgentSessionsHighErrorRatio"]
    assert f"> {ERROR_RATIO:g}\n" in alert["expr"] and f">= {MIN_FINISHED}\n" in alert["expr"]


def test_the_config_of_the_mixin_reaches_every_part():
    custom = json.loads(
        _jsonnet.evaluate_snippet(
            "custom",
            """
        local m = (import 'mixin.libsonnet') + {_config+:: {haLabels: 'replica', grafanaUrl: 'https://g.example',
                                                              exporterSelector: 'job="ase"'}};
        {rules: m.prometheusRules, alerts: m.prometheusAlerts, dashboards: m.grafanaDashboards}
    """,
            jpathdir=[str(ROOT / "mixin")],
        )
    )
    text = json.dumps(custom)
    assert "max without (replica)" in text and "instance, pod" not in text
    assert "https://g.example/d/agent-sessions/" in text and 'up{job=\\"ase\\"} == 0' in text


def test_the_dashboard_names_workflows_where_the_provider_does():
    dashboard = render.mixin()["dashboards"]["agent-sessions.json"]
    (panel,) = [p for p in dashboard["panels"] if p["title"] == "Error and timeout ratio by workflow"]
    (target,) = panel["targets"]
    assert "group_left (workflow_name)" in target["expr"] and "or on (source, workflow)" in target["expr"]
    assert "{{workflow_name}}" in target["legendFormat"]
