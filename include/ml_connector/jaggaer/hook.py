"""``JaggaerHook``: the connector's only door to JAGGAER (J1P REST + eProcurement XML imports).

Connection (type ``jaggaer``, fields declared in ``ml_connector.provider``):

- ``host``: J1P base URL; ``login``/``password``: OAuth client id/secret (client-credentials grant);
- extra ``token_url`` (default ``{host}/auth/realms/J1p-integrations/protocol/openid-connect/token``),
  ``xml_url`` (the eProcurement host, e.g. ``https://xyz.jaggaer.com``, or its Router base
  ``https://xyz.jaggaer.com/apps/Router``; default ``{host}/apps/Router``), ``xml_identity``, ``xml_shared_secret``;
- extra ``sandbox`` (true only for the local sandboxes): allows http on loopback. Every URL (host, ``token_url``,
  ``xml_url``) must otherwise be https to a public host (``ml_connector.net_policy``): the secrets go nowhere else;
- optional extra knobs for JAGGAER's guesses (docs/sandbox-jaggaer.md): ``filter_style`` (``fiql`` | ``params``),
  ``date_from_param`` / ``date_to_param`` (names for the ``params`` style), ``warning_return_codes`` (list or
  comma-separated; default ``["1"]``), ``already_exists_pattern`` (regex), ``po_gl_field`` /
  ``po_cost_center_field`` (names of the PO line custom fields), ``verify`` (TLS verification, default true).

Rules: every call goes through ``ml_connector.http.send`` (timeouts, full-jitter retries on reads, writes never
re-sent blindly, one audit row per write attempt). Tokens, the client secret and the SharedSecret are registered
with Airflow's secret masker and never reach a log line, an exception or an audit row.
"""

from __future__ import annotations

import dataclasses
import email.utils
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import requests
from airflow.providers.http.hooks.http import HttpHook

from ml_connector.errors import (
    AmbiguousWriteError,
    ConfigError,
    ConnectorError,
    RejectedError,
    TokenChainBroken,
    TransientError,
)
from ml_connector.http import (
    AuditContext,
    AuditSink,
    NullAudit,
    RetryPolicy,
    backoff_delay,
    env_settings_once,
    json_of,
    send,
)
from ml_connector.jaggaer import j1p
from ml_connector.jaggaer.connection import jaggaer_urls
from ml_connector.jaggaer.xml import (
    DEFAULT_ALREADY_EXISTS_PATTERN,
    PurchaseOrder,
    Supplier,
    XmlImportResult,
    build_po_message,
    build_supplier_sync,
    parse_po_response,
    parse_supplier_response,
    redact,
)
from ml_connector.net_policy import enforce

log = logging.getLogger(__name__)

INVOICES_PATH = "/j1p/api/public/ji/v1/invoices"
COMPANY_PROFILES_PATH = "/j1p/api/public/ja/v1/companyprofiles"
PO_IMPORT = "POXMLImport"
SUPPLIER_IMPORT = "TSMSupplierXMLImport"

#: Renew this many seconds before ``expires_in`` runs out (half the lifetime for very short-lived tokens).
TOKEN_RENEW_MARGIN = 30.0
DEFAULT_EXPIRES_IN = 300.0

_CREDENTIAL_ERRORS = {"invalid_client", "unauthorized_client", "invalid_grant", "unauthorized"}


def _mask(value: str | None) -> None:
    """Register a secret with Airflow's masker (task logs and the supervisor); harmless outside a task."""
    if not value:
        return
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older task SDKs
        return
    try:
        mask_secret(value)
    except Exception:  # pragma: no cover - masking must never break a call
        log.debug("could not register a secret with the masker", exc_info=True)


# ---------------------------------------------------------------------------------------------------------------
# token cache (per process, keyed by connection)


@dataclass
class _Token:
    value: str
    renew_at: float
    expires_at: float


_TOKENS: dict[tuple[str, ...], _Token] = {}
_TOKEN_LOCKS: dict[tuple[str, ...], threading.Lock] = {}
_CACHE_LOCK = threading.Lock()


def _key_lock(key: tuple[str, ...]) -> threading.Lock:
    with _CACHE_LOCK:
        return _TOKEN_LOCKS.setdefault(key, threading.Lock())


def clear_token_cache() -> None:
    """Forget every cached J1P token of this process (tests; after rotating a client secret)."""
    with _CACHE_LOCK:
        _TOKENS.clear()


# ---------------------------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class JaggaerConfig:
    """What the hook reads from its connection (and tenant config / constructor overrides)."""

    conn_id: str
    base_url: str
    token_url: str
    xml_url: str
    client_id: str
    client_secret: str = dataclasses.field(repr=False)
    xml_identity: str | None
    xml_shared_secret: str | None = dataclasses.field(repr=False)
    filter_style: j1p.FilterStyle = "fiql"
    date_from_param: str = "lastUpdateFrom"
    date_to_param: str = "lastUpdateTo"
    warning_return_codes: tuple[str, ...] = j1p.DEFAULT_WARNING_RETURN_CODES
    already_exists_pattern: str = DEFAULT_ALREADY_EXISTS_PATTERN
    po_gl_field: str = "GLAccount"
    po_cost_center_field: str = "CostCenter"
    verify: bool | str = True

    @property
    def cache_key(self) -> tuple[str, ...]:
        # The secret's hash is part of the key so a rotated secret never reuses a token of the old one.
        secret_hash = hashlib.sha256(self.client_secret.encode()).hexdigest()[:16]
        return (self.conn_id, self.token_url, self.client_id, secret_hash)


def _as_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, list | tuple | set):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return (str(value),)


def _tenant_option(tenant: Any, name: str) -> Any:
    """``tenant.jaggaer.<name>`` when a tenant config object carries it (JaggaerSection may grow these knobs)."""
    section = getattr(tenant, "jaggaer", None)
    return getattr(section, name, None) if section is not None else None


# ---------------------------------------------------------------------------------------------------------------
# the hook


class _CountingSession(requests.Session):
    """A ``requests.Session`` that counts every request it sends (``JaggaerHook.call_count``)."""

    def __init__(self, on_request: Callable[[], None]) -> None:
        super().__init__()
        self._on_request = on_request

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self._on_request()
        return super().request(method, url, *args, **kwargs)


class JaggaerHook(HttpHook):
    """JAGGAER J1P (invoices, company profiles) and eProcurement XML (PO import, supplier upsert).

    :param jaggaer_conn_id: Airflow connection of type ``jaggaer``.
    :param tenant: the tenant name (for error messages) or a ``TenantConfig`` (its name, and its ``jaggaer``
        section's ``filter_style`` / ``warning_return_codes`` when present).
    :param audit: where write attempts are recorded (``store.audit.DbAuditSink``); default: nowhere.
    :param policy: timeouts, retries and 429 bounds.
    :param filter_style: ``fiql`` or ``params``; overrides tenant config and connection extra.
    :param sleep: how to wait (tests pass a recorder).
    :param clock: epoch seconds, used for token lifetimes (tests move it).
    """

    conn_name_attr = "jaggaer_conn_id"
    default_conn_name = "jaggaer_default"
    conn_type = "jaggaer"
    hook_name = "JAGGAER"

    def __init__(
        self,
        jaggaer_conn_id: str = default_conn_name,
        tenant: Any = None,
        *,
        audit: AuditSink | None = None,
        policy: RetryPolicy = RetryPolicy(),
        filter_style: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(method="GET", http_conn_id=jaggaer_conn_id)
        self.jaggaer_conn_id = jaggaer_conn_id
        self.tenant = tenant
        self.tenant_name: str = str(getattr(tenant, "name", None) or tenant or jaggaer_conn_id)
        self.audit: AuditSink = audit if audit is not None else NullAudit()
        self.policy = policy
        if filter_style is not None and filter_style not in j1p.FILTER_STYLES:
            raise ConfigError(f"filter_style must be one of {', '.join(j1p.FILTER_STYLES)}, got {filter_style!r}")
        self._filter_style_override = filter_style
        self._sleep = sleep
        self._clock = clock
        self.call_count = 0
        self._cfg: JaggaerConfig | None = None
        self._session: requests.Session | None = None

    # -- configuration -------------------------------------------------------------------------------------
    @property
    def config(self) -> JaggaerConfig:
        if self._cfg is None:
            self._cfg = self._load_config()
        return self._cfg

    def _load_config(self) -> JaggaerConfig:
        conn = self.get_connection(self.jaggaer_conn_id)
        extra = conn.extra_dejson or {}
        problems: list[str] = []
        where = f"connection {self.jaggaer_conn_id!r}"
        if not conn.host:
            problems.append(f"{where}: host (J1P API base URL) is empty")
        urls = jaggaer_urls(conn, self.jaggaer_conn_id)
        base_url = urls.base_url
        if base_url:
            # Set here, not by HttpHook from the connection (that defaults to http, and the client secret must not
            # travel in clear): HttpHook.url_from_endpoint reads the connection only while base_url is empty.
            self.base_url = base_url
        if not conn.login:
            problems.append(f"{where}: login (OAuth client id) is empty")
        if not conn.password:
            problems.append(f"{where}: password (OAuth client secret) is empty")
        style = (
            self._filter_style_override
            or _tenant_option(self.tenant, "filter_style")
            or extra.get("filter_style")
            or "fiql"
        )
        if style not in j1p.FILTER_STYLES:
            problems.append(f"{where}: filter_style must be one of {', '.join(j1p.FILTER_STYLES)}, got {style!r}")
        warning_codes = _as_list(_tenant_option(self.tenant, "warning_return_codes"))
        if not warning_codes and "warning_return_codes" in extra:
            warning_codes = _as_list(extra.get("warning_return_codes"))
        elif not warning_codes:
            warning_codes = j1p.DEFAULT_WARNING_RETURN_CODES
        pattern = extra.get("already_exists_pattern") or DEFAULT_ALREADY_EXISTS_PATTERN
        try:
            re.compile(pattern)
        except re.error as exc:
            problems.append(f"{where}: already_exists_pattern is not a valid regular expression: {exc}")
        checks = list(urls.checks)
        if problems or any(c.problems and not c.unresolved for c in checks):
            raise ConfigError(problems + [p for c in checks for p in c.problems])
        enforce(checks)  # only hosts that do not resolve are left: TransientError (DNS may be back next try)
        verify = extra.get("verify", True)
        if isinstance(verify, str) and verify.strip().lower() in ("false", "0", "no"):
            verify = False
        cfg = JaggaerConfig(
            conn_id=self.jaggaer_conn_id,
            base_url=base_url,
            token_url=urls.token_url,
            xml_url=urls.xml_url,
            client_id=str(conn.login),
            client_secret=str(conn.password),
            xml_identity=(extra.get("xml_identity") or None),
            xml_shared_secret=(extra.get("xml_shared_secret") or None),
            filter_style=style,
            date_from_param=extra.get("date_from_param") or "lastUpdateFrom",
            date_to_param=extra.get("date_to_param") or "lastUpdateTo",
            warning_return_codes=warning_codes,
            already_exists_pattern=pattern,
            po_gl_field=extra.get("po_gl_field") or "GLAccount",
            po_cost_center_field=extra.get("po_cost_center_field") or "CostCenter",
            verify=verify,
        )
        _mask(cfg.client_secret)
        _mask(cfg.xml_shared_secret)
        return cfg

    def _secrets(self) -> list[str]:
        cfg = self._cfg
        if cfg is None:
            return []
        return [s for s in (cfg.client_secret, cfg.xml_shared_secret) if s]

    def get_conn(self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None):
        """The hook's ``requests.Session``. Unlike ``HttpHook.get_conn`` it carries **no** basic auth and does not
        turn the connection extra into headers (the extra holds the SharedSecret)."""
        if self._session is None:
            session = _CountingSession(self._count)
            session.verify = self.config.verify
            cfg = self.config
            env_settings_once(session, cfg.base_url, cfg.token_url, cfg.xml_url)
            session.headers.update({"User-Agent": "ml-connector (JAGGAER)"})
            if self.keep_alive_adapter is not None:
                session.mount("http://", self.keep_alive_adapter)
                session.mount("https://", self.keep_alive_adapter)
            self._session = session
        if headers:
            self._session.headers.update(headers)
        return self._session

    def _count(self) -> None:
        self.call_count += 1

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    # -- 429 -----------------------------------------------------------------------------------------------
    def _on_429(self, response: requests.Response, attempt: int) -> float:
        """Seconds to wait after a 429: ``Retry-After`` (seconds or HTTP date) when sent, else full-jitter backoff
        (``send`` caps the wait at ``policy.max_429_wait``)."""
        raw = (response.headers.get("Retry-After") or "").strip()
        if raw:
            try:
                return max(0.0, float(raw))
            except ValueError:
                try:
                    when = email.utils.parsedate_to_datetime(raw)
                except (TypeError, ValueError):
                    when = None
                if when is not None:
                    if when.tzinfo is None:
                        when = when.replace(tzinfo=UTC)
                    return max(0.0, (when - datetime.now(UTC)).total_seconds())
        return backoff_delay(attempt - 1, self.policy)

    # -- token ---------------------------------------------------------------------------------------------
    def _token(self, rejected: str | None = None) -> str:
        """A valid access token: the cached one, or a new one when it is due (or was ``rejected`` by a 401)."""
        cfg = self.config
        key = cfg.cache_key
        with _key_lock(key):
            cached = _TOKENS.get(key)
            if cached is not None and cached.value != rejected and self._clock() < cached.renew_at:
                return cached.value
            token = self._fetch_token(cfg)
            _TOKENS[key] = token
            return token.value

    def _broken(self, reason: str, how_to_fix: str | None = None) -> TokenChainBroken:
        """JAGGAER refused our credentials: a ``TokenChainBroken`` with ``system="jaggaer"`` (alerts and
        ``flows.runtime.fail_fast`` then tell people to fix this connection, not to reconnect Exact Online)."""
        return TokenChainBroken(
            self.tenant_name,
            reason,
            how_to_fix
            or (
                f"Check the client id and secret (and token URL) of Airflow connection {self.jaggaer_conn_id!r} "
                "(type jaggaer), then clear the task."
            ),
            system="jaggaer",
            conn_id=self.jaggaer_conn_id,
        )

    def _fetch_token(self, cfg: JaggaerConfig) -> _Token:
        session = self.get_conn()
        response = send(
            session,
            "POST",
            cfg.token_url,
            write=False,
            policy=self.policy,
            on_429=self._on_429,
            sleep=self._sleep,
            data={"grant_type": "client_credentials", "client_id": cfg.client_id, "client_secret": cfg.client_secret},
            headers={"Accept": "application/json"},
        )
        status = response.status_code
        body: Any = None
        try:
            body = json_of(response)
        except ValueError:
            body = None
        error = str(body.get("error") or "") if isinstance(body, dict) else ""
        if status in (400, 401, 403) and (status == 401 or error in _CREDENTIAL_ERRORS):
            detail = f" ({error})" if error else f" (HTTP {status})"
            raise self._broken(f"client id/secret refused by JAGGAER{detail}")
        if status == 429:
            raise TransientError("JAGGAER token endpoint: still rate limited (HTTP 429) after waiting", status=status)
        if status >= 500:
            raise TransientError(f"JAGGAER token endpoint: HTTP {status}", status=status)
        if status >= 400:
            raise RejectedError(
                f"JAGGAER token endpoint refused the request: HTTP {status} {error}".strip(),
                status=status,
                body=redact(response.text[:500], self._secrets()),
            )
        access = body.get("access_token") if isinstance(body, dict) else None
        if not access or not isinstance(access, str):
            raise TransientError("JAGGAER token endpoint: HTTP 200 without an access_token", status=status)
        _mask(access)
        try:
            lifetime = float(body.get("expires_in") or DEFAULT_EXPIRES_IN)
        except (TypeError, ValueError):
            lifetime = DEFAULT_EXPIRES_IN
        now = self._clock()
        margin = min(TOKEN_RENEW_MARGIN, lifetime / 2)
        log.info("JAGGAER token issued for connection %s (expires in %.0fs)", cfg.conn_id, lifetime)
        return _Token(value=access, renew_at=now + lifetime - margin, expires_at=now + lifetime)

    # -- J1P -----------------------------------------------------------------------------------------------
    def _j1p_get(self, path: str, params: dict[str, Any] | None = None, *, what: str) -> Any:
        cfg = self.config
        url = f"{cfg.base_url}{path}"
        session = self.get_conn()
        token = self._token()
        response: requests.Response | None = None
        for attempt in (1, 2):
            response = send(
                session,
                "GET",
                url,
                write=False,
                policy=self.policy,
                on_429=self._on_429,
                sleep=self._sleep,
                params=params,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            )
            if response.status_code != 401:
                break
            if attempt == 1:
                # Expired early, revoked, or JAGGAER's broken 401 (no WWW-Authenticate, "Content-Type: ; charset=…"):
                # the status alone decides. Renew once and repeat the read.
                log.info("%s: HTTP 401, renewing the access token once", what)
                token = self._token(rejected=token)
                continue
            raise self._broken(f"JAGGAER refused a freshly issued access token (HTTP 401) on {what}")
        assert response is not None
        return self._j1p_body(response, what)

    def _j1p_body(self, response: requests.Response, what: str) -> Any:
        status = response.status_code
        if status == 429:
            raise TransientError(f"{what}: still rate limited (HTTP 429) after waiting", status=status)
        if status >= 500:
            raise TransientError(f"{what}: HTTP {status}", status=status)
        if status >= 400:
            message = response.text[:500]
            try:
                data = response.json()
                if isinstance(data, dict):
                    message = str(
                        data.get("returnMessage") or data.get("error_description") or data.get("error") or message
                    )
            except ValueError:
                pass
            raise RejectedError(f"{what}: {message}", status=status, body=response.text[:2000])
        try:
            body = json.loads(response.content, parse_float=Decimal)
        except ValueError:
            ctype = response.headers.get("Content-Type", "")
            found = j1p.describe_unreadable(response.content, ctype)
            raise TransientError(
                f"{what}: HTTP {status} with a body that is not JSON: {found}",
                status=status,
            ) from None
        return j1p.check_envelope(body, what=what, http_status=status, warning_codes=self.config.warning_return_codes)

    def iter_invoices(self, updated_from: datetime, updated_to: datetime) -> Iterator[dict[str, Any]]:
        """Every invoice header with ``updated_from <= lastUpdate < updated_to``, all pages, in the server's order
        (by ``invoiceId``). Headers are the raw J1P dicts (money as ``Decimal``, see ``j1p.normalize_header``)."""
        cfg = self.config
        params = j1p.last_update_filter(
            updated_from,
            updated_to,
            cfg.filter_style,
            from_param=cfg.date_from_param,
            to_param=cfg.date_to_param,
        )

        def fetch(start: int) -> dict[str, Any]:
            return self._j1p_get(INVOICES_PATH, {**params, "start": start}, what="J1P invoice list")

        def invoice_id(item: Any) -> Any:
            header = item.get("header", item) if isinstance(item, dict) else {}
            return str(header.get("invoiceId")) if isinstance(header, dict) else repr(item)

        for item in j1p.paginate(fetch, j1p.INVOICE_LIST_KEYS, id_of=invoice_id):
            if isinstance(item, dict) and isinstance(item.get("header"), dict):
                yield item["header"]
            elif isinstance(item, dict):
                yield item

    def get_invoice(self, invoice_id: int | str) -> dict[str, Any]:
        """One invoice: ``{"header": {...}, "lineList": {"invoiceLine": [...]}}`` (envelope fields removed).
        A missing invoice is JAGGAER's ``returnCode`` error ⇒ ``RejectedError``."""
        body = self._j1p_get(f"{INVOICES_PATH}/{quote(str(invoice_id), safe='')}", what=f"J1P invoice {invoice_id}")
        if not isinstance(body, dict) or not isinstance(body.get("header"), dict):
            raise RejectedError(f"J1P invoice {invoice_id}: answer has no header", status=200)
        return {k: v for k, v in body.items() if k not in ("returnCode", "returnMessage")}

    def find_company(self, ext_code: str) -> dict[str, Any] | None:
        """The company profile (``returnCompanyInfo``: ``bravoId``, ``companyName``, ``extCode``, ``fiscalCode``,
        ``euVat``) whose ``extCode`` is ``ext_code``, or ``None``."""
        ext_code = str(ext_code).strip()
        if not ext_code:
            raise ValueError("ext_code is empty")
        body = self._j1p_get(
            COMPANY_PROFILES_PATH, {"flt": f"extCode=={_fiql_value(ext_code)}"}, what="J1P company profiles"
        )
        infos: list[dict[str, Any]] = []
        for item in j1p.list_items(body, ("returnCompanyData",)):
            if not isinstance(item, dict):
                continue
            info = item.get("returnCompanyInfo", item)
            for one in info if isinstance(info, list) else [info]:
                if isinstance(one, dict):
                    infos.append(one)
        matches = [i for i in infos if str(i.get("extCode", "")).strip() == ext_code]
        if len(matches) > 1:
            log.warning("J1P company profiles: %d companies carry extCode %s; using the first", len(matches), ext_code)
        return matches[0] if matches else None

    # -- eProcurement XML ----------------------------------------------------------------------------------
    def _xml_credentials(self) -> tuple[str, str]:
        cfg = self.config
        if not cfg.xml_identity or not cfg.xml_shared_secret:
            raise ConfigError(
                f"connection {self.jaggaer_conn_id!r}: xml_identity and xml_shared_secret are needed for XML imports"
            )
        return cfg.xml_identity, cfg.xml_shared_secret

    def _xml_post(
        self,
        endpoint: str,
        body: bytes,
        parser: Callable[[bytes, int], XmlImportResult],
        audit_ctx: AuditContext | None,
        *,
        policy: RetryPolicy | None = None,
    ) -> tuple[requests.Response, XmlImportResult]:
        url = f"{self.config.xml_url}/{endpoint}"
        secrets = self._secrets()
        results: dict[int, XmlImportResult] = {}

        def parse(response: requests.Response) -> XmlImportResult:
            key = id(response)
            if key not in results:
                results[key] = parser(response.content, response.status_code)
            return results[key]

        def describe(response: requests.Response) -> tuple[str, str, str | None]:
            result = parse(response)
            status = response.status_code
            if status == 429:
                outcome = "rate_limited"
            elif status == 401:
                outcome = "unauthorized"
            elif result.ok:
                outcome = "ok"
            elif result.already_exists:
                outcome = "already_exists"
            elif not result.parsed and status >= 200 and (status < 300 or status >= 500):
                outcome = "ambiguous"
            else:
                outcome = "rejected"
            return outcome, redact(result.summary(), secrets)[:2000], result.target_id

        log.debug("POST %s: %s", endpoint, redact(body, secrets)[:4000])
        response = send(
            self.get_conn(),
            "POST",
            url,
            write=True,
            policy=policy or self.policy,
            on_429=self._on_429,
            audit=self.audit,
            audit_ctx=audit_ctx,
            describe=describe,
            sleep=self._sleep,
            data=body,
            headers={"Content-Type": "application/xml; charset=UTF-8", "Accept": "application/xml, text/xml"},
        )
        return response, parse(response)

    def _xml_outcome(self, endpoint: str, response: requests.Response, result: XmlImportResult) -> XmlImportResult:
        status = response.status_code
        if status == 401:
            raise self._broken(
                "XML Identity/SharedSecret refused by JAGGAER",
                f"Check xml_identity and xml_shared_secret of Airflow connection {self.jaggaer_conn_id!r} "
                "(type jaggaer), then clear the task.",
            )
        if status == 429:
            raise TransientError(f"POST {endpoint}: still rate limited (HTTP 429) after waiting", status=status)
        if not result.parsed and (status >= 500 or 200 <= status < 300):
            raise AmbiguousWriteError(
                f"POST {endpoint}: HTTP {status} without a readable Status; the import may have been applied",
                status=status,
            )
        return result

    def import_po(self, po: PurchaseOrder, *, audit_ctx: AuditContext) -> XmlImportResult:
        """Send one purchase order (``POXMLImport``) and return JAGGAER's verdict. Never re-sends.

        - ``result.ok``: imported; ``result.already_exists``: this PONumber exists (success for a PO we pushed);
          otherwise ``result.errors`` / ``line_errors`` say why it was refused.
        - ``AmbiguousWriteError``: the connection dropped / timed out after sending, or a 5xx (or 2xx) came back
          without a readable Status: look the PO up before sending again.
        - ``TokenChainBroken``: Identity/SharedSecret refused (HTTP 401). ``TransientError``: still 429.
        """
        identity, secret = self._xml_credentials()
        cfg = self.config
        body = build_po_message(
            po, identity, secret, gl_field=cfg.po_gl_field, cost_center_field=cfg.po_cost_center_field
        )
        parser = _po_parser(cfg.already_exists_pattern)
        response, result = self._xml_post(PO_IMPORT, body, parser, audit_ctx)
        return self._xml_outcome(PO_IMPORT, response, result)

    def sync_suppliers(self, suppliers: list[Supplier], *, audit_ctx: AuditContext) -> XmlImportResult:
        """Upsert ``suppliers`` in one ``SupplierSyncMessage`` (the caller batches).

        The upsert is keyed on ERPNumber and idempotent, so after an ambiguous outcome (dropped connection,
        timeout, 5xx without a readable Status) the same message is sent **once more**; a second ambiguity raises
        ``AmbiguousWriteError``. Per-supplier refusals (HTTP 406) come back in ``result.object_errors`` keyed by
        ERPNumber; the suppliers not listed there were applied. An empty list sends nothing.
        """
        if not suppliers:
            return XmlImportResult(ok=True, status_code=200, status_text="nothing to send", counts={"attempted": 0})
        identity, secret = self._xml_credentials()
        body = build_supplier_sync(suppliers, identity, secret)
        for attempt in (1, 2):
            try:
                response, result = self._xml_post(SUPPLIER_IMPORT, body, parse_supplier_response, audit_ctx)
                return self._xml_outcome(SUPPLIER_IMPORT, response, result)
            except AmbiguousWriteError as exc:
                if attempt == 2:
                    raise
                log.warning("%s; supplier upsert is idempotent, sending the same message once more", exc)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- connection test -----------------------------------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        """Token, one cheap J1P read, and an XML credentials check. Creates nothing at JAGGAER.

        The XML check sends a ``SupplierSyncMessage`` with no ``Supplier``: JAGGAER authenticates the header
        before it validates the body, so a 401 means the Identity/SharedSecret were refused, while a 400 ("at
        least one Supplier is required") or 200/202 means they were accepted; with no supplier there is nothing
        to create or change.
        """
        saved_policy = self.policy
        self.policy = dataclasses.replace(
            saved_policy,
            max_attempts=1,
            connect_timeout=min(saved_policy.connect_timeout, 5.0),
            read_timeout=min(saved_policy.read_timeout, 20.0),
            max_429_retries=1,
            max_429_wait=min(saved_policy.max_429_wait, 5.0),
        )
        try:
            return self._test_connection()
        finally:
            self.policy = saved_policy

    def _test_connection(self) -> tuple[bool, str]:
        try:
            cfg = self.config
        except ConfigError as exc:
            return False, f"connection settings incomplete: {exc}"
        except Exception as exc:
            return False, f"connection {self.jaggaer_conn_id!r} cannot be read: {type(exc).__name__}: {exc}"

        # 1. token (always a fresh one: a cached token would hide a changed secret)
        try:
            with _key_lock(cfg.cache_key):
                _TOKENS[cfg.cache_key] = self._fetch_token(cfg)
        except TokenChainBroken:
            return False, "token endpoint refused client id/secret"
        except TransientError as exc:
            return False, f"J1P host unreachable: {exc}"
        except ConnectorError as exc:
            return False, f"token endpoint error: {exc}"

        # 2. one cheap J1P read: the invoice list over a one-second window in the year 2000 (no records)
        start = datetime(2000, 1, 1, tzinfo=UTC)
        params = j1p.last_update_filter(
            start,
            start + timedelta(seconds=1),
            cfg.filter_style,
            from_param=cfg.date_from_param,
            to_param=cfg.date_to_param,
        )
        try:
            self._j1p_get(INVOICES_PATH, {**params, "start": 1}, what="J1P invoice list")
        except TokenChainBroken:
            return False, "J1P refused the access token (HTTP 401): the client may lack access to the invoice API"
        except TransientError as exc:
            return False, f"J1P host unreachable: {exc}"
        except RejectedError as exc:
            return False, f"J1P invoice list refused: {exc}"

        # 3. XML credentials
        if not cfg.xml_identity or not cfg.xml_shared_secret:
            return False, "XML Identity/SharedSecret not set (connection extra xml_identity / xml_shared_secret)"
        body = build_supplier_sync([], cfg.xml_identity, cfg.xml_shared_secret)
        try:
            response, result = self._xml_post(SUPPLIER_IMPORT, body, parse_supplier_response, None)
        except AmbiguousWriteError:
            return False, f"XML host unreachable: {cfg.xml_url}"
        status = response.status_code
        if status == 401:
            return False, "XML Identity/SharedSecret refused"
        if status == 404:
            return False, f"XML import endpoint not found (HTTP 404): check xml_url ({cfg.xml_url})"
        if status == 429:
            return False, "XML import endpoint rate limited the test (HTTP 429): try again in a minute"
        if not result.parsed:
            return False, f"XML import endpoint gave no readable answer (HTTP {status}): check xml_url ({cfg.xml_url})"
        if status >= 500:
            return False, f"XML import endpoint failed (HTTP {status}): {result.summary()}"
        return (
            True,
            "JAGGAER connection OK: token issued, J1P invoice list answered, XML Identity/SharedSecret accepted",
        )


def _po_parser(pattern: str) -> Callable[[bytes, int], XmlImportResult]:
    compiled = re.compile(pattern, re.I)

    def parse(body: bytes, status: int) -> XmlImportResult:
        return parse_po_response(body, status, already_exists_pattern=compiled)

    return parse


_FIQL_UNSAFE = re.compile(r"[;,()'\"]")


def _fiql_value(value: str) -> str:
    """A FIQL argument. ``;`` ``,`` ``(`` ``)`` and quotes are FIQL syntax, and whether J1P honours quoting is not
    known, so such values are refused rather than sent as a different filter."""
    if _FIQL_UNSAFE.search(value):
        raise ValueError(f"cannot express {value!r} in a J1P FIQL filter (contains one of ; , ( ) ' \")")
    return value
