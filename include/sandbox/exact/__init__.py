"""Exact Online sandbox: ``create_app(settings=None)`` (default port 8701)."""

from sandbox.exact.app import ExactSandbox, create_app
from sandbox.exact.settings import (
    DEFAULT_PORT,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_REDIRECT_URIS,
    ExactSettings,
)

__all__ = [
    "DEFAULT_PORT",
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "DEMO_REDIRECT_URIS",
    "ExactSandbox",
    "ExactSettings",
    "create_app",
]
