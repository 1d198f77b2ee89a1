"""deploy/kubernetes: `kubectl kustomize` renders the base and every overlay into objects that are valid
against the Kubernetes schemas (offline, kubernetes-validate), that hold what operators need, and that
never touch a Secret the base did not generate."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from agent_session_exporter.config import DEFAULT_LISTEN, parse_config
from agent_session_exporter.flags import parse_args
from agent_session_exporter.shards import Shard

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes"
KUSTOMIZATIONS = sorted(str(p.parent.relative_to(K8S)) for p in K8S.rglob("kustomization.yaml"))
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
#: The oldest and the newest Kubernetes whose schemas kubernetes-validate ships.
SCHEMA_VERSIONS = sorted({kubernetes_validate.utils.all_versions()[0], kubernetes_validate.latest_version()})
NAME = "agent-session-exporter"
GENERATED = re.compile(rf"^{NAME}-[a-z0-9]{{10}}$")  # the generators' name: a hash of the content appended


def kubectl() -> str:
    path = shutil.which("kubectl")
    assert path, "kubectl not found: install Debian's 'kubernetes-client' package (.ci/run does)"
    return path


def render(directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]


def env_file(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def copy_tree(tmp: Path) -> Path:
    """deploy/kubernetes as a user has it: secrets.env made from the example (never a real one read)."""
    tree = tmp / "kubernetes"
    shutil.copytree(K8S, tree, ignore=shutil.ignore_patterns("secrets.env", "__pycache__"))
    shutil.copy(tree / "base" / "secrets.env.example", tree / "base" / "secrets.env")
    return tree


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, list[dict[str, Any]]]:
    tree = copy_tree(tmp_path_factory.mktemp("kustomize"))
    return {name: render(tree / name) for name in KUSTOMIZATIONS}


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = one(objects, "StatefulSet")["spec"]["template"]["spec"]["containers"]
    return found


def test_the_base_and_every_overlay_render_into_valid_objects(rendered):
    assert {
        "base",
        "monitoring",
        "overlays/prometheus-operator",
        "overlays/sharded",
        "overlays/sharded-prometheus-operator",
    } <= set(rendered)
    for name, objects in rendered.items():
        assert objects, name
        without_schema = set()
        for obj in objects:
            if obj["apiVersion"].startswith("monitoring.coreos.com/"):
                without_schema.add(obj["kind"])
                continue
            for version in SCHEMA_VERSIONS:
                try:
                    kubernetes_validate.validate(obj, version, strict=True)
                except kubernetes_validate.ValidationError as error:
                    raise AssertionError(
                        f"{name}: {obj['kind']}/{obj['metadata']['name']} on {version}: "
                        f"{'.'.join(map(str, error.path))}: {error.message}"
                    ) from None
        # The Prometheus Operator's kinds (no schema without its CRDs) only where asked for.
        assert without_schema == (OPERATOR_KINDS if "monitoring" in name or "prometheus-operator" in name else set()), name


def test_a_validation_failure_is_seen(rendered):
    """The check above can fail: a typo in a field is an error in the strict schemas."""
    statefulset = one(rendered["base"], "StatefulSet")
    broken = {**statefulset, "spec": {**statefulset["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, SCHEMA_VERSIONS[0], strict=True)


def test_the_base_never_touches_a_secret_it_did_not_generate(rendered, tmp_path):
    # No manifest anywhere in deploy/ is a Secret: `kubectl apply -f` (or -R) over it writes none.
    for path in (ROOT / "deploy").rglob("*"):
        if path.suffix in (".yaml", ".yml", ".json"):
            for doc in yaml.safe_load_all(path.read_text()):
                assert not (isinstance(doc, dict) and doc.get("kind") == "Secret"), path
    # The real keys' file is never committed.
    ignored = subprocess.run(["git", "check-ignore", "-q", str(K8S / "base" / "secrets.env")], cwd=ROOT)
    assert ignored.returncode == 0, "deploy/kubernetes/base/secrets.env is not git-ignored"
    keys = env_file(K8S / "base" / "secrets.env.example")
    for name, objects in rendered.items():
        secrets = [o for o in objects if o["kind"] == "Secret"]
        if name == "monitoring":
            assert not secrets
            continue
        # One Secret, generated from secrets.env: its name carries a hash of its content, so it can
        # never be a Secret made by hand (agent-session-exporter), and the pod mounts that one.
        (secret,) = secrets
        assert GENERATED.match(secret["metadata"]["name"]), secret["metadata"]["name"]
        assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == keys
        volumes = {v["name"]: v for v in one(objects, "StatefulSet")["spec"]["template"]["spec"]["volumes"]}
        assert volumes["secrets"]["secret"]["secretName"] == secret["metadata"]["name"]
        config_map = one(objects, "ConfigMap")
        assert GENERATED.match(config_map["metadata"]["name"])
        assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]
    # A new key is a new Secret (and so a rollout), never an edit of one in place.
    tree = copy_tree(tmp_path)
    (tree / "base" / "secrets.env").write_text("".join(f"{k}={v}-rotated\n" for k, v in keys.items()))
    rotated = one(render(tree / "base"), "Secret")
    assert rotated["metadata"]["name"] != one(rendered["base"], "Secret")["metadata"]["name"]
    assert GENERATED.match(rotated["metadata"]["name"])


def test_the_prometheus_operator_resources_are_only_in_their_overlays(rendered):
    for name in ("base", "overlays/sharded"):
        assert not [o for o in rendered[name] if o["apiVersion"].startswith("monitoring.coreos.com/")], name
    for name in ("overlays/prometheus-operator", "overlays/sharded-prometheus-operator"):
        objects = rendered[name]
        service, monitor = one(objects, "Service"), one(objects, "ServiceMonitor")
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
        # The selector label the Operator matches, on both custom resources, as the README documents it.
        rule = one(objects, "PrometheusRule")
        assert monitor["metadata"]["labels"]["release"] == rule["metadata"]["labels"]["release"] == "prometheus"
    assert "`release: prometheus`" in (ROOT / "README.md").read_text()


def test_the_prometheus_rule_holds_the_groups_of_rules_yml():
    """Both are rendered from the mixin (tests/test_mixin.py holds them to it)."""
    committed = (K8S / "monitoring" / "prometheusrule.yaml").read_text()
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "rules.yml").read_text())["groups"]
    assert yaml.safe_load(committed)["spec"]["groups"] == rules


def test_the_image_is_set_in_one_place_for_every_rendering(rendered):
    (image,) = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())["images"]
    for name, objects in rendered.items():
        if name != "monitoring":
            assert container(objects)["image"] == f"{image['newName']}:{image['newTag']}", name


def test_the_pod_is_hardened_probed_limited_and_keeps_its_state_on_its_own_volume(rendered, tmp_path):
    objects = rendered["base"]
    statefulset = one(objects, "StatefulSet")
    pod = statefulset["spec"]["template"]["spec"]
    exporter = container(objects)
    assert statefulset["spec"]["replicas"] == 1
    assert exporter["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert exporter["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert exporter["resources"]["requests"]["cpu"] and exporter["resources"]["limits"]["memory"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert exporter["securityContext"]["readOnlyRootFilesystem"] is True
    assert exporter["ports"][0]["containerPort"] == int(DEFAULT_LISTEN.rsplit(":", 1)[1])
    assert pod["automountServiceAccountToken"] is False
    mounts = {m["name"]: m["mountPath"] for m in exporter["volumeMounts"]}
    # The state volume is the StatefulSet's claim template: one per replica, never shared.
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "state" and claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "state" not in {v["name"] for v in pod["volumes"]}
    # The service governs the set's pods.
    assert statefulset["spec"]["serviceName"] == one(objects, "Service")["metadata"]["name"]

    # The ConfigMap's config is valid, keeps its state on the volume and its keys in the Secret.
    raw = yaml.safe_load(one(objects, "ConfigMap")["data"]["config.yaml"])
    assert Path(raw["state_path"]).parent == Path(mounts["state"])
    secret_keys = set(one(objects, "Secret")["data"])
    for source in raw["sources"]:
        key_file = Path(source["api_key_file"])
        assert key_file.parent == Path(mounts["secrets"]) and key_file.name in secret_keys
        (tmp_path / key_file.name).write_text("k")
        source["api_key_file"] = str(tmp_path / key_file.name)
    parse_config(raw, {})
    assert exporter["args"] == ["--config.file", f"{mounts['config']}/config.yaml"]
    # The secrets are not mounted inside the ConfigMap's mount (nor the other way round).
    assert not Path(mounts["secrets"]).is_relative_to(mounts["config"])
    assert not Path(mounts["config"]).is_relative_to(mounts["secrets"])


@pytest.mark.parametrize("name", ["overlays/sharded", "overlays/sharded-prometheus-operator"])
def test_the_sharded_overlay_runs_one_replica_per_shard_each_with_its_own_state(rendered, name):
    objects = rendered[name]
    statefulset = one(objects, "StatefulSet")
    exporter = container(objects)
    replicas = statefulset["spec"]["replicas"]
    assert replicas > 1 and statefulset["spec"]["podManagementPolicy"] == "Parallel"
    assert statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "state"
    # A replica scaled away takes its state with it: its sources moved, its state must not come back.
    assert statefulset["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Delete"}
    (pod_name,) = [e for e in exporter["env"] if e["name"] == "POD_NAME"]
    assert pod_name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert "$(POD_NAME)" in exporter["args"]
    base_args = container(rendered["base"])["args"]
    assert exporter["args"][: len(base_args)] == base_args
    # The replicas' own command lines, as Kubernetes expands them: shards 0 to replicas-1, all of them.
    pod_names = [f"{statefulset['metadata']['name']}-{ordinal}" for ordinal in range(replicas + 1)]
    shards = [parse_args([pod if a == "$(POD_NAME)" else a for a in exporter["args"]]).shard for pod in pod_names[:-1]]
    assert shards == [Shard(i, replicas) for i in range(replicas)]
    with pytest.raises(SystemExit):  # one replica more than --total-shards would not start
        parse_args([pod_names[-1] if a == "$(POD_NAME)" else a for a in exporter["args"]])
