"""The mappings page of the UI plugin: permissions, CSRF, validated and audited writes, CSV, held records.

Everything goes through the real app mounted at /ml-connector with Airflow's real authentication (JWTs signed by
the simple auth manager, sent as the UI's ``_token`` cookie) on a migrated SQLite connector store.
"""

from __future__ import annotations

import html
import importlib.util
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from web_support import GUID, GUID_222222, PAGE, csrf_of, post

from ml_connector.store import ledger
from ml_connector.store.db import session_scope
from ml_connector.store.models import AuditLog, CodeMap, LedgerEntry, VendorMap

REPO = Path(__file__).resolve().parents[2]
VAT, COC, EMAIL = "GB123456789", "NL-87654321", "payables@grainger.example"
WRITES = ("/vendor", "/vendor/delete", "/code", "/code/delete", "/import", "/requeue")


def _count(engine: Any, model: Any) -> int:
    with session_scope(engine) as s:
        return s.scalar(select(func.count()).select_from(model))


def _audit(engine: Any) -> list[AuditLog]:
    with session_scope(engine) as s:
        return list(s.scalars(select(AuditLog).where(AuditLog.flow == "mappings").order_by(AuditLog.id)))


def _vendor(client: Any, *, request: dict[str, Any] | None = None, **fields: Any) -> Any:
    """POST a vendor link: JAGGAER 59001 in division 111111 -> Exact 1003 unless ``fields`` say otherwise;
    ``request``: keyword arguments for :func:`post` (``csrf``, ``headers``)."""
    data = {"division": "111111", "jaggaer_supplier_id": "59001", "exact_code": "1003", "active": "true"}
    return post(client, "/vendor", {**data, **fields}, **(request or {}))


# ----------------------------------------------------------------------------------------------- permissions
def test_anonymous_and_bad_tokens_are_refused(browser: Any, store: Any) -> None:
    anonymous = browser(None)
    assert anonymous.get(PAGE, params={"tenant": "demo"}).status_code == 401
    assert anonymous.get(PAGE + "/export", params={"tenant": "demo", "kind": "codes"}).status_code == 401
    for path in WRITES:
        assert post(anonymous, path, {}, csrf="x").status_code == 401, path
    forged = browser(None)
    forged.cookies.set("_token", "not-a-jwt", domain="airflow.test", path="/")
    assert forged.get(PAGE).status_code == 403
    assert _count(store, AuditLog) == 0


def test_viewer_reads_but_cannot_write(browser: Any, store: Any, admin: Any) -> None:
    assert _vendor(admin).status_code == 303
    viewer = browser("viewer")
    page = viewer.get(PAGE, params={"tenant": "demo"})
    assert page.status_code == 200
    assert "Read only" in page.text and "59001" in page.text and "1003" in page.text
    assert 'name="csrf_token"' not in page.text and "Save vendor link" not in page.text
    assert viewer.get(PAGE + "/export", params={"tenant": "demo", "kind": "vendors"}).status_code == 200
    # even with a valid-looking token (the admin's), every write is refused for the role
    viewer.cookies.set("mlc_csrf", admin.cookies.get("mlc_csrf"), domain="airflow.test", path="/ml-connector")
    for path in WRITES:
        response = post(viewer, path, {"division": "111111", "jaggaer_key": "59001"}, csrf=admin.csrf)
        assert response.status_code == 403, path
        assert "op or admin" in response.text
    assert _count(store, VendorMap) == 1 and len(_audit(store)) == 1

    op = browser("op")
    op_page = op.get(PAGE, params={"tenant": "demo"})
    assert "You may change mappings" in op_page.text
    assert (
        post(
            op, "/code", {"kind": "currency", "source_value": "EUR", "target_value": "EUR"}, csrf=csrf_of(op_page.text)
        ).status_code
        == 303
    )
    [_, by_op] = _audit(store)
    assert by_op.message.startswith("by op-user (op) on the mappings page:")


# ------------------------------------------------------------------------------------------------------ CSRF
def test_posts_without_a_valid_csrf_token_or_from_another_site_are_refused(
    browser: Any, store: Any, admin: Any
) -> None:
    missing = _vendor(admin, request={"csrf": None})
    assert missing.status_code == 403 and "no security token" in missing.text
    assert _vendor(admin, request={"csrf": "0" * 64}).status_code == 403
    cross = post(
        admin,
        "/vendor",
        {"division": "111111", "jaggaer_supplier_id": "1", "exact_code": "1"},
        headers={"Origin": "https://evil.example"},
    )
    assert cross.status_code == 403 and "another site" in cross.text
    # a token is bound to its user and browser: the admin's token in another admin's browser is refused
    other = browser("admin")
    other.get(PAGE, params={"tenant": "demo"})
    assert _vendor(other, request={"csrf": admin.csrf}).status_code == 403
    # and a browser without the cookie (e.g. a forged form on another site) cannot use it either
    bare = browser("admin")
    assert _vendor(bare, request={"csrf": admin.csrf}).status_code == 403
    assert _count(store, VendorMap) == 0 and _count(store, AuditLog) == 0
    # the same-origin request with the page's token goes through
    assert _vendor(admin, request={"headers": {"Origin": "http://airflow.test"}}).status_code == 303


# -------------------------------------------------------------------------------------------------- writes
def test_admin_sets_changes_and_deletes_a_vendor_link_with_audit_rows(admin: Any, store: Any) -> None:
    created = _vendor(admin, name="Grainger Lab Supplies", vat_number=VAT, coc_number=COC, email=EMAIL)
    assert created.status_code == 303
    assert created.headers["location"].startswith(PAGE + "?")
    landed = admin.get(created.headers["location"])
    assert "Saved vendor link division 111111: JAGGAER 59001 -&gt; Exact 1003." in landed.text

    changed = _vendor(admin, exact_code="1004", active="")
    assert changed.status_code == 303
    with session_scope(store) as s:
        [row] = s.scalars(select(VendorMap)).all()
        assert (row.division, row.jaggaer_supplier_id, row.exact_code, row.active) == (111111, "59001", "1004", False)
        assert (row.vat_number, row.coc_number, row.email) == (VAT, COC, EMAIL)  # empty fields kept them
        assert row.source == "admin"

    removed = _vendor(admin, exact_code="1004", clear_vat_number="1", active="true")
    assert removed.status_code == 303
    with session_scope(store) as s:
        row = s.scalars(select(VendorMap)).one()
        assert row.vat_number is None and row.vat_bidx is None and row.coc_number == COC and row.active

    deleted = post(admin, "/vendor/delete", {"division": "111111", "jaggaer_key": "59001"})
    assert deleted.status_code == 303
    assert _count(store, VendorMap) == 0
    rows = _audit(store)
    assert [(r.action, r.outcome) for r in rows] == [
        ("vendor_map.set", "created"),
        ("vendor_map.set", "updated"),
        ("vendor_map.set", "updated"),
        ("vendor_map.delete", "deleted"),
    ]
    assert all(r.tenant == "demo" and r.message.startswith("by admin-user (admin)") for r in rows)
    assert rows[0].division == 111111 and rows[0].source_id == "59001" and rows[0].target_ref == "1003"
    assert (
        "vat number set" in rows[0].message and "(was division 111111: JAGGAER 59001 -> Exact 1003)" in rows[1].message
    )
    assert "vat number removed" in rows[2].message
    again = post(admin, "/vendor/delete", {"division": "111111", "jaggaer_key": "59001"})
    assert again.status_code == 404 and "no link for JAGGAER vendor 59001" in again.text


def test_code_maps_are_shown_next_to_the_tenant_file_and_can_be_set_and_deleted(admin: Any, store: Any) -> None:
    assert (
        post(
            admin, "/code", {"kind": "vat_code", "source_value": "20.00", "target_value": "9", "note": "new"}
        ).status_code
        == 303
    )
    assert post(admin, "/code", {"kind": "vat_code", "source_value": "17.5 %", "target_value": "4"}).status_code == 303
    assert (
        post(admin, "/code", {"kind": "business_unit", "source_value": "UK-NEW", "target_value": "222222"}).status_code
        == 303
    )
    with session_scope(store) as s:
        assert {(c.kind, c.source_value, c.target_value) for c in s.scalars(select(CodeMap))} == {
            ("vat_code", "20", "9"),
            ("vat_code", "17.5", "4"),
            ("business_unit", "UK-NEW", "222222"),
        }
    page = admin.get(PAGE, params={"tenant": "demo"}).text
    # tenant file 20 -> 1, overridden by 9 (applies); 5 -> 2 from the file only; 17.5 -> 4 only here
    assert "<tr><td>20</td><td>1</td>\n<td><strong>9</strong></td><td>new</td>\n<td>9</td>" in page
    assert "<tr><td>5</td><td>2</td>\n<td>-</td><td></td>\n<td>2</td>" in page
    assert "<tr><td>17.5</td><td>-</td>\n<td><strong>4</strong></td><td></td>\n<td>4</td>" in page
    assert "<code>jaggaer.business_units</code>" in page and "<tr><td>UK-MFG</td><td>111111</td>" in page

    assert post(admin, "/code/delete", {"kind": "vat_code", "source_value": "20"}).status_code == 303
    page = admin.get(PAGE, params={"tenant": "demo"}).text
    assert "<tr><td>20</td><td>1</td>\n<td>-</td><td></td>\n<td>1</td>" in page
    actions = [(r.action, r.outcome, r.source_id, r.source_ref, r.target_ref) for r in _audit(store)]
    assert actions == [
        ("code_map.set", "created", "vat_code", "20", "9"),
        ("code_map.set", "created", "vat_code", "17.5", "4"),
        ("code_map.set", "created", "business_unit", "UK-NEW", "222222"),
        ("code_map.delete", "deleted", "vat_code", "20", "9"),
    ]


def test_invalid_input_names_the_field_and_writes_nothing(admin: Any, store: Any) -> None:
    bad = _vendor(admin, division="999", exact_code="", exact_account_id="not-a-guid", vat_number=VAT)
    assert bad.status_code == 400
    page = html.unescape(bad.text)
    assert "The vendor link was not saved." in page and "Nothing was changed." in page
    assert "field 'division': 999 is not one of the tenant's divisions [111111, 222222]" in page
    assert "field 'exact_account_id': 'not-a-guid' is not a GUID" in page
    assert 'value="not-a-guid"' in page  # the form keeps what was typed ...
    assert VAT not in page  # ... except the sensitive values
    no_vendor = _vendor(admin, jaggaer_supplier_id="", exact_code="1003")
    assert "field 'jaggaer_supplier_id': empty (give it or jaggaer_supplier_number)" in html.unescape(no_vendor.text)

    bad_code = post(admin, "/code", {"kind": "currency", "source_value": "Euro", "target_value": "EURO"})
    assert bad_code.status_code == 400
    assert "field 'target_value': 'EURO' is not a three-letter currency code: give the Exact currency" in html.unescape(
        bad_code.text
    )
    bad_rate = post(admin, "/code", {"kind": "vat_code", "source_value": "twenty", "target_value": "1"})
    assert "field 'source_value': 'twenty' is not a tax rate in percent" in html.unescape(bad_rate.text)
    foreign = post(admin, "/code", {"kind": "business_unit", "source_value": "X", "target_value": "333333"})
    assert "field 'target_value': division 333333 is not one of this tenant's divisions" in html.unescape(foreign.text)
    assert post(admin, "/code", {"kind": "colour", "source_value": "a", "target_value": "b"}).status_code == 400

    # the Exact account is already linked to another vendor: set_link refuses, the transaction rolls back
    assert _vendor(admin, jaggaer_supplier_id="1", exact_code="", exact_account_id=GUID).status_code == 303
    clash = _vendor(admin, jaggaer_supplier_id="2", exact_code="", exact_account_id=GUID)
    assert clash.status_code == 400 and "already linked to JAGGAER vendor 1" in clash.text
    assert _count(store, VendorMap) == 1 and _count(store, CodeMap) == 0 and len(_audit(store)) == 1


def test_sensitive_numbers_never_appear_in_clear(admin: Any, browser: Any, store: Any) -> None:
    assert _vendor(admin, vat_number=VAT, coc_number=COC, email=EMAIL).status_code == 303
    for client in (admin, browser("viewer")):
        page = client.get(PAGE, params={"tenant": "demo"}).text
        for secret in (VAT, "123456789", COC, "87654321", EMAIL, "payables"):
            assert secret not in page, secret
        assert "•••••789" in page and "p•••@grainger.example" in page
        edit = client.get(PAGE, params={"tenant": "demo", "edit_vendor": 1}).text
        assert "123456789" not in edit and "87654321" not in edit
    export = admin.get(PAGE + "/export", params={"tenant": "demo", "kind": "vendors"}).text
    assert "123456789" not in export and "87654321" not in export and "payables" not in export
    with store.connect() as conn:
        raw = " ".join(str(v) for v in conn.execute(text("SELECT * FROM mlc_vendor_map")).one())
    audit = " ".join(r.message for r in _audit(store))
    assert "123456789" not in raw and "123456789" not in audit and "payables" not in audit


# ------------------------------------------------------------------------------------------------------- CSV
def test_csv_export_import_round_trip_and_a_bad_file_imports_nothing(admin: Any, store: Any) -> None:
    _vendor(admin, name="Grainger", vat_number=VAT)
    _vendor(
        admin,
        division="222222",
        jaggaer_supplier_id="",
        jaggaer_supplier_number="X-9",
        exact_code="",
        exact_account_id=GUID_222222,  # the page checks it in Exact now (issue 15): a supplier of that division
    )
    post(admin, "/code", {"kind": "cost_center", "source_value": "CC900", "target_value": "CC200", "note": "moved"})
    vendors = admin.get(PAGE + "/export", params={"tenant": "demo", "kind": "vendors"})
    codes = admin.get(PAGE + "/export", params={"tenant": "demo", "kind": "codes"})
    assert vendors.status_code == 200 and vendors.headers["content-type"].startswith("text/csv")
    assert 'filename="mappings-demo-vendors.csv"' in vendors.headers["content-disposition"]
    assert codes.text == "kind,source_value,target_value,note\ncost_center,CC900,CC200,moved\n"

    def upload(kind: str, name: str, content: str) -> Any:
        return post(admin, "/import", {"kind": kind}, files={"file": (name, content.encode(), "text/csv")})

    # over the existing rows: everything updated, the stored VAT number kept (the export left it empty)
    assert upload("vendors", "v.csv", vendors.text).status_code == 303
    with session_scope(store) as s:
        assert s.scalars(select(VendorMap).where(VendorMap.division == 111111)).one().vat_number == VAT
    with store.begin() as conn:
        conn.execute(text("DELETE FROM mlc_vendor_map"))
        conn.execute(text("DELETE FROM mlc_code_map"))
    done = upload("vendors", "v.csv", vendors.text)
    assert done.status_code == 303 and "2+created%2C+0+updated" in done.headers["location"]
    assert upload("codes", "c.csv", codes.text).status_code == 303
    assert admin.get(PAGE + "/export", params={"tenant": "demo", "kind": "vendors"}).text == vendors.text
    assert admin.get(PAGE + "/export", params={"tenant": "demo", "kind": "codes"}).text == codes.text
    imported = [r for r in _audit(store) if r.action.endswith(".import")]
    assert len(imported) == 2 + 2 + 1 and all("sha256" in r.message for r in imported)
    assert imported[-1].message.startswith("by admin-user (admin) on the mappings page: cost_center 'CC900' -> 'CC200'")

    before = len(_audit(store))
    bad = upload(
        "vendors",
        "bad.csv",
        "division,jaggaer_supplier_id,exact_code,exact_account_id\n111111,70001,2001,\n111111,70002,,nope\n",
    )
    assert bad.status_code == 400
    assert "bad.csv: nothing was imported (1 problem(s))." in bad.text
    assert "row 3, column &#39;exact_account_id&#39;: &#39;nope&#39; is not a GUID" in bad.text
    assert _count(store, VendorMap) == 2 and len(_audit(store)) == before
    latin = post(admin, "/import", {"kind": "codes"}, files={"file": ("l.csv", b"kind\xff", "text/csv")})
    assert latin.status_code == 400 and "not UTF-8 text" in latin.text


# --------------------------------------------------------------------------------------------- held records
def _seed_waiting(engine: Any) -> None:
    from ml_connector.flows.invoice_poll.vendors import set_vendor_command
    from ml_connector.mappings.vendors import JaggaerVendor

    vendor = JaggaerVendor(id="59001", name="Grainger Lab Supplies Ltd", supplier_number="S-59001")
    reasons = {
        "9001": (
            "held",
            f"map {vendor.label()} to an Exact supplier: `{set_vendor_command('demo', 111111, vendor)}`"
            " (no Exact supplier in division 111111 matches on supplier_number); the invoice goes through on"
            " the next run after that",
        ),
        "9002": (
            "quarantined",
            "validation: no Exact VAT code for tax rate 17.5%: set invoice_poll.vat_codes['17.5']"
            " in the tenant file, or run `mlc mappings set code --tenant demo --kind vat_code --source 17.5"
            " --target <VAT code>`",
        ),
        "9003": ("quarantined", "Exact refused: Journal 60 is blocked"),
    }
    with session_scope(engine) as s:
        for source_id, (state, reason) in reasons.items():
            ledger.stage(
                s,
                tenant="demo",
                flow="invoice_poll",
                source_id=source_id,
                payload={"id": source_id},
                source_ref=f"INV-{source_id}",
                division=111111,
                repost_changed=False,
            )
            s.flush()
            ledger.transition(s, ledger.get_entry(s, "demo", "invoice_poll", source_id), state, reason=reason)


def test_records_waiting_on_a_mapping_get_prefilled_forms_and_can_be_requeued(admin: Any, store: Any) -> None:
    _seed_waiting(store)
    page = admin.get(PAGE, params={"tenant": "demo"}).text
    assert "Records waiting on a mapping (2)" in page and "INV-9001" in page and "INV-9002" in page
    assert "INV-9003" not in page and "1 other held/quarantined record(s)" in page
    assert (
        'name="jaggaer_supplier_id" value="59001"' in page and 'name="name" value="Grainger Lab Supplies Ltd"' in page
    )
    assert 'name="kind" value="vat_code"' in page and 'name="source_value" value="17.5"' in page

    # one click on the prefilled form (plus the code the admin types) maps the vendor
    mapped = post(
        admin,
        "/vendor",
        {
            "division": "111111",
            "jaggaer_supplier_id": "59001",
            "exact_code": "1003",
            "name": "Grainger Lab Supplies Ltd",
            "active": "true",
        },
    )
    assert mapped.status_code == 303
    requeued = post(admin, "/requeue", {"flow": "invoice_poll", "source_id": ["9001", "9002"]})
    assert requeued.status_code == 303 and "Requeued+2+invoice_poll" in requeued.headers["location"]
    with session_scope(store) as s:
        states = dict(s.execute(select(LedgerEntry.source_id, LedgerEntry.state)).all())
        assert states == {"9001": "pending", "9002": "pending", "9003": "quarantined"}
        trail = s.scalars(
            select(AuditLog).where(AuditLog.flow == "invoice_poll", AuditLog.action == "state:pending")
        ).all()
        assert {(r.source_id, r.message) for r in trail} == {
            ("9001", "requeued by admin-user (admin) on the mappings page"),
            ("9002", "requeued by admin-user (admin) on the mappings page"),
        }
    assert "Records waiting on a mapping (0)" in admin.get(PAGE, params={"tenant": "demo"}).text
    nothing = post(admin, "/requeue", {"flow": "invoice_poll", "source_id": "9001"})
    assert nothing.status_code == 409 and "Nothing was requeued." in nothing.text


# ----------------------------------------------------------------------------------------------------- wiring
def test_unknown_tenant_and_the_plugin_nav_entry(admin: Any) -> None:
    assert admin.get(PAGE, params={"tenant": "nobody"}).status_code == 404
    assert (
        post(
            admin, "/code", {"tenant": "nobody", "kind": "currency", "source_value": "A", "target_value": "EUR"}
        ).status_code
        == 404
    )
    spec = importlib.util.spec_from_file_location(
        "ml_connector_plugin_web", REPO / "plugins" / "ml_connector_plugin.py"
    )
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    views = {v["name"]: v for v in module.MlConnectorPlugin.external_views}
    assert views["Mappings"]["href"] == "ml-connector/ui/mappings" and views["Mappings"]["destination"] == "nav"
    paths = {r.path for r in module.MlConnectorPlugin.fastapi_apps[0]["app"].routes}
    assert {"/ui/mappings", "/ui/mappings/export", "/ui/mappings/vendor", "/ui/mappings/import"} <= paths


# ------------------------------------------------------------------------------------- checked against Exact
def test_an_exact_code_exact_does_not_have_is_refused_naming_the_code(
    admin: Any, store: Any, exact_server: Any
) -> None:
    """The page asks Exact (the sandbox, over HTTP, through the tenant's token chain) before saving."""
    exact_server.clear_calls()
    missing = _vendor(admin, exact_code="9999")
    assert missing.status_code == 400
    page = html.unescape(missing.text)
    assert "Exact has no supplier with code '9999' in division 111111 (looked up in Exact just now)" in page
    assert "check the code in Exact" in page and "Nothing was saved" in page
    assert _count(store, VendorMap) == 0 and _audit(store) == []
    calls = [c for c in exact_server.calls()["log"] if "crm/Accounts" in c["path"]]
    assert len(calls) == 1, calls

    # an existing code is saved with the account ID Exact gave for it
    assert _vendor(admin, exact_code="1003").status_code == 303
    with session_scope(store) as s:
        row = s.scalars(select(VendorMap)).one()
        assert (row.exact_code, row.exact_account_id) == ("1003", "0bda84a0-4c09-5318-be8c-54fa9597f66f")
    # an account ID of another division is refused too
    wrong = _vendor(admin, jaggaer_supplier_id="59002", exact_code="", exact_account_id=GUID_222222)
    assert wrong.status_code == 400
    assert f"Exact has no supplier with account ID {GUID_222222} in division 111111" in html.unescape(wrong.text)


def test_a_second_link_to_an_already_linked_exact_supplier_is_refused(admin: Any, store: Any) -> None:
    assert _vendor(admin, exact_code="1003", name="Grainger").status_code == 303
    by_code = _vendor(admin, jaggaer_supplier_id="59002", exact_code="1003")
    assert by_code.status_code == 400
    text_ = html.unescape(by_code.text)
    assert "is already linked to JAGGAER vendor 59001 (Grainger) in division 111111; delete that link first" in text_
    # the same supplier named by its account ID instead of its code
    by_guid = _vendor(
        admin, jaggaer_supplier_id="59002", exact_code="", exact_account_id="0bda84a0-4c09-5318-be8c-54fa9597f66f"
    )
    assert by_guid.status_code == 400 and "already linked to JAGGAER vendor 59001" in by_guid.text
    # another division may link it (each division has its own suppliers)
    with session_scope(store) as s:
        assert s.scalar(select(func.count()).select_from(VendorMap)) == 1


def test_when_exact_cannot_be_asked_a_new_code_is_refused_with_the_reason(admin: Any, store: Any) -> None:
    """Without a token chain a code no run has read from Exact is refused, naming why and what to do; a link whose
    Exact side is unchanged (and resolved) saves without asking Exact."""
    assert _vendor(admin, exact_code="1003").status_code == 303
    with store.begin() as conn:
        conn.execute(text("DELETE FROM mlc_token"))
    unknown = _vendor(admin, jaggaer_supplier_id="59002", exact_code="1004")
    assert unknown.status_code == 400
    page = html.unescape(unknown.text)
    assert "could not check the Exact supplier with code '1004' in division 111111: Exact could not be asked" in page
    assert "/ml-connector/exact/connect?tenant=demo" in page
    # re-saving the known link (changing only its name) needs no Exact at all
    assert _vendor(admin, exact_code="1003", name="Grainger Lab").status_code == 303
