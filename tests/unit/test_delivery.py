"""The container and workflow files: static checkers pass on them and catch deliberate errors,
and they stay in step with the code (services, commands, variable names, paths)."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from flight_delay.config import documented_settings, known_variables
from flight_delay.devstack import (
    ANALYSIS_WORKER_COMMAND,
    BEAT_COMMAND,
    FLOWER_COMMAND,
    GUNICORN_COMMAND,
    LOG_WRITER_COMMAND,
    WORKER_COMMAND,
)
from tests.conftest import REPO

BIN = Path(sys.executable).parent
COMPONENTS = {"api": GUNICORN_COMMAND, "worker": WORKER_COMMAND}
VARIABLE = re.compile(r"\b(FLIGHT_DELAY_[A-Z_]+)\b")


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed in {BIN}: pip install -e '.[dev]'")
    return str(path)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, check=False)


# -- static checkers: pass on ours, fail on a broken copy ---------------------------------------
def test_hadolint_passes_our_dockerfiles_and_fails_a_broken_one(tmp_path: Path) -> None:
    for name in ("Dockerfile.api", "Dockerfile.worker"):
        result = run(tool("hadolint"), str(REPO / name))
        assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "Dockerfile"
    broken.write_text(
        (REPO / "Dockerfile.api")
        .read_text()
        .replace("python:3.11.11-slim-bookworm AS build", "python:latest AS build")
    )
    result = run(tool("hadolint"), str(broken))
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # "Using latest is prone to errors"


def test_actionlint_passes_our_workflows_and_fails_a_broken_one(tmp_path: Path) -> None:
    result = run(tool("actionlint"), *map(str, sorted((REPO / ".github/workflows").glob("*.yml"))))
    assert result.returncode == 0, result.stdout + result.stderr
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    text = (REPO / ".github/workflows/ci.yml").read_text()
    (workflows / "ci.yml").write_text(
        text.replace("${{ matrix.component }}:ci", "${{ matrix.compnent }}:ci")
    )
    result = run(tool("actionlint"), str(workflows / "ci.yml"))
    assert result.returncode != 0
    assert "compnent" in result.stdout


def test_the_compose_file_matches_the_compose_specification(tmp_path: Path) -> None:
    checker = tool("check-jsonschema")
    result = run(
        checker, "--builtin-schema", "vendor.compose-spec", str(REPO / "docker-compose.yml")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "docker-compose.yml"
    # a misspelt top-level key (numbers may be strings in Compose, for ${VARIABLE} interpolation)
    text = (REPO / "docker-compose.yml").read_text()
    broken.write_text(text.replace("\nvolumes:\n", "\nvolume:\n"))
    result = run(checker, "--builtin-schema", "vendor.compose-spec", str(broken))
    assert result.returncode != 0
    assert "'volume' does not match" in result.stdout


def test_the_ha_override_matches_the_compose_specification() -> None:
    checker = tool("check-jsonschema")
    result = run(checker, "--builtin-schema", "vendor.compose-spec", str(REPO / "compose.ha.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_ha_override_sends_every_redis_client_through_the_sentinels() -> None:
    base = load_compose()["services"]
    ha: dict[str, Any] = yaml.safe_load((REPO / "compose.ha.yml").read_text())
    services = ha["services"]
    sentinels = {name for name in services if name.startswith("sentinel-")}
    assert len(sentinels) == 3
    monitor = next(
        line.split()
        for line in services["sentinel-1"]["command"][-1].splitlines()
        if line.strip().startswith("sentinel monitor")
    )
    _, _, master_name, master_host, master_port, quorum = monitor
    assert (master_host, master_port, quorum) == ("redis", "6379", "2")
    assert "--replicaof" in services["redis-replica"]["command"]
    clients = [
        name
        for name, service in base.items()
        if "FLIGHT_DELAY_REDIS_URL" in (service.get("environment") or {})
    ]
    assert {"api", "worker", "beat", "log-writer"} <= set(clients)
    for name in clients:
        environment = services.get(name, {}).get("environment", {})
        listed = environment.get("FLIGHT_DELAY_REDIS_SENTINELS", "")
        hosts = {address.split(":")[0] for address in listed.split(",") if address}
        assert hosts == sentinels, f"{name}: FLIGHT_DELAY_REDIS_SENTINELS={listed!r}"
        assert environment.get("FLIGHT_DELAY_REDIS_MASTER") == master_name, name


# -- consistency with the code ------------------------------------------------------------------
def load_compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


def dockerfile_cmd(text: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith("CMD "))
    command: list[str] = json.loads(line[len("CMD ") :])
    return command


def delivery_problems(
    compose: dict[str, Any], dockerfiles: dict[str, str], env_example: str
) -> list[str]:
    """Every way the delivery files disagree with the code; empty when they agree."""
    problems = []
    services = compose.get("services", {})
    expected = {
        "redis", "seaweedfs", "api", "worker", "analysis-worker", "beat", "postgres", "log-writer",
        "flower",
    }  # fmt: skip
    if set(services) != expected:
        problems.append(f"services are {sorted(services)}, expected {', '.join(sorted(expected))}")
    writer = services.get("log-writer", {})
    if writer.get("command") != ["python", "-m", *LOG_WRITER_COMMAND]:
        problems.append(f"log-writer: compose command {writer.get('command')} is not the writer's")
    for name in writer.get("environment", {}):
        if name not in known_variables():
            problems.append(f"log-writer: unknown variable {name}")
    flower = services.get("flower", {})
    if flower.get("command", [])[: len(FLOWER_COMMAND)] != list(FLOWER_COMMAND):
        problems.append(f"flower: compose command {flower.get('command')} is not make run's")
    if flower.get("build", {}).get("dockerfile") != "Dockerfile.worker":
        problems.append("flower: not built from Dockerfile.worker (it imports the worker app)")
    if any(not port.startswith("127.0.0.1:") for port in flower.get("ports", [])):
        problems.append("flower: published beyond loopback")
    analysis = services.get("analysis-worker", {})
    if analysis.get("command") != list(ANALYSIS_WORKER_COMMAND):
        problems.append(
            f"analysis-worker: compose command {analysis.get('command')} is not make run's"
        )
    if analysis.get("build", {}).get("dockerfile") != "Dockerfile.worker":
        problems.append("analysis-worker: not built from Dockerfile.worker")
    queues = {
        name: services.get(name, {}).get("environment", {}).get("FLIGHT_DELAY_WORKER_QUEUES")
        for name in ("worker", "analysis-worker")
    }
    if queues != {"worker": "training", "analysis-worker": "analysis"}:
        problems.append(f"the workers' queues are {queues}: training and analysis apart")
    beat = services.get("beat", {})
    if beat.get("command") != list(BEAT_COMMAND):
        problems.append(f"beat: compose command {beat.get('command')} is not make run's")
    if beat.get("build", {}).get("dockerfile") != "Dockerfile.worker":
        problems.append("beat: not built from Dockerfile.worker (it imports the worker app)")
    if beat.get("deploy", {}).get("replicas", 1) != 1:
        problems.append("beat: more than one replica")
    known = known_variables()
    for component, command in COMPONENTS.items():
        service = services.get(component, {})
        if service.get("command") != list(command):
            problems.append(
                f"{component}: compose command {service.get('command')} != {list(command)}"
            )
        if dockerfile_cmd(dockerfiles[component]) != list(command):
            problems.append(f"Dockerfile.{component}: CMD != {list(command)}")
        if service.get("build", {}).get("dockerfile") != f"Dockerfile.{component}":
            problems.append(f"{component}: not built from Dockerfile.{component}")
        environment = service.get("environment", {})
        for name in environment:
            if name not in known:
                problems.append(f"{component}: unknown variable {name}")
        mounts = {v.split(":")[0]: v.split(":")[1] for v in service.get("volumes", [])}
        if "models" in mounts or environment.get("FLIGHT_DELAY_MODEL_DIR") in mounts.values():
            problems.append(
                f"{component}: mounts a shared models folder (models live in the store)"
            )
        if not str(environment.get("FLIGHT_DELAY_ARTIFACT_URL", "")).startswith("s3://"):
            problems.append(f"{component}: FLIGHT_DELAY_ARTIFACT_URL is not an s3:// store")
        if not str(environment.get("FLIGHT_DELAY_S3_ENDPOINT_URL", "")).startswith(
            "http://seaweedfs:"
        ):
            problems.append(
                f"{component}: FLIGHT_DELAY_S3_ENDPOINT_URL does not point at the seaweedfs service"
            )
        if "seaweedfs" not in service.get("depends_on", {}):
            problems.append(f"{component}: does not wait for the seaweedfs service")
        if mounts.get("./datasets") != environment.get("FLIGHT_DELAY_DATA_ROOT"):
            problems.append(f"{component}: ./datasets is not mounted at FLIGHT_DELAY_DATA_ROOT")
        if "redis://redis:" not in str(environment.get("FLIGHT_DELAY_REDIS_URL")):
            problems.append(
                f"{component}: FLIGHT_DELAY_REDIS_URL does not point at the redis service"
            )
        for name in VARIABLE.findall(dockerfiles[component]):
            if name not in known:
                problems.append(f"Dockerfile.{component}: unknown variable {name}")
    for name in re.findall(r"^([A-Z_]+)=", env_example, flags=re.MULTILINE):
        if name not in known:
            problems.append(f".env.example: unknown variable {name}")
    return problems


@pytest.fixture
def delivery() -> tuple[dict[str, Any], dict[str, str], str]:
    dockerfiles = {c: (REPO / f"Dockerfile.{c}").read_text() for c in COMPONENTS}
    return load_compose(), dockerfiles, (REPO / ".env.example").read_text()


def test_compose_dockerfiles_and_env_example_agree_with_the_code(delivery: Any) -> None:
    assert delivery_problems(*delivery) == []


def test_a_drifted_command_is_caught(delivery: Any) -> None:
    compose, dockerfiles, env = copy.deepcopy(delivery)
    compose["services"]["worker"]["command"] = ["celery", "-A", "worker.tasks", "worker"]
    assert any("worker: compose command" in p for p in delivery_problems(compose, dockerfiles, env))
    compose["services"]["beat"]["command"] = [
        "celery",
        "-A",
        "worker.celery_app:celery",
        "beat",
        "-S",
        "redbeat.RedBeatScheduler",
    ]
    assert any("beat: compose command" in p for p in delivery_problems(compose, dockerfiles, env))
    dockerfiles["api"] = dockerfiles["api"].replace("flight_delay.wsgi:app", "flight_delay.app:app")
    assert any("Dockerfile.api: CMD" in p for p in delivery_problems(compose, dockerfiles, env))


def test_a_renamed_variable_is_caught(delivery: Any) -> None:
    compose, dockerfiles, env = copy.deepcopy(delivery)
    api = compose["services"]["api"]["environment"]
    api["FLIGHT_DELAY_ARTIFACTS_URL"] = api.pop("FLIGHT_DELAY_ARTIFACT_URL")
    problems = delivery_problems(
        compose, dockerfiles, env.replace("FLIGHT_DELAY_MAX_BATCH", "FLIGHT_DELAY_BATCH_MAX")
    )
    assert "api: unknown variable FLIGHT_DELAY_ARTIFACTS_URL" in problems
    assert ".env.example: unknown variable FLIGHT_DELAY_BATCH_MAX" in problems


def test_a_moved_volume_or_service_is_caught(delivery: Any) -> None:
    compose, dockerfiles, env = copy.deepcopy(delivery)
    compose["services"]["worker"]["volumes"].append("models:/data/models")
    compose["services"]["api"]["environment"]["FLIGHT_DELAY_S3_ENDPOINT_URL"] = "http://s3:8333"
    compose["services"]["scheduler"] = {}
    problems = delivery_problems(compose, dockerfiles, env)
    assert "worker: mounts a shared models folder (models live in the store)" in problems
    assert "api: FLIGHT_DELAY_S3_ENDPOINT_URL does not point at the seaweedfs service" in problems
    assert any(p.startswith("services are") for p in problems)


def test_the_configuration_page_documents_every_variable() -> None:
    page = (REPO / "docs" / "configuration.md").read_text()
    missing = sorted(name for name in known_variables() if f"`{name}`" not in page)
    assert not missing, f"docs/configuration.md's table lacks {missing}"


def test_the_images_hold_the_packages_the_commands_import(tmp_path: Path) -> None:
    """What `pip install .` puts in the images contains the modules the commands name."""
    if shutil.which("git") is None:
        pytest.skip("git is needed to build a wheel from the checkout")
    result = run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(REPO)
    )
    assert result.returncode == 0, result.stderr[-2000:]
    import zipfile

    names = zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist()
    for module in (
        "flight_delay/wsgi.py",
        "flight_delay/gunicorn_conf.py",
        "worker/celery_app.py",
        "flight_delay/api/__init__.py",
        # the prediction log's Alembic scripts are package data, not modules
        "flight_delay/prediction_log/migrations/env.py",
        "flight_delay/prediction_log/migrations/script.py.mako",
        "flight_delay/prediction_log/migrations/versions/0001_prediction_log.py",
        "flight_delay/prediction_log/migrations/versions/0002_outcomes.py",
        # the dashboard's templates and files are package data too
        "flight_delay/ui/templates/ui/base.html",
        "flight_delay/ui/templates/ui/schedule.html",
        "flight_delay/ui/static/ui.js",
        "flight_delay/ui/static/ui.css",
    ):
        assert module in names


def _table_defaults(page: Path) -> dict[str, str]:
    """The default column of a page's `FLIGHT_DELAY_*` table rows."""
    rows = {}
    for line in page.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`FLIGHT_DELAY_"):
            rows[cells[0].strip("`")] = cells[1]
    return rows


def test_the_configuration_tables_show_the_defaults_of_default_config() -> None:
    """docs/configuration.md's default column is DefaultConfig's value for every FLIGHT_DELAY_*
    setting, and the README's table of the essentials agrees with it row for row."""
    page = _table_defaults(REPO / "docs" / "configuration.md")
    readme = _table_defaults(REPO / "README.md")
    wrong = {}
    for name, value in documented_settings().items():
        shown = "empty" if value in ("", None, [], ()) else f"`{value}`"
        if page.get(name) != shown:
            wrong[name] = (page.get(name), shown)
        if name in readme and readme[name] != shown:
            wrong[f"README {name}"] = (readme[name], shown)
    assert not wrong, f"default shown != DefaultConfig (shown, expected): {wrong}"
    assert readme, "the README has no table of the essential settings"


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a Markdown page's headings."""
    found = set()
    for line in page.read_text().splitlines():
        if line.startswith("#"):
            heading = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower())
            found.add(heading.replace(" ", "-"))
    return found


def test_every_relative_link_of_the_readme_and_the_docs_resolves() -> None:
    """Pages moved between the README and docs/ keep their links: every relative link names a
    file that exists and, for a Markdown page, a heading it has."""
    pages = [REPO / "README.md", REPO / "datasets" / "README.md", *(REPO / "docs").glob("*.md")]
    broken = []
    for page in pages:
        for link in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if link.startswith(("http://", "https://")):
                continue
            target, _, anchor = link.partition("#")
            path = (page.parent / target).resolve() if target else page
            if not path.exists():
                broken.append(f"{page.name}: {link} (no such file)")
            elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
                broken.append(f"{page.name}: {link} (no such heading)")
    assert not broken, broken


def test_the_readme_is_short_and_speaks_to_users() -> None:
    """A newcomer's page: at most 400 lines, nothing about how the software was built."""
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 400
    insider = re.findall(r"(?i)\bissue [0-9]+|this 2-core machine|our development machines", readme)
    assert not insider, insider


def kubernetes_check() -> Any:
    """deploy/kubernetes/check.py (a script, not a package module)."""
    spec = importlib.util.spec_from_file_location("k8s_check", REPO / "deploy/kubernetes/check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_kubernetes_manifests_render_and_pass_every_check() -> None:
    check = kubernetes_check()
    for folder in check.targets():
        objects = check.render(folder)
        assert check.schema_problems(objects) == [], folder
        assert check.policy_problems(objects) == [], folder
    overlay = check.render(REPO / "deploy/kubernetes/overlays/example")
    assert check.pinning_problems(overlay) == []
    kinds = sorted(o["kind"] for o in overlay)
    assert kinds.count("Deployment") == 5 and "Secret" in kinds and "ConfigMap" in kinds


def test_the_kubernetes_check_catches_what_it_must() -> None:
    check = kubernetes_check()
    objects = check.render(REPO / "deploy/kubernetes/base")
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    beat = by_name[("Deployment", "flight-delay-beat")]
    beat["spec"]["replicas"] = 2
    api = by_name[("Deployment", "flight-delay-api")]["spec"]["template"]["spec"]
    api["containers"][0]["readinessProbe"]["httpGet"]["path"] = "/healthz"
    api["securityContext"].pop("runAsNonRoot")
    worker = by_name[("Deployment", "flight-delay-worker")]["spec"]["template"]["spec"]
    worker["containers"][0]["resources"].pop("requests")
    worker["containers"][0]["command"] = ["celery", "worker"]
    worker["containers"][0]["imagePullPolicyy"] = "Always"  # a typo the schema refuses
    problems = check.policy_problems(objects)
    assert "flight-delay-beat: not exactly one replica, replaced (Recreate)" in problems
    assert any(p.startswith("flight-delay-api: probes are") for p in problems)
    assert "flight-delay-api: pods may run as root (securityContext.runAsNonRoot)" in problems
    assert "flight-delay-worker/worker: no cpu and memory requests" in problems
    assert any("command ['celery', 'worker'] is not make run's" in p for p in problems)
    schema = check.schema_problems(objects)
    assert any("imagePullPolicyy" in p for p in schema), schema
    assert check.pinning_problems(objects)  # the base's images are not pinned
