"""Published Exact Online client libraries, run unmodified against the Exact sandbox (issue 10).

A sandbox written from the same understanding as the connector confirms the connector's mistakes; two clients
written by other people, for the real Exact Online, do not share that understanding. Each test does what a user of
the library does (consent and code exchange, refresh, list divisions, read, filter, create/update/delete an
account, page through ``__next``) and asserts what Exact would answer (docs/sandbox-exact.md, and the published entity
reference ``exact-online-entities.json``).

The libraries, pinned in requirements.txt and used as published (configuration, base URLs and token storage are
theirs to set; their request logic is not touched):

* ``exactonline`` 0.4.0 (OSSO B.V.): urllib, form-body client credentials, refreshes 30 s before expiry or after a
  401, follows ``__next``. Its HTTP layer accepts **https only** (``opt_secure.protocols = ('https',)``, not a
  setting), so it talks to the same in-process sandbox served over TLS on loopback with a test CA made here; the CA
  reaches the library through OpenSSL's standard ``SSL_CERT_FILE``. Its documented ``[server]`` settings
  (``auth_url``, ``rest_url``, ``token_url``) point it at the sandbox.
* ``exact-online-sdk`` 2.0.0: httpx, **HTTP Basic** client credentials at the token endpoint, refreshes 60 s before
  expiry, ``Settings(base_url=..., auth_url=..., token_url=...)``. Plain http on loopback.

Time: the sandbox clock moves through ``/_admin/clock``; the libraries judge expiry by the wall clock, so a test
that lets time pass also ages the token *in the library's token storage* by the same amount (what the storage
would hold after that much real time).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlparse
from uuid import UUID

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from exact_online_sdk import api as sdk_api
from exact_online_sdk.auth import ExactOnlineAuth, InMemoryTokenStorage, Token
from exact_online_sdk.client import ExactOnlineClient
from exact_online_sdk.config import Settings
from exact_online_sdk.exceptions import APIError, AuthenticationError
from exact_support import MFG, SVC, small_entry
from exactonline.api import ExactApi
from exactonline.exceptions import ObjectDoesNotExist
from exactonline.http import HTTPError
from exactonline.resource import GET
from exactonline.storage.base import ExactOnlineConfig, MissingSetting

from sandbox.common import demo_company as demo
from sandbox.common.server import ServerThread
from sandbox.exact.testing import ExactSandboxHandle

T = TypeVar("T")

# A new supplier as a user of either library would create it: properties Exact's Account has (the reference lists
# each for POST and PUT), among them two the connector never sends.
NEW_ACCOUNT: dict[str, Any] = {
    "Name": "Pennine Fasteners Ltd",
    "IsSupplier": True,
    "City": "Halifax",
    "Country": "GB",
    "PaymentConditionPurchase": "30",
    "PaymentConditionSales": "30",
    "InvoiceAttachmentType": 1,
}
NEW_ACCOUNT_FIELDS = ",".join(["ID", *NEW_ACCOUNT])


# ------------------------------------------------------------------------------------------------ the reference
@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    """The project's copy of Exact's published entity reference (include/sandbox/exact/reference/)."""
    from sandbox.exact.reference import DATA

    return json.loads(DATA.read_text())["endpoints"]


def plain_properties(reference: dict[str, Any], endpoint: str) -> set[str]:
    """The endpoint's non-collection properties: what a read without ``$select`` returns, null where the company
    has no data (collections come back deferred)."""
    props = reference[endpoint]["properties"]
    return {name for name, p in props.items() if p["type"] != "Collection"}


def assert_full_row(row: dict[str, Any], reference: dict[str, Any], endpoint: str) -> None:
    fields = set(row) - {"__metadata"}
    missing = plain_properties(reference, endpoint) - fields
    invented = fields - set(reference[endpoint]["properties"])
    assert not missing, f"{endpoint} read without $select lacks reference properties {sorted(missing)}"
    assert not invented, f"{endpoint} answered properties the reference does not list: {sorted(invented)}"


# ------------------------------------------------------------------------------------------- TLS for exactonline
@dataclass
class Tls:
    ca: Path
    cert: Path
    key: Path


def _make_tls(directory: Path) -> Tls:
    """A throw-away CA and a server certificate for 127.0.0.1 (strict-X.509 clean: CA basic constraints and key
    usage, SAN, server-auth EKU, key identifiers)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ml-connector sandbox test CA")])
    usage = {k: False for k in ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement")}
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
                **usage,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    tls = Tls(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    tls.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    tls.cert.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    tls.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return tls


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return _make_tls(tmp_path_factory.mktemp("exact-tls"))


@pytest.fixture(scope="module")
def exact_https(_exact_server: ExactSandboxHandle, tls: Tls) -> Iterator[str]:
    """The session's in-process Exact sandbox (same state, same resets) served a second time, over TLS."""
    server = ServerThread(_exact_server.sandbox.app, ssl_certfile=str(tls.cert), ssl_keyfile=str(tls.key))
    server.start()
    try:
        yield f"https://{server.host}:{server.port}"
    finally:
        server.stop()


def consent_code(auth_url: str, verify: str | bool = True) -> str:
    """What the person's browser does with the library's consent URL (the sandbox consents at once): the code from
    the redirect back to the app."""
    r = requests.get(auth_url, allow_redirects=False, timeout=10, verify=verify)
    assert r.status_code == 302, f"consent failed: {r.status_code} {r.text[:300]}"
    return parse_qs(urlparse(r.headers["location"]).query)["code"][0]


# --------------------------------------------------------------------------------- exactonline 0.4.0 (OSSO B.V.)
class DictStorage(ExactOnlineConfig):
    """exactonline's storage interface (``get``/``set`` per section and option) over a dict, the way its README
    says to plug in one's own storage; the redirect URI is the app's registered one."""

    def __init__(self, data: dict[str, dict[str, str]], response_url: str) -> None:
        self.data = data
        self.response_url = response_url

    def get(self, section: str, option: str) -> str:
        try:
            return self.data[section][option]
        except KeyError:
            raise MissingSetting(f"{section}.{option}") from None

    def set(self, section: str, option: str, value: str) -> None:
        self.data.setdefault(section, {})[option] = value

    def get_response_url(self) -> str:
        return self.response_url

    def age(self, seconds: float) -> None:
        """The stored expiry as it would stand after ``seconds`` of real time."""
        self.set_access_expiry(self.get_access_expiry() - int(seconds))


@dataclass
class Osso:
    api: ExactApi
    storage: DictStorage
    ex: ExactSandboxHandle


@pytest.fixture
def osso(exact_sandbox: ExactSandboxHandle, exact_https: str, tls: Tls, monkeypatch: pytest.MonkeyPatch) -> Osso:
    """exactonline 0.4.0 connected to the sandbox: consent, ``request_token``, division 111111 chosen."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca))  # OpenSSL's own trust setting; the library is untouched
    storage = DictStorage(
        {
            "server": {
                "auth_url": f"{exact_https}/api/oauth2/auth",
                "rest_url": f"{exact_https}/api",
                "token_url": f"{exact_https}/api/oauth2/token",
            },
            "application": {
                "base_url": "http://127.0.0.1:8080",
                "client_id": exact_sandbox.client_id,
                "client_secret": exact_sandbox.client_secret,
            },
        },
        exact_sandbox.redirect_uri,
    )
    api = ExactApi(storage=storage)
    api.request_token(consent_code(api.create_auth_request_url(), verify=str(tls.ca)))
    osso_ok(api.set_division, MFG)
    return Osso(api, storage, exact_sandbox)


def osso_ok(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a library call; an HTTP error fails the test with the request and Exact-sandbox's answer."""
    try:
        return call(*args, **kwargs)
    except HTTPError as exc:
        body = exc.response.decode("utf-8", "replace") if isinstance(exc.response, bytes) else exc.response
        pytest.fail(f"exactonline: {exc.reqmethod} {exc.url} -> HTTP {exc.code}: {body}", pytrace=False)


def osso_error(call: Callable[..., Any], *args: Any, **kwargs: Any) -> HTTPError:
    with pytest.raises(HTTPError) as info:
        call(*args, **kwargs)
    return info.value


# ---------------------------------------------------------------------------------------- exact-online-sdk 2.0.0
@dataclass
class Sdk:
    client: ExactOnlineClient
    auth: ExactOnlineAuth
    storage: InMemoryTokenStorage
    settings: Settings
    ex: ExactSandboxHandle

    def age(self, seconds: float) -> None:
        """The stored token as the storage would hold it after ``seconds`` of real time."""
        t = self.storage.get_token()
        assert t is not None
        self.storage.set_token(
            Token(t.access_token, t.token_type, t.expires_at - dt.timedelta(seconds=seconds), t.refresh_token)
        )


@pytest.fixture
def sdk(exact_sandbox: ExactSandboxHandle) -> Iterator[Sdk]:
    """exact-online-sdk 2.0.0 connected to the sandbox (division 111111): consent, ``exchange_code_for_token``."""
    settings = Settings(
        client_id=exact_sandbox.client_id,
        client_secret=exact_sandbox.client_secret,
        redirect_uri=exact_sandbox.redirect_uri,
        base_url=exact_sandbox.url,
        auth_url=f"{exact_sandbox.url}/api/oauth2/auth",
        token_url=f"{exact_sandbox.url}/api/oauth2/token",
        division=MFG,
        timeout=10,
    )
    storage = InMemoryTokenStorage()
    auth = ExactOnlineAuth(settings, storage=storage)
    sdk_ok(auth.exchange_code_for_token, consent_code(auth.get_authorization_url(state="st-1")))
    client = ExactOnlineClient(settings, auth=auth)
    try:
        yield Sdk(client, auth, storage, settings, exact_sandbox)
    finally:
        client.close()


def sdk_ok(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a library call; an API or token error fails the test with the sandbox's answer."""
    try:
        return call(*args, **kwargs)
    except APIError as exc:
        pytest.fail(f"exact-online-sdk: {exc.context} -> HTTP {exc.status_code}: {exc}", pytrace=False)
    except AuthenticationError as exc:
        pytest.fail(f"exact-online-sdk token call: {exc}", pytrace=False)


# ------------------------------------------------------------------------------------------------------ helpers
def account_truth(ex: ExactSandboxHandle, division: int = MFG) -> list[dict[str, Any]]:
    """Every account of the division with the fields the filter tests use, read the connector's way (an allowed
    filter, ``$select``), to compute what each library's filter must return."""
    http = ex.session(ex.connect()["access_token"])
    rows: list[dict[str, Any]] = []
    for supplier in ("true", "false"):
        url: str | None = ex.api_url(division, "crm/Accounts")
        params: dict[str, str] | None = {
            "$filter": f"IsSupplier eq {supplier}",
            "$select": "ID,Blocked,City,Country,Status,Type",
        }
        while url:
            r = http.get(url, params=params, timeout=10)
            assert r.status_code == 200, r.text
            rows += r.json()["d"]["results"]
            url, params = r.json()["d"].get("__next"), None
    assert rows
    return rows


def ids_where(rows: list[dict[str, Any]], **equal: Any) -> set[str]:
    return {r["ID"] for r in rows if all(r[k] == v for k, v in equal.items())}


def account_calls(ex: ExactSandboxHandle) -> list[dict[str, Any]]:
    return [c for c in ex.calls()["log"] if c["path"].endswith("/crm/Accounts") and c["method"] == "GET"]


# ============================================================================== exactonline 0.4.0: OAuth
def test_osso_code_exchange_stores_exacts_token_pair(osso: Osso) -> None:
    transient = osso.storage.data["transient"]
    assert transient["access_token"] and transient["refresh_token"] and transient["code"]
    # expires_in "600" (a string) became an expiry 600 s ahead.
    ahead = osso.storage.get_access_expiry() - dt.datetime.now(dt.UTC).timestamp()
    assert 590 <= ahead <= 601


def test_osso_refreshes_in_exacts_window_and_after_a_401_with_rotating_tokens(osso: Osso) -> None:
    ex, storage = osso.ex, osso.storage
    first = storage.get_refresh_token()
    # 575 s on: inside the last 30 s the library refreshes before its call, and Exact accepts (>= 570 s).
    ex.advance(575)
    storage.age(575)
    row = osso_ok(osso.api.relations.get, relation_code="1001")
    assert row["Code"] == "1001".rjust(18)
    second = storage.get_refresh_token()
    assert second != first
    # Its new token is left to expire on the server while the storage still thinks it fresh: the call gets 401,
    # the library refreshes (after expiry Exact always accepts) and repeats the call once.
    ex.advance(601)
    osso_ok(osso.api.relations.get, relation_code="1001")
    third = storage.get_refresh_token()
    assert third not in (first, second)
    statuses = [(c["path"].rsplit("/", 1)[-1], c["status"]) for c in ex.calls()["log"][-3:]]
    assert statuses == [("Accounts", 401), ("token", 200), ("Accounts", 200)]
    # Rotation is real: the superseded token is refused, and reusing it kills the chain the library holds.
    old = ex.refresh(second)
    assert old.status_code == 401 and old.json()["error_description"] == "Old refresh token used."
    dead = osso_error(lambda: osso.api.relations.get(relation_code="1001"))
    assert dead.code == 401 and dead.url.endswith("/api/oauth2/token")
    assert b"Old refresh token used." in dead.response


# ================================================================== exactonline 0.4.0: divisions and reads
def test_osso_get_divisions(osso: Osso) -> None:
    # current/Me?$select=CurrentDivision, then hrm/Divisions?$select=Code,Description in that division.
    choices, current = osso_ok(osso.api.get_divisions)
    assert current == MFG
    assert choices == {code: info["name"] for code, info in demo.DIVISIONS.items()}


def test_osso_reads_gl_accounts_and_purchase_entries_without_select(osso: Osso, reference: dict[str, Any]) -> None:
    rows = osso_ok(osso.api.restv1, GET("financial/GLAccounts?$top=1"))
    assert len(rows) == 1
    assert_full_row(rows[0], reference, "financial/GLAccounts")
    # A purchase entry, read back by its key through a filter (the library's reads always unwrap d.results).
    ex = osso.ex
    posted = ex.session(ex.connect()["access_token"]).post(
        ex.api_url(MFG, "purchaseentry/PurchaseEntries"), json=small_entry("OSSO-1"), timeout=10
    )
    assert posted.status_code == 201, posted.text
    entry_id = posted.json()["d"]["EntryID"]
    rows = osso_ok(osso.api.restv1, GET(f"purchaseentry/PurchaseEntries?$filter=EntryID%20eq%20guid'{entry_id}'"))
    assert [r["EntryID"] for r in rows] == [entry_id]
    assert rows[0]["YourRef"] == "OSSO-1"
    assert_full_row(rows[0], reference, "purchaseentry/PurchaseEntries")


def test_osso_ledger_accounts_and_relations_helpers(osso: Osso) -> None:
    # The library's own helpers, which always send $select.
    codes = {r["Code"] for r in osso_ok(osso.api.ledgeraccounts.filter, code__in=["7100"])}
    assert codes == {"7100"}
    relation = osso_ok(osso.api.relations.get, relation_code="1001")
    assert set(relation) == {"__metadata", "ID", "Code", "Name"}
    with pytest.raises(ObjectDoesNotExist):
        osso.api.relations.get(relation_code="999999")
    # Exact requires a filter on crm/Accounts (the README's relations.filter(top=2) predates that rule).
    refused = osso_error(osso.api.relations.filter, top=2)
    assert refused.code == 400 and b"A required filter is missing." in refused.response


@pytest.mark.parametrize(
    ("odata", "field", "value"),
    [
        ("Blocked eq false", "Blocked", False),
        ("Country eq 'GB'", "Country", "GB"),
        ("Status eq 'C'", "Status", "C"),
        ("Type eq 'A'", "Type", "A"),
        ("City eq '{city}'", "City", None),
    ],
)
def test_osso_filters_accounts_by_more_fields(osso: Osso, odata: str, field: str, value: Any) -> None:
    truth = account_truth(osso.ex)
    if value is None:
        value = truth[0][field]
        odata = odata.format(city=value)
    expected = ids_where(truth, **{field: value})
    assert expected  # the demo company has such accounts: the filter must find them
    rows = osso_ok(osso.api.relations.filter, filter=odata)
    assert {r["ID"] for r in rows} == expected


def test_osso_creates_updates_and_deletes_an_account(osso: Osso) -> None:
    api = osso.api
    created = osso_ok(api.relations.create, dict(NEW_ACCOUNT))
    account_id = created["ID"]
    assert len(account_id) == 36

    def read_back() -> dict[str, Any]:
        return osso_ok(api.relations.get, filter=f"ID eq guid'{account_id}'", select=NEW_ACCOUNT_FIELDS)

    row = read_back()
    assert {k: row[k] for k in NEW_ACCOUNT} == NEW_ACCOUNT
    assert osso_ok(api.relations.update, account_id, {"City": "Huddersfield", "PaymentConditionSales": "60"}) is None
    row = read_back()
    assert (row["City"], row["PaymentConditionSales"], row["Name"]) == ("Huddersfield", "60", NEW_ACCOUNT["Name"])
    assert osso_ok(api.relations.delete, account_id) is None  # 204, empty body
    with pytest.raises(ObjectDoesNotExist):
        api.relations.get(filter=f"ID eq guid'{account_id}'")


def test_osso_pages_through_next(osso: Osso) -> None:
    osso.ex.seed(suppliers=130, divisions=[MFG])  # 130 suppliers: pages of 60, 60, 10
    osso.ex.clear_calls()
    rows = osso_ok(osso.api.relations.filter, filter="IsSupplier eq true")
    assert len(rows) == len({r["ID"] for r in rows}) == 130
    calls = account_calls(osso.ex)
    assert len(calls) == 3 and all(c["status"] == 200 for c in calls)
    assert ["skiptoken" in c["query"] for c in calls] == [False, True, True]


# ============================================================================== exact-online-sdk 2.0.0: OAuth
def test_sdk_exchanges_the_code_with_basic_client_credentials(sdk: Sdk) -> None:
    token = sdk.storage.get_token()
    assert token is not None and token.refresh_token and token.token_type.lower() == "bearer"
    ahead = (token.expires_at - dt.datetime.now(dt.UTC)).total_seconds()
    assert 590 <= ahead <= 601
    me = sdk_ok(sdk_api.MeAPI(sdk.client).list)
    assert [(m.current_division, m.full_name) for m in me] == [(MFG, demo.DEMO_USER["FullName"])]


def test_sdk_refresh_is_refused_too_early_and_rotates_in_the_window(sdk: Sdk) -> None:
    ex = sdk.ex
    before = sdk.storage.get_token()
    assert before is not None
    # The library refreshes 60 s before expiry, i.e. 540 s after issue: Exact refuses that (400 and
    # Reason: TooEarlyToRefreshTokens), and the refused call burns nothing.
    ex.advance(541)
    sdk.age(541)
    with pytest.raises(AuthenticationError) as early:
        sdk_api.MeAPI(sdk.client).list()
    assert "400" in str(early.value)
    assert sdk.storage.get_token().refresh_token == before.refresh_token  # type: ignore[union-attr]
    log = ex.calls()["log"]
    assert (log[-1]["path"], log[-1]["status"]) == ("/api/oauth2/token", 400)
    # 575 s after issue the same refresh is accepted and both tokens rotate.
    ex.advance(34)
    sdk.age(34)
    sdk_ok(sdk_api.MeAPI(sdk.client).list)
    after = sdk.storage.get_token()
    assert after is not None
    assert after.refresh_token != before.refresh_token and after.access_token != before.access_token
    assert ex.refresh(before.refresh_token or "").json()["error_description"] == "Old refresh token used."


# ===================================================================== exact-online-sdk 2.0.0: divisions and reads
def test_sdk_lists_divisions(sdk: Sdk, reference: dict[str, Any]) -> None:
    hrm = sdk_ok(sdk_api.DivisionsAPI(sdk.client).list, select=["Code", "Description"])
    assert {(d.code, d.description) for d in hrm} == {(c, i["name"]) for c, i in demo.DIVISIONS.items()}
    system = sdk_ok(sdk_api.SystemDivisionsAPI(sdk.client).list, raw=True)  # no $select: every property
    assert {d["Code"] for d in system} == set(demo.DIVISIONS)
    for row in system:
        assert_full_row(row, reference, "system/Divisions")


def test_sdk_reads_without_select(sdk: Sdk, reference: dict[str, Any]) -> None:
    gl = sdk_ok(sdk_api.GLAccountsAPI(sdk.client).list, top=1, raw=True)
    assert len(gl) == 1
    assert_full_row(gl[0], reference, "financial/GLAccounts")
    supplier = demo.SUPPLIERS[0].account_id(MFG)
    account = sdk_ok(sdk_api.AccountsAPI(sdk.client).get, supplier, raw=True)
    assert account["ID"] == supplier
    assert_full_row(account, reference, "crm/Accounts")
    # The library has no purchase-entry helper; its generic client reads one entry by key.
    posted = sdk_ok(sdk.client.post, "purchaseentry/PurchaseEntries", json=small_entry("SDK-1"))
    entry = sdk_ok(sdk.client.get, f"purchaseentry/PurchaseEntries(guid'{posted['EntryID']}')")
    assert (entry["EntryID"], entry["YourRef"]) == (posted["EntryID"], "SDK-1")
    assert_full_row(entry, reference, "purchaseentry/PurchaseEntries")


def test_sdk_reads_current_me_in_full(sdk: Sdk, reference: dict[str, Any]) -> None:
    # current/Me has no division; the library addresses it with its "!" prefix and no $select.
    me = sdk_ok(sdk_api.MeAPI(sdk.client).list, raw=True)
    assert [m["CurrentDivision"] for m in me] == [MFG]
    assert_full_row(me[0], reference, "current/Me")


def test_sdk_filters_accounts_by_more_fields(sdk: Sdk) -> None:
    truth = account_truth(sdk.ex)
    city = truth[0]["City"]
    accounts = sdk_api.AccountsAPI(sdk.client)
    for filters in (
        {"Blocked": False},
        {"City": city},
        {"Country": "GB"},
        {"Status": "C"},
        {"Type": "A"},
        {"Blocked": False, "Country": "GB", "City": city},
    ):
        expected = ids_where(truth, **filters)
        assert expected, filters
        rows = sdk_ok(accounts.list, filters=filters, select=["ID"], raw=True)
        assert {r["ID"] for r in rows} == expected, filters


def test_sdk_creates_updates_and_deletes_an_account(sdk: Sdk) -> None:
    accounts = sdk_api.AccountsAPI(sdk.client)
    created = sdk_ok(accounts.create, dict(NEW_ACCOUNT), raw=True)
    account_id = created["ID"]

    def read_back() -> dict[str, Any]:
        rows = sdk_ok(accounts.list, filters={"ID": UUID(account_id)}, select=NEW_ACCOUNT_FIELDS.split(","), raw=True)
        assert len(rows) == 1
        return rows[0]

    assert {k: read_back()[k] for k in NEW_ACCOUNT} == NEW_ACCOUNT
    assert sdk_ok(accounts.update, account_id, {"Name": NEW_ACCOUNT["Name"], "InvoiceAttachmentType": 2}) is None
    assert read_back()["InvoiceAttachmentType"] == 2
    assert sdk_ok(accounts.delete, account_id) is None  # 204, empty body
    assert sdk_ok(accounts.list, filters={"ID": UUID(account_id)}, select=["ID"], raw=True) == []


def test_sdk_pages_through_next(sdk: Sdk) -> None:
    sdk.ex.seed(suppliers=130, divisions=[MFG])
    accounts = sdk_api.AccountsAPI(sdk.client)
    pages = sdk_ok(
        lambda: list(accounts.iter_pages(filters={"IsSupplier": True}, select=["ID", "Name"], page_size=None, raw=True))
    )
    assert [len(p) for p in pages] == [60, 60, 10]
    assert len({r["ID"] for p in pages for r in p}) == 130
    # The other division was not touched by the seed.
    other = sdk_ok(sdk.client.get, f"!{SVC}/crm/Accounts", params={"$filter": "IsSupplier eq true", "$select": "ID"})
    assert 0 < len(other) <= 60
