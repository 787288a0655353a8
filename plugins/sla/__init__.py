"""SLA policies for TicketCore, built on a pure business-time library.

``business_hours`` answers "when is this due?" for a calendar of opening hours, holidays and a
time zone, with pauses while a ticket waits on the customer; ``holiday_sources`` loads holidays
from the ``holidays`` package and from iCalendar files; ``policy`` is the SLA plugin built on
them (entry point ``ticketcore.sla: policy``): targets by rule, warnings and escalation
chains. Importing this package does no I/O.
"""

from __future__ import annotations

from .business_hours import (
    WEEKDAYS,
    BusinessCalendar,
    CalendarConfig,
    HolidaysConfig,
    Pause,
    PausedClock,
    Shift,
    business_time_with_pauses,
    deadline_with_pauses,
)

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
