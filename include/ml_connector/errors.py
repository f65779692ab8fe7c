"""The exceptions every part of the connector raises.

Callers decide on retries by class, never by parsing messages:
- ``TokenChainBroken`` and ``ConfigError`` need a person; tasks fail at once.
- ``RejectedError`` means the server said no; resending the same request gets the same answer
  (and Exact blocks apps that collect errors), so it is never retried blindly.
- ``TransientError`` is worth another try later.
- ``AmbiguousWriteError`` means a write may or may not have happened: look at the target first.
"""

from __future__ import annotations

from datetime import datetime


class ConnectorError(Exception):
    """Base class for every error the connector raises on purpose."""


class ConfigError(ConnectorError):
    """Configuration is invalid. ``problems`` holds one human-readable line per problem."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class TokenChainBroken(ConnectorError):
    """The OAuth token chain is unusable; a person must reconnect the tenant."""

    def __init__(self, tenant: str, reason: str, how_to_fix: str | None = None):
        self.tenant = tenant
        self.reason = reason
        self.how_to_fix = how_to_fix or f"Reconnect with: mlc exact connect --tenant {tenant}"
        super().__init__(f"tenant {tenant!r}: {reason}. {self.how_to_fix}")


class RejectedError(ConnectorError):
    """The server refused the request; the same request will be refused again."""

    def __init__(self, message: str, status: int | None = None, body: str | None = None):
        self.status = status
        self.message = message
        self.body = body
        super().__init__(f"HTTP {status}: {message}" if status is not None else message)


class TransientError(ConnectorError):
    """A temporary failure (5xx, network, maintenance page) that outlived our retries."""

    def __init__(self, message: str, status: int | None = None):
        self.status = status
        super().__init__(message)


class AmbiguousWriteError(ConnectorError):
    """A write was sent but its outcome is unknown. Look at the target before sending again."""

    def __init__(self, message: str, status: int | None = None):
        self.status = status
        super().__init__(message)


class RateBudgetExhausted(ConnectorError):
    """The daily call budget is spent; nothing more can be sent before ``reset_at``."""

    def __init__(self, message: str, reset_at: datetime | None = None):
        self.reset_at = reset_at
        super().__init__(message)
