"""Where business-calendar holidays come from: the ``holidays`` package and iCalendar files.

Every function returns a plain ``frozenset`` of local dates for an explicit, inclusive range of
years, so the calendar that uses them stays a pure value. The third-party packages are imported
inside the functions: importing this module costs nothing and does no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import icalendar

__all__ = ["country_holidays", "ics_holidays", "load_ics_holidays", "year_range"]


def year_range(first: int, last: int) -> range:
    """The inclusive range of years ``first..last``, checked for order."""
    if last < first:
        raise ValueError(f"holiday years must be increasing, got {first}..{last}")
    return range(first, last + 1)


def country_holidays(spec: str, years: Iterable[int]) -> frozenset[date]:
    """Public holidays of a country, or of one of its subdivisions, for the given years.

    ``spec`` is an ISO 3166 country code, optionally followed by a dash and the subdivision
    code the ``holidays`` package uses: ``"FR"``, ``"DE-BY"`` (Bavaria), ``"US-CA"``.
    An unknown country or subdivision raises ``ValueError`` naming it.
    """
    import holidays  # imported here: the package is large and only needed at start-up

    country, _, subdiv = spec.strip().partition("-")
    try:
        table = holidays.country_holidays(
            country.upper(), subdiv=subdiv.upper() or None, years=list(years)
        )
    except NotImplementedError as exc:  # how the package reports unknown codes
        raise ValueError(f"unknown holiday country or subdivision {spec!r}: {exc}") from exc
    return frozenset(table.keys())


def load_ics_holidays(path: str | Path, years: Iterable[int]) -> frozenset[date]:
    """The days covered by the all-day events of an iCalendar file (see ``ics_holidays``)."""
    return ics_holidays(Path(path).read_bytes(), years)


def ics_holidays(source: bytes | str, years: Iterable[int]) -> frozenset[date]:
    """The days covered by the all-day events of an iCalendar document, within ``years``.

    An all-day event (``DTSTART;VALUE=DATE``) covers every day from its start up to, but not
    including, its ``DTEND`` (one day when it has neither end nor duration), as RFC 5545 says.
    Recurring events (``RRULE``, e.g. ``FREQ=YEARLY``) are expanded and their ``EXDATE``
    exceptions removed. Timed events (meetings) and cancelled events are not holidays and are
    ignored. Malformed input raises ``ValueError``.
    """
    import icalendar

    wanted = list(years)
    if not wanted:
        return frozenset()
    try:
        calendar = icalendar.Calendar.from_ical(source)
    except ValueError as exc:
        raise ValueError(f"not a valid iCalendar document: {exc}") from exc
    first, last = date(min(wanted), 1, 1), date(max(wanted), 12, 31)
    days: set[date] = set()
    for event in calendar.events:
        days.update(_event_days(event, first, last))
    return frozenset(d for d in days if d.year in wanted)


def _event_days(event: icalendar.Event, first: date, last: date) -> set[date]:
    """The days between ``first`` and ``last`` that one all-day VEVENT (and its repeats) covers."""
    start = event.start
    if isinstance(start, datetime) or str(event.get("STATUS", "")).upper() == "CANCELLED":
        return set()  # datetime is a subclass of date: a timed event is not a day off
    span = max((event.end - start).days, 1)
    # An occurrence that starts before ``first`` can still reach into it.
    occurrences = _occurrence_starts(event, start, first - timedelta(days=span), last)
    excluded = {_as_date(value) for value in event.exdates}
    days: set[date] = set()
    for begin in occurrences - excluded:
        days.update(begin + timedelta(days=offset) for offset in range(span))
    return {d for d in days if first <= d <= last}


def _occurrence_starts(event: icalendar.Event, start: date, low: date, high: date) -> set[date]:
    """The start dates of an event's occurrences between ``low`` and ``high`` (inclusive)."""
    rules = event.rrules
    if not rules:
        return {start} if low <= start <= high else set()
    from dateutil.rrule import rrulestr

    anchor = datetime.combine(start, time())
    window = (datetime.combine(low, time()), datetime.combine(high, time()))
    found: set[date] = set()
    for rule in rules:
        expanded: Any = rrulestr(_floating_rule(rule), dtstart=anchor)
        found.update(moment.date() for moment in expanded.between(*window, inc=True))
    return found


def _floating_rule(rule: icalendar.vRecur) -> str:
    """The rule as text, with an UNTIL that ``dateutil`` accepts for an all-day start.

    RFC 5545 wants a date-only UNTIL next to a date-only start, but some calendar programs
    write a UTC date-time, which ``dateutil`` refuses next to a floating start. For days off
    only the last day matters, so such an UNTIL is cut to its date (that day stays included).
    """
    copy = type(rule)(rule)
    if "UNTIL" in copy:
        copy["UNTIL"] = [_as_date(copy["UNTIL"][0])]
    return copy.to_ical().decode()


def _as_date(value: date) -> date:
    """A date for an EXDATE value that may be written as a date or a datetime."""
    return value.date() if isinstance(value, datetime) else value
