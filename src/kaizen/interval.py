"""Dates and intervals: every stage is keyed by an explicit date, never by `now()`."""

from __future__ import annotations

import datetime as dt
import re

from kaizen.errors import InputError

_DS = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_ds(value: str | dt.date) -> str:
    """Validate a partition date and return it as `YYYY-MM-DD`."""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value).strip()
    if not _DS.match(text):
        raise InputError(f"invalid date {value!r}: expected YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise InputError(f"invalid date {value!r}: no such calendar day") from None


def date_range(start: str | dt.date, end: str | dt.date) -> list[str]:
    """Every date from `start` to `end` inclusive."""
    first = dt.date.fromisoformat(parse_ds(start))
    last = dt.date.fromisoformat(parse_ds(end))
    if last < first:
        raise InputError(f"empty date range: {first} is after {last}")
    return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def day_bounds(ds: str) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a partition's day in UTC."""
    start = dt.datetime.combine(dt.date.fromisoformat(parse_ds(ds)), dt.time(), dt.UTC)
    return start, start + dt.timedelta(days=1)
