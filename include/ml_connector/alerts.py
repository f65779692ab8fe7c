"""Alerts to the people who can act: log, e-mail, Slack, generic webhook (per tenant, ``alerts:`` in the tenant file).

- ``send_alert(tenant, subject, body)`` delivers over every channel of the tenant. A failing channel is logged and
  the others still get the message; an alert never raises (it must not hide the error that caused it).
- ``failure_callback(tenant_name)`` is a task ``on_failure_callback``: it names the DAG, task, run and error, and for
  a dead Exact token chain sends ``token_failure_alert`` instead (unless that chain's alert already went out when
  the chain broke).
- ``token_failure_alert(tenant, exc)`` says which tenant must reconnect to Exact Online and exactly how (CLI and UI),
  or, for ``exc.system == "jaggaer"``, which Airflow connection JAGGAER refused and how to fix it.

Each channel is an Airflow Notifier from its provider, built for one message and sent at once: e-mail through the smtp
provider's ``SmtpNotifier`` (connection ``alerts.smtp_conn_id``), Slack through the slack provider's
``SlackWebhookNotifier``, the generic webhook through the http provider's ``HttpNotifier`` (a JSON POST to the host of
``alerts.webhook_conn_id``, login/password as basic auth). Slack: the incoming webhook URL carries its secret in the
path, so the HTTP connection ``alerts.slack_conn_id`` holds it in its **password** (encrypted by Airflow), either the
whole URL or the part after the host (``T…/B…/…`` with host ``https://hooks.slack.com/services``), as the slack
provider's own connection type does; the URL is built at send time and registered with Airflow's secret masker (no log
line ever names it). A connection with the whole URL in its host still works but is warned about (the host is stored
unencrypted). A failing channel is logged with the exception's type (and HTTP status) only: exception texts of HTTP
libraries quote the URL. Providers are imported only when a channel needs them.

Adding an alert: a function that builds a subject and a body and calls ``send_alert(tenant, subject, body)``; the
channels, the fan-out over them and the failure handling stay here.
"""

from __future__ import annotations

import html
import logging
import os
import re
import sys
from collections.abc import Callable
from typing import Any

from ml_connector.config.tenant import TenantConfig
from ml_connector.errors import TokenChainBroken
from ml_connector.settings import get_setting

log = logging.getLogger("ml_connector.alerts")
_SLACK_SDK_LOG = logging.getLogger("ml_connector.alerts.slack_sdk")
_SLACK_SDK_LOG.setLevel(logging.WARNING)


def ui_base_url() -> str:
    """Where people reach the Airflow UI: ``MLC_UI_BASE_URL`` / ``[ml_connector] ui_base_url``, else Airflow's
    ``[api] base_url``, else ``http://localhost:8080``.

    Airflow's configuration is consulted only when Airflow is already loaded (tasks, api-server): importing it just
    for a URL would cost seconds and reconfigure logging in a process that does not use Airflow.
    """
    configured = os.environ.get("MLC_UI_BASE_URL")
    if not configured and "airflow.configuration" in sys.modules:
        configured = get_setting("ui_base_url")
        if not configured:
            try:
                from airflow.configuration import conf

                configured = conf.get("api", "base_url", fallback=None)
            except Exception:
                configured = None
    return (configured or "http://localhost:8080").rstrip("/")


def reconnect_instructions(tenant: str) -> str:
    return (
        f"Reconnect tenant {tenant!r} to Exact Online (a person with access to its Exact divisions must consent):\n"
        f"  - in the Airflow UI: {ui_base_url()}/ml-connector/exact/connect?tenant={tenant}\n"
        f"  - or from a shell: mlc exact connect --tenant {tenant}   (open the printed link, then\n"
        f"    mlc exact authorize --tenant {tenant} --redirect-url '<the address the browser ended on>')\n"
        f"  - check with: mlc status"
    )


# --- delivery ---------------------------------------------------------------------------------------------------
def _deliver_log(tenant: TenantConfig, subject: str, body: str) -> None:
    log.error("ALERT [%s] %s\n%s", tenant.name, subject, body)


def _deliver_email(tenant: TenantConfig, subject: str, body: str) -> None:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    _send(
        SmtpNotifier(
            to=list(tenant.alerts.email_to),
            subject=subject,
            html_content=f"<pre>{html.escape(body)}</pre>",
            smtp_conn_id=tenant.alerts.smtp_conn_id,
        )
    )


def _send(notifier: Any) -> None:
    """Send one message through an Airflow Notifier now.

    ``notify`` directly, not the Notifier's ``__call__``: that renders the subject and body as Jinja templates against
    a task context, and an alert's text is final (an exception message may well contain ``{{``)."""
    notifier.notify({})


def _mask(*secrets: str | None) -> None:
    """Register secrets with Airflow's secret masker (task logs); harmless where Airflow's SDK is missing."""
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - Airflow without the task SDK
        return
    for secret in secrets:
        if secret:
            try:
                mask_secret(secret)
            except Exception:  # pragma: no cover - masking must never stop an alert
                log.debug("could not register a secret with the masker", exc_info=True)


def slack_webhook_url(conn_id: str) -> str:
    """The Slack incoming-webhook URL of HTTP connection ``conn_id``, registered with the secret masker.

    The secret lives in the connection's **password**: the whole URL (``https://hooks.slack.com/services/T…/B…/…``)
    or the part after the host (``T…/B…/…``, host ``https://hooks.slack.com/services``). A URL in the host alone (the
    old way) still works, with a warning: Airflow stores the host unencrypted and shows it in the UI.
    """
    from ml_connector.errors import ConfigError

    conn = _connection(conn_id)
    host = (conn.host or "").strip()
    secret = (conn.password or "").strip()
    if secret.startswith(("https://", "http://")):
        url = secret
    elif secret:
        if not host:
            raise ConfigError(
                f"connection {conn_id!r}: host is empty; set it to https://hooks.slack.com/services (the password "
                "holds the rest of the webhook URL)"
            )
        scheme, _, rest = host.rpartition("://")
        netloc, _, path = rest.partition("/")
        if conn.port and ":" not in netloc:
            netloc = f"{netloc}:{conn.port}"
        base = f"{scheme or conn.schema or 'https'}://{netloc}/{path}"
        url = f"{base.rstrip('/')}/{secret.lstrip('/')}"
    elif host:
        url = host if "://" in host else f"https://{host}"
        log.warning(
            "connection %s: the Slack webhook URL is in the connection's host, which Airflow stores unencrypted; "
            "put the URL (or the part after https://hooks.slack.com/services/) in the password instead",
            conn_id,
        )
    else:
        raise ConfigError(f"connection {conn_id!r}: no Slack webhook URL (set the password to the webhook URL)")
    _mask(url, secret, host if not secret else None)
    return url


def _slack_notifier(conn_id: str, text: str) -> Any:
    """The slack provider's ``SlackWebhookNotifier`` for HTTP connection ``conn_id``, its URL from
    :func:`slack_webhook_url` (masked; also the older whole-URL-in-the-host form, which the provider's own connection
    parsing refuses)."""
    from functools import cached_property

    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier
    from slack_sdk import WebhookClient

    class TenantSlackWebhookHook(SlackWebhookHook):
        @cached_property
        def client(self) -> WebhookClient:
            # no retries (one attempt, as every channel); slack_sdk logs the URL at INFO and DEBUG: a logger of ours
            # that keeps warnings and errors only (those never quote the URL)
            return WebhookClient(
                url=slack_webhook_url(self.slack_webhook_conn_id),
                timeout=self.timeout or 10,
                retry_handlers=[],
                logger=_SLACK_SDK_LOG,
            )

    class TenantSlackWebhookNotifier(SlackWebhookNotifier):
        @cached_property
        def hook(self) -> SlackWebhookHook:
            return TenantSlackWebhookHook(slack_webhook_conn_id=self.slack_webhook_conn_id, timeout=self.timeout)

    return TenantSlackWebhookNotifier(slack_webhook_conn_id=conn_id, text=text, timeout=10)


def _deliver_slack(tenant: TenantConfig, subject: str, body: str) -> None:
    assert tenant.alerts.slack_conn_id
    _send(_slack_notifier(tenant.alerts.slack_conn_id, f"*{subject}*\n```{body}```"))


def _deliver_webhook(tenant: TenantConfig, subject: str, body: str) -> None:
    from airflow.providers.http.notifications.http import HttpNotifier

    conn_id = tenant.alerts.webhook_conn_id
    assert conn_id
    host = _connection(conn_id).host
    if host and "/" in host.split("://", 1)[-1]:
        _mask(host)  # a path in a webhook URL may carry a token
    payload = {"tenant": tenant.name, "subject": subject, "body": body}
    _send(
        HttpNotifier(
            http_conn_id=conn_id,
            json=payload,
            headers={"Content-Type": "application/json"},
            extra_options={"timeout": 10, "check_response": True},
        )
    )


def _connection(conn_id: str) -> Any:
    try:
        from airflow.sdk import BaseHook
    except ImportError:  # pragma: no cover - older Airflow
        from airflow.hooks.base import BaseHook  # type: ignore[no-redef]

    return BaseHook.get_connection(conn_id)


CHANNELS: dict[str, Callable[[TenantConfig, str, str], None]] = {
    "log": _deliver_log,
    "email": _deliver_email,
    "slack": _deliver_slack,
    "webhook": _deliver_webhook,
}


def send_alert(tenant: TenantConfig, subject: str, body: str) -> None:
    """Deliver over every channel of the tenant; failures are logged, never raised."""
    full_subject = f"[ml-connector] {tenant.display_name or tenant.name}: {subject}"
    for channel in tenant.alerts.channels:
        deliver = CHANNELS.get(channel)
        if deliver is None:
            log.error("tenant %s: unknown alert channel %r", tenant.name, channel)
            continue
        try:
            deliver(tenant, full_subject, body)
        except Exception as exc:
            # Only the type (and HTTP status): the texts of HTTP exceptions quote the URL, and a webhook URL holds
            # its secret.
            log.error("tenant %s: alert over %s failed: %s", tenant.name, channel, _failure(exc))


def _failure(exc: BaseException) -> str:
    """What may be logged about a failed delivery: the exception type, the HTTP status, a ConfigError's text."""
    from ml_connector.errors import ConfigError

    if isinstance(exc, ConfigError):
        return f"{type(exc).__name__}: {exc}"
    reason = getattr(exc, "reason", None)
    if isinstance(reason, ConnectionError):  # urllib (slack_sdk) wraps it: name it as requests does
        return f"ConnectionError ({type(reason).__name__})"
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status is None:  # the slack provider's hook says "Response body: ..., Status Code: 404. See: ..."
        found = re.search(r"Status Code: (\d{3})\b", str(exc))
        status = int(found.group(1)) if found else None
    return f"{type(exc).__name__} (HTTP {status})" if status else type(exc).__name__


def token_failure_alert(tenant: TenantConfig, exc: TokenChainBroken) -> None:
    """The alert for a dead Exact token chain (what happened, what stops, how to reconnect), or for credentials
    JAGGAER refused (``exc.system == "jaggaer"``: which connection, what stops, how to fix it).

    Marks ``exc.alerted`` so that ``failure_callback`` does not send the same alert again for this exception.
    """
    if getattr(exc, "system", "exact") == "jaggaer":
        conn_id = getattr(exc, "conn_id", None) or tenant.jaggaer.conn_id
        body = (
            f"JAGGAER refused the credentials of Airflow connection {conn_id!r} (tenant {tenant.name!r}):\n"
            f"  {exc.reason}\n\n"
            "Nothing is sent to JAGGAER and nothing is read from it until it is fixed; runs fail at once. "
            "The Exact Online connection is not affected.\n\n"
            f"{exc.how_to_fix}\n\n"
            f"Fix the client id/secret (or XML Identity/SharedSecret) of connection {conn_id!r} in the Airflow UI\n"
            f"(Admin > Connections, {ui_base_url()}/connections), check it with the connection's Test button or\n"
            f"`mlc status --tenant {tenant.name}`, then clear the failed task."
        )
        send_alert(tenant, f"JAGGAER refused the credentials of connection {conn_id} (tenant {tenant.name})", body)
        exc.alerted = True  # type: ignore[attr-defined]
        return
    body = (
        f"The Exact Online connection of tenant {tenant.name!r} no longer works:\n"
        f"  {exc.reason}\n\n"
        "Nothing is posted to Exact Online and no purchase orders are read until it is fixed; runs fail at once.\n\n"
        f"{exc.how_to_fix}\n\n{reconnect_instructions(tenant.name)}"
    )
    send_alert(tenant, f"Exact Online must be reconnected (tenant {tenant.name})", body)
    exc.alerted = True  # type: ignore[attr-defined]  # failure_callback will not send it again


def budget_alert_text(tenant: TenantConfig, flow: str, run_id: str, lines: list[str]) -> tuple[str, str]:
    """Subject and body of the warning that a run left records for the next day (Exact's daily call budget:
    ``exact.daily_budget``). Not a failure: the run is green; nothing needs a person unless it happens every day."""
    section = getattr(tenant, flow, None)
    share = getattr(section, "exact_daily_share", None)
    first = lines[0].split("] ", 1)[-1] if lines else "records left for tomorrow"
    more = f" (and {len(lines) - 1} more division(s))" if len(lines) > 1 else ""
    subject = f"{tenant.name}/{flow}: {first}{more}"
    setting = (
        f"{flow}.exact_daily_share ({share:g}: it may use {share:.0%} of a division's daily Exact calls and keeps the "
        "rest for the other flow and for searches)"
        if isinstance(share, float)
        else f"{flow}.exact_daily_share"
    )
    body = (
        f"Run {run_id}: Exact Online's daily call budget that this flow may use is spent, so it stopped before "
        "spending what is kept for others:\n"
        + "\n".join(f"  - {line}" for line in lines)
        + "\n\nNothing failed: these records stay pending and the next run sends them first, before newer ones "
        "(without duplicates; the ledger knows what was sent). If this happens every day, the backlog is larger than "
        f"the budget: raise {setting} in the tenant file, or ask Exact for a higher daily limit."
    )
    return subject, body


def budget_paused_alert_text(tenant: TenantConfig, flow: str, run_id: str, line: str) -> tuple[str, str]:
    """Subject and body of the once-a-day warning that a flow paused for its share of Exact's daily calls
    (``flows.budget_plan.po_paused``). Not a failure: the runs stay green and go on by themselves after the reset."""
    section = getattr(tenant, flow, None)
    share = getattr(section, "exact_daily_share", None)
    setting = f"{flow}.exact_daily_share" + (f" ({share:g})" if isinstance(share, float) else "")
    body = (
        f"Run {run_id}: {line}.\n\nNothing failed and nothing is lost: what was not read or pushed stays for the next "
        "run (the sync cursor does not move past it), and the runs until the reset send nothing and stay green. "
        f"This alert is sent once per division and day. If it happens every day, raise {setting} in the tenant file, "
        "or ask Exact for a higher daily limit."
    )
    return f"{tenant.name}/{flow}: {line}", body


# --- task callback ----------------------------------------------------------------------------------------------
def _load_tenant(tenant_name: str) -> TenantConfig | None:
    try:
        from ml_connector.config import load_tenants

        return load_tenants()[tenant_name]
    except Exception as exc:
        log.error("alert for tenant %s: cannot load the tenant config (%s)", tenant_name, exc)
        return None


def failure_callback(tenant_name: str) -> Callable[[Any], None]:
    """A task ``on_failure_callback`` that alerts the tenant's channels (never raises).

    Not for a post task that failed because records of its batch failed (``task_errors.RecordsNotDone``): the
    run's report task alerts for those, with the whole run's table."""

    def _on_failure(context: Any) -> None:
        try:
            tenant = _load_tenant(tenant_name)
            if tenant is None:
                return
            exc = context.get("exception") if hasattr(context, "get") else None
            if isinstance(exc, TokenChainBroken):
                if getattr(exc, "alerted", False):
                    return  # the alert went out when the chain broke
                token_failure_alert(tenant, exc)
                return
            if getattr(exc, "report_alerts", False):
                return  # records failed in a post stage: the run's report task alerts with the whole table
            ti = context.get("ti") or context.get("task_instance")
            dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
            task_id = getattr(ti, "task_id", "?")
            run_id = context.get("run_id") or getattr(ti, "run_id", "?")
            try_number = getattr(ti, "try_number", "?")
            error = f"{type(exc).__name__}: {exc}" if exc is not None else "(no exception in the context)"
            body = (
                f"Task {dag_id}.{task_id} failed (run {run_id}, try {try_number}).\n{error}\n\n"
                f"Logs and retry: {ui_base_url()}/dags/{dag_id}/runs/{run_id}"
            )
            send_alert(tenant, f"{dag_id}.{task_id} failed", body)
        except Exception:
            log.exception("failure alert for tenant %s could not be sent", tenant_name)

    return _on_failure
