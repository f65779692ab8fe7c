"""The Exact sandbox's switchable behaviours. Read/patch them at runtime with ``GET|POST /_admin/settings``.

Every guess about Exact's behaviour (docs/sandbox-exact.md, "Settings") is a knob here, so tests can switch
between the plausible variants.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEMO_CLIENT_ID = "mlc-demo-client"
DEMO_CLIENT_SECRET = "mlc-demo-secret"
DEMO_REDIRECT_URIS = [
    "http://127.0.0.1:8080/ml-connector/exact/callback",
    "http://localhost:8080/ml-connector/exact/callback",
    "urn:mlc:paste",
]
DEMO_WEBHOOK_SECRET = "mlc-demo-webhook-secret"
DEFAULT_PORT = 8701


class RegisteredApp(BaseModel):
    client_id: str
    client_secret: str
    redirect_uris: list[str] = Field(default_factory=list)
    name: str = "App"
    webhook_secret: str = ""  # keys the HashCode of the app's webhook notifications (sandbox.exact.webhooks)


def _demo_apps() -> dict[str, RegisteredApp]:
    return {
        DEMO_CLIENT_ID: RegisteredApp(
            client_id=DEMO_CLIENT_ID,
            client_secret=DEMO_CLIENT_SECRET,
            redirect_uris=list(DEMO_REDIRECT_URIS),
            name="ml-connector (demo)",
            webhook_secret=DEMO_WEBHOOK_SECRET,
        )
    }


class ExactSettings(BaseModel):
    model_config = ConfigDict(validate_assignment=True, extra="forbid")

    # ---- OAuth ----------------------------------------------------------------------------------------------
    apps: dict[str, RegisteredApp] = Field(default_factory=_demo_apps)
    extra_redirect_uris: list[str] = Field(default_factory=list)  # accepted for every registered app
    consent_page: bool = False  # False: /api/oauth2/auth consents at once; True: an HTML consent page
    consent_divisions: list[int] = Field(default_factory=lambda: [111111, 222222])  # granted on auto-consent
    auth_code_ttl_s: float = 180.0
    access_token_ttl_s: float = 600.0
    refresh_min_age_s: float = 570.0  # refresh refused earlier than this after the current access token's issue
    too_early_style: Literal["2026", "legacy"] = "2026"  # 2026: 400+Reason header; legacy: 401 "not expired"
    refresh_token_idle_ttl_s: float = 30 * 86400.0
    old_access_token_valid_after_refresh: bool = True  # [guess] previous access token lives until its expiry
    reuse_kills_chain: bool = True  # reusing an old refresh token revokes the chain's current tokens too
    token_type: str = "bearer"  # casing varies in the wild
    token_calls_per_day: int = 200  # per app, per user, per UTC day
    token_cap_status: Literal[400, 429] = 400  # [guess] response once the daily token-call cap is spent

    # ---- rate limits (per app and division, fixed windows aligned to the clock) ---------------------------
    rate_limits_enabled: bool = True
    minutely_limit: int = 60
    daily_limit: int = 5000
    minute_window_s: float = 60.0
    day_window_s: float = 86400.0  # aligned to epoch multiples: the default resets at 00:00 UTC

    # ---- error budget (400/401/403/404 per app, user, division, endpoint and hour) ---------------------------
    error_budget_enabled: bool = True
    error_budget_threshold: int = 10  # more than this many errors in the window blocks the endpoint
    error_budget_window_s: float = 3600.0
    error_budget_block_s: float = 3600.0
    error_budget_block_status: Literal[403, 429] = 429  # [guess]; the body says why (never empty)
    error_budget_statuses: list[int] = Field(default_factory=lambda: [400, 401, 403, 404])

    # ---- OData / responses -------------------------------------------------------------------------------
    page_size: int = 60
    sync_page_size: int = 1000
    expand_page_size: int = 60
    validation_error_status: Literal[400, 500] = 500  # Exact has historically answered validation errors 500
    language: Literal["en", "nl"] = "en"  # validation messages (Dutch happens)
    date_timezone: str = "UTC"  # [guess] "/Date(ms)/" in UTC, or e.g. "Europe/Amsterdam" wall-clock time
    non_json_response: Literal["atom", "406", "json"] = "atom"  # Accept without application/json
    bare_list: bool = False  # [seen] some responses: {"d": [...]} instead of {"d": {"results": [...]}}
    post_minimal_without_prefer: bool = True  # POST without Prefer: return=representation -> key fields only
    # False (Exact): only sync/ and bulk/ endpoints demand $select (and refuse $select=*); ordinary endpoints return
    # every property without it. True: every division GET needs $select (stricter than Exact, for tests).
    select_required_everywhere: bool = False
    # [guess] sources disagree whether crm/Accounts accepts a filter on Modified as its required filter.
    accounts_filter_on_modified: bool = False
    # [guess] a POST/PUT body that sets a property the reference shows as read-only: "ignore" stores nothing for it
    # (the OData reader accepts it), "refuse" answers 400. A property the entity does not have is always a 400.
    readonly_property_on_write: Literal["ignore", "refuse"] = "ignore"
    # $expand=PurchaseOrderLines returns the lines only when $select names them as PurchaseOrderLines/Field
    # (docs/sandbox-exact.md); False: a bare "PurchaseOrderLines" in $select (or no $select) returns every line field.
    expand_needs_nav_select: bool = True
    deleted_retention_days: float | None = 60.0  # sync/Deleted keeps rows about 2 months; None: forever

    # ---- request size ------------------------------------------------------------------------------------
    max_url_length: int = 6000  # longer URLs (scheme, host, path and query) -> 414
    max_body_bytes: int = 10 * 1024 * 1024  # larger request bodies -> 413

    # ---- company / user --------------------------------------------------------------------------------
    current_division: int = 111111  # what current/Me reports (changes when the person switches)
    blocked_divisions: list[int] = Field(default_factory=list)  # -> 403 Reason: DivisionBlocked
    closed_before: str | None = None  # "YYYY-MM-DD": purchase entries dated before it hit a closed period
    public_base_url: str | None = None  # for __next/__metadata URLs; default: the request's own host

    # ---- webhooks (sandbox.exact.webhooks) ---------------------------------------------------------------
    webhook_allow_http: bool = False  # Exact delivers to https callbacks only; True for loopback tests and the demo
    webhook_delay_s: float = 0.0  # every notification leaves this much later
    webhook_duplicates: int = 0  # extra copies of every notification ([guess] at-least-once)
    webhook_shuffle_s: float = 0.0  # each copy leaves at a random moment in this window: out-of-order delivery
    webhook_drop_all: bool = False  # nothing is delivered (a receiver that is down, a lost notification)
