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
    """Credentials or tokens of a vendor are unusable; a person must act (tasks fail at once, no retries).

    ``system`` says whose: ``"exact"`` (default: the Exact token chain is dead or its client secret refused — the
    tenant must reconnect) or ``"jaggaer"`` (JAGGAER refused the client id/secret or the XML Identity/SharedSecret
    of ``conn_id`` — fix the Airflow connection, then clear the task). Alerts and ``flows.runtime.fail_fast``
    word their message by it.
    """

    def __init__(
        self,
        tenant: str,
        reason: str,
        how_to_fix: str | None = None,
        *,
        system: str = "exact",
        conn_id: str | None = None,
    ):
        self.tenant = tenant
        self.reason = reason
        self.system = system
        self.conn_id = conn_id
        if how_to_fix is None and system == "jaggaer":
            which = repr(conn_id) if conn_id else "jaggaer.conn_id of the tenant"
            how_to_fix = f"Fix the credentials of Airflow connection {which} (type jaggaer), then clear the task"
        elif how_to_fix is None:
            how_to_fix = f"Reconnect with: mlc exact connect --tenant {tenant}"
        self.how_to_fix = how_to_fix
        super().__init__(f"tenant {tenant!r}: {reason}. {self.how_to_fix}")

    @property
    def vendor(self) -> str:
        """How people call the system: ``Exact Online`` or ``JAGGAER``."""
        return "JAGGAER" if self.system == "jaggaer" else "Exact Online"


class RejectedError(ConnectorError):
    """The server refused the request; the same request will be refused again."""

    def __init__(self, message: str, status: int | None = None, body: str | None = None):
        self.status = status
        self.message = message
        self.body = body
        super().__init__(f"HTTP {status}: {message}" if status is not None else message)


class RequestRefused(RejectedError):
    """A request Exact refused: ``message`` is Exact's own text, ``str()`` names the request as well."""

    def __init__(self, message: str, status: int | None, *, body: str | None, what: str) -> None:
        super().__init__(message, status, body=body)
        self.what = what

    def __str__(self) -> str:
        return f"Exact refused {self.what}: HTTP {self.status}: {self.message}"


class ErrorBudgetSpent(RejectedError):
    """Too many refusals on one endpoint of one division within the hour: nothing more is sent to it."""


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
