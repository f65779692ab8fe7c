"""The JAGGAER connection's ``xml_url`` may name the eProcurement host or its ``/apps/Router`` base: both reach the
real Router of the sandbox (``ml_connector.jaggaer.hook.xml_router_url``)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.parametrize("form", ["host", "host/", "router"])
def test_xml_url_host_and_router_forms_both_work(jag: Any, form: str) -> None:
    xml_url = {"host": jag.url, "host/": f"{jag.url}/", "router": f"{jag.url}/apps/Router"}[form]
    hook = jag.hook(conn={"xml_url": xml_url})
    assert hook.config.xml_url == f"{jag.url}/apps/Router"
    ok, message = hook.test_connection()
    assert ok, message


def test_jaggaer_connection_without_sandbox_flag_is_refused_before_any_call(jag: Any) -> None:
    jag.clear_calls()
    hook = jag.hook(conn={"sandbox": None})  # the fixture's connections are sandboxes; drop the flag
    ok, message = hook.test_connection()
    assert not ok and "refused" in message and '"sandbox": true' in message
    assert jag.calls()["log"] == []
