from __future__ import annotations

from importlib.metadata import entry_points

from ml_connector.provider import get_provider_info


def test_entry_point_registered_and_matches_distribution() -> None:
    eps = [ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("ml_connector.")]
    assert len(eps) == 1
    info = eps[0].load()()
    assert info["package-name"] == "ml-connector"
    types = {c["connection-type"]: c for c in info["connection-types"]}
    # sqlite: the embedded connector database's Test button (Airflow 3.3 ships no SQLite provider)
    assert set(types) == {"exact_online", "jaggaer", "sqlite"}
    assert types["sqlite"]["hook-class-name"] == "ml_connector.connector_db_hook.ConnectorDbHook"
    assert types["jaggaer"]["conn-fields"]["xml_shared_secret"]["schema"]["format"] == "password"
    assert types["exact_online"]["conn-fields"]["webhook_secret"]["schema"]["format"] == "password"  # masked
    assert types["exact_online"]["ui-field-behaviour"]["relabeling"]["login"] == "Client ID"


def test_airflow_provider_manager_sees_both_connection_types() -> None:
    from airflow.providers_manager import ProvidersManager

    hooks = ProvidersManager().hooks
    assert "exact_online" in hooks and "jaggaer" in hooks
    assert get_provider_info()["connection-types"][0]["hook-class-name"].endswith("ExactOnlineHook")
