"""Tables of the automation rules (created by migration 0007)."""

from __future__ import annotations

from piccolo.columns import JSON, BigInt, BigSerial, Boolean, Integer, Serial, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class AutomationRule(Table, tablename="automation_rule"):
    """A rule as data: trigger, conditions and actions (``definition``), run in
    ``position`` order."""

    id = Serial(primary_key=True)
    name = Varchar(length=200, unique=True)
    trigger = Varchar(length=10)
    enabled = Boolean(default=True)
    position = Integer(default=0)
    definition = JSON(default="{}")
    version = Integer(default=1)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class AutomationFired(Table, tablename="automation_fired"):
    """That a rule fired for an event (or a timer's anchor event): unique per
    (rule, event), written in the transaction of the rule's actions, so a rule never fires
    twice for one event, whatever the number of workers and retries."""

    id = BigSerial(primary_key=True)
    rule = Integer()
    event = BigInt()
    ticket = BigInt()
    outcome = Varchar(length=20)
    fired_at = Timestamptz(default=TimestamptzNow())


AUTOMATION_TABLES: tuple[type[Table], ...] = (AutomationRule, AutomationFired)
