# ruff: noqa: E501  (the template below: HTML lines are not wrapped at 120 characters)
"""The reconciliation page: a Jinja2 template on the ledger console's base page (autoescaped; no JavaScript)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import DictLoader, Environment, StrictUndefined, select_autoescape

from ml_connector.web.ledger_html import BASE, MACROS

_STYLE = """
td.cat-matched{color:#276749}td.cat-amount_or_date_differs,td.cat-posted_not_in_exact{color:#c53030;font-weight:600}
td.cat-jaggaer_only,td.cat-exact_only{color:#b7791f;font-weight:600}td.num{text-align:right}
table.counts td{padding-right:1.2rem}
"""

RECONCILE = """{% extends "base.html" %}{% import "macros.html" as m with context %}{% block body %}
<p>Approved JAGGAER invoices against the purchase entries in Exact, per division and period of invoice dates, matched by
supplier and YourRef. The invoice poll reconciles every division daily (the last {{ daily_days }} days); reconcile another
period here. Exact is read in bulk, 1,000 lines a call.</p>
<form class="filters" method="get" action="{{ rbase }}" id="pick"><input type="hidden" name="tenant" value="{{ tenant }}">
<label>Division <select name="division"><option value="">all</option>{% for d in divisions %}<option value="{{ d }}" {% if division == d %}selected{% endif %}>{{ d }}</option>{% endfor %}</select></label>
<button type="submit">Show</button></form>
{% if actor.can_edit %}<form class="filters" method="post" action="{{ rbase }}/run" id="run">{{ m.csrf() }}
<label>Division <select name="division">{% for d in divisions %}<option value="{{ d }}" {% if division == d %}selected{% endif %}>{{ d }}</option>{% endfor %}</select></label>
<label>Invoice dates from <input type="date" name="date_from" value="{{ date_from }}" required></label>
<label>to <input type="date" name="date_to" value="{{ date_to }}" required></label>
<button type="submit">Reconcile now</button></form>{% endif %}
<h3>Saved reconciliations</h3>
{% if not saved %}<p class="box" id="none">None yet: the invoice poll's daily run saves one per division{% if actor.can_edit %}, or reconcile a period above{% endif %}.</p>{% else %}
<table id="saved"><tr><th>#</th><th>division</th><th>invoice dates</th><th>reconciled (UTC)</th><th>run by</th>{% for k, label in categories.items() %}<th>{{ label }}</th>{% endfor %}<th>calls (Exact / JAGGAER)</th></tr>
{% for s in saved %}<tr{% if rec and s.id == rec.id %} class="here"{% endif %}><td><a href="{{ rbase }}?tenant={{ tenant|urlencode }}&id={{ s.id }}">{{ s.id }}</a></td><td>{{ s.division }}</td><td>{{ s.date_from }} .. {{ s.date_to }}</td><td>{{ when(s.created_at) }}</td><td class="muted">{{ s.trigger }}</td>
{% for k in categories %}<td class="num">{{ s.counts.get(k, 0) }}</td>{% endfor %}<td class="num">{{ s.exact_calls }} / {{ s.jaggaer_calls }}</td></tr>{% endfor %}</table>{% endif %}
{% if rec %}<h3 id="shown">Reconciliation {{ rec.id }}: division {{ rec.division }}, invoice dates {{ rec.date_from }} .. {{ rec.date_to }}</h3>
<p>Download: <a id="csv" href="{{ rbase }}/{{ rec.id }}.csv">CSV</a> &middot; <a id="xlsx" href="{{ rbase }}/{{ rec.id }}.xlsx">XLSX</a>
&middot; reconciled {{ when(rec.created_at) }} UTC by {{ rec.trigger }}</p>
{% if rec.off %}<p class="box err" id="off">{{ rec.off }} row(s) need a look.</p>{% else %}<p class="box ok" id="off">JAGGAER and Exact agree.</p>{% endif %}
<table class="counts" id="counts">{% for k, label in categories.items() %}<tr><td>{{ label }}</td><td class="num" id="count-{{ k }}">{{ rec.counts.get(k, 0) }}</td></tr>{% endfor %}</table>
<table id="rows"><tr><th>category</th><th>JAGGAER invoice</th><th>supplier</th><th>YourRef</th><th>date JAGGAER / Exact</th><th>amount JAGGAER / Exact</th><th>Exact entry</th><th>ledger</th><th>note</th></tr>
{% for r in rec.rows %}<tr><td class="cat-{{ r.category }}">{{ categories.get(r.category, r.category) }}</td>
<td>{% if r.jaggaer_invoice_id %}<a href="{{ base }}?tenant={{ tenant|urlencode }}&q={{ r.jaggaer_invoice_id|urlencode }}">{{ r.jaggaer_invoice_number or r.jaggaer_invoice_id }}</a>{% if r.jaggaer_invoice_number %}<br><span class="muted">id {{ r.jaggaer_invoice_id }}</span>{% endif %}{% else %}-{% endif %}</td>
<td>{{ r.supplier or "-" }}{% if r.exact_supplier_code %}<br><span class="muted">Exact {{ r.exact_supplier_code }}</span>{% endif %}</td><td>{{ r.your_ref or "-" }}</td>
<td>{{ r.jaggaer_date or "-" }} / {{ r.exact_date or "-" }}</td><td class="num">{{ r.jaggaer_amount or "-" }} / {{ r.exact_amount or "-" }} {{ r.currency or "" }}</td>
<td>{{ r.exact_entry_number or "-" }}</td><td>{{ r.ledger_state or "-" }}</td><td class="reason">{{ r.note or "" }}</td></tr>{% endfor %}</table>
{% endif %}
{% endblock %}"""


@lru_cache(maxsize=1)
def _env() -> Environment:
    return Environment(
        loader=DictLoader({"base.html": BASE, "macros.html": MACROS, "reconcile.html": RECONCILE}),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(context: dict[str, Any]) -> str:
    from ml_connector.web.ledger_html import _EXTRA_STYLE
    from ml_connector.web.style import STYLE as APP_STYLE

    defaults: dict[str, Any] = {
        "style": APP_STYLE + _EXTRA_STYLE + _STYLE,
        "flash": None,
        "errors": [],
        "csrf_token": "",
        "back": "",
        "tenants": [],
        "attention_total": 0,
        "budget_lines": [],
    }
    return _env().get_template("reconcile.html").render({**defaults, **context})
