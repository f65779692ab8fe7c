# ruff: noqa: E501  (the page template below: HTML lines are not wrapped at 120 characters)
"""The mappings page: one server-rendered Jinja2 template (autoescaped; no JavaScript).

Sensitive values (VAT and chamber-of-commerce numbers, e-mail addresses) reach the template only masked
(:func:`mask`); they are never put into a form field, not even after a failed submit.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import DictLoader, Environment, StrictUndefined, select_autoescape

from ml_connector.web.style import STYLE as _STYLE

_EXTRA_STYLE = """
h3{margin-top:2rem;border-bottom:1px solid #cbd5e0;padding-bottom:.2rem}h4{margin:1.2rem 0 .3rem}
.box{border:1px solid #cbd5e0;border-radius:4px;padding:.6rem .9rem;margin:1rem 0}
.box.err{border-color:#c53030;background:#fff5f5}.box.ok{border-color:#276749;background:#f0fff4}
.box.info{background:#f7fafc}form.inline{display:inline;margin:0}form.fix{margin:.3rem 0}
label{display:inline-block;margin:.2rem .8rem .2rem 0}input[type=text]{width:11rem}
.field-err{color:#c53030;font-size:.9em;display:block}.inactive{color:#718096;text-decoration:line-through}
td.reason{max-width:38rem;font-size:.9em}button{cursor:pointer}
"""

PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>ml-connector mappings{% if tenant %}: {{ tenant }}{% endif %}</title>
<style>{{ style }}</style></head><body>
<h2>Mappings{% if tenant %} of {{ display_name or tenant }} <span class="muted">({{ tenant }})</span>{% endif %}</h2>
<p class="muted">Signed in as {{ actor.name }}{% if actor.role %} ({{ actor.role }}){% endif %}.
{% if actor.can_edit %}You may change mappings; every change is audited.
{% else %}Read only: changing mappings needs the role {{ edit_roles }}.{% endif %}
{% if tenants|length > 1 %}Tenant:
  {% for t in tenants %}{% if t == tenant %}<strong>{{ t }}</strong>{% else %}<a href="{{ base }}?tenant={{ t|urlencode }}">{{ t }}</a>{% endif %}{% if not loop.last %} &middot; {% endif %}{% endfor %}
{% endif %}</p>

{% if flash %}<div class="box ok" id="flash">{{ flash }}</div>{% endif %}
{% if errors %}<div class="box err" id="errors"><strong>{{ error_title }}</strong> Nothing was changed.
<ul>{% for e in errors %}<li>{{ e }}</li>{% endfor %}</ul></div>{% endif %}

{% macro csrf() %}<input type="hidden" name="csrf_token" value="{{ csrf_token }}"><input type="hidden" name="tenant" value="{{ tenant }}">{% endmacro %}
{% macro ferr(form, field) %}{% for e in field_errors.get(form, {}).get(field, []) %}<span class="field-err">{{ e }}</span>{% endfor %}{% endmacro %}

{% if tenant %}
<h3 id="waiting">Records waiting on a mapping ({{ waiting|length }})</h3>
{% if waiting %}
<p class="muted">Held invoices and records quarantined by our own checks are tried again by every run once the mapping
exists; requeue the others (e.g. refused by Exact) after the fix.</p>
<table><tr><th>flow</th><th>record</th><th>division</th><th>state</th><th>reason</th><th>fix</th></tr>
{% for w in waiting %}<tr>
<td>{{ w.flow }}</td><td>{{ w.ref }}{% if w.ref != w.source_id %}<br><span class="muted">id {{ w.source_id }}</span>{% endif %}</td>
<td>{{ w.division or "-" }}</td><td>{{ w.state }}</td><td class="reason">{{ w.reason }}</td>
<td>{% if actor.can_edit %}
{% for f in w.fixes %}{% if f.type == "vendor" %}
<form class="fix" method="post" action="{{ base }}/vendor">{{ csrf() }}
<input type="hidden" name="division" value="{{ f.division }}"><input type="hidden" name="jaggaer_supplier_id" value="{{ f.jaggaer_id }}">
<input type="hidden" name="name" value="{{ f.name }}"><input type="hidden" name="active" value="true">
JAGGAER vendor {{ f.jaggaer_id }} in {{ f.division }} &rarr; Exact code
<input type="text" name="exact_code" required placeholder="e.g. 1001" aria-label="Exact supplier code">
<button type="submit">map</button></form>
{% else %}
<form class="fix" method="post" action="{{ base }}/code">{{ csrf() }}
<input type="hidden" name="kind" value="{{ f.kind }}">
{{ f.kind }} <input type="text" name="source_value" value="{{ f.source }}" required aria-label="JAGGAER value"> &rarr;
<input type="text" name="target_value" required placeholder="{{ f.hint }}" aria-label="Exact value">
<input type="hidden" name="note" value="fix for {{ w.ref }}"><button type="submit">map</button></form>
{% endif %}{% endfor %}
<form class="fix" method="post" action="{{ base }}/requeue">{{ csrf() }}
<input type="hidden" name="flow" value="{{ w.flow }}"><input type="hidden" name="source_id" value="{{ w.source_id }}">
<button type="submit">requeue</button></form>
{% else %}<span class="muted">op/admin only</span>{% endif %}</td></tr>
{% endfor %}</table>
{% if actor.can_edit %}{% for flow, ids in waiting_by_flow.items() %}
<form method="post" action="{{ base }}/requeue">{{ csrf() }}<input type="hidden" name="flow" value="{{ flow }}">
{% for i in ids %}<input type="hidden" name="source_id" value="{{ i }}">{% endfor %}
<button type="submit">requeue all {{ ids|length }} {{ flow }} record(s) listed</button></form>
{% endfor %}{% endif %}
{% else %}<p class="muted">None.</p>{% endif %}
{% if other_waiting %}<p class="muted">{{ other_waiting }} other held/quarantined record(s) wait for something else than a
mapping: see <a href="{{ base|replace('/mappings', '/ledger') }}/attention?tenant={{ tenant|urlencode }}">Needs a person</a> in the ledger console
(or <code>mlc ledger list</code>).</p>{% endif %}

<h3 id="vendors">Vendor links ({{ vendors|length }})</h3>
<p class="muted">JAGGAER vendor &rarr; Exact supplier, per Exact division. Unlinked vendors are matched on
{{ match_keys|join(", ") }}; without a match the policy is <code>{{ unmatched_policy }}</code>.
VAT and chamber-of-commerce numbers and e-mail addresses are stored encrypted and shown masked.</p>
{% if vendors %}
<table><tr><th>division</th><th>JAGGAER id</th><th>JAGGAER number</th><th>Exact code</th><th>Exact account ID</th>
<th>name</th><th>VAT</th><th>CoC</th><th>e-mail</th><th>source</th><th>active</th>{% if actor.can_edit %}<th></th>{% endif %}</tr>
{% for v in vendors %}<tr{% if not v.active %} class="inactive"{% endif %}>
<td>{{ v.division }}</td><td>{{ v.jaggaer_id or "-" }}</td><td>{{ v.jaggaer_number or "-" }}</td>
<td>{{ v.exact_code or "-" }}</td><td>{{ v.exact_account_id or "(looked up on the next run)" }}</td><td>{{ v.name or "" }}</td>
<td>{{ v.vat }}</td><td>{{ v.coc }}</td><td>{{ v.email }}</td><td>{{ v.source }}</td><td>{{ "yes" if v.active else "no" }}</td>
{% if actor.can_edit %}<td><a href="{{ base }}?tenant={{ tenant|urlencode }}&amp;edit_vendor={{ v.id }}#vendor-form">edit</a>
<form class="inline" method="post" action="{{ base }}/vendor/delete">{{ csrf() }}
<input type="hidden" name="division" value="{{ v.division }}"><input type="hidden" name="jaggaer_key" value="{{ v.key }}">
<button type="submit">delete</button></form></td>{% endif %}</tr>
{% endfor %}</table>
{% else %}<p class="muted">No vendor links yet.</p>{% endif %}

{% if actor.can_edit %}
<h4 id="vendor-form">Add or change a vendor link</h4>
<form method="post" action="{{ base }}/vendor" class="box info">{{ csrf() }}
<p class="muted">The JAGGAER vendor (id, or supplier number when the id is not known) and the division identify the
link: saving replaces that vendor's link in that division. Give the Exact supplier by code or by account ID.</p>
<label>Division <select name="division">{% for d in divisions %}<option value="{{ d }}"{% if vf.division|string == d|string %} selected{% endif %}>{{ d }}</option>{% endfor %}</select>{{ ferr("vendor", "division") }}</label>
<label>JAGGAER vendor id <input type="text" name="jaggaer_supplier_id" value="{{ vf.jaggaer_supplier_id }}">{{ ferr("vendor", "jaggaer_supplier_id") }}</label>
<label>JAGGAER supplier number <input type="text" name="jaggaer_supplier_number" value="{{ vf.jaggaer_supplier_number }}">{{ ferr("vendor", "jaggaer_supplier_number") }}</label><br>
<label>Exact supplier code <input type="text" name="exact_code" value="{{ vf.exact_code }}">{{ ferr("vendor", "exact_code") }}</label>
<label>Exact account ID (GUID) <input type="text" name="exact_account_id" value="{{ vf.exact_account_id }}" style="width:19rem">{{ ferr("vendor", "exact_account_id") }}</label>
<label>Name <input type="text" name="name" value="{{ vf.name }}">{{ ferr("vendor", "name") }}</label><br>
<label>VAT number <input type="password" name="vat_number" autocomplete="off" placeholder="empty: keep">{{ ferr("vendor", "vat_number") }}</label>
<label><input type="checkbox" name="clear_vat_number" value="1"> remove the stored VAT number</label><br>
<label>Chamber of commerce no. <input type="password" name="coc_number" autocomplete="off" placeholder="empty: keep">{{ ferr("vendor", "coc_number") }}</label>
<label><input type="checkbox" name="clear_coc_number" value="1"> remove it</label><br>
<label>E-mail <input type="password" name="email" autocomplete="off" placeholder="empty: keep">{{ ferr("vendor", "email") }}</label>
<label><input type="checkbox" name="clear_email" value="1"> remove it</label><br>
<label><input type="checkbox" name="active" value="true"{% if vf.active %} checked{% endif %}> active (untick to hold this vendor's invoices)</label>{{ ferr("vendor", "active") }}
<br><button type="submit">Save vendor link</button></form>
{% endif %}

<h3 id="codes">Code maps</h3>
<p class="muted">JAGGAER value &rarr; Exact code, one way. A row here overrides the tenant file; "applies" is what the
next run uses.</p>
{% for k in codes %}<h4>{{ k.kind }}</h4>
<p class="muted">Tenant file: {% if k.setting %}<code>{{ k.setting }}</code>{% else %}no defaults (an unmapped value is used as is){% endif %}.</p>
{% if k.rows %}<table><tr><th>JAGGAER value</th><th>tenant file</th><th>override (this database)</th><th>note</th><th>applies</th>{% if actor.can_edit %}<th></th>{% endif %}</tr>
{% for r in k.rows %}<tr><td>{{ r.source }}</td><td>{{ r.file if r.file is not none else "-" }}</td>
<td>{% if r.override is not none %}<strong>{{ r.override }}</strong>{% else %}-{% endif %}</td><td>{{ r.note or "" }}</td>
<td>{{ r.applies if r.applies is not none else "(unmapped)" }}</td>
{% if actor.can_edit %}<td>{% if r.override is not none %}<a href="{{ base }}?tenant={{ tenant|urlencode }}&amp;edit_code={{ r.id }}#code-form">edit</a>
<form class="inline" method="post" action="{{ base }}/code/delete">{{ csrf() }}<input type="hidden" name="kind" value="{{ k.kind }}">
<input type="hidden" name="source_value" value="{{ r.source }}"><button type="submit">delete override</button></form>{% else %}
<a href="{{ base }}?tenant={{ tenant|urlencode }}&amp;new_code={{ k.kind|urlencode }}&amp;source={{ r.source|urlencode }}#code-form">override</a>{% endif %}</td>{% endif %}</tr>
{% endfor %}</table>{% else %}<p class="muted">Nothing mapped.</p>{% endif %}
{% endfor %}

{% if actor.can_edit %}
<h4 id="code-form">Add or change a code map</h4>
<form method="post" action="{{ base }}/code" class="box info">{{ csrf() }}
<label>Kind <select name="kind">{% for k in kinds %}<option value="{{ k }}"{% if cf.kind == k %} selected{% endif %}>{{ k }}</option>{% endfor %}</select>{{ ferr("code", "kind") }}</label>
<label>JAGGAER value <input type="text" name="source_value" value="{{ cf.source_value }}">{{ ferr("code", "source_value") }}</label>
<label>Exact value <input type="text" name="target_value" value="{{ cf.target_value }}">{{ ferr("code", "target_value") }}</label>
<label>Note <input type="text" name="note" value="{{ cf.note }}" style="width:18rem">{{ ferr("code", "note") }}</label>
<br><span class="muted">gl_account: invoice type &rarr; GL code; cost_center: cost centre &rarr; cost centre; vat_code: tax
rate in % (20, 5, 0, 17.5) &rarr; VAT code; business_unit: business unit &rarr; division of this tenant; currency: code
&rarr; three-letter code.</span><br><button type="submit">Save code map</button></form>
{% endif %}

<h3 id="csv">CSV</h3>
<p>Export: <a href="{{ base }}/export?tenant={{ tenant|urlencode }}&amp;kind=vendors">vendor links</a> &middot;
<a href="{{ base }}/export?tenant={{ tenant|urlencode }}&amp;kind=codes">code maps</a>
<span class="muted">(VAT, chamber-of-commerce numbers and e-mail addresses are left empty; an import keeps the stored
ones where a cell is empty. <code>mlc mappings export</code> writes them in clear for their owner.)</span></p>
{% if actor.can_edit %}
<form method="post" action="{{ base }}/import" enctype="multipart/form-data" class="box info">{{ csrf() }}
<label>Import <select name="kind"><option value="vendors">vendor links</option><option value="codes">code maps</option></select></label>
<label><input type="file" name="file" accept=".csv,text/csv" required>{{ ferr("import", "file") }}</label>
<button type="submit">Import</button>
<br><span class="muted">Every row is checked first; one bad row imports nothing. Columns as in the export.</span></form>
{% endif %}
{% endif %}
</body></html>
"""


@lru_cache(maxsize=1)
def _env() -> Environment:
    env = Environment(
        loader=DictLoader({"page.html": PAGE}),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def render(context: dict[str, Any]) -> str:
    defaults: dict[str, Any] = {
        "style": _STYLE + _EXTRA_STYLE,
        "flash": None,
        "errors": [],
        "error_title": "",
        "field_errors": {},
        "csrf_token": "",
        "tenant": None,
        "display_name": None,
        "tenants": [],
        "waiting": [],
        "waiting_by_flow": {},
        "other_waiting": 0,
        "vendors": [],
        "codes": [],
        "vf": {},
        "cf": {},
        "divisions": [],
        "kinds": [],
        "match_keys": [],
        "unmatched_policy": "",
    }
    return _env().get_template("page.html").render({**defaults, **context})


def mask(value: str | None) -> str:
    """``GB123456789`` → ``•••••789``; e-mail ``ap@vendor.example`` → ``a•••@vendor.example``; nothing → ``-``.

    Enough for an admin to recognise a value they know, never enough to read it."""
    if not value:
        return "-"
    text = str(value)
    if "@" in text:
        local, _, domain = text.rpartition("@")
        return f"{local[:1]}•••@{domain}"
    if len(text) < 8:
        return "•••••"
    return "•••••" + text[-3:]
