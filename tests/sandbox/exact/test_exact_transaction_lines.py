"""``bulk/Financial/TransactionLines`` of the Exact sandbox: one row per purchase-entry line, built from the stored
entries, with the bulk endpoints' rules ($select mandatory, 1,000 a page, ``__next``), and the admin control that edits
an entry as a person would in Exact."""

from __future__ import annotations

from exact_support import MFG, Api, error_text, results, small_entry

LINES = "bulk/Financial/TransactionLines"
SELECT = "EntryID,EntryNumber,Date,JournalCode,Account,YourRef,LineNumber,AmountFC,AmountVATFC"


def _post(api: Api, ref: str, amount: float = 10.0) -> dict:
    body = small_entry(ref)
    body["PurchaseEntryLines"] = [dict(body["PurchaseEntryLines"][0], AmountFC=amount)] * 2
    r = api.post("purchaseentry/PurchaseEntries", body, Prefer="return=representation")
    assert r.status_code == 201, r.text
    return r.json()["d"]


def test_lines_mirror_the_entries_filter_and_follow_next(api: Api) -> None:
    entries = [_post(api, f"TL-{i}", 10.0 + i) for i in range(3)]
    flt = "JournalCode eq '60' and Date ge datetime'2026-11-20T00:00:00' and Date lt datetime'2026-11-21T00:00:00'"
    rows = results(api.get(LINES, **{"$select": SELECT, "$filter": flt}))
    assert len(rows) == 6 and {r["LineNumber"] for r in rows} == {1, 2}
    by_entry = {e["EntryID"]: e for e in entries}
    for row in rows:
        entry = by_entry[row["EntryID"]]
        assert row["YourRef"] == entry["YourRef"] and row["Account"] == entry["Supplier"]
        assert row["EntryNumber"] == entry["EntryNumber"] and row["Date"] == entry["EntryDate"]
    gross = sum(r["AmountFC"] + r["AmountVATFC"] for r in rows if r["EntryID"] == entries[0]["EntryID"])
    assert round(gross, 2) == entries[0]["AmountFC"]
    assert results(api.get(LINES, **{"$select": SELECT, "$filter": "JournalCode eq '99'"})) == []

    api.ex.settings(sync_page_size=4)
    first = api.get(LINES, **{"$select": SELECT})
    page = first.json()["d"]
    assert len(page["results"]) == 4 and "__next" in page
    rest = results(api.follow(page["__next"]))
    assert len(rest) == 2 and not {r["EntryID"] for r in rest} - set(by_entry)


def test_select_is_mandatory_and_unknown_properties_are_refused(api: Api) -> None:
    r = api.get(LINES)
    assert r.status_code == 400 and "$select is mandatory" in error_text(r)
    r = api.get(LINES, **{"$select": "EntryID,Supplier"})  # Supplier is a purchase-entry property, not a line's
    assert r.status_code == 400 and "Supplier" in error_text(r)


def test_an_edited_or_deleted_entry_shows_at_once(api: Api) -> None:
    entry = _post(api, "TL-EDIT")
    edited = api.ex.edit_entry(entry["EntryID"], line=1, AmountFC=25.0)
    assert edited["AmountFC"] == round((25.0 + 10.0) * 1.2, 2)  # the demo GL account's VAT: 20 %
    rows = results(api.get(LINES, **{"$select": SELECT, "$filter": "YourRef eq 'TL-EDIT'"}))
    assert sorted(r["AmountFC"] for r in rows) == [10.0, 25.0]
    r = api.http.delete(api.ex.api_url(MFG, f"purchaseentry/PurchaseEntries(guid'{entry['EntryID']}')"), timeout=30)
    assert r.status_code == 204
    assert results(api.get(LINES, **{"$select": SELECT, "$filter": "YourRef eq 'TL-EDIT'"})) == []
