"""The exceptions a connector task ends with, as Airflow needs them: one home for the Airflow side of failing.

The flows are plain functions and never import Airflow (an import-linter contract). When a stage must tell Airflow
"do not retry" (``AirflowFailException``) or "retry with backoff" (``AirflowException``), it asks this module, which
imports Airflow's task SDK lazily and falls back to plain exceptions outside Airflow (the CLI, tests, the bench).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ml_connector.errors import TokenChainBroken


class RecordsFailed(Exception):
    """Raised by ``runtime.report`` outside Airflow when records failed (in a task it is ``AirflowFailException``)."""


class RecordsNotDone(Exception):
    """A post stage worked through its batch and some records of this attempt ended ``failed`` or ``ambiguous``.

    Inside Airflow the raised exception is also an ``AirflowException`` (retryable: *not* ``AirflowFailException``),
    so the task is retried with backoff and, once out of tries, shows red and can be cleared. ``outcomes`` is the
    attempt's counts (also pushed as the task's XCom). ``report_alerts``: the report task alerts with the whole run's
    table, so the task's failure callback stays quiet.
    """

    report_alerts = True

    def __init__(self, message: str, outcomes: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.outcomes = dict(outcomes or {})


def fail_now(message: str, *, outside: type[Exception] = RuntimeError) -> BaseException:
    """``AirflowFailException`` (the task fails at once, no retries); ``outside(message)`` without Airflow."""
    try:
        from airflow.sdk.exceptions import AirflowFailException
    except ImportError:  # pragma: no cover - outside Airflow
        return outside(message)
    return AirflowFailException(message)


_token_failure_cls: type[BaseException] | None = None


def token_failure(exc: TokenChainBroken, message: str) -> BaseException:
    """An exception that is both ``AirflowFailException`` (no retries) and ``TokenChainBroken`` (so
    ``alerts.failure_callback`` recognises it and, seeing ``alerted``, does not alert a second time)."""
    global _token_failure_cls
    if _token_failure_cls is None:
        try:
            from airflow.sdk.exceptions import AirflowFailException
        except ImportError:  # pragma: no cover - outside Airflow
            return exc

        class TokenChainFailure(AirflowFailException, TokenChainBroken):
            def __init__(self, cause: TokenChainBroken, text: str) -> None:
                Exception.__init__(self, text)
                self.tenant = cause.tenant
                self.reason = cause.reason
                self.how_to_fix = cause.how_to_fix
                self.system = getattr(cause, "system", "exact")
                self.conn_id = getattr(cause, "conn_id", None)
                self.alerted = getattr(cause, "alerted", False)

        _token_failure_cls = TokenChainFailure
    return _token_failure_cls(exc, message)  # type: ignore[call-arg]


_records_failure_cls: type[BaseException] | None = None


def records_failure(message: str, outcomes: Mapping[str, Any]) -> BaseException:
    """A :class:`RecordsNotDone` that is an ``AirflowException`` (retryable) when Airflow is there."""
    global _records_failure_cls
    if _records_failure_cls is None:
        try:
            from airflow.sdk.exceptions import AirflowException
        except ImportError:  # pragma: no cover - outside Airflow
            return RecordsNotDone(message, outcomes)

        class StageRecordsNotDone(AirflowException, RecordsNotDone):
            def __init__(self, text: str, counts: Mapping[str, Any] | None = None) -> None:
                RecordsNotDone.__init__(self, text, counts)

        _records_failure_cls = StageRecordsNotDone
    return _records_failure_cls(message, outcomes)  # type: ignore[call-arg]
