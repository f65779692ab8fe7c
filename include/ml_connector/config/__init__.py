"""Tenant configuration: what each customer connects, maps and schedules."""

from ml_connector.config.loader import load_tenants
from ml_connector.config.tenant import TenantConfig

__all__ = ["TenantConfig", "load_tenants"]
