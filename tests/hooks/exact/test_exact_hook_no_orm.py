"""Tasks may not use Airflow's ORM: no module of ml_connector or dags/ imports it (workers would fail at run time,
and ``dag.test()`` would not notice)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
FORBIDDEN = re.compile(
    r"^\s*(from\s+airflow\.settings\s+import\s+[^#\n]*\bSession\b"
    r"|from\s+airflow\.utils\.session\s+import"
    r"|from\s+airflow\.utils\s+import\s+[^#\n]*\bsession\b"
    r"|import\s+airflow\.utils\.session"
    r"|from\s+airflow\s+import\s+[^#\n]*\bsettings\b)",
    re.MULTILINE,
)
USES = re.compile(r"\bsettings\.Session\b|\bcreate_session\s*\(|@provide_session\b")


def _sources() -> list[Path]:
    roots = [REPO / "include" / "ml_connector", REPO / "dags", REPO / "plugins"]
    return [p for root in roots if root.exists() for p in root.rglob("*.py")]


def test_no_airflow_orm_in_tasks_or_dags() -> None:
    files = _sources()
    assert any(p.name == "hook.py" for p in files)
    offenders = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        for pattern in (FORBIDDEN, USES):
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                offenders.append(f"{path.relative_to(REPO)}:{line}: {match.group(0).strip()}")
    assert offenders == []


def test_the_check_catches_what_it_should() -> None:
    samples = [
        "from airflow.settings import Session\n",
        "from airflow.utils.session import create_session\n",
        "import airflow.utils.session\n",
        "from airflow import settings\n",
    ]
    assert all(FORBIDDEN.search(s) for s in samples)
    assert USES.search("with create_session() as s:") and USES.search("@provide_session\ndef f(session=None): ...")
    assert not FORBIDDEN.search("from ml_connector.store.db import session_scope\n")
