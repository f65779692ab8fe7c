"""docker-compose.yaml and Dockerfile, checked without a Docker engine.

The compose file is validated against the Compose Specification's JSON schema (tests/data/compose-spec.json, from
the compose-spec project, Apache-2.0) and against what this deployment needs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
AIRFLOW_SERVICES = [
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
]


def test_compose_file_matches_the_compose_specification() -> None:
    schema = json.loads((REPO / "tests" / "data" / "compose-spec.json").read_text())
    jsonschema.validate(COMPOSE, schema)


def test_every_airflow_service_runs_celery_on_postgres_with_the_connector() -> None:
    services = COMPOSE["services"]
    assert set(AIRFLOW_SERVICES) | {"postgres", "redis"} == set(services)
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert services[name]["image"] == "ml-connector:latest", name
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://"), name
        assert env["AIRFLOW_CONN_ML_CONNECTOR_DB"].startswith("postgres://"), name
        assert "AIRFLOW__ML_CONNECTOR__FERNET_KEYS" in env, name
    assert services["airflow-worker"]["command"] == "celery worker"
    assert "mlc db upgrade" in " ".join(services["airflow-init"]["command"])


def test_no_secret_is_written_into_the_compose_file() -> None:
    text = (REPO / "docker-compose.yaml").read_text()
    env = COMPOSE["services"]["airflow-scheduler"]["environment"]
    for key in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__ML_CONNECTOR__FERNET_KEYS", "AIRFLOW__API_AUTH__JWT_SECRET"):
        assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", env[key]), key
    referenced = set(re.findall(r"\$\{(\w+)", text))
    example = {line.split("=")[0] for line in (REPO / ".env.example").read_text().splitlines() if "=" in line}
    assert referenced <= example, referenced - example


def test_image_uses_the_pinned_airflow() -> None:
    pinned = re.search(r"^apache-airflow==(\S+)$", (REPO / "requirements.txt").read_text(), re.M).group(1)
    assert f"FROM apache/airflow:{pinned}-python3.11" in (REPO / "Dockerfile").read_text()
