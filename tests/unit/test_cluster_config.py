"""``docker-compose.yaml`` and ``make cluster`` share one configuration (``ml_connector.deploy.settings``).

The compose file is hand-readable YAML; these checks make sure it says exactly what the shared module says, and that
the cluster script builds its components' environment from the same module, so the two cannot drift. The cluster
tenant file's ``demo`` tenant must stay the one ``tenants.yaml`` defines.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import yaml

from ml_connector.deploy import settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def _cluster_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mlc_cluster_script", REPO / "scripts" / "cluster.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_compose_environment_is_the_shared_settings() -> None:
    assert COMPOSE["x-airflow-common"]["environment"] == settings.airflow_env(settings.COMPOSE)


def test_compose_init_and_components_are_the_shared_ones() -> None:
    services = COMPOSE["services"]
    assert services["airflow-init"]["command"][-1] == settings.compose_init_command()
    for service, command in settings.COMPONENTS.items():
        assert services[service]["command"] == command, service
    postgres = services["postgres"]["environment"]
    assert postgres["POSTGRES_DB"] == settings.DB_NAME
    assert postgres["POSTGRES_USER"] == settings.COMPOSE.pg_user
    assert postgres["POSTGRES_PASSWORD"] == settings.COMPOSE.pg_password


def test_cluster_components_get_the_shared_settings(tmp_path: Path) -> None:
    cluster = _cluster_script()
    config = cluster.ClusterConfig.from_env({"MLC_CLUSTER_DIR": str(tmp_path)})
    env = cluster.component_env(config, cluster.Secrets.load_or_create(tmp_path / "secrets.json"))
    shared = settings.airflow_env(cluster.site(config, cluster.Secrets.load_or_create(tmp_path / "secrets.json")))
    assert {k: env[k] for k in shared} == shared
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    # the values that differ from the compose file are only where things are (loopback) and the tenant file
    compose = settings.airflow_env(settings.COMPOSE)
    assert set(shared) == set(compose)
    for key in settings.COMMON:
        assert shared[key] == compose[key]
    assert "127.0.0.1" in shared["AIRFLOW__CELERY__BROKER_URL"]
    assert shared["AIRFLOW__ML_CONNECTOR__CONFIG_PATH"].endswith("include/config/tenants.cluster.yaml")
    assert cluster.INIT_COMMANDS == settings.INIT_COMMANDS


def test_cluster_tenant_file_keeps_the_demo_tenant() -> None:
    default = yaml.safe_load((REPO / "include" / "config" / "tenants.yaml").read_text())["tenants"]
    cluster = yaml.safe_load((REPO / "include" / "config" / "tenants.cluster.yaml").read_text())["tenants"]
    assert cluster["demo"] == default["demo"]
    assert set(cluster) == {"demo", "northfield"}
    from sandbox.common import demo_company as dc

    second = cluster[dc.SECOND_TENANT]
    assert second["exact"]["divisions"] == list(dc.SECOND_DIVISIONS)
    assert second["jaggaer"]["business_units"] == dc.SECOND_BUSINESS_UNITS
