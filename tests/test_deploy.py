"""deploy/: every file loads, rules pass promtool, the compose file and the Dockerfile agree with the
exporter, and a real Prometheus scraping the exporter evaluates every dashboard query and raises the error alert."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import yaml
from aiohttp import web

from agent_session_exporter.app import Exporter
from agent_session_exporter.config import DEFAULT_LISTEN
from agent_session_exporter.demo.runner import demo_config, running_simulators
from agent_session_exporter.demo.server import Simulators
from agent_session_exporter.flags import parse_args
from agent_session_exporter.serve.server import make_app

from .helpers import tool

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "agent-sessions.json"
EXPORTER_PORT = DEFAULT_LISTEN.rsplit(":", 1)[1]


def load(path: Path):
    return json.loads(path.read_text()) if path.suffix == ".json" else list(yaml.safe_load_all(path.read_text()))


def test_every_yaml_and_json_file_in_deploy_loads():
    files = [p for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml", ".json")]
    assert len(files) >= 14
    for path in files:
        assert load(path), path


def test_promtool_checks_and_unit_tests_the_rules():
    promtool = tool("promtool")
    for args in (["check", "rules", "rules.yml"], ["test", "rules", "rules_test.yml"], ["check", "config", "prometheus.yml"]):
        result = subprocess.run([promtool, *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_finds_no_problem_in_the_real_exposition():
    exposition = subprocess.run(
        [sys.executable, "-m", "agent_session_exporter", "--demo", "--once"],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    assert b"agent_sessions_finished_total{" in exposition
    result = subprocess.run([tool("promtool"), "check", "metrics"], input=exposition, capture_output=True, timeout=60)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), result.stderr


def test_compose_services_ports_and_mounts_agree_with_the_exporter():
    compose = load(DEPLOY / "docker-compose.yml")[0]["services"]
    assert set(compose) == {"exporter", "prometheus", "alertmanager", "grafana"}
    assert compose["exporter"]["command"] == ["--demo"]
    assert compose["exporter"]["ports"] == [f"{EXPORTER_PORT}:{EXPORTER_PORT}"]
    assert (DEPLOY / compose["exporter"]["build"] / "Dockerfile").exists()
    for name, service in compose.items():
        for volume in service.get("volumes", []):
            assert (DEPLOY / volume.split(":")[0]).exists(), (name, volume)
    prometheus = load(PROMETHEUS_DIR / "prometheus.yml")[0]
    assert prometheus["scrape_configs"][0]["static_configs"][0]["targets"] == [f"exporter:{EXPORTER_PORT}"]
    assert prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert "9093:9093" in compose["alertmanager"]["ports"]
    datasource = load(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")[0]["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090" and "9090:9090" in compose["prometheus"]["ports"]
    provider = load(DEPLOY / "grafana/provisioning/dashboards/dashboards.yml")[0]["providers"][0]
    assert any(v.endswith(":" + provider["options"]["path"] + ":ro") for v in compose["grafana"]["volumes"])


def test_dockerfile_installs_and_starts_the_way_the_readme_says():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```sh\n(.+?)\n```", readme)
    run_command, test_command = commands[0], commands[1]
    assert "pip install ." in run_command and run_command.endswith("agent-session-exporter --demo")
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()
    dockerfile = (ROOT / "Dockerfile").read_text()
    build, final = re.split(r"^FROM \$\{PYTHON_IMAGE\}", dockerfile, flags=re.M)[1:]
    assert build.startswith(" AS build\n")
    # The final stage takes the built venv and builds nothing: no pip, compiler or package manager.
    assert "COPY --from=build /opt/agent-session-exporter /opt/agent-session-exporter" in final
    assert not re.search(r"\b(pip|apt-get|gcc|wheel)\b", "\n".join(re.findall(r"^RUN .*", final, re.M)))
    assert re.search(r"^USER (?!root|0\b)\S+", final, re.M)
    assert f"EXPOSE {EXPORTER_PORT}" in final
    assert 'HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD ["agent-session-exporter", "--healthcheck"]' in final
    assert 'ENTRYPOINT ["agent-session-exporter"]' in final
    # The default command reads the config at the path the README gives; --demo is one flag away.
    (cmd,) = re.findall(r"^CMD (.+)$", final, re.M)
    args = parse_args(json.loads(cmd))
    assert args.config == "/etc/agent-session-exporter/config.yaml" and not args.demo
    section = readme[readme.index("### Build and run the image") : readme.index("### Kubernetes")]
    for needed in ("docker build -t ", "docker push ", "images:", f"{args.config}:ro", " --demo"):
        assert needed in section, needed


def dashboard_queries() -> list[tuple[str, str]]:
    queries = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "30s")
            queries.append((panel["title"], re.sub(r"\$(source|provider|workflow)\b", ".*", expr)))
    return queries


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_a_real_prometheus_evaluates_every_panel_and_raises_the_error_alert(tmp_path):
    prometheus_bin = tool("prometheus")
    simulators = Simulators(rate=3.0, min_duration=0.3, max_duration=2.0, retention=600)
    for provider in ("dify", "syntropic137", "honeyhive", "kapso"):
        simulators.factories[provider].set_error_weight(0)  # these must stay silent
    async with running_simulators(simulators, tick_every=0.1) as base_url:
        exporter = Exporter(demo_config(base_url, listen="127.0.0.1:0", interval=1))
        await exporter.open()
        runner = web.AppRunner(make_app(exporter), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        exporter_port = runner.addresses[0][1]
        config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
        config["global"].update(scrape_interval="1s", evaluation_interval="1s")
        config["scrape_configs"][0].update(static_configs=[{"targets": [f"127.0.0.1:{exporter_port}"]}], scrape_timeout="1s")
        config["rule_files"] = [str(PROMETHEUS_DIR / "rules.yml")]
        del config["alerting"]  # no Alertmanager here: alerts are read from Prometheus's API
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        api = f"http://127.0.0.1:{port}/api/v1"
        log = open(tmp_path / "prometheus.log", "w")
        prometheus = await asyncio.create_subprocess_exec(
            prometheus_bin,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            "--enable-feature=exemplar-storage",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
            stdout=log,
            stderr=log,
        )
        exporter.start()
        try:
            async with aiohttp.ClientSession() as client:

                async def query(expr: str) -> dict:
                    async with client.get(f"{api}/query", params={"query": expr}) as response:
                        return await response.json()

                async def wait_until(check, seconds: float) -> bool:
                    for _ in range(int(seconds * 2)):  # bounded
                        try:
                            if await check():
                                return True
                        except aiohttp.ClientError:
                            pass
                        await asyncio.sleep(0.5)
                    return False

                async def scraped() -> bool:
                    assert prometheus.returncode is None, (tmp_path / "prometheus.log").read_text()[-2000:]
                    data = await query('up{job="agent-session-exporter"} == 1')
                    return bool(data["data"]["result"])

                assert await wait_until(scraped, 60), (tmp_path / "prometheus.log").read_text()[-2000:]

                results: dict[str, dict] = {}

                async def every_panel_has_data() -> bool:
                    for _, expr in dashboard_queries():
                        results[expr] = await query(expr)
                    return all(r["status"] == "success" and r["data"]["result"] for r in results.values())

                await wait_until(every_panel_has_data, 60)
                for title, expr in dashboard_queries():
                    assert results[expr]["status"] == "success", (title, expr, results[expr])
                    assert results[expr]["data"]["result"], (title, expr)

                # Exemplars reach Prometheus's exemplar storage and name sessions the simulators served.
                served = {sid for factory in simulators.factories.values() for sid in factory.sessions}
                found: list[tuple[dict, str]] = []

                async def exemplars_stored() -> bool:
                    now = time.time()
                    for metric in ("agent_session_duration_seconds_bucket", "agent_sessions_finished_total"):
                        async with client.get(
                            f"{api}/query_exemplars", params={"query": metric, "start": str(now - 600), "end": str(now + 60)}
                        ) as response:
                            data = (await response.json())["data"] or []
                        found.extend(
                            (series["seriesLabels"], e["labels"]["session_id"]) for series in data for e in series["exemplars"]
                        )
                    return bool(found)

                assert await wait_until(exemplars_stored, 30), "no exemplar in Prometheus"
                assert {sid for _, sid in found} <= served
                assert {labels["source"] for labels, _ in found} >= {"demo-kapso", "demo-dify"}

                simulators.factories["whatabot"].set_error_weight(100)

                async def error_alert_pending() -> bool:
                    async with client.get(f"{api}/alerts") as response:
                        alerts = (await response.json())["data"]["alerts"]
                    return any(
                        a["labels"]["alertname"] == "AgentSessionsHighErrorRatio"
                        and a["labels"]["source"] == "demo-whatabot"
                        and a["state"] in ("pending", "firing")
                        for a in alerts
                    )

                assert await wait_until(error_alert_pending, 90)
                async with client.get(f"{api}/alerts") as response:
                    others = [
                        a["labels"]["source"]
                        for a in (await response.json())["data"]["alerts"]
                        if a["labels"]["alertname"] == "AgentSessionsHighErrorRatio"
                    ]
                assert others == ["demo-whatabot"]
        finally:
            if prometheus.returncode is None:
                prometheus.terminate()
            try:
                await asyncio.wait_for(prometheus.wait(), 15)
            except asyncio.TimeoutError:
                prometheus.kill()
                await prometheus.wait()
            log.close()
            await runner.cleanup()
            await exporter.close()
