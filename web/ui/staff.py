"""The colleagues an agent can assign a ticket to or @mention in a note.

Mentions are only shown here (highlighted in notes, suggested while typing); notifying the
people mentioned is the job of the notifier plugins, which see every ``note_added`` event.
"""

from __future__ import annotations

from dataclasses import dataclass

from ticketcore.app import App


@dataclass(frozen=True)
class Colleague:
    """An active agent or admin."""

    id: int
    name: str
    email: str

    @property
    def handle(self) -> str:
        """What to type after ``@`` to mention them: their e-mail's local part."""
        return self.email.split("@", 1)[0]


async def colleagues(helpdesk: App) -> list[Colleague]:
    """Active agents and admins, by name."""
    rows = await helpdesk.db.fetch(
        "SELECT id, name, email FROM app_user WHERE active = {} "
        "AND role IN ('agent', 'admin') ORDER BY name",
        True,
    )
    return [Colleague(id=int(r["id"]), name=str(r["name"]), email=str(r["email"])) for r in rows]
