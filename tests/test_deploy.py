"""compose.yaml and its images: the topology docs/deploy.md describes, every service health-checked,
nothing published beyond loopback, secrets only from .env, images installed from locks that pin
what requirements.lock pins. tests/test_team_mlflow.py runs the same topology without containers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^ \\;]+)", re.M)


def pins(lock: Path) -> dict[str, set[str]]:
    """Each package's pinned versions (a universal lock pins one per Python-version marker)."""
    out: dict[str, set[str]] = {}
    for name, version in PIN.findall(lock.read_text()):
        out.setdefault(name.lower(), set()).add(version)
    return out


def test_the_topology():
    assert set(SERVICES) == {"postgres", "s3", "s3-buckets", "mlflow", "serve"}
    for name, service in SERVICES.items():
        if name != "s3-buckets":  # a one-shot job: the others wait for it to complete instead
            assert "healthcheck" in service, name
            assert service.get("restart") == "unless-stopped", name
    mlflow = " ".join(SERVICES["mlflow"]["command"])
    assert "--backend-store-uri postgresql+psycopg2://" in mlflow and "@postgres:5432/mlflow" in mlflow
    assert "--artifacts-destination s3://mlflow/artifacts" in mlflow
    assert SERVICES["mlflow"]["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://s3:9000"
    assert SERVICES["mlflow"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "s3-buckets": {"condition": "service_completed_successfully"},
    }
    serve = " ".join(SERVICES["serve"]["command"])
    assert (
        "--model models:/candle-patterns@champion" in serve and "--tracking-uri http://mlflow:5000" in serve
    )
    assert SERVICES["serve"]["depends_on"] == {"mlflow": {"condition": "service_healthy"}}
    # the server drains in-flight requests on SIGTERM: compose must wait longer than that
    assert int(SERVICES["serve"]["stop_grace_period"].rstrip("s")) >= 30


def test_only_loopback_ports_and_secrets_from_env():
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
    text = (ROOT / "compose.yaml").read_text()
    used = set(re.findall(r"\$\{(\w+)", text))
    example = dict(
        line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines() if "=" in line
    )
    assert used <= set(example), used - set(example)
    assert "/.env" in (ROOT / ".gitignore").read_text().splitlines()
    for secret in ("change-me", "change-me-too"):
        assert secret not in text


@pytest.mark.parametrize(
    ("dockerfile", "lock"),
    [
        ("deploy/serve.Dockerfile", "deploy/requirements-serve.lock"),
        ("deploy/mlflow.Dockerfile", "deploy/requirements-mlflow.lock"),
    ],
)
def test_images_install_hash_checked_locks_pinning_the_projects_versions(dockerfile, lock):
    text = (ROOT / dockerfile).read_text()
    assert "--require-hashes" in text and lock.split("/")[-1] in text
    for copied in re.findall(r"^COPY (\S+) ", text, re.M):
        assert (ROOT / copied).exists(), copied
    assert "\nUSER " in text  # not root
    project = pins(ROOT / "requirements.lock")
    image = pins(ROOT / lock)
    differ = {k: (v, project[k]) for k, v in image.items() if k in project and not v <= project[k]}
    assert not differ, f"{lock} pins other versions than requirements.lock: {differ}"
    assert "pytest" not in image and "moto" not in image  # no test tools in an image


def test_serve_image_has_every_runtime_dependency():
    image = pins(ROOT / "deploy/requirements-serve.lock")
    for needed in ("mlflow", "litestar", "uvicorn", "ta-lib", "xgboost-cpu", "psycopg2-binary", "boto3"):
        assert needed in image, needed


def compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


@pytest.mark.servers
def test_docker_compose_accepts_it():
    command = compose_command()
    if command is None:
        if os.environ.get("CANDLE_ML_REQUIRE_SERVERS"):  # CI installs it
            pytest.fail("no docker compose here: apt-get install docker-compose")
        pytest.skip("no docker compose here (apt-get install docker-compose)")
    done = subprocess.run(
        [*command, "--env-file", ".env.example", "-f", "compose.yaml", "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
