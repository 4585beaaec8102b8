"""deploy/k8s, checked without a cluster.

Both variants (deploy/k8s, scaled by KEDA; deploy/k8s/hpa, by a plain HPA) are rendered with
kubectl's kustomize from a copy holding a secrets.env made up here, and every object is
validated, strictly, against the Kubernetes 1.30 schemas (kubernetes-validate); KEDA's
ScaledObject, a custom resource those schemas lack, against the fields of KEDA's CRD. Then
what the router needs of them: its port, probes, shutdown grace, settings, the paths it writes
under a read-only root, a backlog query that counts each queue once, and no secret in git.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from router.runner import EXIT_S
from router.settings import Settings
from router.shutdown import MARGIN_S

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
VARIANTS = {"keda": K8S, "hpa": K8S / "hpa"}
KUBERNETES = "1.30"
KUBECTL = shutil.which("kubectl")
PROMTOOL = Path("/usr/bin/promtool")
SECRET_KEYS = {"ROUTER_ADMIN_TOKEN", "ROUTER_AMQP_URL", "ROUTER_REDIS_URL"}
MADE_UP_SECRETS = {
    "ROUTER_ADMIN_TOKEN": "k8s-test-token-0123456789abcdef",
    "ROUTER_AMQP_URL": "amqp://router:pw@rabbitmq.rabbitmq.svc.cluster.local:5672/",
    "ROUTER_REDIS_URL": "redis://:pw@redis-master.redis.svc.cluster.local:6379/0",
}
SETTINGS = {f"ROUTER_{name.upper()}" for name in Settings.__dataclass_fields__} - {"ROUTER_EXTRA"}

STRING = {"type": "string"}
INTEGER = {"type": "integer"}
# keda.sh/v1alpha1 ScaledObject: the fields KEDA's CRD (keda.sh_scaledobjects.yaml) defines at
# each level this manifest uses, and no others. The HPA behavior under `advanced` is Kubernetes'
# own type, validated against its schema separately.
SCALED_OBJECT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name"],
                    "properties": {
                        "apiVersion": STRING,
                        "kind": STRING,
                        "name": {"type": "string", "minLength": 1},
                        "envSourceContainerName": STRING,
                    },
                },
                **{
                    field: INTEGER
                    for field in (
                        "pollingInterval",
                        "cooldownPeriod",
                        "initialCooldownPeriod",
                        "idleReplicaCount",
                        "minReplicaCount",
                        "maxReplicaCount",
                    )
                },
                "fallback": {"type": "object"},
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {"name": STRING, "behavior": {"type": "object"}},
                        },
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "scalingModifiers": {"type": "object"},
                    },
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": {"type": "string", "minLength": 1},
                            "name": STRING,
                            "metadata": {"type": "object", "additionalProperties": STRING},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "useCachedMetrics": {"type": "boolean"},
                            "authenticationRef": {"type": "object"},
                        },
                    },
                },
            },
        },
    },
}
# The metadata KEDA's Prometheus scaler reads (pkg/scalers/prometheus_scaler.go): a key it does
# not know would be ignored silently.
PROMETHEUS_METADATA = {
    "serverAddress",
    "query",
    "queryParameters",
    "threshold",
    "activationThreshold",
    "namespace",
    "customHeaders",
    "ignoreNullValues",
    "unsafeSsl",
    "awsRegion",
    "timeout",
    "identityOwner",
}


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as kustomize reads them (blank lines and # comments skipped)."""
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value
    return pairs


def kustomizations() -> list[Path]:
    return sorted(K8S.rglob("kustomization.yaml"))


def manifests() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def referenced(kustomization: Path) -> Iterator[Path]:
    """Every file or directory a kustomization names: resources and generator sources."""
    spec = yaml.safe_load(kustomization.read_text())
    for entry in spec.get("resources", []):
        yield (kustomization.parent / entry).resolve()
    for generator in spec.get("configMapGenerator", []) + spec.get("secretGenerator", []):
        for entry in generator.get("envs", []) + generator.get("files", []):
            yield (kustomization.parent / entry.split("=")[-1]).resolve()


def render(variant: str, tmp_path: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize` of a variant, from a copy of deploy/k8s with a secrets.env."""
    if KUBECTL is None:
        pytest.fail("kubectl not found: its kustomize renders the manifests (apt: kubectl)")
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("secrets.env"))
    secrets = "".join(f"{key}={value}\n" for key, value in MADE_UP_SECRETS.items())
    (copy / "base" / "secrets.env").write_text(secrets)
    target = copy / VARIANTS[variant].relative_to(K8S)
    result = subprocess.run(
        [KUBECTL, "kustomize", str(target)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def only(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [doc for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def validate(doc: dict[str, Any]) -> None:
    if doc["kind"] == "ScaledObject":
        validate_scaled_object(doc)
        return
    try:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(part) for part in exc.path)
        pytest.fail(f"{doc['kind']} {doc['metadata']['name']}: {where}: {exc.message}")


def validate_scaled_object(doc: dict[str, Any]) -> None:
    jsonschema.validate(doc, SCALED_OBJECT)
    spec = doc["spec"]
    behavior = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior")
    if behavior is not None:  # Kubernetes' HorizontalPodAutoscalerBehavior, as KEDA's CRD says
        hpa = {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": doc["metadata"]["name"]},
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "x"},
                "maxReplicas": spec.get("maxReplicaCount", 100),
                "behavior": behavior,
            },
        }
        validate(hpa)
    for trigger in spec["triggers"]:
        if trigger["type"] == "prometheus":
            unknown = set(trigger["metadata"]) - PROMETHEUS_METADATA
            assert not unknown, f"the prometheus scaler has no metadata {sorted(unknown)}"


def deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return only(docs, "Deployment")


def router_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    containers = deployment(docs)["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "router")


def literal_env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def container_port(container: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port, named or numbered, as the container's port number."""
    for declared in container["ports"]:
        if port in (declared["containerPort"], declared.get("name")):
            number: int = declared["containerPort"]
            return number
    raise AssertionError(f"port {port!r} is not one of the container's ports")


def prestop_sleep_s(container: dict[str, Any]) -> float:
    prestop = container.get("lifecycle", {}).get("preStop", {})
    if "sleep" in prestop:
        return float(prestop["sleep"]["seconds"])
    command = prestop.get("exec", {}).get("command", [])
    return float(command[1]) if command[:1] == ["sleep"] else 0.0


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    return {name: render(name, tmp_path_factory.mktemp(name)) for name in VARIANTS}


@pytest.fixture(scope="module")
def keda(rendered: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return rendered["keda"]


# The kustomizations


def test_every_file_is_named_by_a_kustomization_and_every_name_exists() -> None:
    named = {path for k in kustomizations() for path in referenced(k)}
    yours = BASE / "secrets.env"  # the user's, absent from the repository
    missing = sorted(str(p.relative_to(K8S)) for p in named - {yours} if not p.exists())
    assert not missing, f"kustomizations name files that do not exist: {missing}"
    files = set(manifests()) | {p for p in K8S.rglob("*.env") if p.name != "secrets.env"}
    unnamed = sorted(str(p.relative_to(K8S)) for p in files - named)
    assert not unnamed, f"files no kustomization lists (never applied): {unnamed}"
    assert yours in named, "the Secret is generated from secrets.env"
    for variant in VARIANTS.values():
        assert BASE.resolve() in set(referenced(variant / "kustomization.yaml"))


def test_each_variant_has_one_autoscaler(rendered: dict[str, list[dict[str, Any]]]) -> None:
    kinds = {name: [doc["kind"] for doc in docs] for name, docs in rendered.items()}
    assert "ScaledObject" in kinds["keda"]
    assert "HorizontalPodAutoscaler" not in kinds["keda"]
    assert "HorizontalPodAutoscaler" in kinds["hpa"]
    assert "ScaledObject" not in kinds["hpa"]
    common = {"Namespace", "Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget"}
    for name, found in kinds.items():
        assert common <= set(found), f"{name}: missing {common - set(found)}"


# Schemas


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rendered_objects_validate_strictly(
    variant: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    for doc in rendered[variant]:
        validate(doc)


@pytest.mark.parametrize("path", manifests(), ids=lambda p: str(p.relative_to(K8S)))
def test_each_manifest_file_validates_strictly(path: Path) -> None:
    for doc in load(path):
        validate(doc)


def test_validation_refuses_what_kubernetes_would(keda: list[dict[str, Any]]) -> None:
    """The validators are strict: a misspelt field or a wrong type is an error, not ignored."""
    dep = deployment(keda)
    misspelt = yaml.safe_load(yaml.safe_dump(dep))
    misspelt["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, KUBERNETES, strict=True)
    so = yaml.safe_load(yaml.safe_dump(only(keda, "ScaledObject")))
    so["spec"]["minReplicas"] = 2  # the HPA's name for it, not KEDA's
    with pytest.raises(jsonschema.ValidationError):
        validate_scaled_object(so)
    so = yaml.safe_load(yaml.safe_dump(only(keda, "ScaledObject")))
    so["spec"]["triggers"][0]["metadata"]["treshold"] = "5"
    with pytest.raises(AssertionError):
        validate_scaled_object(so)


# Scaling


def test_scaled_object_scales_the_deployment_on_the_backlog(keda: list[dict[str, Any]]) -> None:
    so = only(keda, "ScaledObject")["spec"]
    target = so["scaleTargetRef"]
    assert target["name"] == deployment(keda)["metadata"]["name"]
    assert target.get("kind", "Deployment") == "Deployment"
    assert target.get("apiVersion", "apps/v1") == "apps/v1"
    assert (
        only(keda, "ScaledObject")["metadata"]["namespace"]
        == deployment(keda)["metadata"]["namespace"]
    )
    (trigger,) = so["triggers"]
    assert trigger["type"] == "prometheus"
    assert trigger.get("metricType", "AverageValue") == "AverageValue"  # backlog per replica
    metadata = trigger["metadata"]
    assert re.fullmatch(r"https?://\S+", metadata["serverAddress"])
    assert "router_queue_depth" in metadata["query"]
    assert float(metadata["threshold"]) > 0
    # Never to zero: the router also takes the webhooks; two keep one while the other drains.
    assert so["minReplicaCount"] >= 2
    assert so["maxReplicaCount"] > so["minReplicaCount"]


def test_backlog_query_is_for_this_namespace(keda: list[dict[str, Any]]) -> None:
    """The query's namespace label follows the namespace the manifests are deployed to."""
    query = only(keda, "ScaledObject")["spec"]["triggers"][0]["metadata"]["query"]
    namespace = deployment(keda)["metadata"]["namespace"]
    assert f'namespace="{namespace}"' in query


def test_backlog_query_counts_each_queue_once(keda: list[dict[str, Any]], tmp_path: Path) -> None:
    """Every replica exports every function's queue depth: the query must count each queue
    once, however many replicas report it (a plain sum would scale on depth x replicas), and
    ignore other namespaces. Evaluated by Prometheus's own engine (promtool)."""
    if not PROMTOOL.exists():
        pytest.fail(f"{PROMTOOL} not found: install the Debian package `prometheus`")
    query = only(keda, "ScaledObject")["spec"]["triggers"][0]["metadata"]["query"]
    namespace = deployment(keda)["metadata"]["namespace"]
    series = []
    for pod in ("router-a", "router-b", "router-c"):  # three replicas, the same two queues
        for function, depth in (("orders", 30), ("emails", 5)):
            labels = f'namespace="{namespace}",pod="{pod}",function="{function}"'
            series.append({"series": f"router_queue_depth{{{labels}}}", "values": f"{depth}x5"})
    other = 'namespace="elsewhere",pod="router-z",function="orders"'
    series.append({"series": f"router_queue_depth{{{other}}}", "values": "1000x5"})
    tests = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": query,
                        "eval_time": "2m",
                        "exp_samples": [{"labels": "{}", "value": 35}],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "query-test.yml"
    path.write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        [str(PROMTOOL), "test", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hpa_scales_the_deployment_on_cpu(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["hpa"]
    spec = only(docs, "HorizontalPodAutoscaler")["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment(docs)["metadata"]["name"],
    }
    assert spec["minReplicas"] >= 2
    (metric,) = spec["metrics"]
    assert metric["resource"]["name"] == "cpu"
    # Utilization is relative to the request: without one the HPA cannot compute it.
    assert router_container(docs)["resources"]["requests"]["cpu"]


def test_disruption_budget_selects_the_router_pods(keda: list[dict[str, Any]]) -> None:
    pdb = only(keda, "PodDisruptionBudget")["spec"]
    labels = deployment(keda)["spec"]["template"]["metadata"]["labels"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    assert pdb.get("maxUnavailable") == 1


# The router's container


def test_probes_and_service_reach_the_port_the_router_listens_on(
    keda: list[dict[str, Any]],
) -> None:
    container = router_container(keda)
    env = literal_env(container)
    port = int(env["ROUTER_PORT"])
    assert env["ROUTER_HOST"] == "0.0.0.0"  # the kubelet and the Service come from outside
    assert container_port(container, port) == port
    readiness = container["readinessProbe"]["httpGet"]
    liveness = container["livenessProbe"]["httpGet"]
    assert readiness["path"] == "/readyz"
    assert liveness["path"] == "/healthz"
    assert container_port(container, readiness["port"]) == port
    assert container_port(container, liveness["port"]) == port
    (service_port,) = only(keda, "Service")["spec"]["ports"]
    assert container_port(container, service_port["targetPort"]) == port
    selector = only(keda, "Service")["spec"]["selector"]
    assert selector.items() <= deployment(keda)["spec"]["template"]["metadata"]["labels"].items()


def test_termination_grace_outlasts_the_routers_shutdown(keda: list[dict[str, Any]]) -> None:
    """SIGKILL only after the router has had its whole shutdown: the preStop pause, the grace
    for running invocations, then its own margin for records and connections."""
    container = router_container(keda)
    grace = float(literal_env(container)["ROUTER_SHUTDOWN_GRACE_S"])
    needed = prestop_sleep_s(container) + grace + MARGIN_S + EXIT_S
    pod = deployment(keda)["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > needed


def test_pod_runs_unprivileged_as_the_images_user(keda: list[dict[str, Any]]) -> None:
    pod = deployment(keda)["spec"]["template"]["spec"]
    image_user = re.search(r"^USER (\d+)", (ROOT / "deploy" / "Dockerfile").read_text(), re.M)
    assert image_user is not None
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(image_user.group(1))
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    # Function code runs in this pod: no API token for it.
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    for container in pod["containers"] + pod.get("initContainers", []):
        context = container["securityContext"]
        assert context.get("runAsUser", 1) != 0
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert "memory" in container["resources"]["limits"]
    labels = only(keda, "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_what_the_router_writes_is_on_volumes(keda: list[dict[str, Any]]) -> None:
    """Under a read-only root the router writes code bundles (and a link beside them, in
    ROUTER_CODE_DIR's parent) and environments' /tmp. The code directory must be no other
    user's to write (the router refuses a world-writable one, as an emptyDir is): the init
    container makes it 0755 in the volume, and the router mounts that subPath."""
    pod = deployment(keda)["spec"]["template"]["spec"]
    container = router_container(keda)
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    code_dir = Path(literal_env(container)["ROUTER_CODE_DIR"])
    mount = mounts[str(code_dir.parent)]
    assert "emptyDir" in volumes[mount["name"]]
    (init,) = pod["initContainers"]
    (init_mount,) = [m for m in init["volumeMounts"] if m["name"] == mount["name"]]
    made = Path(init_mount["mountPath"]) / mount["subPath"]
    assert init["command"] == ["mkdir", "-p", "-m", "0755", str(made)]
    assert init["image"] == container["image"]


def test_settings_are_the_routers_and_it_accepts_them(keda: list[dict[str, Any]]) -> None:
    """Every ROUTER_* variable the manifests set is a setting (a misspelt one would be ignored
    silently), and together they make Settings the router accepts."""
    container = router_container(keda)
    configured = env_file(BASE / "settings.env")
    set_here = literal_env(container)
    from_secret = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in container["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    names = set(configured) | set(set_here) | set(from_secret)
    assert names <= SETTINGS, f"not settings of the router: {sorted(names - SETTINGS)}"
    assert not set(configured) & SECRET_KEYS, "secrets belong in secrets.env, not the ConfigMap"
    assert set(from_secret) == SECRET_KEYS
    for name, ref in from_secret.items():
        assert ref["key"] == name
        assert not ref.get("optional", False)
    (config_ref,) = container["envFrom"]
    assert only(keda, "ConfigMap")["metadata"]["name"] == config_ref["configMapRef"]["name"]
    settings = Settings.from_env({**configured, **set_here, **MADE_UP_SECRETS})
    assert settings.port == int(set_here["ROUTER_PORT"])
    assert settings.admin_token  # configured: no token file to write on a read-only root


def test_image_is_the_one_kustomization_sets(keda: list[dict[str, Any]]) -> None:
    images = yaml.safe_load((BASE / "kustomization.yaml").read_text())["images"]
    (image,) = images
    raw = only(load(BASE / "deployment.yaml"), "Deployment")
    assert raw["spec"]["template"]["spec"]["containers"][0]["image"] == image["name"]
    expected = f"{image['newName']}:{image['newTag']}"
    assert router_container(keda)["image"] == expected


# Secrets


def test_no_secret_is_committed() -> None:
    """The Secret is generated from secrets.env, which git ignores and the repository does
    not hold; the example beside it sets nothing; no manifest carries secret data."""
    for path in manifests():
        for doc in load(path):
            assert doc["kind"] != "Secret", f"{path.name}: a Secret in git"
    spec = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    sources = [BASE / entry for generator in spec["secretGenerator"] for entry in generator["envs"]]
    assert sources == [BASE / "secrets.env"]
    tracked = subprocess.run(
        ["git", "ls-files", "--", str(K8S)], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert not [f for f in tracked if Path(f).name == "secrets.env"]
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(BASE / "secrets.env")], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0, "git must ignore deploy/k8s/base/secrets.env"
    example = BASE / "secrets.env.example"
    assert env_file(example) == {}, "the example must set no value: it is documentation"
    for key in SECRET_KEYS:
        assert key in example.read_text()


def test_without_secrets_env_nothing_renders(tmp_path: Path) -> None:
    """Forgetting secrets.env stops `kubectl apply -k` rather than deploying without them."""
    if KUBECTL is None:
        pytest.fail("kubectl not found: its kustomize renders the manifests (apt: kubectl)")
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("secrets.env"))
    for target in (copy, copy / "hpa"):
        result = subprocess.run(
            [KUBECTL, "kustomize", str(target)], capture_output=True, text=True, timeout=120
        )
        assert result.returncode != 0
        assert "secrets.env" in result.stderr


def test_secret_values_reach_the_pod_only_through_the_secret(keda: list[dict[str, Any]]) -> None:
    secret = only(keda, "Secret")
    assert set(secret["data"]) == SECRET_KEYS
    container = router_container(keda)
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e}
    assert refs == {secret["metadata"]["name"]}  # the generated name, hash included
    rendered_text = yaml.safe_dump_all(keda)
    for value in MADE_UP_SECRETS.values():
        assert value not in rendered_text  # base64 in the Secret only, never in plain text
