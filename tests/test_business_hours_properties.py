"""Property tests (hypothesis) for business-time arithmetic.

Random calendars (split shifts, overnight shifts, whole days, holidays in runs and scattered,
zones with and without daylight saving, including half-hour and 45-minute offsets) with random
starts, biased towards clock changes, and random durations sized to the calendar's week.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ticketcore.plugins.sla import (
    WEEKDAYS,
    BusinessCalendar,
    Pause,
    business_time_with_pauses,
    deadline_with_pauses,
)

MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
TICK = timedelta(microseconds=1)

ZONES = [
    "UTC",
    "Europe/Paris",
    "Europe/London",
    "America/New_York",
    "America/Sao_Paulo",  # daylight saving until 2019, none since
    "Australia/Lord_Howe",  # a 30-minute change
    "Pacific/Chatham",  # UTC+12:45 / +13:45
    "Asia/Kolkata",  # UTC+05:30, no change
    "America/Santiago",  # changes at midnight: 00:00 is skipped, then Saturday 23:00 repeats
    "America/Havana",  # changes at midnight too
]

# Days with a clock change somewhere among ZONES, so that starts often land near one.
CHANGES = [
    datetime(2026, 3, 8, tzinfo=UTC),  # United States, forward
    datetime(2026, 3, 29, tzinfo=UTC),  # Europe, forward
    datetime(2026, 4, 5, tzinfo=UTC),  # Lord Howe and Chatham, back
    datetime(2026, 9, 27, tzinfo=UTC),  # Chatham, forward
    datetime(2026, 10, 4, tzinfo=UTC),  # Lord Howe, forward
    datetime(2026, 10, 25, tzinfo=UTC),  # Europe, back
    datetime(2026, 11, 1, tzinfo=UTC),  # United States, back
    datetime(2018, 11, 4, tzinfo=UTC),  # Sao Paulo, forward
    datetime(2019, 2, 17, tzinfo=UTC),  # Sao Paulo, back (its last change)
    datetime(2026, 4, 5, 3, tzinfo=UTC),  # Santiago, back: Sunday 00:00 -> Saturday 23:00
    datetime(2026, 9, 6, 4, tzinfo=UTC),  # Santiago, forward: Sunday 00:00 -> 01:00
    datetime(2026, 11, 1, 5, tzinfo=UTC),  # Havana, back: 01:00 -> 00:00
]

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _clock(minutes: int) -> str:
    """``HH:MM`` for minutes after midnight, 1440 being ``24:00``."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# Strategies are built once, at import: hypothesis validates each new strategy object, which
# would otherwise cost more than the arithmetic under test.
STEPS = [1, 15, 30, 60, 240]
MARKS = {
    step: st.lists(st.integers(0, MINUTES_PER_WEEK // step - 1), min_size=2, max_size=10)
    for step in STEPS
}
MICROSECONDS = st.one_of(
    st.just(timedelta(0)), st.integers(1, 59_999_999).map(lambda us: timedelta(microseconds=us))
)


@st.composite
def weekly_hours(draw: st.DrawFn) -> dict[str, list[str]]:
    """Random non-overlapping shifts laid on the circle of the week, then named per weekday.

    Pairs of sorted points become shifts. Half the time the pairing starts at the second
    point, so the last shift wraps from Sunday into Monday. A shift longer than a day is cut.
    """
    step = draw(st.sampled_from(STEPS))
    points = sorted({mark * step for mark in draw(MARKS[step])})
    if len(points) < 2:
        points = [0, MINUTES_PER_DAY]
    if len(points) % 2:
        points.pop()
    if draw(st.booleans()):
        pairs = list(zip(points[1::2], [*points[2::2], points[0] + MINUTES_PER_WEEK], strict=True))
    else:
        pairs = list(zip(points[0::2], points[1::2], strict=True))
    hours: dict[str, list[str]] = {day: [] for day in WEEKDAYS}
    for opens, closes in pairs:
        day, start = divmod(opens % MINUTES_PER_WEEK, MINUTES_PER_DAY)
        longest = MINUTES_PER_DAY if start == 0 else MINUTES_PER_DAY - 1
        end = start + min(closes - opens, longest)
        written_end = end if end <= MINUTES_PER_DAY else end - MINUTES_PER_DAY
        hours[WEEKDAYS[day]].append(f"{_clock(start)}-{_clock(written_end)}")
    return hours


WEEKLY_HOURS = weekly_hours()
NEAR_CHANGE = st.builds(
    lambda base, minutes: base + timedelta(minutes=minutes),
    st.sampled_from(CHANGES),
    st.integers(-21 * MINUTES_PER_DAY, 21 * MINUTES_PER_DAY),
)
ANYWHERE = st.builds(
    lambda minutes: datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes),
    st.integers(0, 5 * 365 * MINUTES_PER_DAY),
)
#: Aware instants, half of them within three weeks of a clock change.
STARTS = st.builds(lambda at, extra: at + extra, st.one_of(NEAR_CHANGE, ANYWHERE), MICROSECONDS)
# Holidays come from one drawn seed (one draw instead of dozens keeps the file fast): about
# one day in eight of the 13 weeks after the start, a run of up to 16 days, and one far away.
HOLIDAY_SEEDS = st.integers(0, 2**32 - 1)


def _holidays(first: date, seed: int) -> set[date]:
    """Holiday dates around local date ``first``, derived from ``seed``."""
    rng = random.Random(seed)
    days = {first + timedelta(days=k) for k in range(-3, 90) if rng.random() < 0.125}
    run_start, run_length = rng.randint(-3, 60), rng.randint(0, 16)
    days |= {first + timedelta(days=run_start + k) for k in range(run_length)}
    days.add(first + timedelta(days=rng.randint(-3000, 3000)))
    return days


@dataclass(frozen=True)
class Scenario:
    """A calendar and a start instant (shown in the local zone, which eases debugging).

    Compare results with ``utc_start``: by PEP 495 a local time inside a DST fold never
    compares equal to a datetime of another zone, even at the same instant.
    """

    calendar: BusinessCalendar
    start: datetime

    @property
    def utc_start(self) -> datetime:
        """The start instant in UTC, the zone of every result."""
        return self.start.astimezone(UTC)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """A random calendar whose holidays cluster around a random start."""
    zone = draw(st.sampled_from(ZONES))
    hours = draw(WEEKLY_HOURS)
    start = draw(STARTS).astimezone(ZoneInfo(zone))
    holidays = _holidays(start.date(), draw(HOLIDAY_SEEDS)) if draw(st.booleans()) else set()
    return Scenario(BusinessCalendar.weekly(zone, hours, holidays), start)


SCENARIOS = scenarios()


@dataclass(frozen=True)
class Share:
    """A duration relative to a calendar's week, so that any calendar gets sensible sizes."""

    zero: bool
    weeks: int
    millionths: int  # of a week, added to the whole weeks
    whole_minutes: bool  # real targets are whole minutes; the rest tests microseconds

    def of(self, calendar: BusinessCalendar, max_weeks: int = 40) -> timedelta:
        """The duration this share stands for on ``calendar``."""
        if self.zero:
            return timedelta(0)
        week = calendar.weekly_hours
        part = week * self.millionths // 1_000_000
        if self.whole_minutes:
            part -= part % timedelta(minutes=1)
        return self.weeks % (max_weeks + 1) * week + part


SHARES = st.builds(
    Share,
    st.integers(0, 9).map(lambda n: n == 0),  # zero one time in ten
    st.integers(0, 60),
    st.integers(0, 1_000_000),
    st.booleans(),
)
# Pauses relative to the start, in minutes: (begins after start, lasts or ``None``: open).
PAUSES = st.lists(
    st.tuples(
        st.integers(-3 * MINUTES_PER_DAY, 40_000),
        st.none() | st.integers(0, 20 * MINUTES_PER_DAY),
    ),
    max_size=4,
)


def _pauses(start: datetime, relative: list[tuple[int, int | None]]) -> list[Pause]:
    """Pauses as instants: some before the start, overlapping, long, or never resumed."""
    pauses: list[Pause] = []
    for begins, length in relative:
        paused = start + timedelta(minutes=begins)
        pauses.append((paused, None if length is None else paused + timedelta(minutes=length)))
    return pauses


def _later(first: datetime | None, second: datetime | None) -> bool:
    """``second`` is not earlier than ``first``; ``None`` (unknown) is later than anything."""
    return second is None or (first is not None and first <= second)


# --------------------------------------------------------------------------------------------
# The properties asked for
# --------------------------------------------------------------------------------------------


@PROPERTY
@given(SCENARIOS, SHARES)
def test_measuring_what_was_added_gives_it_back(scenario: Scenario, share: Share) -> None:
    calendar, start = scenario.calendar, scenario.start
    duration = share.of(calendar)
    deadline = calendar.add(start, duration)
    assert deadline >= scenario.utc_start
    assert calendar.business_time_between(start, deadline) == duration


@PROPERTY
@given(SCENARIOS, SHARES, SHARES)
def test_add_is_monotonic(scenario: Scenario, one: Share, other: Share) -> None:
    calendar, start = scenario.calendar, scenario.start
    shorter, longer = sorted([one.of(calendar), other.of(calendar)])
    assert calendar.add(start, shorter) <= calendar.add(start, longer)


@PROPERTY
@given(SCENARIOS, SHARES)
def test_deadline_is_in_hours_or_at_a_closing(scenario: Scenario, share: Share) -> None:
    calendar, start = scenario.calendar, scenario.start
    duration = share.of(calendar)
    deadline = calendar.add(start, duration)
    assert deadline.tzinfo is UTC
    if duration > timedelta(0):
        # Open just before: inside an opening interval, or exactly at its closing instant.
        assert calendar.is_open(deadline - TICK)
        assert calendar.business_time_between(deadline - TICK, deadline) == TICK
        assert deadline > scenario.utc_start
    else:
        assert deadline == scenario.utc_start


@PROPERTY
@given(SCENARIOS, SHARES, PAUSES, PAUSES)
def test_a_pause_never_brings_a_deadline_forward(
    scenario: Scenario,
    share: Share,
    some: list[tuple[int, int | None]],
    more: list[tuple[int, int | None]],
) -> None:
    calendar, start = scenario.calendar, scenario.start
    target = share.of(calendar, max_weeks=6)
    pauses, extra = _pauses(scenario.utc_start, some), _pauses(scenario.utc_start, more)
    plain = calendar.add(start, target)
    paused = deadline_with_pauses(calendar, start, target, pauses)
    more_paused = deadline_with_pauses(calendar, start, target, pauses + extra)
    assert _later(plain, paused)
    assert _later(paused, more_paused)
    if paused is not None:
        # The clock, pauses excluded, shows exactly the target at the deadline.
        assert business_time_with_pauses(calendar, start, paused, pauses) == target


@PROPERTY
@given(SCENARIOS, SHARES, SHARES)
def test_add_composes(scenario: Scenario, one: Share, other: Share) -> None:
    calendar, start = scenario.calendar, scenario.start
    first, second = one.of(calendar, max_weeks=20), other.of(calendar, max_weeks=20)
    assert calendar.add(calendar.add(start, first), second) == calendar.add(start, first + second)


# --------------------------------------------------------------------------------------------
# Cross-checks of the implementation
# --------------------------------------------------------------------------------------------


@PROPERTY
@given(SCENARIOS, SHARES, st.integers(0, 30 * MINUTES_PER_DAY))
def test_skipping_weeks_matches_walking_days(scenario: Scenario, share: Share, more: int) -> None:
    calendar = scenario.calendar
    start = scenario.start.astimezone(UTC)
    duration = share.of(calendar, max_weeks=30)
    walked = calendar._advance(start, duration, skip_weeks=False)
    assert calendar.add(start, duration) == walked
    end = walked + timedelta(minutes=more)
    walked_measure = calendar._measure(start, end, skip_weeks=False)
    assert calendar.business_time_between(start, end) == walked_measure


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SCENARIOS, st.integers(0, 2 * MINUTES_PER_DAY))
def test_measure_matches_counting_open_minutes(scenario: Scenario, minutes: int) -> None:
    # Shifts and clock changes fall on whole minutes, so from a whole-minute start the
    # business time is the number of minutes whose first instant is open. (Step in UTC:
    # arithmetic on a datetime with a zone moves its wall clock, not real time.)
    calendar = scenario.calendar
    start = scenario.start.astimezone(UTC).replace(second=0, microsecond=0)
    end = start + timedelta(minutes=minutes)
    step = timedelta(minutes=1)
    open_minutes = sum(calendar.is_open(start + k * step) for k in range(minutes))
    assert calendar.business_time_between(start, end) == open_minutes * step


@PROPERTY
@given(SCENARIOS)
def test_next_open_is_the_first_open_instant(scenario: Scenario) -> None:
    calendar, start = scenario.calendar, scenario.start
    opening = calendar.next_open(start)
    assert opening >= scenario.utc_start
    assert calendar.is_open(opening)
    assert calendar.business_time_between(start, opening) == timedelta(0)
    if calendar.is_open(start):
        assert opening == scenario.utc_start
    # The first tick of business time is the first tick after the opening.
    assert calendar.add(start, TICK) == opening + TICK
