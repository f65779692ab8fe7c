"""Small validated types shared by the config sections."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict


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
