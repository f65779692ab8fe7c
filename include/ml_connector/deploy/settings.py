"""The one place the CeleryExecutor deployment's Airflow settings are written down.

``docker-compose.yaml`` (containers) and ``scripts/cluster.py`` (``make cluster``: the same topology as processes on
loopback) both come from here: the cluster script builds its components' environment with :func:`airflow_env`, and
``tests/unit/test_cluster_config.py`` checks that the compose file's ``x-airflow-common`` environment, its init
command and its services are exactly what :data:`COMPOSE` gives. Change a setting here, then in the compose file;
the test names the difference.

No Airflow import: the cluster script runs this before any Airflow process exists.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Settings that do not depend on where things run.
COMMON: dict[str, str] = {
    "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
}

#: What runs once before the components start (the compose file's ``airflow-init``), in order.
INIT_COMMANDS: tuple[str, ...] = ("airflow db migrate", "mlc db upgrade", "mlc pools sync", "mlc config check")

#: Long-running components: compose service name -> ``airflow`` sub-command. Workers scale out.
COMPONENTS: dict[str, str] = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}

#: Database names and user of the metadata database (the connector's tables: schema ``ml_connector`` in it).
DB_NAME = "airflow"


@dataclass(frozen=True)
class Site:
    """Where one deployment's shared services are, and its secrets (or the placeholders that stand for them)."""

    pg_host: str
    pg_port: int
    pg_user: str
    pg_password: str  # "" for a password-less (trust) local server
    redis_host: str
    redis_port: int
    api_url: str  # the api-server as the workers reach it (the Execution API is under it)
    fernet_key: str
    jwt_secret: str
    mlc_fernet_keys: str
    tenant_file: str

    def _userinfo(self) -> str:
        return f"{self.pg_user}:{self.pg_password}" if self.pg_password else self.pg_user

    @property
    def pg_address(self) -> str:
        return f"{self._userinfo()}@{self.pg_host}:{self.pg_port}/{DB_NAME}"


def airflow_env(site: Site) -> dict[str, str]:
    """The environment every Airflow component of ``site`` gets (api-server, scheduler, workers, ...)."""
    return {
        **COMMON,
        "AIRFLOW__CORE__FERNET_KEY": site.fernet_key,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{site.api_url.rstrip('/')}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": site.jwt_secret,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{site.pg_address}",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{site.pg_address}",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://{site.redis_host}:{site.redis_port}/0",
        "AIRFLOW__ML_CONNECTOR__FERNET_KEYS": site.mlc_fernet_keys,
        "AIRFLOW__ML_CONNECTOR__CONFIG_PATH": site.tenant_file,
        # the connector's own tables, reached from tasks through this connection (schema ml_connector)
        "AIRFLOW_CONN_ML_CONNECTOR_DB": f"postgres://{site.pg_address}",
    }


def _required(var: str) -> str:
    return f"${{{var}:?set {var} in .env}}"


#: The compose file's site: service names for hosts, the secrets from ``.env``.
COMPOSE = Site(
    pg_host="postgres",
    pg_port=5432,
    pg_user="airflow",
    pg_password=_required("POSTGRES_PASSWORD"),
    redis_host="redis",
    redis_port=6379,
    api_url="http://airflow-apiserver:8080",
    fernet_key=_required("AIRFLOW_FERNET_KEY"),
    jwt_secret=_required("AIRFLOW_JWT_SECRET"),
    mlc_fernet_keys=_required("MLC_FERNET_KEYS"),
    tenant_file="/opt/ml-connector/config/tenants.yaml",
)


def compose_init_command() -> str:
    return " && ".join(INIT_COMMANDS)
