"""Static checks of the deployment files: Dockerfile, docker-compose.yml, Prometheus config,
Grafana provisioning and dashboard.

Docker is not needed: the files are parsed, cross-checked against each other and against
pyproject.toml, and the image's command is run through the real CLI with `--help`.
"""

from __future__ import annotations

import fnmatch
import http.server
import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
RULES = ROOT / "deploy" / "prometheus" / "rules" / "router.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "router.yml"
DASHBOARD = GRAFANA / "dashboards" / "trigger-router.json"

ROUTER_ENV = {
    "ROUTER_HOST",
    "ROUTER_PORT",
    "ROUTER_AMQP_URL",
    "ROUTER_REDIS_URL",
    "ROUTER_NAMESPACE",
    "ROUTER_ADMIN_TOKEN",
    "ROUTER_HANDLERS",
}
SERVICES = {"rabbitmq", "redis", "router", "prometheus", "grafana"}
PROMQL_WORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
}


# --- helpers -------------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        result.append((keyword.upper(), args.strip()))
        pending = ""
    return result


def args_of(keyword: str) -> list[str]:
    return [args for kw, args in instructions() if kw == keyword]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"not a JSON array: {args}"
    assert all(isinstance(item, str) for item in value), args
    return value


def image_command() -> list[str]:
    """ENTRYPOINT + CMD as the container runs them (the last of each counts)."""
    cmds = args_of("CMD")
    assert cmds, "Dockerfile has no CMD"
    entrypoints = args_of("ENTRYPOINT")
    entrypoint = exec_form(entrypoints[-1]) if entrypoints else []
    return entrypoint + exec_form(cmds[-1])


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in args_of("ENV"):
        for pair in shlex.split(args):
            name, sep, value = pair.partition("=")
            assert sep, f"use ENV NAME=value, got {pair!r}"
            env[name] = value
    return env


def healthcheck_command() -> list[str]:
    checks = args_of("HEALTHCHECK")
    assert len(checks) == 1, "expected exactly one HEALTHCHECK"
    _, sep, command = checks[0].partition("CMD ")
    assert sep, "HEALTHCHECK without CMD"
    return exec_form(command)


def services() -> dict[str, Any]:
    compose = load_yaml(COMPOSE)
    assert isinstance(compose, dict)
    result = compose["services"]
    assert isinstance(result, dict)
    return result


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): str(v) for k, v in env.items()}


def ports(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Short-syntax port mappings as (host ip or "", host port, container port)."""
    result = []
    for spec in service.get("ports", []):
        parts = str(spec).split("/")[0].split(":")
        ip = parts[0] if len(parts) == 3 else ""
        result.append((ip, parts[-2] if len(parts) > 1 else "", parts[-1]))
    return result


def container_ports(service: dict[str, Any]) -> set[str]:
    return {container for _, _, container in ports(service)}


def dockerignored(path: str) -> bool:
    """Approximation of Docker's .dockerignore matching (last matching pattern wins)."""
    ignored = False
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        candidates = [pattern, pattern.removeprefix("**/")]
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(p, c) for p in prefixes for c in candidates):
            ignored = not negate
    return ignored


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (strings, matchers, ranges, grouping removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = re.findall(r"(?<![\w.])([A-Za-z_:][\w:]*)(?![\w:]|\s*\()", text)
    return {name for name in names if name.lower() not in PROMQL_WORDS}


def alert_rules() -> list[dict[str, Any]]:
    rules = load_yaml(RULES)
    return [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


def router_metric_names() -> set[str]:
    """Every series name the router can expose, from its own metrics module."""
    from router.metrics import Metrics

    suffixes = {
        "counter": ["_total"],
        "gauge": [""],
        "histogram": ["_bucket", "_sum", "_count"],
    }
    return {
        family.name + suffix
        for family in Metrics().registry.collect()
        for suffix in suffixes[family.type]
    }


def dashboard() -> dict[str, Any]:
    result = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(result, dict)
    return result


def dashboard_panels() -> list[dict[str, Any]]:
    panels = list(dashboard()["panels"])
    for panel in list(panels):
        panels.extend(panel.get("panels", []))  # panels of collapsed rows
    return panels


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Bind mounts of a service: container path -> path relative to the repository root."""
    result = {}
    for volume in service.get("volumes", []):
        source, _, rest = str(volume).partition(":")
        if source.startswith("."):
            result[rest.split(":")[0]] = str(Path(source).as_posix()).removeprefix("./")
    return result


def scrape_configs() -> list[dict[str, Any]]:
    configs = load_yaml(PROMETHEUS)["scrape_configs"]
    assert isinstance(configs, list)
    return configs


class _Healthz(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def healthz_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Healthz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def run_probe(port: int) -> subprocess.CompletedProcess[str]:
    command = healthcheck_command()
    assert command[0] == "python"
    env = {"ROUTER_PORT": str(port), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, *command[1:]], env=env, capture_output=True, text=True, timeout=30
    )


# --- Dockerfile ----------------------------------------------------------------------------


def test_dockerfile_base_user_and_port() -> None:
    assert args_of("FROM")[0].startswith("python:3.11-slim")
    users = args_of("USER")
    assert users, "no USER: the image would run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert args_of("EXPOSE") == ["8080"]
    assert any("pip install --no-cache-dir ." in args for args in args_of("RUN"))


def test_dockerfile_env_listens_on_all_interfaces() -> None:
    env = dockerfile_env()
    assert env.get("ROUTER_HOST") == "0.0.0.0"
    assert {name for name in env if name.startswith("ROUTER_")} <= ROUTER_ENV
    assert env.get("ROUTER_PORT", "8080") == args_of("EXPOSE")[0]


def test_dockerfile_copies_what_pip_install_needs() -> None:
    sources = [src for args in args_of("COPY") for src in shlex.split(args)[:-1]]
    project = pyproject()
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    needed = ["pyproject.toml", *(p.rstrip("*").rstrip(".") for p in packages)]
    readme = project["project"].get("readme")
    if isinstance(readme, str):
        needed.append(readme)
    for path in needed:
        assert any(fnmatch.fnmatchcase(path, src.rstrip("/")) for src in sources), path
        assert not dockerignored(path), f".dockerignore excludes {path}"


def test_dockerignore_keeps_junk_out_of_the_context() -> None:
    for path in (".git", ".venv", "router/__pycache__", ".pytest_cache", "tests", ".env"):
        assert dockerignored(path), path


def test_image_command_is_the_console_script() -> None:
    command = image_command()
    assert command == ["trigger-router", "serve"]
    assert command[0] in pyproject()["project"]["scripts"]


def test_image_command_parses_with_the_real_cli() -> None:
    command = image_command()
    result = subprocess.run(
        [sys.executable, "-m", "router", *command[1:], "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()


def test_console_script_entry_point_parses_the_command() -> None:
    command = image_command()
    module, _, func = pyproject()["project"]["scripts"][command[0]].partition(":")
    argv = [*command, "--help"]
    code = f"import sys; sys.argv = {argv!r}; from {module} import {func}; sys.exit({func}())"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_healthcheck_probe_passes_on_healthy_server(healthz_port: int) -> None:
    result = run_probe(healthz_port)
    assert result.returncode == 0, result.stderr


def test_healthcheck_probe_fails_without_server() -> None:
    # A port nothing listens on: the probe must report unhealthy, not pass silently.
    assert run_probe(1).returncode != 0


# --- docker-compose.yml --------------------------------------------------------------------


def test_compose_services() -> None:
    compose = load_yaml(COMPOSE)
    assert "version" not in compose
    assert set(compose["services"]) == SERVICES


def test_compose_router_build() -> None:
    build = services()["router"]["build"]
    context = ROOT / build["context"]
    assert context.resolve() == ROOT
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE
    assert DOCKERFILE.is_file()


def test_compose_router_environment() -> None:
    all_services = services()
    env = environment(all_services["router"])
    assert set(env) <= ROUTER_ENV
    # Unset means generated by the router on first start: no known default token runs anywhere.
    assert env["ROUTER_ADMIN_TOKEN"] == "${ROUTER_ADMIN_TOKEN:-}"
    assert "change-me" not in COMPOSE.read_text()
    for name in ("ROUTER_AMQP_URL", "ROUTER_REDIS_URL"):
        url = urlsplit(env[name])
        assert url.hostname in all_services, f"{name} points at no compose service"
        assert str(url.port) in container_ports(all_services[url.hostname]), name


def test_compose_depends_on_healthy_services() -> None:
    all_services = services()
    assert set(all_services["router"]["depends_on"]) == {"rabbitmq", "redis"}
    for name, service in all_services.items():
        for dependency, options in (service.get("depends_on") or {}).items():
            assert options["condition"] == "service_healthy", f"{name} -> {dependency}"
            assert "test" in all_services[dependency]["healthcheck"], dependency


def test_compose_ports() -> None:
    all_services = services()
    assert ports(all_services["router"]) == [("127.0.0.1", "8080", "8080")]
    for name, port in (("rabbitmq", "5672"), ("redis", "6379")):
        published = ports(all_services[name])
        assert ("127.0.0.1", port, port) in published, name
        assert all(ip == "127.0.0.1" for ip, _, _ in published), name
    assert "9090" in container_ports(all_services["prometheus"])
    assert ports(all_services["grafana"]) == [("127.0.0.1", "3000", "3000")]


def test_compose_bind_mounts_exist() -> None:
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source}"


# --- Prometheus ----------------------------------------------------------------------------


def test_prometheus_scrapes_the_router() -> None:
    assert load_yaml(PROMETHEUS)["rule_files"] == ["rules/*.yml"]
    (job,) = [c for c in scrape_configs() if c["job_name"] == "trigger-router"]
    assert job["metrics_path"] == "/metrics"
    assert job["scrape_interval"] == "5s"
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == ["router:8080"]
    host, _, port = targets[0].partition(":")
    assert port in container_ports(services()[host])
    assert port == args_of("EXPOSE")[0]


def test_rules_file_is_picked_up_by_rule_files() -> None:
    pattern = load_yaml(PROMETHEUS)["rule_files"][0]
    assert fnmatch.fnmatchcase(str(RULES.relative_to(PROMETHEUS.parent)), pattern)


def test_alerts() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert set(rules) >= {
        "RouterDown",
        "RouterHighErrorRatio",
        "RouterQueueBacklog",
        "RouterBrokerDown",
        "RouterRedisDown",
        "RouterRegistryStale",
        "RouterThrottling",
        "RouterDeadLettering",
        "RouterDeadLetterQueueGrowing",
        "RouterEventAgeHigh",
    }
    assert (rules["RouterDown"]["for"], rules["RouterHighErrorRatio"]["for"]) == ("1m", "5m")
    assert rules["RouterQueueBacklog"]["for"] == "10m"
    jobs = {c["job_name"] for c in scrape_configs()}
    for rule in rules.values():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert set(re.findall(r'job="([^"]*)"', rule["expr"])) <= jobs, rule["alert"]


def test_alert_exprs_use_only_router_metrics() -> None:
    known = router_metric_names() | {"up"}
    for rule in alert_rules():
        names = metric_names(rule["expr"])
        assert names, f"no metric found in {rule['expr']!r}"
        for name in names:
            assert name == "up" or name.startswith("router_"), f"{rule['alert']}: {name}"
            assert name in known, f"{rule['alert']}: the router exposes no {name}"


def test_router_metric_names_are_known() -> None:
    names = router_metric_names()
    assert {"router_invocations_total", "router_queue_depth"} <= names
    assert "router_invocation_duration_seconds_bucket" in names


def test_metric_name_extraction() -> None:
    expr = 'sum by (fn) (rate(a_total{x!="b c"}[5m])) / on (y) group_left (z) b offset 1h > 1e3'
    assert metric_names(expr) == {"a_total", "b"}


def test_promtool_accepts_config_and_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not on PATH (Debian package `prometheus`); promtool checks not run")
    for args in (["check", "config", str(PROMETHEUS)], ["check", "rules", str(RULES)]):
        result = subprocess.run(
            [promtool, *args], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr


# --- Grafana -------------------------------------------------------------------------------


def test_compose_grafana_service() -> None:
    all_services = services()
    grafana = all_services["grafana"]
    assert grafana["image"].startswith("grafana/grafana:")
    assert set(grafana["depends_on"]) == {"prometheus"}
    env = environment(grafana)
    anonymous = env.get("GF_AUTH_ANONYMOUS_ENABLED") == "true"
    assert anonymous or env.get("GF_SECURITY_ADMIN_PASSWORD", "").startswith("${")
    # No admin user with Grafana's well-known default password, nor one of ours.
    assert env.get("GF_SECURITY_DISABLE_INITIAL_ADMIN_CREATION") == "true"
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env
    if anonymous:
        assert env.get("GF_AUTH_ANONYMOUS_ORG_ROLE") == "Viewer"
    for volume in grafana["volumes"]:
        if str(volume).startswith("."):
            assert str(volume).endswith(":ro"), volume
    assert mounts(grafana)["/etc/grafana/provisioning"] == "deploy/grafana/provisioning"


def test_grafana_datasource_is_the_compose_prometheus() -> None:
    (source,) = load_yaml(DATASOURCES)["datasources"]
    assert source["type"] == "prometheus"
    assert source["uid"] == "prometheus"
    url = urlsplit(source["url"])
    all_services = services()
    assert url.hostname in all_services
    assert str(url.port) in container_ports(all_services[str(url.hostname)])
    (job,) = [c for c in scrape_configs() if c["job_name"] == "trigger-router"]
    assert source["jsonData"]["timeInterval"] == job["scrape_interval"]


def test_grafana_dashboard_provider_reads_the_mounted_dashboards() -> None:
    (provider,) = load_yaml(DASHBOARD_PROVIDERS)["providers"]
    assert provider["type"] == "file"
    mounted = mounts(services()["grafana"])
    path = provider["options"]["path"]
    assert mounted[path] == str(DASHBOARD.parent.relative_to(ROOT))


def test_dashboard_shape() -> None:
    board = dashboard()
    assert board["uid"]
    assert board["title"]
    assert 36 <= board["schemaVersion"] <= 41
    (variable,) = [v for v in board["templating"]["list"] if v["name"] == "function"]
    assert variable["query"]["query"] == "label_values(router_invocations_total, function)"
    assert variable["datasource"]["uid"] == "prometheus"
    ids = [panel["id"] for panel in dashboard_panels()]
    assert len(ids) == len(set(ids)), "duplicate panel ids"


def test_dashboard_targets() -> None:
    (source,) = load_yaml(DATASOURCES)["datasources"]
    known = router_metric_names() | {"up"}
    panels = [panel for panel in dashboard_panels() if panel["type"] != "row"]
    assert len(panels) >= 20
    for panel in panels:
        title = panel["title"]
        assert panel["datasource"]["uid"] == source["uid"], title
        assert panel["targets"], f"{title}: no targets"
        for target in panel["targets"]:
            assert target["expr"].strip(), f"{title}: target without expr"
            assert target.get("datasource", panel["datasource"])["uid"] == source["uid"], title
            names = metric_names(target["expr"])
            assert names, f"{title}: no metric in {target['expr']!r}"
            assert names <= known, f"{title}: unknown {names - known}"
            if "by (function" in target["expr"]:
                # Per-function panels follow the dashboard's function selector.
                assert 'function=~"$function"' in target["expr"], title
        x, w = panel["gridPos"]["x"], panel["gridPos"]["w"]
        assert x >= 0, title
        assert x + w <= 24, title


def test_dashboard_covers_the_router_metrics() -> None:
    used = set()
    for panel in dashboard_panels():
        for target in panel.get("targets", []):
            used |= metric_names(target["expr"])
    families = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in used}
    every = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in router_metric_names()}
    assert every <= families, f"no panel shows {sorted(every - families)}"
