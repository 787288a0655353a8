"""Agents' in-app notifications, and organisations' customer-update preferences."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from ticketcore.errors import ValidationFailed
from ticketcore.services.agent_notifications import NotificationPage
from ticketcore.services.delivery_log import DeliveryPage
from ticketcore.services.notification_prefs import CUSTOMER_UPDATE_KINDS
from ticketcore.web.auth import HelpdeskDep, PrincipalDep


class UnreadCount(msgspec.Struct, kw_only=True):
    """How many notifications the signed-in agent has not read."""

    unread: int


class MarkRead(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Which notifications to mark read: ``ids``, or every one up to ``up_to``, or ``all``."""

    ids: list[int] | None = None
    up_to: int | None = None
    all: bool = False


class MarkedRead(msgspec.Struct, kw_only=True):
    """How many notifications changed to read, and how many are still unread."""

    marked: int
    unread: int


class NotificationController(Controller):
    """``/api/v1/notifications``: the signed-in agent's own inbox."""

    path = "/api/v1/notifications"
    tags = ["notifications"]

    @get("/")
    async def list_notifications(
        self,
        helpdesk: HelpdeskDep,
        principal: PrincipalDep,
        unread_only: FromQuery[bool] = False,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 25,
    ) -> NotificationPage:
        """Newest first, with the unread count; pass ``next_cursor`` back as ``cursor``."""
        return await helpdesk.agent_notifications.inbox(
            principal, unread_only=unread_only, limit=limit, cursor=cursor
        )

    @get("/unread-count")
    async def unread_count(self, helpdesk: HelpdeskDep, principal: PrincipalDep) -> UnreadCount:
        """The badge number."""
        return UnreadCount(unread=await helpdesk.agent_notifications.unread_for(principal))

    @post("/read", status_code=200)
    async def mark_read(
        self, data: JSONBody[MarkRead], helpdesk: HelpdeskDep, principal: PrincipalDep
    ) -> MarkedRead:
        """Mark some (``ids``), older (``up_to``) or ``all`` of one's notifications read."""
        chosen = sum([data.ids is not None, data.up_to is not None, data.all])
        if chosen != 1:
            raise ValidationFailed("give exactly one of ids, up_to or all=true", field="ids")
        service = helpdesk.agent_notifications
        marked = await service.mark_read_for(principal, data.ids, up_to=data.up_to)
        return MarkedRead(marked=marked, unread=await service.unread_for(principal))

    @post("/{notification_id:int}/read", status_code=200)
    async def mark_one_read(
        self, notification_id: FromPath[int], helpdesk: HelpdeskDep, principal: PrincipalDep
    ) -> MarkedRead:
        """Mark one of one's notifications read (someone else's is left alone: 0 marked)."""
        service = helpdesk.agent_notifications
        marked = await service.mark_read_for(principal, [notification_id])
        return MarkedRead(marked=marked, unread=await service.unread_for(principal))


class Preferences(msgspec.Struct, kw_only=True):
    """An organisation's customer updates: ``preferences`` maps a kind to on/off (kinds not
    named follow the helpdesk's default); ``kinds`` lists every kind."""

    organisation_id: int
    preferences: dict[str, bool]
    kinds: list[str]


class PreferencesChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``{kind: true | false | null}``; null returns the kind to the default."""

    preferences: dict[str, bool | None]


class OrganisationPreferenceController(Controller):
    """``/api/v1/organisations/{id}/notification-preferences``"""

    path = "/api/v1/organisations/{organisation_id:int}/notification-preferences"
    tags = ["notifications"]

    @get("/")
    async def get_preferences(
        self, organisation_id: FromPath[int], helpdesk: HelpdeskDep, principal: PrincipalDep
    ) -> Preferences:
        """The kinds this organisation has switched on or off (staff)."""
        chosen = await helpdesk.notification_prefs.get(principal, organisation_id)
        return Preferences(
            organisation_id=organisation_id, preferences=chosen, kinds=list(CUSTOMER_UPDATE_KINDS)
        )

    @put("/")
    async def set_preferences(
        self,
        organisation_id: FromPath[int],
        data: JSONBody[PreferencesChange],
        helpdesk: HelpdeskDep,
        principal: PrincipalDep,
    ) -> Preferences:
        """Switch kinds on or off for this organisation (admins)."""
        chosen = await helpdesk.notification_prefs.set(principal, organisation_id, data.preferences)
        return Preferences(
            organisation_id=organisation_id, preferences=chosen, kinds=list(CUSTOMER_UPDATE_KINDS)
        )


class DeliveryLogController(Controller):
    """``/api/v1/notification-deliveries``: the HTTP notifiers' delivery log (admins)."""

    path = "/api/v1/notification-deliveries"
    tags = ["notifications"]

    @get("/")
    async def list_deliveries(
        self,
        helpdesk: HelpdeskDep,
        principal: PrincipalDep,
        notifier: FromQuery[str | None] = None,
        delivery: FromQuery[str | None] = None,
        ticket_id: FromQuery[int | None] = None,
        failed_only: FromQuery[bool] = False,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> DeliveryPage:
        """Attempts newest first: the endpoint, its HTTP status, the error, the duration."""
        return await helpdesk.delivery_log.list(
            principal,
            notifier=notifier,
            delivery=delivery,
            ticket_id=ticket_id,
            failed_only=failed_only,
            limit=limit,
            cursor=cursor,
        )
