"""The declared dependencies match the code: pyproject.toml names every distribution ``ml_connector`` imports, and
requirements.in lists nothing that nothing uses.

Imports are read with ``ast`` (lazy imports inside functions count too); a module is mapped to the distribution that
installs it through the installed environment (``importlib.metadata.packages_distributions``)."""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"ml_connector", "sandbox", "__future__"}

# In requirements.in although no Python file imports them, and why.
USED_WITHOUT_IMPORT = {
    "apache-airflow-providers-postgres": "the hook behind a PostgreSQL ml_connector_db connection (form, Test button)",
    "apache-airflow-providers-celery": "the CeleryExecutor of docker-compose.yaml and `make cluster`",
    "redis": "Celery's broker client (make cluster)",
    "psycopg2-binary": "SQLAlchemy's driver for postgresql+psycopg2:// URLs",
    "pytest-timeout": "pytest plugin: [tool.pytest.ini_options] timeout",
    "ruff": "make lint",
    "import-linter": "make lint, tests/unit/test_architecture.py (lint-imports)",
    "apache-airflow-providers-standard": "airflow.sdk's @task is the standard provider's PythonOperator",
    "httpx": "starlette's TestClient (tests/web)",
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_modules(paths: list[Path]) -> dict[str, set[str]]:
    """Absolute imported module name -> the files importing it (stdlib and first party left out)."""
    found: dict[str, set[str]] = {}
    # test helpers, bench and script modules imported by their own name from their folder
    local = {f.stem for base in paths for f in base.rglob("*.py")} | {d.name for base in paths for d in base.rglob("*")}
    local |= {base.name for base in paths}
    for base in paths:
        for file in base.rglob("*.py"):
            for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), str(file))):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top in sys.stdlib_module_names or top in FIRST_PARTY or top in local:
                        continue
                    found.setdefault(name, set()).add(str(file.relative_to(ROOT)))
    return found


def _distribution(module: str, index: dict[str, list[str]]) -> str:
    """The distribution that provides ``module`` (Airflow providers by their package name, not ``airflow``)."""
    parts = module.split(".")
    if parts[0] == "airflow":
        if len(parts) > 2 and parts[1] == "providers":
            return _norm(f"apache-airflow-providers-{parts[2]}")
        return "apache-airflow"
    dists = index.get(parts[0])
    assert dists, f"{module!r} is imported but no installed distribution provides it: add it to requirements.in"
    return _norm(dists[0])


def _pyproject_dependencies() -> set[str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {_norm(re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0]) for d in deps}


def _requirements_in() -> set[str]:
    names = set()
    for line in (ROOT / "requirements.in").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(_norm(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0]))
    return names


def test_pyproject_declares_every_distribution_ml_connector_imports() -> None:
    index = md.packages_distributions()
    declared = _pyproject_dependencies()
    missing = {}
    for module, files in _imported_modules([ROOT / "include" / "ml_connector"]).items():
        dist = _distribution(module, index)
        if dist not in declared:
            missing.setdefault(dist, set()).update(files)
    assert not missing, "pyproject.toml [project] dependencies lacks what ml_connector imports: " + "; ".join(
        f"{d} (imported by {', '.join(sorted(f)[:3])})" for d, f in sorted(missing.items())
    )


def test_requirements_in_lists_nothing_unused() -> None:
    index = md.packages_distributions()
    dirs = [ROOT / d for d in ("include", "dags", "plugins", "tests", "bench", "scripts") if (ROOT / d).is_dir()]
    used = {_distribution(m, index) for m in _imported_modules(dirs)}
    # an Airflow provider package is imported as airflow.providers.<name>; Airflow itself as airflow.*
    unused = sorted(_requirements_in() - used - set(USED_WITHOUT_IMPORT))
    assert not unused, (
        f"requirements.in lists {unused}, which no module in {[d.name for d in dirs]} imports: remove them (then "
        "`make lock`), or, if something uses them without importing them, add them to USED_WITHOUT_IMPORT with why"
    )


def test_the_checks_see_a_missing_declaration() -> None:
    """The mapping the two tests rely on: a provider import maps to its package, a plain import to its dist."""
    index = md.packages_distributions()
    assert _distribution("airflow.providers.smtp.notifications.smtp", index) == "apache-airflow-providers-smtp"
    assert _distribution("airflow.sdk", index) == "apache-airflow"
    assert _distribution("yaml", index) == "pyyaml"
    assert "psycopg2-binary" in _pyproject_dependencies()
