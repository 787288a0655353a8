"""Directory VIP: raise the priority of tickets from VIP contacts and VIP organisations.

The requester in a ticket snapshot is already resolved from the helpdesk's own directory:
``Contact.vip`` is true when the contact or its organisation is flagged VIP. With
``raise_to = "high"`` (the default) such a ticket gets at least that priority; with
``raise_to = "one_step"`` it goes one step up (low to normal, normal to high, high to
critical). Priority is only ever raised, never lowered. ``mark_field`` names a custom field
set to true on VIP tickets (``vip`` by default; empty to set none).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from ticketcore import Priority, Ticket, hookimpl

_ORDER = list(Priority)


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Settings of ``[plugin.plugins.directory_vip]``."""

    #: A priority (``normal``, ``high``, ``critical``) VIP tickets get at least, or
    #: ``one_step`` to go one step above the ticket's current priority.
    raise_to: Literal["normal", "high", "critical", "one_step"] = "high"
    #: Custom field set to true on a VIP's ticket; "" sets none.
    mark_field: str = "vip"


class DirectoryVip:
    """Enriches tickets from VIP requesters with a higher priority."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def target(self, current: Priority) -> Priority:
        """The priority a VIP ticket at ``current`` should have (never lower)."""
        if self.config.raise_to == "one_step":
            return _ORDER[min(current.rank + 1, len(_ORDER) - 1)]
        wanted = Priority(self.config.raise_to)
        return wanted if wanted.rank > current.rank else current

    @hookimpl
    def enrich_ticket(self, ticket: Ticket) -> dict[str, Any] | None:
        """A raised priority and the reason for a VIP's ticket; None for anyone else."""
        requester = ticket.requester
        if not requester.vip:
            return None
        # Contact.vip is the contact's flag OR its organisation's: name both when known.
        who = f"VIP requester {requester.name!r}"
        if requester.organisation:
            who += f" of {requester.organisation!r}"
        result: dict[str, Any] = {}
        target = self.target(ticket.priority)
        if target is not ticket.priority:
            result["priority"] = target.value
        if self.config.mark_field:
            result[self.config.mark_field] = True
        if not result:
            return None
        if target is ticket.priority:
            result["reason"] = f"{who}: priority already {target.value}"
        else:
            result["reason"] = (
                f"{who}: priority raised from {ticket.priority.value} to {target.value}"
            )
        return result


def create(config: Config) -> DirectoryVip:
    """Entry point factory: build the plugin from its validated settings."""
    return DirectoryVip(config)
