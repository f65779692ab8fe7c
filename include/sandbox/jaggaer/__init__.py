"""JAGGAER sandbox: J1P REST (Keycloak token, invoices, company profiles) and eProcurement XML imports
(purchase orders, suppliers), multi-customer, with the shared admin controls. See ``docs/sandbox-jaggaer.md``."""

from sandbox.jaggaer.app import DEFAULT_PORT, JaggaerSandbox, create_app
from sandbox.jaggaer.seed import ACME, DEMO
from sandbox.jaggaer.settings import JaggaerSettings

__all__ = ["ACME", "DEFAULT_PORT", "DEMO", "JaggaerSandbox", "JaggaerSettings", "create_app"]
