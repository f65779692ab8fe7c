# ruff: noqa: E501  (the templates below: HTML lines are not wrapped at 120 characters)
"""The ledger console's pages: server-rendered Jinja2 templates (autoescaped; no JavaScript)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import DictLoader, Environment, StrictUndefined, select_autoescape

from ml_connector.web.style import STYLE as _STYLE

_EXTRA_STYLE = """
.box{border:1px solid #cbd5e0;border-radius:4px;padding:.6rem .9rem;margin:1rem 0}
.box.err{border-color:#c53030;background:#fff5f5}.box.ok{border-color:#276749;background:#f0fff4}
nav.tabs a{margin-right:1rem}nav.tabs a.here{font-weight:700;text-decoration:none;color:#1a202c}
form.filters label{display:inline-block;margin:.2rem .8rem .2rem 0}form.inline{display:inline;margin:0}
td.reason{max-width:34rem;font-size:.9em}.st-posted{color:#276749}.st-held,.st-quarantined{color:#b7791f}
.st-failed{color:#c53030;font-weight:600}.pager a,.pager span{margin-right:.6rem}button{cursor:pointer}
input[type=text].short{width:7rem}textarea{width:28rem;height:3rem}
"""

BASE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>ml-connector {{ title }}</title><style>{{ style }}</style></head><body>
<nav class="tabs">
<a href="{{ base }}?tenant={{ tenant|urlencode }}" {% if page == "records" %}class="here"{% endif %}>Records</a>
<a href="{{ base }}/attention?tenant={{ tenant|urlencode }}" {% if page == "attention" %}class="here"{% endif %}>Needs a person{% if attention_total %} ({{ attention_total }}){% endif %}</a>
<a href="{{ base }}/audit?tenant={{ tenant|urlencode }}" {% if page == "audit" %}class="here"{% endif %}>Audit export</a>
<a href="{{ base|replace('/ui/ledger', '/ui/reconcile') }}?tenant={{ tenant|urlencode }}" {% if page == "reconcile" %}class="here"{% endif %}>Reconciliation</a>
<a href="{{ mappings }}?tenant={{ tenant|urlencode }}">Mappings</a>
</nav>
<h2>{{ title }}</h2>
<p class="muted">Tenant {{ tenant }}{% if tenants|length > 1 %} (also: {% for t in tenants if t != tenant %}<a href="?tenant={{ t|urlencode }}">{{ t }}</a> {% endfor %}){% endif %} &middot; signed in as {{ actor.name }}{% if actor.role %} ({{ actor.role }}){% endif %}{% if not actor.can_edit %} &middot; read only: actions need the role {{ edit_roles }}{% endif %}</p>
{% if flash %}<div class="box ok" id="flash">{{ flash }}</div>{% endif %}
{% if budget_lines %}<div class="box" id="budget">{% for line in budget_lines %}<div>{{ line }}</div>{% endfor %}</div>{% endif %}
{% if errors %}<div class="box err" id="errors"><ul>{% for e in errors %}<li>{{ e }}</li>{% endfor %}</ul></div>{% endif %}
{% block body %}{% endblock %}
</body></html>"""

MACROS = """
{% macro csrf() %}<input type="hidden" name="csrf_token" value="{{ csrf_token }}"><input type="hidden" name="tenant" value="{{ tenant }}"><input type="hidden" name="back" value="{{ back }}">{% endmacro %}
{% macro ids(r) %}<a class="rec" href="{{ base }}/record/{{ r.id }}?tenant={{ tenant|urlencode }}">{{ r.source_ref or r.source_id }}</a>{% if r.source_ref and r.source_ref != r.source_id %}<br><span class="muted">id {{ r.source_id }}</span>{% endif %}{% endmacro %}
{% macro target(r) %}{% if r.target_ref %}{{ r.target_ref }}{% endif %}{% if r.target_id and r.target_id != r.target_ref %}<br><span class="muted">{{ r.target_id }}</span>{% endif %}{% if not r.target_ref and not r.target_id %}-{% endif %}{% endmacro %}
{% macro requeue_form(r) %}{% if actor.can_edit and r.state in requeue_states %}<form class="inline" method="post" action="{{ base }}/requeue">{{ csrf() }}<input type="hidden" name="flow" value="{{ r.flow }}"><input type="hidden" name="source_id" value="{{ r.source_id }}"><button type="submit" name="requeue" value="{{ r.id }}">Requeue</button></form>{% endif %}{% endmacro %}
"""

RECORDS = """{% extends "base.html" %}{% import "macros.html" as m with context %}{% block body %}
<form class="filters" method="get" action="{{ base }}">
<input type="hidden" name="tenant" value="{{ tenant }}">
<label>Search <input type="text" name="q" value="{{ f.q or '' }}" placeholder="invoice no. or id, order no., PONumber, entry no." size="34"></label>
<label>Flow <select name="flow"><option value="">both</option>{% for fl in flows %}<option value="{{ fl }}" {% if f.flow == fl %}selected{% endif %}>{{ fl }}</option>{% endfor %}</select></label>
<label>Division <select name="division"><option value="">all</option>{% for d in divisions %}<option value="{{ d }}" {% if f.division == d %}selected{% endif %}>{{ d }}</option>{% endfor %}</select></label>
<label>State <select name="state"><option value="">any</option>{% for s in states %}<option value="{{ s }}" {% if s in f.states %}selected{% endif %}>{{ s }}</option>{% endfor %}</select></label>
<label>Changed from <input type="date" name="date_from" value="{{ f.date_from or '' }}"></label>
<label>to <input type="date" name="date_to" value="{{ f.date_to or '' }}"></label>
<label>Per page <select name="size">{% for s in sizes %}<option {% if s == result.size %}selected{% endif %}>{{ s }}</option>{% endfor %}</select></label>
<button type="submit">Show</button> <a href="{{ base }}?tenant={{ tenant|urlencode }}">clear</a>
</form>
<p id="total">{{ result.total }} record(s){% if result.total %}, page {{ result.page }} of {{ result.pages }}{% endif %}.</p>
{% if result.rows %}
<table id="records"><tr><th>flow</th><th>division</th><th>source (JAGGAER invoice / Exact order)</th><th>target (Exact entry / JAGGAER PO)</th><th>state</th><th>attempts</th><th>last change (UTC)</th><th>why a person must act</th><th></th></tr>
{% for r in result.rows %}<tr>
<td>{{ r.flow }}</td><td>{{ r.division or "-" }}</td><td>{{ m.ids(r) }}</td><td>{{ m.target(r) }}</td>
<td class="st-{{ r.state }}">{{ r.state }}</td><td>{{ r.attempts }}</td><td>{{ when(r.updated_at) }}</td>
<td class="reason">{% if r.state in attention_states %}{{ r.reason or "" }}{% endif %}</td><td>{{ m.requeue_form(r) }}</td>
</tr>{% endfor %}</table>
<p class="pager">{% if result.page > 1 %}<a href="{{ page_url(result.page - 1) }}">&larr; previous</a>{% endif %}
{% if result.page < result.pages %}<a href="{{ page_url(result.page + 1) }}" id="next">next &rarr;</a>{% endif %}</p>
{% elif f.q %}<p class="box">Nothing matches <code>{{ f.q }}</code>: the search takes a JAGGAER invoice number (I00071) or id (2428071), an Exact order number, a PONumber, or an Exact entry number, exactly. Other filters may hide it: <a href="{{ base }}?tenant={{ tenant|urlencode }}&q={{ f.q|urlencode }}">search all records</a>.</p>
{% endif %}
{% endblock %}"""

RECORD = """{% extends "base.html" %}{% import "macros.html" as m with context %}{% block body %}
<table id="record">
<tr><th>flow</th><td>{{ r.flow }}</td><th>division</th><td>{{ r.division or "-" }}</td></tr>
<tr><th>source</th><td>{{ r.source_ref or "-" }} <span class="muted">(id {{ r.source_id }})</span></td><th>target</th><td>{{ r.target_ref or "-" }} <span class="muted">{{ r.target_id or "" }}</span></td></tr>
<tr><th>state</th><td class="st-{{ r.state }}" id="state">{{ r.state }}</td><th>attempts</th><td>{{ r.attempts }}</td></tr>
<tr><th>first seen</th><td>{{ when(r.first_seen_at) }}</td><th>posted</th><td>{{ when(r.posted_at) }}</td></tr>
<tr><th>reason</th><td colspan="3" class="reason" id="reason">{{ r.reason or "" }}</td></tr>
</table>
{% if actor.can_edit %}<h3>Actions</h3>
{% if r.state in requeue_states %}<p>{{ m.requeue_form(r) }} puts it back to pending; the next run sends it.</p>{% endif %}
{% if r.state in resolvable_states %}<form method="post" action="{{ base }}/resolve" id="resolve">{{ m.csrf() }}<input type="hidden" name="entry_id" value="{{ r.id }}">
<label>Mark resolved by hand (nothing more is sent); note, required:<br><textarea name="note" required placeholder="e.g. keyed by hand in Exact as entry 2026-104"></textarea></label><br><button type="submit">Mark resolved</button></form>{% endif %}
{% for fx in fixes if fx.type == "vendor" %}<form method="post" action="{{ mappings }}/vendor" class="fix">{{ m.csrf() }}
<input type="hidden" name="division" value="{{ fx.division }}"><input type="hidden" name="jaggaer_supplier_id" value="{{ fx.jaggaer_id }}"><input type="hidden" name="name" value="{{ fx.name }}"><input type="hidden" name="active" value="true">
Map JAGGAER vendor {{ fx.name }} ({{ fx.jaggaer_id }}) in division {{ fx.division }} to Exact supplier code <input type="text" class="short" name="exact_code" required aria-label="Exact supplier code"> <button type="submit">Map the vendor</button></form>{% endfor %}
{% if r.state not in requeue_states and r.state not in resolvable_states %}<p class="muted">No action applies to a {{ r.state }} record.</p>{% endif %}
{% endif %}
<h3>History ({{ rows|length }})</h3>
<table id="history"><tr><th>time (UTC)</th><th>action</th><th>HTTP</th><th>target</th><th>outcome</th><th>message</th><th>Airflow run / task try</th></tr>
{% for h in rows %}<tr>
<td>{{ when(h.at, True) }}</td><td>{{ h.action }}</td><td>{{ h.http_status or "" }}</td><td>{{ h.target_ref or "" }}{% if h.target_id and h.target_id != h.target_ref %} <span class="muted">{{ h.target_id }}</span>{% endif %}</td>
<td>{{ h.outcome }}</td><td class="reason">{{ h.message or "" }}</td>
<td>{% if h.run_id %}<span class="muted">{{ h.run_id }}</span>{% set t = tries.get(h.id) %}{% if t %}<br><a class="log" href="{{ t.url }}" target="_top">{{ t.task_id }}, try {{ t.try_number }}: log</a>{% else %}<br><a class="log" href="{{ run_url(h.run_id) }}" target="_top">the run</a>{% endif %}{% endif %}</td>
</tr>{% endfor %}</table>
{% endblock %}"""

ATTENTION = """{% extends "base.html" %}{% import "macros.html" as m with context %}{% block body %}
<p>Held, quarantined and failed records of both flows, grouped by cause. Held invoices are tried again by every run once
their mapping exists; the others need a requeue after the fix.</p>
{% if not groups %}<p class="box ok" id="nothing">Nothing needs a person.</p>{% endif %}
{% for g in groups %}<h3 id="cause-{{ g.key }}">{{ g.title }} ({{ g.entries|length }})</h3><p class="muted">{{ g.help }}</p>
<table><tr><th>flow</th><th>division</th><th>record</th><th>state</th><th>reason</th><th>fix</th></tr>
{% for r in g.entries %}<tr><td>{{ r.flow }}</td><td>{{ r.division or "-" }}</td><td>{{ m.ids(r) }}</td><td class="st-{{ r.state }}">{{ r.state }}</td><td class="reason">{{ r.reason or "" }}</td>
<td>{% if actor.can_edit %}{% for fx in fixes_of(r) %}{% if fx.type == "vendor" %}<form class="fix" method="post" action="{{ mappings }}/vendor">{{ m.csrf() }}<input type="hidden" name="division" value="{{ fx.division }}"><input type="hidden" name="jaggaer_supplier_id" value="{{ fx.jaggaer_id }}"><input type="hidden" name="name" value="{{ fx.name }}"><input type="hidden" name="active" value="true">vendor {{ fx.jaggaer_id }} &rarr; Exact code <input type="text" class="short" name="exact_code" required aria-label="Exact supplier code"> <button type="submit">Map</button></form>{% else %}<a href="{{ mappings }}?tenant={{ tenant|urlencode }}&new_code={{ fx.kind|urlencode }}&source={{ fx.source|urlencode }}#codes">map {{ fx.hint }} {{ fx.source }}</a><br>{% endif %}{% endfor %}{{ m.requeue_form(r) }}{% endif %}</td></tr>{% endfor %}
</table>{% endfor %}
{% endblock %}"""

AUDIT = """{% extends "base.html" %}{% block body %}
<p>The audit trail of a period as CSV (UTC days, both ends included): every write attempt and state change with time,
division, source and target identifiers, HTTP status, outcome and message. Cells that a spreadsheet would run as a
formula are escaped.</p>
<form method="get" action="{{ base }}/audit.csv" id="audit-export"><input type="hidden" name="tenant" value="{{ tenant }}">
<label>From <input type="date" name="date_from" value="{{ date_from }}" required></label>
<label>to <input type="date" name="date_to" value="{{ date_to }}" required></label> <button type="submit">Download CSV</button></form>
{% endblock %}"""


@lru_cache(maxsize=1)
def _env() -> Environment:
    return Environment(
        loader=DictLoader(
            {
                "base.html": BASE,
                "macros.html": MACROS,
                "records.html": RECORDS,
                "record.html": RECORD,
                "attention.html": ATTENTION,
                "audit.html": AUDIT,
            }
        ),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, context: dict[str, Any]) -> str:
    defaults: dict[str, Any] = {
        "style": _STYLE + _EXTRA_STYLE,
        "flash": None,
        "errors": [],
        "csrf_token": "",
        "back": "",
        "tenants": [],
        "attention_total": 0,
        "budget_lines": [],
    }
    return _env().get_template(template).render({**defaults, **context})
