"""Which ticket an inbound mail continues, and whether its sender may continue it.

Candidates, in order: tickets named by our own Message-IDs in ``In-Reply-To``/``References``
or by the ``+token`` of a reply address (both unguessable), tickets whose messages carry the
other referenced Message-IDs, then the ``[#123]`` subject token (a hint only). A candidate is
kept only when the sender belongs to it: its requester, someone who wrote on it before, or
an agent. Plugins may pick among the candidates (``match_inbound``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ticketcore.domain.enums import Role
from ticketcore.domain.models import InboundMessage, Principal, Ticket
from ticketcore.plugins.channels.email.ids import (
    base_address,
    subject_ticket_number,
    ticket_key_from_address,
    ticket_key_of,
)
from ticketcore.plugins.channels.email.parse import ParsedMail

if TYPE_CHECKING:
    from ticketcore.app import App


def inbound_message(mail: ParsedMail) -> InboundMessage:
    """The channel-neutral view of a mail that plugins' intake hooks receive."""
    return InboundMessage(
        channel="email",
        sender_email=mail.sender_email,
        sender_name=mail.sender_name,
        subject=mail.subject,
        body_text=mail.text,
        body_html=mail.html,
        message_id=mail.message_id,
        in_reply_to=[*mail.in_reply_to, *mail.references],
        headers=dict(mail.headers),
    )


class ThreadFinder:
    """Finds the ticket of a reply, for one application and set of our addresses."""

    def __init__(self, app: App, domains: frozenset[str], addresses: Iterable[str]) -> None:
        self.app = app
        self.db = app.db
        self.domains = domains
        self.addresses = frozenset(addresses)

    async def target(
        self, mail: ParsedMail, recipients: Sequence[str], sender: str | None
    ) -> Ticket | None:
        """The ticket this mail continues, if any (see the module docstring)."""
        referenced = [*mail.in_reply_to, *reversed(mail.references)]
        own_keys = [k for k in (ticket_key_of(m, self.domains) for m in referenced) if k]
        for address in [*recipients, *mail.delivered_to, *mail.to, *mail.cc]:
            if base_address(address) in self.addresses:
                token_key = ticket_key_from_address(address.strip().lower())
                if token_key:
                    own_keys.append(token_key)
        candidates: list[int] = []
        candidates += await self._tickets_by_keys(own_keys)
        candidates += await self._tickets_by_message_ids(
            [m for m in referenced if ticket_key_of(m, self.domains) is None]
        )
        number = subject_ticket_number(mail.subject)
        if number is not None:
            candidates.append(number)
        candidates = list(dict.fromkeys(candidates))
        if not candidates or sender is None:
            return None
        members = await self._tickets_of_sender(candidates, sender)
        allowed = [c for c in candidates if c in members]
        if not allowed:
            return None
        snapshots = [await self.app.tickets.snapshot(c) for c in allowed]
        if self.app.hooks.implementers("match_inbound"):
            chosen = await self.app.hooks.first_result(
                "match_inbound", message=inbound_message(mail), candidates=snapshots
            )
            if chosen is not None:
                return next((t for t in snapshots if t.id == chosen), None)
        return snapshots[0]

    async def _tickets_by_keys(self, keys: list[str]) -> list[int]:
        keys = list(dict.fromkeys(keys))
        if not keys:
            return []
        marks = ", ".join(["{}"] * len(keys))
        rows = await self.db.fetch(f"SELECT id, key FROM ticket WHERE key IN ({marks})", *keys)
        by_key = {row["key"]: row["id"] for row in rows}
        return [by_key[k] for k in keys if k in by_key]

    async def _tickets_by_message_ids(self, message_ids: list[str]) -> list[int]:
        ids = list(dict.fromkeys(message_ids))[:50]
        if not ids:
            return []
        marks = ", ".join(["{}"] * len(ids))
        rows = await self.db.fetch(
            f"SELECT ticket, message_id FROM entry WHERE message_id IN ({marks})", *ids
        )
        by_id = {row["message_id"]: row["ticket"] for row in rows}
        return list(dict.fromkeys(by_id[m] for m in ids if m in by_id))

    async def _tickets_of_sender(self, ticket_ids: list[int], sender: str) -> set[int]:
        """Those of ``ticket_ids`` the sender belongs to: as requester, as someone who wrote
        on it before, or as an agent."""
        if await self.staff_principal(sender) is not None:
            rows = await self.db.fetch(
                f"SELECT id FROM ticket WHERE id IN ({', '.join(['{}'] * len(ticket_ids))})",
                *ticket_ids,
            )
            return {row["id"] for row in rows}
        marks = ", ".join(["{}"] * len(ticket_ids))
        rows = await self.db.fetch(
            "SELECT t.id FROM ticket t JOIN contact c ON c.id = t.requester "
            f"WHERE t.id IN ({marks}) AND c.email = {{}} "
            "UNION SELECT e.ticket FROM entry e JOIN contact c ON c.id = e.author_id "
            f"WHERE e.ticket IN ({marks}) AND e.author_kind = 'contact' AND c.email = {{}}",
            *ticket_ids,
            sender,
            *ticket_ids,
            sender,
        )
        return {row["id"] for row in rows}

    async def ticket_of_original(self, message_ids: Iterable[str]) -> int | None:
        """The ticket of a message we sent, among the ids a bounce or auto-reply quotes."""
        ids = list(dict.fromkeys(message_ids))
        keys = [k for k in (ticket_key_of(m, self.domains) for m in ids) if k]
        found = await self._tickets_by_keys(keys)
        if found:
            return found[0]
        others = await self._tickets_by_message_ids(ids)
        return others[0] if others else None

    async def staff_principal(self, address: str) -> Principal | None:
        """The active agent or admin with this address, if any."""
        rows = await self.db.fetch(
            "SELECT id, name, email, role FROM app_user WHERE email = {} AND active = {} "
            "AND role IN ('agent', 'admin')",
            address,
            True,
        )
        if not rows:
            return None
        row = rows[0]
        return Principal(id=row["id"], name=row["name"], email=row["email"], role=Role(row["role"]))
