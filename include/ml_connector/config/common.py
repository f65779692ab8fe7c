"""Small validated types shared by the config sections."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict


class Section(BaseModel):
    """Base for config sections: unknown keys are errors (a typo must not silently do nothing)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/London)") from None
    return value


def _check_cron(value: str) -> str:
    from croniter import croniter

    if value.startswith("@"):
        if value not in ("@hourly", "@daily", "@weekly", "@monthly", "@once", "@continuous"):
            raise ValueError(f"unknown schedule preset {value!r}")
        return value
    if not croniter.is_valid(value):
        raise ValueError(f"{value!r} is not a valid cron expression (five fields: minute hour day month weekday)")
    return value


TimeZoneName = Annotated[str, AfterValidator(_check_timezone)]
CronExpr = Annotated[str, AfterValidator(_check_cron)]


def _check_share(value: object) -> float:
    """A flow's share of a division's daily Exact calls: a fraction above 0 and at most 1 (``0.7``), or a percentage
    written as such (``"70%"``)."""
    hint = (
        "give the fraction of the division's daily Exact calls this flow may use, above 0 and at most 1 "
        '(e.g. 0.7, or "70%"); what it leaves is kept for the other flow and for searches'
    )
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{value!r} is not a share: {hint}")
    text = str(value).strip()
    try:
        share = float(text.rstrip("%").strip()) / (100.0 if text.endswith("%") else 1.0)
    except ValueError:
        raise ValueError(f"{value!r} is not a share: {hint}") from None
    if not 0.0 < share <= 1.0:
        raise ValueError(f"{value!r} is not above 0 and at most 1: {hint}")
    return share


#: ``exact_daily_share`` of a flow (``config.invoice_poll`` / ``config.po_push``; ``exact.daily_budget``).
DailyShare = Annotated[float, BeforeValidator(_check_share)]
