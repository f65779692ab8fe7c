"""The CSS every ml-connector page shares (status, mappings, ledger): one home, imported by the page modules and
the app alike, so no page module needs ``web.app`` (which imports them)."""

from __future__ import annotations

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5rem;color:#1a202c}
table{border-collapse:collapse;margin-top:1rem}td,th{border:1px solid #cbd5e0;padding:.35rem .6rem;text-align:left;
vertical-align:top}th{background:#edf2f7}.ok{color:#276749;font-weight:600}.bad{color:#c53030;font-weight:600}
.muted{color:#718096}code{background:#edf2f7;padding:0 .2rem}
"""
