"""The architecture contracts of ``[tool.importlinter]`` (pyproject.toml) hold, and they do bite: a cycle, a layer
import the wrong way and an import of the sandboxes, planted in a copy of the package, each break ``lint-imports``.

``lint-imports`` runs as a process, as ``make lint`` runs it, from ``include/`` (where the root packages are)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"


def _lint_imports(include_dir: Path, config: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lint-imports")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "importlinter.cli"]
    env = {**os.environ, "PYTHONPATH": str(include_dir)}
    return subprocess.run(
        [*command, "--no-cache", str(config)],
        cwd=include_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _copy_packages(dest: Path) -> Path:
    """The Python files of ml_connector and sandbox under ``dest/include`` (data files are not needed)."""
    include = dest / "include"

    def ignore(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if n == "__pycache__" or (Path(folder, n).is_file() and not n.endswith(".py"))}

    for package in ("ml_connector", "sandbox"):
        shutil.copytree(ROOT / "include" / package, include / package, ignore=ignore)
    return include


def test_the_import_contracts_hold() -> None:
    result = _lint_imports(ROOT / "include", PYPROJECT)
    assert result.returncode == 0, (
        "lint-imports found imports that break the architecture contracts in pyproject.toml [tool.importlinter] "
        "(CONTRIBUTING.md says why they exist): move the import or the code it needs, do not add an ignore.\n"
        + result.stdout[-6000:]
        + result.stderr[-2000:]
    )


def test_planted_violations_break_the_contracts(tmp_path: Path) -> None:
    include = _copy_packages(tmp_path)
    pkg = include / "ml_connector"
    # a cycle between two sibling modules
    (pkg / "planted_cycle_a.py").write_text("from ml_connector import planted_cycle_b  # noqa: F401\n")
    (pkg / "planted_cycle_b.py").write_text("from ml_connector import planted_cycle_a  # noqa: F401\n")
    # the lowest layer importing the highest
    (pkg / "errors.py").write_text((pkg / "errors.py").read_text() + "\nimport ml_connector.dagbuild  # noqa: E402\n")
    # the package importing a sandbox
    (pkg / "planted_sandbox_user.py").write_text("import sandbox.exact  # noqa: F401\n")
    # flows importing Airflow
    (pkg / "flows" / "planted_airflow_user.py").write_text("import airflow.sdk  # noqa: F401\n")

    result = _lint_imports(include, PYPROJECT)
    out = result.stdout
    assert result.returncode != 0, out
    assert ".planted_cycle_a" in out or ".planted_cycle_b" in out, out
    assert "ml_connector.errors is not allowed to import ml_connector.dagbuild" in out, out
    assert "ml_connector.planted_sandbox_user -> sandbox.exact" in out, out
    assert "ml_connector.flows.planted_airflow_user -> airflow" in out, out


def test_the_dag_files_import_only_the_dag_builders() -> None:
    """``dags/`` is the layer above ``dagbuild`` (not a package, so import-linter cannot see it): its files import
    nothing of ml_connector but ``ml_connector.dagbuild``."""
    wrong = []
    for file in sorted((ROOT / "dags").glob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            wrong += [
                f"{file.name}: {n}"
                for n in names
                if n.split(".")[0] == "ml_connector" and not n.startswith("ml_connector.dagbuild")
            ]
    assert not wrong, f"DAG files must only call ml_connector.dagbuild (keep dags/ thin): {wrong}"
