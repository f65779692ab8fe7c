"""``[ml_connector]`` settings are read from airflow.cfg without importing Airflow (what keeps `mlc` fast)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_connector.settings import get_setting


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.delenv("AIRFLOW_CONFIG", raising=False)
    monkeypatch.delenv("MLC_CONFIG_PATH", raising=False)
    monkeypatch.delenv("AIRFLOW__ML_CONNECTOR__CONFIG_PATH", raising=False)
    return tmp_path


def test_airflow_cfg_then_airflow_env_then_mlc_env(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = home / "airflow.cfg"
    cfg.write_text("[core]\nlog_format = %%(asctime)s\n[ml_connector]\nconfig_path = /from/cfg.yaml\n")
    assert get_setting("config_path") == "/from/cfg.yaml"
    cfg.write_text("[ml_connector]\nconfig_path = /changed.yaml\n")  # a new file version is read again
    assert get_setting("config_path") == "/changed.yaml"
    monkeypatch.setenv("AIRFLOW__ML_CONNECTOR__CONFIG_PATH", "/from/airflow-env.yaml")
    assert get_setting("config_path") == "/from/airflow-env.yaml"
    monkeypatch.setenv("MLC_CONFIG_PATH", "/from/mlc-env.yaml")
    assert get_setting("config_path") == "/from/mlc-env.yaml"


def test_no_file_or_no_section_gives_the_default(home: Path) -> None:
    assert get_setting("config_path", "dflt") == "dflt"
    (home / "airflow.cfg").write_text("[core]\nload_examples = False\n")
    assert get_setting("config_path", "dflt") == "dflt"
