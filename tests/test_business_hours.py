"""Business-time arithmetic for SLA policies, case by case, with expected instants worked out by
hand in the comments.

Most cases use a Paris office open Monday to Friday 09:00-12:00 and 13:00-17:30 (7 h 30 a day,
37 h 30 a week). Paris is UTC+1 in winter (CET) and UTC+2 in summer (CEST); in 2026 the clocks
go forward on Sunday 29 March (02:00 -> 03:00) and back on Sunday 25 October (03:00 -> 02:00).
Expected instants are written in UTC, which is what the library returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import msgspec
import pytest

from ticketcore.plugins.sla import (
    BusinessCalendar,
    CalendarConfig,
    PausedClock,
    Shift,
    business_hours,
    business_time_with_pauses,
    deadline_with_pauses,
)
from ticketcore.plugins.sla.holiday_sources import (
    country_holidays,
    ics_holidays,
    load_ics_holidays,
)

CALENDARS = Path(__file__).parent / "data" / "calendars"
PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
OFFICE_DAYS = ("mon", "tue", "wed", "thu", "fri")
OFFICE_HOURS = {day: ["09:00-12:00", "13:00-17:30"] for day in OFFICE_DAYS}
H = timedelta(hours=1)
M = timedelta(minutes=1)


def paris(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A Paris wall-clock time."""
    return datetime(year, month, day, hour, minute, tzinfo=PARIS)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A UTC instant."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture(scope="module")
def office() -> BusinessCalendar:
    """The Paris office without holidays."""
    return BusinessCalendar.weekly("Europe/Paris", OFFICE_HOURS)


@pytest.fixture(scope="module")
def office_fr() -> BusinessCalendar:
    """The Paris office closed on French public holidays."""
    return BusinessCalendar.weekly(
        "Europe/Paris", OFFICE_HOURS, country_holidays("FR", range(2025, 2028))
    )


# --------------------------------------------------------------------------------------------
# Building calendars
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shift", "printed"),
    [
        ("09:00-12:00", Shift(540, 720), "09:00-12:00"),
        ("9:00 - 17:30", Shift(540, 1050), "09:00-17:30"),
        ("13:00-24:00", Shift(780, 1440), "13:00-24:00"),
        ("00:00-24:00", Shift(0, 1440), "00:00-24:00"),
        # An end before the start closes the next day: 22:00 + 8 h = 1320 + 480 minutes.
        ("22:00-06:00", Shift(1320, 1800), "22:00-06:00"),
    ],
)
def test_shift_parse(text: str, shift: Shift, printed: str) -> None:
    parsed = Shift.parse(text)
    assert parsed == shift
    assert str(parsed) == printed


@pytest.mark.parametrize(
    "text", ["9-17", "09:00", "25:00-26:00", "09:60-10:00", "24:00-10:00", "09:00-09:00"]
)
def test_shift_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        Shift.parse(text)


@pytest.mark.parametrize(
    ("hours", "message"),
    [
        ({"mon": ["09:00-12:00", "11:00-13:00"]}, "overlaps"),
        ({"fri": ["22:00-06:00"], "sat": ["05:00-12:00"]}, "runs into"),
        ({"sun": ["20:00-02:00"], "mon": ["01:00-09:00"]}, "runs into"),  # across the week end
        ({}, "never open"),
        ({"mon": []}, "never open"),
        ({"monday": ["09:00-17:00"]}, "unknown weekday"),
        ({"mon": "09:00-17:00"}, "list of intervals"),
    ],
)
def test_weekly_hours_rejected(hours: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BusinessCalendar.weekly("Europe/Paris", hours)


def test_unknown_time_zone_rejected() -> None:
    with pytest.raises(ValueError, match="unknown IANA time zone 'Europe/Pariss'"):
        BusinessCalendar.weekly("Europe/Pariss", OFFICE_HOURS)


def test_touching_shifts_are_allowed() -> None:
    # 22:00-24:00 on Friday then 00:00-06:00 on Saturday behave as one night shift.
    night = BusinessCalendar.weekly(
        "Europe/Paris", {"fri": ["22:00-24:00"], "sat": ["00:00-06:00"]}
    )
    # Fri 6 March 23:00 CET + 2 h -> Sat 01:00 CET = Sat 00:00 UTC.
    assert night.add(paris(2026, 3, 6, 23), 2 * H) == utc(2026, 3, 7, 0)
    assert night.is_open(paris(2026, 3, 7, 0))


def test_weekly_hours_total(office: BusinessCalendar) -> None:
    assert office.weekly_hours == timedelta(hours=37, minutes=30)
    assert BusinessCalendar.always_open().weekly_hours == timedelta(weeks=1)


# --------------------------------------------------------------------------------------------
# is_open / next_open
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hour", "minute", "expected"),
    [
        (8, 59, False),
        (9, 0, True),  # opening instants are open
        (11, 59, True),
        (12, 0, False),  # closing instants are closed: lunch break
        (12, 30, False),
        (13, 0, True),
        (17, 29, True),
        (17, 30, False),
    ],
)
def test_is_open_on_a_monday(
    office: BusinessCalendar, hour: int, minute: int, expected: bool
) -> None:
    assert office.is_open(paris(2026, 3, 2, hour, minute)) is expected


def test_is_open_weekend_and_other_zones(office: BusinessCalendar) -> None:
    assert not office.is_open(paris(2026, 3, 7, 10))  # Saturday
    # 04:00 in New York (EST, UTC-5) is 09:00 UTC, i.e. 10:00 in Paris: open.
    assert office.is_open(datetime(2026, 3, 2, 4, tzinfo=NEW_YORK))
    assert office.is_open(utc(2026, 3, 2, 9))


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        # Saturday -> Monday 9 March 09:00 CET = 08:00 UTC.
        (paris(2026, 3, 7, 10), utc(2026, 3, 9, 8)),
        # Lunch break -> 13:00 CET the same day = 12:00 UTC.
        (paris(2026, 3, 2, 12, 15), utc(2026, 3, 2, 12)),
        # Already open -> the same instant, in UTC.
        (paris(2026, 3, 2, 10, 20), utc(2026, 3, 2, 9, 20)),
        # Friday after closing -> Monday 09:00 CET.
        (paris(2026, 3, 6, 18), utc(2026, 3, 9, 8)),
    ],
)
def test_next_open(office: BusinessCalendar, at: datetime, expected: datetime) -> None:
    result = office.next_open(at)
    assert result == expected
    assert result.tzinfo is UTC


def test_next_open_on_a_holiday(office_fr: BusinessCalendar) -> None:
    # Thursday 14 May 2026 is Ascension Day: next opening is Friday 15 May 09:00 CEST = 07:00 UTC.
    assert office_fr.next_open(paris(2026, 5, 14, 10)) == utc(2026, 5, 15, 7)


# --------------------------------------------------------------------------------------------
# add
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        # Mon 2 March 10:00 CET + 4 h: 10:00-12:00 (2 h), lunch, 13:00-15:00 (2 h)
        # -> 15:00 CET = 14:00 UTC.
        (paris(2026, 3, 2, 10), 4 * H, utc(2026, 3, 2, 14)),
        # Opened before the office opens: Mon 07:00 + 1 h -> 10:00 CET = 09:00 UTC.
        (paris(2026, 3, 2, 7), H, utc(2026, 3, 2, 9)),
        # Exactly to the closing time, not to the next morning: Mon 16:30 + 1 h -> 17:30 CET.
        (paris(2026, 3, 2, 16, 30), H, utc(2026, 3, 2, 16, 30)),
        # Over a weekend: Fri 6 March 16:00 + 2 h: Fri 16:00-17:30 (1 h 30), then
        # Mon 9 March 09:00-09:30 -> 09:30 CET = 08:30 UTC.
        (paris(2026, 3, 6, 16), 2 * H, utc(2026, 3, 9, 8, 30)),
        # Opened on a Saturday: counting starts Monday 09:00 -> 09:30 CET = 08:30 UTC.
        (paris(2026, 3, 7, 11), 30 * M, utc(2026, 3, 9, 8, 30)),
        # Opened during lunch: counting starts 13:00 -> 13:45 CET = 12:45 UTC.
        (paris(2026, 3, 2, 12, 10), 45 * M, utc(2026, 3, 2, 12, 45)),
        # Several days: Mon 10:00 + 20 h: Mon 6 h 30, Tue 7 h 30 (14 h), Wed 6 h
        # -> Wed 09:00-12:00 (3 h) + 13:00-16:00 (3 h) -> 16:00 CET = 15:00 UTC.
        (paris(2026, 3, 2, 10), 20 * H, utc(2026, 3, 4, 15)),
    ],
)
def test_add(
    office: BusinessCalendar, start: datetime, duration: timedelta, expected: datetime
) -> None:
    result = office.add(start, duration)
    assert result == expected
    assert result.tzinfo is UTC


def test_add_zero_returns_start_unchanged(office: BusinessCalendar) -> None:
    # Zero business time has elapsed at the very start, even outside opening hours.
    assert office.add(paris(2026, 3, 7, 11), timedelta(0)) == utc(2026, 3, 7, 10)
    assert office.add(paris(2026, 3, 2, 10), timedelta(0)) == utc(2026, 3, 2, 9)


def test_add_rejects_negative_durations(office: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        office.add(paris(2026, 3, 2, 10), -M)


def test_ticket_opened_on_a_holiday(office_fr: BusinessCalendar) -> None:
    # Ascension Day, Thu 14 May 2026, 10:00: the clock starts Fri 15 May 09:00 CEST;
    # + 1 h -> 10:00 CEST = 08:00 UTC.
    assert office_fr.add(paris(2026, 5, 14, 10), H) == utc(2026, 5, 15, 8)


def test_holiday_before_a_weekend(office_fr: BusinessCalendar) -> None:
    # Thu 30 April 17:00 + 1 h: Thu 17:00-17:30 (30 min); Fri 1 May is Labour Day, then the
    # weekend; Mon 4 May 09:00-09:30 CEST = 07:30 UTC.
    assert office_fr.add(paris(2026, 4, 30, 17), H) == utc(2026, 5, 4, 7, 30)


def test_add_thousand_hours(office: BusinessCalendar, office_fr: BusinessCalendar) -> None:
    start = paris(2026, 1, 5, 9)  # a Monday, at opening
    # Without holidays: 1000 h = 26 weeks x 37 h 30 (975 h) + 25 h. 26 weeks after Mon 5 Jan
    # is Mon 6 July; then Mon, Tue, Wed (22 h 30) and Thu 09:00-11:30 -> Thu 9 July 11:30 CEST
    # = 09:30 UTC. (The spring-forward on 29 March falls on a closed Sunday.)
    assert office.add(start, 1000 * H) == utc(2026, 7, 9, 9, 30)
    # French holidays before 6 July: Easter Monday 6 April, 1 May, 8 May, Ascension 14 May,
    # Whit Monday 25 May: 5 days = 37 h 30 lost, so Mon 6 July 09:00 finds 62 h 30 left. The
    # week of 6 July takes 37 h 30 (25 h left); Mon 13 July 7 h 30, Tue 14 July is Bastille
    # Day, Wed 15 and Thu 16 (2 h 30 left) -> Fri 17 July 11:30 CEST = 09:30 UTC.
    assert office_fr.add(start, 1000 * H) == utc(2026, 7, 17, 9, 30)


def test_add_ten_years(office: BusinessCalendar) -> None:
    # 520 weeks x 37 h 30 = 19 500 h. The 520th week starts Mon 5 Jan 2026 + 519 weeks
    # = Mon 17 Dec 2035, and its last minute ends Fri 21 Dec 2035 17:30 CET = 16:30 UTC.
    assert office.add(paris(2026, 1, 5, 9), 19_500 * H) == utc(2035, 12, 21, 16, 30)


def test_thousand_hours_is_fast(office_fr: BusinessCalendar) -> None:
    # Measured with cold caches (per-day intervals and time zone changes), the worst case: a
    # worker sharing a calendar across tickets is faster still.
    timings = []
    for _ in range(5):
        business_hours._day_intervals.cache_clear()
        business_hours._offset_changes.cache_clear()
        started = time.perf_counter()
        office_fr.add(paris(2026, 1, 5, 9), 1000 * H)
        timings.append(time.perf_counter() - started)
    assert min(timings) < 0.010


# --------------------------------------------------------------------------------------------
# business_time_between
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        # Mon 10:00-12:00 and 13:00-15:00.
        (paris(2026, 3, 2, 10), paris(2026, 3, 2, 15), 4 * H),
        # Fri 16:00-17:30 (1 h 30) and Mon 09:00-10:00 (1 h).
        (paris(2026, 3, 6, 16), paris(2026, 3, 9, 10), timedelta(hours=2, minutes=30)),
        # A whole weekend.
        (paris(2026, 3, 7), paris(2026, 3, 9), timedelta(0)),
        # The end instant itself is not counted; equal bounds give zero.
        (paris(2026, 3, 2, 10), paris(2026, 3, 2, 10), timedelta(0)),
        # Four whole weeks.
        (paris(2026, 2, 2), paris(2026, 3, 2), timedelta(hours=150)),
    ],
)
def test_business_time_between(
    office: BusinessCalendar, start: datetime, end: datetime, expected: timedelta
) -> None:
    assert office.business_time_between(start, end) == expected


def test_business_time_between_rejects_reversed_bounds(office: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="before start"):
        office.business_time_between(paris(2026, 3, 2, 12), paris(2026, 3, 2, 10))


def test_business_time_between_long_span(office_fr: BusinessCalendar) -> None:
    start = paris(2026, 1, 5, 9)
    assert office_fr.business_time_between(start, utc(2026, 7, 17, 9, 30)) == 1000 * H
    # The whole of 2026: 365 days = 52 weeks + 1 day starting on a Thursday, so 261 weekdays
    # x 7 h 30 = 1957 h 30; minus the 9 French holidays that fall on weekdays (1 Jan, 6 Apr,
    # 1 May, 8 May, 14 May, 25 May, 14 Jul, 11 Nov, 25 Dec; 15 Aug and 1 Nov are a Saturday
    # and a Sunday): 9 x 7 h 30 = 67 h 30 -> 1890 h.
    year = office_fr.business_time_between(paris(2026, 1, 1), paris(2027, 1, 1))
    assert year == 1890 * H


# --------------------------------------------------------------------------------------------
# Daylight saving time
# --------------------------------------------------------------------------------------------


def test_opening_is_local_on_both_sides_of_spring_forward(office: BusinessCalendar) -> None:
    # Before the change Monday 09:00 CET is 08:00 UTC; after it, 09:00 CEST is 07:00 UTC.
    assert office.next_open(paris(2026, 3, 21, 12)) == utc(2026, 3, 23, 8)
    assert office.next_open(paris(2026, 3, 28, 12)) == utc(2026, 3, 30, 7)
    # Fri 27 March 17:00 CET + 1 h: 30 min on Friday, 30 min from Mon 30 March 09:00 CEST
    # -> 09:30 CEST = 07:30 UTC.
    assert office.add(paris(2026, 3, 27, 17), H) == utc(2026, 3, 30, 7, 30)
    # Fri 09:00 -> Mon 12:00 across the change: 7 h 30 + 3 h.
    elapsed = office.business_time_between(paris(2026, 3, 27, 9), paris(2026, 3, 30, 12))
    assert elapsed == timedelta(hours=10, minutes=30)


def test_opening_is_local_on_both_sides_of_fall_back(office: BusinessCalendar) -> None:
    # Fri 23 October 17:00 CEST (15:00 UTC) + 1 h: 30 min Friday, then Mon 26 October
    # 09:00 CET (08:00 UTC) + 30 min -> 08:30 UTC.
    assert office.add(paris(2026, 10, 23, 17), H) == utc(2026, 10, 26, 8, 30)


def test_night_shift_across_the_changes_counts_real_time() -> None:
    night = BusinessCalendar.weekly("Europe/Paris", {"sat": ["22:00-06:00"]})
    # An ordinary night: Sat 22:00 -> Sun 06:00 CET is 8 h.
    assert night.business_time_between(paris(2026, 3, 21), paris(2026, 3, 23)) == 8 * H
    # Spring forward: Sat 28 March 22:00 CET (21:00 UTC) -> Sun 06:00 CEST (04:00 UTC): 7 h.
    assert night.business_time_between(paris(2026, 3, 28), paris(2026, 3, 30)) == 7 * H
    assert night.add(paris(2026, 3, 28, 22), 7 * H) == utc(2026, 3, 29, 4)
    # One more minute spills into the next Saturday: 4 April 22:01 CEST = 20:01 UTC.
    assert night.add(paris(2026, 3, 28, 22), 7 * H + M) == utc(2026, 4, 4, 20, 1)
    # Fall back: Sat 24 October 22:00 CEST (20:00 UTC) -> Sun 06:00 CET (05:00 UTC): 9 h.
    assert night.business_time_between(paris(2026, 10, 24), paris(2026, 10, 26)) == 9 * H
    assert night.add(paris(2026, 10, 24, 22), 9 * H) == utc(2026, 10, 25, 5)


def test_always_open_counts_real_hours_across_changes() -> None:
    always = BusinessCalendar.always_open("Europe/Paris")
    # The spring-forward day lasts 23 h, the fall-back day 25 h.
    assert always.business_time_between(paris(2026, 3, 29), paris(2026, 3, 30)) == 23 * H
    assert always.business_time_between(paris(2026, 10, 25), paris(2026, 10, 26)) == 25 * H
    # Sat 28 March 12:00 CET (11:00 UTC) + 24 h = Sun 11:00 UTC (13:00 CEST on the wall).
    assert always.add(paris(2026, 3, 28, 12), 24 * H) == utc(2026, 3, 29, 11)
    assert always.is_open(paris(2026, 3, 29, 3))
    assert always.next_open(paris(2026, 3, 29, 3)) == utc(2026, 3, 29, 1)


def test_boundaries_inside_the_gap_and_the_fold() -> None:
    early = BusinessCalendar.weekly("Europe/Paris", {"sun": ["02:30-04:00"]})
    # An ordinary Sunday: 1 h 30.
    assert early.business_time_between(paris(2026, 3, 22), paris(2026, 3, 23)) == 90 * M
    # 29 March: 02:30 does not exist; the shift opens when the clock jumps to 03:00 CEST
    # (01:00 UTC) and closes at 04:00 CEST (02:00 UTC): 1 h.
    assert early.next_open(paris(2026, 3, 29)) == utc(2026, 3, 29, 1)
    assert early.business_time_between(paris(2026, 3, 29), paris(2026, 3, 30)) == H
    # 25 October: 02:30 happens twice; the shift opens at the first one (02:30 CEST,
    # 00:30 UTC) and closes at 04:00 CET (03:00 UTC): 2 h 30.
    assert early.next_open(paris(2026, 10, 25)) == utc(2026, 10, 25, 0, 30)
    assert early.business_time_between(paris(2026, 10, 25), paris(2026, 10, 26)) == 150 * M


def test_changes_at_midnight_in_santiago() -> None:
    # Chile changes its clocks at midnight. On Sat 4 April 2026, 24:00 (-03, 03:00 UTC) goes
    # back to 23:00 (-04): the hour before midnight happens twice. On Sat 5 September, 24:00
    # (-04, 04:00 UTC) jumps to Sunday 01:00 (-03): Sunday 00:00 never happens.
    santiago = ZoneInfo("America/Santiago")
    nights = BusinessCalendar.weekly(
        "America/Santiago", {"sat": ["22:00-24:00"], "sun": ["00:00-02:00"]}
    )

    def local(month: int, day: int, hour: int = 0, fold: int = 0) -> datetime:
        return datetime(2026, month, day, hour, fold=fold, tzinfo=santiago)

    # An ordinary weekend: 2 h + 2 h.
    assert nights.business_time_between(local(5, 2), local(5, 4)) == 4 * H
    # April: Saturday 22:00 -03 (01:00 UTC) until the clock first reads Sunday 00:00, at
    # 04:00 UTC: 3 h; then Sunday 00:00-02:00 -04 (04:00-06:00 UTC): 2 h.
    assert nights.business_time_between(local(4, 4), local(4, 6)) == 5 * H
    assert nights.add(local(4, 4, 22), 3 * H) == utc(2026, 4, 5, 4)
    assert nights.is_open(local(4, 4, 23, fold=1))  # the repeated 23:30 is still Saturday's
    # September: Saturday 22:00 -04 (02:00 UTC) until the jump at 04:00 UTC: 2 h; Sunday
    # "00:00" is the jump itself, until 02:00 -03 (05:00 UTC): 1 h.
    assert nights.business_time_between(local(9, 5), local(9, 7)) == 3 * H
    # Sat 23:30 -04 (03:30 UTC) + 1 h: 30 min to the jump, 30 min after -> 04:30 UTC.
    assert nights.add(local(9, 5, 23) + 30 * M, H) == utc(2026, 9, 6, 4, 30)


def test_new_york_spring_forward() -> None:
    desk = BusinessCalendar.weekly("America/New_York", {d: ["09:00-17:00"] for d in OFFICE_DAYS})
    # Fri 6 March 2026 16:00 EST (21:00 UTC) + 2 h: 1 h on Friday; clocks go forward on
    # Sun 8 March; Mon 9 March 09:00 EDT (13:00 UTC) + 1 h -> 14:00 UTC.
    start = datetime(2026, 3, 6, 16, tzinfo=NEW_YORK)
    assert desk.add(start, 2 * H) == utc(2026, 3, 9, 14)


# --------------------------------------------------------------------------------------------
# Overnight shifts
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def friday_night() -> BusinessCalendar:
    """A night desk open from Friday 22:00 until Saturday 06:00 (Paris)."""
    return BusinessCalendar.weekly("Europe/Paris", {"fri": ["22:00-06:00"]})


def test_overnight_is_open(friday_night: BusinessCalendar) -> None:
    assert not friday_night.is_open(paris(2026, 3, 6, 21, 59))
    assert friday_night.is_open(paris(2026, 3, 6, 22))
    assert friday_night.is_open(paris(2026, 3, 7, 3))  # Saturday, from Friday's shift
    assert not friday_night.is_open(paris(2026, 3, 7, 6))


def test_overnight_add(friday_night: BusinessCalendar) -> None:
    # Fri 6 March 21:00 CET + 2 h: opens 22:00 -> Sat 00:00 CET = Fri 23:00 UTC.
    assert friday_night.add(paris(2026, 3, 6, 21), 2 * H) == utc(2026, 3, 6, 23)
    # Sat 05:00 + 2 h: 1 h until 06:00, then Fri 13 March 22:00-23:00 CET = 22:00 UTC.
    assert friday_night.add(paris(2026, 3, 7, 5), 2 * H) == utc(2026, 3, 13, 22)
    # Started inside the shift, measured to Saturday noon: 04:00-06:00.
    assert friday_night.business_time_between(paris(2026, 3, 7, 4), paris(2026, 3, 7, 12)) == (
        2 * H
    )


def test_overnight_shift_belongs_to_the_day_it_starts() -> None:
    hours = {"fri": ["22:00-06:00"]}
    friday_off = BusinessCalendar.weekly("Europe/Paris", hours, [date(2026, 3, 6)])
    saturday_off = BusinessCalendar.weekly("Europe/Paris", hours, [date(2026, 3, 7)])
    # A Friday holiday cancels the whole night, including Saturday morning; the next shift is
    # Fri 13 March: 22:00 + 1 h = 23:00 CET = 22:00 UTC.
    assert not friday_off.is_open(paris(2026, 3, 7, 3))
    assert friday_off.add(paris(2026, 3, 6, 21), H) == utc(2026, 3, 13, 22)
    # A Saturday holiday does not cut Friday's night short.
    assert saturday_off.is_open(paris(2026, 3, 7, 3))


# --------------------------------------------------------------------------------------------
# Pauses
# --------------------------------------------------------------------------------------------


def test_deadline_without_pauses(office: BusinessCalendar) -> None:
    # Mon 2 March 10:00 + 8 h: Mon 6 h 30, Tue 09:00-10:30 CET = 09:30 UTC.
    deadline = deadline_with_pauses(office, paris(2026, 3, 2, 10), 8 * H, [])
    assert deadline == utc(2026, 3, 3, 9, 30)


def test_pause_spanning_days(office: BusinessCalendar) -> None:
    # Mon 10:00, target 8 h, waiting on the customer from Mon 15:00 to Wed 11:00.
    # Before the pause: 10:00-12:00 + 13:00-15:00 = 4 h. After: Wed 11:00-12:00 (5 h),
    # 13:00-16:00 (8 h) -> Wed 4 March 16:00 CET = 15:00 UTC.
    pauses = [(paris(2026, 3, 2, 15), paris(2026, 3, 4, 11))]
    deadline = deadline_with_pauses(office, paris(2026, 3, 2, 10), 8 * H, pauses)
    assert deadline == utc(2026, 3, 4, 15)


def test_holiday_inside_a_pause(office_fr: BusinessCalendar) -> None:
    # Wed 13 May 10:00 CEST, target 8 h, on hold Wed 16:00 -> Fri 15 May 10:00, over
    # Ascension (Thu 14). Before: 10-12 + 13-16 = 5 h. After: Fri 10-12 (7 h), 13:00-14:00
    # -> 14:00 CEST = 12:00 UTC. Without the pause: Wed 6 h 30, Thu off, Fri 09:00-10:30.
    start = paris(2026, 5, 13, 10)
    pauses = [(paris(2026, 5, 13, 16), paris(2026, 5, 15, 10))]
    assert deadline_with_pauses(office_fr, start, 8 * H, pauses) == utc(2026, 5, 15, 12)
    assert deadline_with_pauses(office_fr, start, 8 * H, []) == utc(2026, 5, 15, 8, 30)


def test_open_pause_makes_the_deadline_unknown(office: BusinessCalendar) -> None:
    start = paris(2026, 3, 2, 10)
    assert deadline_with_pauses(office, start, 8 * H, [(paris(2026, 3, 2, 15), None)]) is None
    # ... unless the target was already reached before the pause began: 1 h -> 11:00 CET.
    late_pause = [(paris(2026, 3, 2, 14), None)]
    assert deadline_with_pauses(office, start, H, late_pause) == utc(2026, 3, 2, 10)


def test_pause_outside_hours_changes_nothing(office: BusinessCalendar) -> None:
    # Fri 6 March 16:00 + 2 h = Mon 09:30 CET (see test_add); a weekend pause is free time.
    weekend = [(paris(2026, 3, 7, 8), paris(2026, 3, 8, 20))]
    assert deadline_with_pauses(office, paris(2026, 3, 6, 16), 2 * H, weekend) == (
        utc(2026, 3, 9, 8, 30)
    )


def test_pauses_are_clipped_and_merged(office: BusinessCalendar) -> None:
    start = paris(2026, 3, 2, 10)
    # A pause that began before the ticket: counting starts at 11:00 -> 12:00 CET.
    assert deadline_with_pauses(
        office, start, H, [(paris(2026, 3, 1, 12), paris(2026, 3, 2, 11))]
    ) == (utc(2026, 3, 2, 11))
    # A pause over before the ticket is ignored: 10:00 + 1 h -> 11:00 CET.
    old = [(paris(2026, 2, 27, 9), paris(2026, 2, 27, 10))]
    assert deadline_with_pauses(office, start, H, old) == utc(2026, 3, 2, 10)
    # Overlapping pauses 11:00-14:00 and 13:00-15:00 act as 11:00-15:00: 10:00-11:00 (1 h),
    # then 15:00-16:00 -> 16:00 CET = 15:00 UTC.
    overlapping = [
        (paris(2026, 3, 2, 13), paris(2026, 3, 2, 15)),
        (paris(2026, 3, 2, 11), paris(2026, 3, 2, 14)),
    ]
    assert deadline_with_pauses(office, start, 2 * H, overlapping) == utc(2026, 3, 2, 15)


def test_zero_target_with_pauses(office: BusinessCalendar) -> None:
    start = paris(2026, 3, 2, 10)
    pauses = [(paris(2026, 3, 2, 10), paris(2026, 3, 3, 10))]
    assert deadline_with_pauses(office, start, timedelta(0), pauses) == utc(2026, 3, 2, 9)


def test_pause_ending_before_it_starts_is_rejected(office: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="before it starts"):
        deadline_with_pauses(
            office, paris(2026, 3, 2, 10), H, [(paris(2026, 3, 2, 15), paris(2026, 3, 2, 14))]
        )


def test_business_time_with_pauses(office: BusinessCalendar) -> None:
    # Mon 10:00 -> Wed 12:00 is 6 h 30 + 7 h 30 + 3 h = 17 h; paused Mon 15:00 -> Wed 11:00
    # removes Mon 15:00-17:30 (2 h 30), Tue (7 h 30) and Wed 09:00-11:00 (2 h): 5 h left.
    pauses = [(paris(2026, 3, 2, 15), paris(2026, 3, 4, 11))]
    elapsed = business_time_with_pauses(
        office, paris(2026, 3, 2, 10), paris(2026, 3, 4, 12), pauses
    )
    assert elapsed == 5 * H
    # A pause still running stops the count where it began: 4 h by Mon 15:00.
    still = [(paris(2026, 3, 2, 15), None)]
    elapsed = business_time_with_pauses(office, paris(2026, 3, 2, 10), paris(2026, 3, 4, 12), still)
    assert elapsed == 4 * H


def test_paused_clock_lifecycle(office: BusinessCalendar) -> None:
    clock = PausedClock(office, paris(2026, 3, 2, 10))
    assert not clock.paused
    assert clock.deadline(8 * H) == utc(2026, 3, 3, 9, 30)  # as without pauses

    waiting = clock.pause(paris(2026, 3, 2, 15))  # the agent asks the customer a question
    assert waiting.paused
    assert waiting.deadline(8 * H) is None
    assert waiting.elapsed(paris(2026, 3, 3, 10)) == 4 * H  # frozen since Mon 15:00
    with pytest.raises(ValueError, match="already paused"):
        waiting.pause(paris(2026, 3, 2, 16))

    replied = waiting.resume(paris(2026, 3, 4, 11))  # the customer answers on Wednesday
    assert replied.deadline(8 * H) == utc(2026, 3, 4, 15)  # as in test_pause_spanning_days
    assert replied.elapsed(paris(2026, 3, 4, 12)) == 5 * H
    with pytest.raises(ValueError, match="not paused"):
        replied.resume(paris(2026, 3, 4, 12))
    assert clock.pauses == ()  # the original snapshot is unchanged
    with pytest.raises(ValueError, match="in order"):
        replied.pause(paris(2026, 3, 4, 10))  # before the last resume


def test_calendar_rejects_wrong_types() -> None:
    week = BusinessCalendar.weekly("UTC", OFFICE_HOURS).week
    with pytest.raises(TypeError, match="local dates"):
        BusinessCalendar(ZoneInfo("UTC"), week, frozenset({datetime(2026, 1, 1)}))
    with pytest.raises(TypeError, match="ZoneInfo"):
        BusinessCalendar(cast(Any, "UTC"), week)


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------

NAIVE = datetime(2026, 3, 2, 10)
AWARE = paris(2026, 3, 2, 10)


@pytest.mark.parametrize(
    "call",
    [
        lambda cal: cal.is_open(NAIVE),
        lambda cal: cal.next_open(NAIVE),
        lambda cal: cal.add(NAIVE, H),
        lambda cal: cal.business_time_between(NAIVE, AWARE),
        lambda cal: cal.business_time_between(AWARE, NAIVE),
        lambda cal: deadline_with_pauses(cal, NAIVE, H, []),
        lambda cal: deadline_with_pauses(cal, AWARE, H, [(NAIVE, None)]),
        lambda cal: PausedClock(cal, NAIVE),
    ],
)
def test_naive_datetimes_are_rejected(
    office: BusinessCalendar, call: Callable[[BusinessCalendar], object]
) -> None:
    with pytest.raises(ValueError, match="must be timezone-aware"):
        call(office)


def test_naive_datetimes_rejected_by_always_open() -> None:
    with pytest.raises(ValueError, match="must be timezone-aware"):
        BusinessCalendar.always_open().add(NAIVE, H)


# --------------------------------------------------------------------------------------------
# Holiday sources
# --------------------------------------------------------------------------------------------


def test_country_holidays() -> None:
    france = country_holidays("FR", [2026])
    assert {date(2026, 5, 14), date(2026, 7, 14), date(2026, 11, 11)} <= france
    assert date(2026, 1, 6) not in france
    # Bavaria adds Epiphany (6 Jan) and Corpus Christi (4 June 2026) to Germany's holidays.
    bavaria = country_holidays("DE-BY", [2026])
    assert {date(2026, 1, 6), date(2026, 6, 4), date(2026, 10, 3)} <= bavaria
    assert date(2026, 1, 6) not in country_holidays("DE", [2026])
    # California observes Cesar Chavez Day (31 March); the federal calendar does not.
    assert date(2026, 3, 31) in country_holidays("us-ca", [2026])
    assert date(2026, 3, 31) not in country_holidays("US", [2026])


@pytest.mark.parametrize("spec", ["XX", "FR-ZZ"])
def test_unknown_holiday_country(spec: str) -> None:
    with pytest.raises(ValueError, match="unknown holiday country"):
        country_holidays(spec, [2026])


def test_ics_holidays() -> None:
    days = load_ics_holidays(CALENDARS / "closures.ics", range(2026, 2028))
    assert days == {
        date(2026, 1, 1),  # year-end inventory 31 Dec 2025 + 2 days reaches into 2026
        date(2026, 4, 10),  # no DTEND: one day
        date(2026, 6, 12),  # yearly company day (2027 is an EXDATE)
        date(2026, 9, 15),  # yearly founders' day, last time in 2026 (UNTIL)
        date(2026, 12, 24),  # winter closure: 24-27, DTEND 28 excluded
        date(2026, 12, 25),
        date(2026, 12, 26),
        date(2026, 12, 27),
        date(2026, 12, 31),  # year-end inventory, second occurrence
        date(2027, 1, 1),
        date(2027, 12, 31),  # third and last occurrence (COUNT=3); 1 Jan 2028 is out of range
    }
    # The cancelled day off (2 June) and the timed meeting (3 March) are not holidays.


def test_ics_holidays_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        ics_holidays(b"this is not a calendar", [2026])


# --------------------------------------------------------------------------------------------
# Configuration from TOML
# --------------------------------------------------------------------------------------------

CONFIG_TOML = """
timezone = "Europe/Paris"

[hours]
mon = ["09:00-12:00", "13:00-17:30"]
tue = ["09:00-12:00", "13:00-17:30"]
wed = ["09:00-12:00", "13:00-17:30"]
thu = ["09:00-12:00", "13:00-17:30"]
fri = ["09:00-12:00", "13:00-17:30", "22:00-06:00"]

[holidays]
country = "FR"
ics = "closures.ics"
extra = [2026-08-14]
years = [2026, 2027]
"""


def test_calendar_from_toml() -> None:
    config = msgspec.toml.decode(CONFIG_TOML, type=CalendarConfig)
    calendar = BusinessCalendar.from_config(config, base_dir=CALENDARS)
    assert calendar.timezone == PARIS
    assert {date(2026, 7, 14), date(2026, 12, 24), date(2026, 8, 14)} <= calendar.holidays
    assert date(2025, 12, 25) not in calendar.holidays  # outside the configured years
    assert not calendar.is_open(paris(2026, 8, 14, 10))  # the extra day off, a Friday...
    assert not calendar.is_open(paris(2026, 8, 15, 3))  # ...cancels its night shift too
    assert calendar.is_open(paris(2026, 8, 8, 3))  # an ordinary Friday night
    assert not calendar.is_open(paris(2026, 12, 24, 10))  # from the iCalendar file


def test_always_open_from_toml() -> None:
    config = msgspec.toml.decode('hours = "24x7"\ntimezone = "Asia/Tokyo"\n', type=CalendarConfig)
    calendar = BusinessCalendar.from_config(config, today=date(2026, 1, 1))
    assert calendar.holidays == frozenset()
    assert calendar.add(utc(2026, 1, 3, 12), 36 * H) == utc(2026, 1, 5, 0)


def test_default_holiday_years() -> None:
    data = {"hours": {"mon": ["09:00-17:00"]}, "holidays": {"country": "FR"}}
    config = msgspec.convert(data, type=CalendarConfig)
    calendar = BusinessCalendar.from_config(config, today=date(2026, 6, 1))
    years = {day.year for day in calendar.holidays}
    assert years == set(range(2025, 2037))  # last year and the next ten


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('hours = "24x7"\ntimezone = "Mars/Olympus"', "unknown IANA time zone"),
        ('hours = "9to5"', "Invalid enum value"),
        ('hours = { mon = ["09:00-18:00", "17:00-19:00"] }', "overlaps"),
        ('hours = { mon = ["9h-17h"] }', "must look like"),
        ('hours = { someday = ["09:00-17:00"] }', "Invalid enum value 'someday'"),
        ('hours = "24x7"\nholiday = { country = "FR" }', "unknown field `holiday`"),
        ('hours = "24x7"\nholidays = { years = [2030, 2020] }', "must be increasing"),
        ('hours = "24x7"\nholidays = { extra = ["not a date"] }', "Expected `date`"),
    ],
)
def test_bad_config_is_rejected_when_decoded(toml: str, message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message):
        msgspec.toml.decode(toml, type=CalendarConfig)
