"""Authorisation in one place: who may see and do what."""

from __future__ import annotations

from ticketcore.domain.enums import Role
from ticketcore.domain.models import Principal
from ticketcore.errors import NotFound, PermissionDenied

#: Transitions a customer may ask for on their own ticket: confirm, give up, or reopen.
CUSTOMER_TRANSITIONS = frozenset({"close", "reopen", "resolve"})


def ensure_can_view(principal: Principal, ticket_id: int, requester_id: int) -> None:
    """Staff see every ticket; a customer only their own. Others get 404, not 403, so a
    customer cannot learn which ticket numbers exist."""
    if principal.is_staff:
        return
    if principal.contact_id is None or principal.contact_id != requester_id:
        raise NotFound(f"ticket {ticket_id} not found", field="ticket_id")


def ensure_staff(principal: Principal, action: str) -> None:
    """Refuse ``action`` to customers."""
    if not principal.is_staff:
        raise PermissionDenied(f"{action} is for agents and admins only")


def ensure_admin(principal: Principal, action: str) -> None:
    """Refuse ``action`` to anyone but admins."""
    if principal.role is not Role.ADMIN:
        raise PermissionDenied(f"{action} is for admins only")


def ensure_customer_transition(principal: Principal, transition: str) -> None:
    """Customers may only confirm, close or reopen their own tickets."""
    if not principal.is_staff and transition not in CUSTOMER_TRANSITIONS:
        raise PermissionDenied(
            f"customers may only {', '.join(sorted(CUSTOMER_TRANSITIONS))} their tickets",
            field="transition",
        )
