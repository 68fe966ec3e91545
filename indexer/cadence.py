"""Attestation cadence (pure): when the next attestation is due.

`reserves.cadence` is `daily`, `weekly`, `monthly`, `quarterly` (calendar periods after `as_of`) or
a duration (`30d`); `reserves.grace` is how long after the end of the next period its attestation
may take to be published. Without a cadence the next one is due `reserves.max_age` after `as_of`.

Calendar months keep the end of a month: an attestation as of 31 May is followed by one as of
30 June (then 31 July); as of 15 May, by 15 June.
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from typing import Literal

CalendarCadence = Literal["daily", "weekly", "monthly", "quarterly"]
CALENDAR_CADENCES: tuple[CalendarCadence, ...] = ("daily", "weekly", "monthly", "quarterly")
Cadence = CalendarCadence | float  # a name, or a period in seconds


def add_months(when: datetime, months: int) -> datetime:
    """`when` plus whole calendar months; the last day of a month maps to the last day."""
    last = calendar.monthrange(when.year, when.month)[1]
    index = when.year * 12 + (when.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    new_last = calendar.monthrange(year, month)[1]
    day = new_last if when.day == last else min(when.day, new_last)
    return when.replace(year=year, month=month, day=day)


def next_period(as_of: datetime, cadence: Cadence) -> datetime:
    """The `as_of` of the attestation after the one as of `as_of`."""
    if isinstance(cadence, float | int):
        return as_of + timedelta(seconds=float(cadence))
    match cadence:
        case "daily":
            return as_of + timedelta(days=1)
        case "weekly":
            return as_of + timedelta(weeks=1)
        case "monthly":
            return add_months(as_of, 1)
        case "quarterly":
            return add_months(as_of, 3)
    raise ValueError(f"unknown cadence {cadence!r}")


def next_due(as_of: datetime, cadence: Cadence | None, grace_s: float, max_age_s: float) -> datetime:
    """When the next attestation is overdue: the next period plus grace, or as_of + max_age."""
    if cadence is None:
        return as_of + timedelta(seconds=max_age_s)
    return next_period(as_of, cadence) + timedelta(seconds=grace_s)
