"""Which customer updates an organisation's requesters get.

The helpdesk-wide defaults live in the ``customer_updates`` plugin's settings; an
organisation's own choice is data (``organisation_notification_pref``), set by an admin
through ``/api/v1/organisations/{id}/notification-preferences`` without a restart, and it
follows the organisation through renames and new e-mail domains. A kind an organisation has
not chosen follows the default.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ticketcore.domain.models import Principal
from ticketcore.errors import NotFound, ValidationFailed
from ticketcore.services import permissions

if TYPE_CHECKING:
    from ticketcore.app import App

#: The kinds of customer update an organisation can switch off (or back on).
CUSTOMER_UPDATE_KINDS: tuple[str, ...] = (
    "ticket_created",
    "agent_reply",
    "status_changed",
    "ticket_resolved",
    "ticket_closed",
)
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,49}$")


class NotificationPrefService:
    """Organisations' customer-update preferences (``app.notification_prefs``)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.db = app.db

    async def overrides(self, organisation_id: int) -> dict[str, bool]:
        """The kinds ``organisation_id`` has chosen, ``{kind: enabled}`` (others: default)."""
        rows = await self.db.fetch(
            "SELECT kind, enabled FROM organisation_notification_pref WHERE organisation = {} "
            "ORDER BY kind",
            organisation_id,
        )
        return {r["kind"]: bool(r["enabled"]) for r in rows}

    async def enabled(self, organisation_id: int | None, kind: str, default: bool) -> bool:
        """Whether a requester of ``organisation_id`` (None: no organisation) gets ``kind``:
        the organisation's choice if it made one, else ``default``."""
        if organisation_id is None:
            return default
        rows = await self.db.fetch(
            "SELECT enabled FROM organisation_notification_pref WHERE organisation = {} "
            "AND kind = {}",
            organisation_id,
            kind,
        )
        return bool(rows[0]["enabled"]) if rows else default

    async def get(self, viewer: Principal, organisation_id: int) -> dict[str, bool]:
        """An organisation's choices (staff)."""
        permissions.ensure_staff(viewer, "reading notification preferences")
        await self._ensure_organisation(organisation_id)
        return await self.overrides(organisation_id)

    async def set(
        self, actor: Principal, organisation_id: int, choices: dict[str, bool | None]
    ) -> dict[str, bool]:
        """Set an organisation's choices (admins): ``True``/``False`` per kind, ``None`` to
        return a kind to the default. Returns the choices now stored."""
        permissions.ensure_admin(actor, "changing notification preferences")
        for kind in choices:
            if kind not in CUSTOMER_UPDATE_KINDS:
                raise ValidationFailed(
                    f"unknown kind {kind!r}; one of {', '.join(CUSTOMER_UPDATE_KINDS)}",
                    field=f"preferences.{kind}" if _KIND.match(kind) else "preferences",
                )
        await self._ensure_organisation(organisation_id)
        now = self.app.clock.now()
        async with self.db.transaction():
            for kind, enabled in sorted(choices.items()):
                if enabled is None:
                    await self.db.fetch(
                        "DELETE FROM organisation_notification_pref WHERE organisation = {} "
                        "AND kind = {}",
                        organisation_id,
                        kind,
                    )
                    continue
                await self.db.fetch(
                    "INSERT INTO organisation_notification_pref (organisation, kind, enabled, "
                    "updated_at) VALUES ({}, {}, {}, {}) ON CONFLICT (organisation, kind) "
                    "DO UPDATE SET enabled = excluded.enabled, updated_at = excluded.updated_at",
                    organisation_id,
                    kind,
                    enabled,
                    now,
                )
        return await self.overrides(organisation_id)

    async def _ensure_organisation(self, organisation_id: int) -> None:
        if not await self.db.fetch("SELECT id FROM organisation WHERE id = {}", organisation_id):
            raise NotFound(f"organisation {organisation_id} not found", field="organisation_id")
