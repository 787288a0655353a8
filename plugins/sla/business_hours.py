"""Business time for SLA policies: opening hours, holidays, time zones and paused clocks.

A ``BusinessCalendar`` is a pure value: a time zone, the opening intervals of each weekday and
a finite set of holiday dates. Everything it computes is a function of that value and of the
arguments, with no clock, database or I/O, so SLA hooks built on it are easy to test and replay.

Conventions, chosen so that the arithmetic is exact and composes:

- Input datetimes must be timezone-aware (a naive one raises ``ValueError``); every returned
  instant is in UTC. Internally all instants are UTC, because Python compares two datetimes
  that share a ``tzinfo`` by wall time, which is wrong across a DST fold.
- Opening intervals are half-open ``[opens, closes)``. A shift belongs to the local date on
  which it starts: ``fri 22:00-06:00`` runs until Saturday 06:00, and it is cancelled when that
  Friday is a holiday (a Saturday holiday does not cut it short).
- Wall times are turned into instants with the first instant at which the local clock shows
  that time or later: a 02:30 boundary that the spring-forward skips becomes the jump instant
  (03:00 summer time), one that the fall-back repeats is its first occurrence. Elapsed business
  time is always real elapsed time, so a night shift across the change lasts an hour less or
  more than its wall-clock length.
- ``add(start, d)`` is the earliest instant ``t`` with ``business_time_between(start, t) == d``:
  ``add(start, 0)`` is ``start`` itself, and for ``d > 0`` the result is inside opening hours or
  exactly at a closing time. Hence ``add(add(s, a), b) == add(s, a + b)``.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Literal, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from . import holiday_sources

__all__ = [
    "WEEKDAYS",
    "BusinessCalendar",
    "CalendarConfig",
    "HolidaysConfig",
    "Pause",
    "PausedClock",
    "Shift",
    "business_time_with_pauses",
    "deadline_with_pauses",
]

Weekday: TypeAlias = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALWAYS_OPEN = "24x7"

#: A period during which the SLA clock does not run; ``None`` as its end means "still paused".
Pause: TypeAlias = tuple[datetime, datetime | None]

MINUTES_PER_DAY = 24 * 60
ZERO = timedelta(0)
ONE_DAY = timedelta(days=1)
ONE_WEEK = timedelta(weeks=1)
TICK = timedelta(microseconds=1)  # the resolution of datetime arithmetic
ONE_SECOND = timedelta(seconds=1)

_SHIFT_PATTERN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


# --------------------------------------------------------------------------------------------
# Weekly hours
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class Shift:
    """One opening interval of a weekday, in minutes after that day's local midnight.

    ``end`` may exceed 1440 for an overnight shift: ``22:00-06:00`` is ``Shift(1320, 1800)``.
    A shift lasts more than zero and at most 24 hours.
    """

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < MINUTES_PER_DAY:
            raise ValueError(f"a shift must start between 00:00 and 23:59, got {self}")
        if not self.start < self.end <= self.start + MINUTES_PER_DAY:
            raise ValueError(f"a shift must last between 1 minute and 24 hours, got {self}")

    @classmethod
    def parse(cls, text: str) -> Shift:
        """Read ``"HH:MM-HH:MM"``; an end before the start means the shift ends the next day.

        ``"00:00-24:00"`` is a whole day; an end equal to the start is refused as ambiguous.
        """
        match = _SHIFT_PATTERN.match(text)
        if match is None:
            raise ValueError(f"opening hours must look like '09:00-17:30', got {text!r}")
        start = _minutes(int(match[1]), int(match[2]), text, allow_midnight_end=False)
        end = _minutes(int(match[3]), int(match[4]), text, allow_midnight_end=True)
        if end == start:
            raise ValueError(f"empty shift {text!r} (write '00:00-24:00' for a whole day)")
        if end < start:
            end += MINUTES_PER_DAY  # overnight: closes on the next day
        return cls(start, end)

    @property
    def length(self) -> timedelta:
        """How long the shift lasts on a day without a clock change."""
        return timedelta(minutes=self.end - self.start)

    def __str__(self) -> str:
        return f"{_clock(self.start)}-{_clock(self.end % MINUTES_PER_DAY or self.end)}"


def _minutes(hours: int, minutes: int, text: str, *, allow_midnight_end: bool) -> int:
    """Minutes after midnight for one side of a shift; only an end may be ``24:00``."""
    if allow_midnight_end and (hours, minutes) == (24, 0):
        return MINUTES_PER_DAY
    if hours > 23 or minutes > 59:
        raise ValueError(f"invalid time of day in {text!r}")
    return hours * 60 + minutes


def _clock(minutes: int) -> str:
    """``HH:MM`` for minutes after midnight (1440 prints as ``24:00``)."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


WeekHours: TypeAlias = tuple[tuple[Shift, ...], ...]
HoursTable: TypeAlias = Mapping[Weekday, Sequence[str]] | Mapping[str, Sequence[str]]


def parse_week(hours: HoursTable | str) -> WeekHours:
    """Weekly hours from ``{"mon": ["09:00-12:00", "13:00-17:30"], ...}`` or ``"24x7"``.

    Days left out are closed. Unknown day names raise ``ValueError``.
    """
    if isinstance(hours, str):
        if hours != ALWAYS_OPEN:
            raise ValueError(f"hours must be a table of weekdays or {ALWAYS_OPEN!r}, got {hours!r}")
        return tuple((Shift(0, MINUTES_PER_DAY),) for _ in WEEKDAYS)
    unknown = sorted(set(hours) - set(WEEKDAYS))
    if unknown:
        raise ValueError(f"unknown weekday(s) {unknown}; use {list(WEEKDAYS)}")
    if isinstance(hours.get("mon", ()), str):
        raise ValueError("each weekday takes a list of intervals, e.g. ['09:00-17:00']")
    return tuple(tuple(sorted(map(Shift.parse, hours.get(day, ())))) for day in WEEKDAYS)


def _check_week(week: WeekHours) -> None:
    """Refuse overlapping shifts (a likely typo) and a week that never opens."""
    if len(week) != len(WEEKDAYS):
        raise ValueError(f"weekly hours need 7 days (Monday first), got {len(week)}")
    for index, shifts in enumerate(week):
        if list(shifts) != sorted(shifts):
            raise ValueError(f"{WEEKDAYS[index]}: shifts must be in order of start")
        for earlier, later in pairwise(shifts):
            if earlier.end > later.start:
                raise ValueError(f"{WEEKDAYS[index]}: {earlier} overlaps {later}")
        following = week[(index + 1) % len(WEEKDAYS)]
        if shifts and following and shifts[-1].end - MINUTES_PER_DAY > following[0].start:
            raise ValueError(
                f"{WEEKDAYS[index]} {shifts[-1]} runs into {WEEKDAYS[(index + 1) % 7]} "
                f"{following[0]}"
            )
    if not any(week):
        raise ValueError("the calendar is never open: give at least one weekday some hours")


# --------------------------------------------------------------------------------------------
# Time zones
# --------------------------------------------------------------------------------------------


def _zone(name: str) -> ZoneInfo:
    """The IANA zone called ``name``, with a clear error for a misspelt one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {name!r}") from exc


def _aware_utc(value: datetime, name: str) -> datetime:
    """``value`` in UTC; a naive datetime is refused because its instant is unknown."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive datetime {value.isoformat()}")
    return value.astimezone(UTC)


def _check_duration(value: timedelta, name: str) -> None:
    """Refuse a negative or non-timedelta duration."""
    if not isinstance(value, timedelta):
        raise TypeError(f"{name} must be a timedelta, got {type(value).__name__}")
    if value < ZERO:
        raise ValueError(f"{name} must not be negative, got {value}")


def _wall_to_utc(zone: tzinfo, day: date, minutes: int) -> datetime:
    """The first instant at which the local clock reads ``day`` + ``minutes`` or later."""
    wall = datetime.combine(day, time()) + timedelta(minutes=minutes)
    instant = wall.replace(tzinfo=zone).astimezone(UTC)  # fold=0: the first occurrence
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    # ``wall`` falls in a spring-forward gap. fold=0 read it with the old offset, which lands
    # after the jump; fold=1 lands before it. The jump lies between: find it to the second.
    before = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return _first_offset_change(zone, before, instant, _offset_at(zone, before))


Interval: TypeAlias = tuple[tuple[datetime, datetime], ...]


@lru_cache(maxsize=16384)
def _day_intervals(zone: tzinfo, shifts: tuple[Shift, ...], day: date) -> Interval:
    """The UTC intervals of ``shifts`` worked on local date ``day`` (holidays aside).

    Cached: every ticket of a helpdesk computes its deadlines over the same few weeks, and
    the time zone conversion is the costly part of the arithmetic.
    """
    intervals = []
    for shift in shifts:
        opens = _wall_to_utc(zone, day, shift.start)
        closes = _wall_to_utc(zone, day, shift.end)
        if closes > opens:  # a shift inside a spring-forward gap does not happen
            intervals.append((opens, closes))
    return tuple(intervals)


def _offset_at(zone: tzinfo, instant: datetime) -> timedelta | None:
    """The zone's UTC offset at a UTC instant."""
    return instant.astimezone(zone).utcoffset()


@lru_cache(maxsize=1024)
def _offset_changes(zone: tzinfo, year: int) -> tuple[datetime, ...]:
    """The instants in ``(Jan 1 year, Jan 1 year+1]`` (UTC) at which the zone's offset changes.

    The offset is probed once a day: in the whole tz database since 1900 two changes are never
    less than four days apart, so none can hide between two probes. Each change found is then
    located to the second. Cached, because a long SLA sum crosses the same years again.
    """
    changes: list[datetime] = []
    low = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    offset = _offset_at(zone, low)
    while low < end:
        high = min(low + ONE_DAY, end)
        if _offset_at(zone, high) != offset:
            changes.append(_first_offset_change(zone, low, high, offset))
            offset = _offset_at(zone, high)
        low = high
    return tuple(changes)


def _first_offset_change(
    zone: tzinfo, low: datetime, high: datetime, offset: timedelta | None
) -> datetime:
    """The first instant in ``(low, high]`` whose offset differs from ``offset``.

    ``low`` and ``high`` are whole seconds, and so are the changes in the tz database, so the
    bisection works on integer timestamps and ends on the exact instant.
    """
    low_second, high_second = int(low.timestamp()), int(high.timestamp())
    while high_second - low_second > 1:
        middle = (low_second + high_second) // 2
        if _offset_at(zone, datetime.fromtimestamp(middle, UTC)) == offset:
            low_second = middle
        else:
            high_second = middle
    return datetime.fromtimestamp(high_second, UTC)


def _next_offset_change(zone: tzinfo, after: datetime, until: datetime) -> datetime | None:
    """The first offset change in ``(after, until]``, or ``None`` when there is none."""
    for year in range(after.year, until.year + 1):
        for change in _offset_changes(zone, year):
            if after < change <= until:
                return change
    return None


# --------------------------------------------------------------------------------------------
# Configuration (TOML shape)
# --------------------------------------------------------------------------------------------


class HolidaysConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where a calendar's days off come from; all sources are merged.

    ``country`` is ``"FR"``, ``"DE-BY"``, ``"US-CA"``... (the ``holidays`` package), ``ics`` a
    path to an iCalendar file (relative paths are resolved against the config's folder),
    ``extra`` explicit dates, ``years`` the inclusive range of years to load (by default the
    previous year and the next ten).
    """

    country: str | None = None
    ics: str | None = None
    extra: list[date] = msgspec.field(default_factory=list)
    years: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.years is not None:
            holiday_sources.year_range(*self.years)


class CalendarConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A business calendar as written in TOML, checked when it is decoded.

    ```toml
    timezone = "Europe/Paris"
    hours = { mon = ["09:00-12:00", "13:00-17:30"], fri = ["09:00-12:00", "22:00-06:00"] }
    holidays = { country = "FR", ics = "closures.ics", extra = [2026-12-24] }
    ```

    ``hours = "24x7"`` means always open. Weekdays left out are closed.
    """

    hours: dict[Weekday, list[str]] | Literal["24x7"]
    timezone: str = "UTC"
    holidays: HolidaysConfig = msgspec.field(default_factory=HolidaysConfig)

    def __post_init__(self) -> None:
        # Fail when the config is decoded, not when the first ticket needs a deadline.
        _zone(self.timezone)
        _check_week(parse_week(self.hours))


def _load_holidays(
    config: HolidaysConfig, base_dir: Path | None, today: date | None
) -> frozenset[date]:
    """All the holiday dates a ``HolidaysConfig`` names (reads the iCalendar file, if any)."""
    if config.years is not None:
        years = holiday_sources.year_range(*config.years)
    else:
        this_year = (today or date.today()).year
        years = range(this_year - 1, this_year + 11)
    days = set(config.extra)
    if config.country:
        days |= holiday_sources.country_holidays(config.country, years)
    if config.ics:
        path = Path(config.ics)
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        days |= holiday_sources.load_ics_holidays(path, years)
    return frozenset(days)


# --------------------------------------------------------------------------------------------
# The calendar
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """Opening hours in one time zone, minus holidays: the time an SLA clock runs.

    Build one with ``weekly``, ``always_open`` or ``from_config``. ``week`` holds the shifts of
    each weekday, Monday first; ``holidays`` are local dates on which no shift starts.
    """

    timezone: ZoneInfo
    week: WeekHours
    holidays: frozenset[date] = frozenset()
    _sorted_holidays: tuple[date, ...] = field(init=False, repr=False, compare=False)
    _week_total: timedelta = field(init=False, repr=False, compare=False)
    _trivial: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.timezone, ZoneInfo):
            raise TypeError(f"timezone must be a zoneinfo.ZoneInfo, got {self.timezone!r}")
        # Tuples all the way down: the per-day cache hashes a weekday's shifts.
        object.__setattr__(self, "week", tuple(tuple(shifts) for shifts in self.week))
        _check_week(self.week)
        object.__setattr__(self, "holidays", frozenset(self.holidays))
        if any(isinstance(day, datetime) or not isinstance(day, date) for day in self.holidays):
            # A datetime never equals a date, so it would silently be no holiday at all.
            raise TypeError("holidays must be datetime.date values (local dates)")
        object.__setattr__(self, "_sorted_holidays", tuple(sorted(self.holidays)))
        total = sum((shift.length for shifts in self.week for shift in shifts), ZERO)
        object.__setattr__(self, "_week_total", total)
        # Open every minute and never closed for a holiday: plain UTC arithmetic is exact.
        object.__setattr__(self, "_trivial", total == ONE_WEEK and not self.holidays)

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def weekly(
        cls,
        timezone: str,
        hours: HoursTable | str,
        holidays: Iterable[date] = (),
    ) -> BusinessCalendar:
        """A calendar from an IANA zone name, ``{"mon": ["09:00-17:00"], ...}`` and dates."""
        return cls(_zone(timezone), parse_week(hours), frozenset(holidays))

    @classmethod
    def always_open(cls, timezone: str = "UTC") -> BusinessCalendar:
        """The 24x7 calendar: every instant is business time."""
        return cls.weekly(timezone, ALWAYS_OPEN)

    @classmethod
    def from_config(
        cls, config: CalendarConfig, *, base_dir: Path | None = None, today: date | None = None
    ) -> BusinessCalendar:
        """Build from a decoded ``CalendarConfig``, loading its holiday sources.

        This is the only step that may read a file (the iCalendar one); ``today`` only sets the
        default range of holiday years.
        """
        holidays = _load_holidays(config.holidays, base_dir, today)
        return cls(_zone(config.timezone), parse_week(config.hours), holidays)

    # -- queries ------------------------------------------------------------------------------

    @property
    def weekly_hours(self) -> timedelta:
        """Business time in a week without holidays or clock changes."""
        return self._week_total

    def is_open(self, at: datetime) -> bool:
        """Whether ``at`` is business time (opening instants are open, closing ones are not)."""
        moment = _aware_utc(at, "at")
        if self._trivial:
            return True
        day = self._local_date(moment)
        # Yesterday's overnight shift may still run; tomorrow's is checked for DST folds.
        return any(
            opens <= moment < closes
            for slot in (day - ONE_DAY, day, day + ONE_DAY)
            for opens, closes in self._intervals(slot)
        )

    def next_open(self, at: datetime) -> datetime:
        """The first business instant at or after ``at``, in UTC."""
        moment = _aware_utc(at, "at")
        if self._trivial:
            return moment
        day = self._local_date(moment) - ONE_DAY
        while True:
            for opens, closes in self._intervals(day):
                if closes > moment:
                    return max(opens, moment)
            day += ONE_DAY

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant (UTC) at which ``duration`` of business time has elapsed since ``start``.

        Counting starts at the next opening when ``start`` is outside business hours. A zero
        duration returns ``start`` unchanged.
        """
        begin = _aware_utc(start, "start")
        _check_duration(duration, "duration")
        return self._advance(begin, duration, skip_weeks=True)

    def business_time_between(self, start: datetime, end: datetime) -> timedelta:
        """The business time in ``[start, end)``; ``end`` must not be before ``start``."""
        low, high = _aware_utc(start, "start"), _aware_utc(end, "end")
        if high < low:
            raise ValueError(f"end {end.isoformat()} is before start {start.isoformat()}")
        return self._measure(low, high, skip_weeks=True)

    # -- engine -------------------------------------------------------------------------------

    def _local_date(self, moment: datetime) -> date:
        """The local calendar date of a UTC instant."""
        return moment.astimezone(self.timezone).date()

    def _intervals(self, day: date) -> Interval:
        """The UTC opening intervals of the shifts that start on local date ``day``."""
        if day in self.holidays:
            return ()
        return _day_intervals(self.timezone, self.week[day.weekday()], day)

    def _advance(self, begin: datetime, duration: timedelta, *, skip_weeks: bool) -> datetime:
        """``add`` on UTC input; ``skip_weeks=False`` walks day by day (a reference for tests)."""
        if duration == ZERO:
            return begin
        if self._trivial:
            return begin + duration
        remaining = duration
        day = self._local_date(begin) - ONE_DAY  # yesterday's night shift may still run
        while True:
            if skip_weeks and day.weekday() == 0:
                # Skip whole weeks, but strictly fewer than needed: the landing is done below.
                weeks = self._skippable_weeks(day, begin, (remaining - TICK) // self._week_total)
                remaining -= weeks * self._week_total
                day += weeks * ONE_WEEK
            for opens, closes in self._intervals(day):
                opens = max(opens, begin)
                if closes <= opens:
                    continue
                if closes - opens >= remaining:
                    return opens + remaining
                remaining -= closes - opens
            day += ONE_DAY

    def _measure(self, low: datetime, high: datetime, *, skip_weeks: bool) -> timedelta:
        """``business_time_between`` on UTC input, ``low <= high``."""
        if self._trivial:
            return high - low
        total = ZERO
        day, last = self._local_date(low) - ONE_DAY, self._local_date(high) + ONE_DAY
        while day <= last:
            if skip_weeks and day.weekday() == 0:
                weeks = self._skippable_weeks(day, low, self._weeks_before(day, high))
                total += weeks * self._week_total
                day += weeks * ONE_WEEK
            for opens, closes in self._intervals(day):
                overlap = min(closes, high) - max(opens, low)
                total += max(overlap, ZERO)
            day += ONE_DAY
        return total

    def _weeks_before(self, monday: date, high: datetime) -> int:
        """How many whole weeks of shifts starting at ``monday`` all end before ``high``."""
        midnight = _wall_to_utc(self.timezone, monday, 0)
        # The last shift of the last week may run until the Tuesday after: one day of margin.
        return max(((high - midnight) // ONE_DAY - 1) // 7, 0)

    def _skippable_weeks(self, monday: date, floor: datetime, limit: int) -> int:
        """How many of the next ``limit`` weeks (from ``monday``) hold exactly ``weekly_hours``.

        That is true of a week with no holiday and no change of UTC offset while its shifts
        run, provided counting has already started (``floor`` is not after the Monday).
        """
        if limit <= 0:
            return 0
        midnight = _wall_to_utc(self.timezone, monday, 0)
        if midnight < floor:
            return 0
        index = bisect_left(self._sorted_holidays, monday)
        if index < len(self._sorted_holidays):
            limit = min(limit, (self._sorted_holidays[index] - monday).days // 7)
        # A day of margin on each side keeps clear of a change right at a week boundary.
        horizon = midnight + (7 * limit + 2) * ONE_DAY
        change = _next_offset_change(self.timezone, midnight - ONE_DAY, horizon)
        if change is not None:
            limit = min(limit, ((change - midnight) // ONE_DAY - 3) // 7)
        return max(limit, 0)


# --------------------------------------------------------------------------------------------
# Pauses
# --------------------------------------------------------------------------------------------


def _merged_pauses(begin: datetime, pauses: Iterable[Pause]) -> list[Pause]:
    """Pauses in UTC, cut to start no earlier than ``begin``, sorted and merged.

    An open pause (no end) swallows every later one: the clock is stopped from then on.
    """
    cleaned: list[tuple[datetime, datetime | None]] = []
    for paused, resumed in pauses:
        low = _aware_utc(paused, "pause start")
        high = None if resumed is None else _aware_utc(resumed, "pause end")
        if high is not None and high < low:
            raise ValueError(f"pause ends ({resumed}) before it starts ({paused})")
        if high is not None and high <= begin:
            continue  # over before the clock started
        cleaned.append((max(low, begin), high))
    cleaned.sort(key=lambda pause: pause[0])
    merged: list[Pause] = []
    for low, high in cleaned:
        if merged and (merged[-1][1] is None or low <= merged[-1][1]):
            previous_low, previous_high = merged[-1]
            end = None if previous_high is None or high is None else max(previous_high, high)
            merged[-1] = (previous_low, end)
        else:
            merged.append((low, high))
    return merged


def deadline_with_pauses(
    calendar: BusinessCalendar, start: datetime, target: timedelta, pauses: Iterable[Pause]
) -> datetime | None:
    """When ``target`` business time has run since ``start``, not counting the pauses.

    ``pauses`` are ``(paused_at, resumed_at)`` pairs (ticket waiting on the customer, on hold)
    and may overlap or start before ``start``. A pause still running (``resumed_at is None``)
    makes the deadline unknown, and ``None`` is returned, unless the target was reached before
    that pause began. The result is in UTC.
    """
    cursor = _aware_utc(start, "start")
    _check_duration(target, "target")
    remaining = target
    for paused, resumed in _merged_pauses(cursor, pauses):
        deadline = calendar.add(cursor, remaining)
        if deadline <= paused:
            return deadline
        # ``add`` returns the earliest instant, so strictly less than ``remaining`` ran here.
        remaining -= calendar.business_time_between(cursor, paused)
        if resumed is None:
            return None
        cursor = resumed
    return calendar.add(cursor, remaining)


def business_time_with_pauses(
    calendar: BusinessCalendar, start: datetime, end: datetime, pauses: Iterable[Pause]
) -> timedelta:
    """The business time in ``[start, end)`` during which the clock was not paused."""
    low, high = _aware_utc(start, "start"), _aware_utc(end, "end")
    total = calendar.business_time_between(low, high)
    for paused, resumed in _merged_pauses(low, pauses):
        stop = high if resumed is None else min(resumed, high)
        if paused < stop:
            total -= calendar.business_time_between(paused, stop)
    return total


@dataclass(frozen=True, slots=True)
class PausedClock:
    """A ticket's SLA clock: business time from ``start``, stopped during ``pauses``.

    Immutable: ``pause`` and ``resume`` return a new clock, so a snapshot can be stored with
    the ticket and replayed.
    """

    calendar: BusinessCalendar
    start: datetime
    pauses: tuple[Pause, ...] = ()

    def __post_init__(self) -> None:
        _aware_utc(self.start, "start")
        _merged_pauses(_aware_utc(self.start, "start"), self.pauses)  # validates each pause

    @property
    def paused(self) -> bool:
        """Whether the clock is stopped right now (its last pause has no end)."""
        return bool(self.pauses) and self.pauses[-1][1] is None

    def pause(self, at: datetime) -> PausedClock:
        """Stop the clock at ``at`` (e.g. the ticket now waits on the customer)."""
        if self.paused:
            raise ValueError("the clock is already paused")
        last_resume = self.pauses[-1][1] if self.pauses else None
        if last_resume is not None and _aware_utc(at, "at") < _aware_utc(last_resume, "resume"):
            raise ValueError("pauses must be recorded in order: this one starts before the last")
        return PausedClock(self.calendar, self.start, (*self.pauses, (at, None)))

    def resume(self, at: datetime) -> PausedClock:
        """Restart the clock at ``at`` (e.g. the customer replied)."""
        if not self.paused:
            raise ValueError("the clock is not paused")
        paused_at = self.pauses[-1][0]
        return PausedClock(self.calendar, self.start, (*self.pauses[:-1], (paused_at, at)))

    def elapsed(self, now: datetime) -> timedelta:
        """Business time the clock has run from ``start`` until ``now``."""
        return business_time_with_pauses(self.calendar, self.start, now, self.pauses)

    def deadline(self, target: timedelta) -> datetime | None:
        """When the clock reaches ``target``; ``None`` while paused short of it."""
        return deadline_with_pauses(self.calendar, self.start, target, self.pauses)
