"""How our mail is recognised when it comes back: Message-IDs, reply addresses, subject tokens.

Every message we send carries a Message-ID of the form ``tc.<ticket key>.<part>@<domain>``.
The ticket key is a random UUID, so an id that names it is not guessable: a reply whose
``In-Reply-To``/``References`` carries one of our ids is threaded on that ticket, and one of our
ids coming back *as the Message-ID* of an inbound mail is a loop. The same key, without
dashes, is the ``+token`` of the per-ticket reply address (``support+<token>@example.org``).
The subject token (``[#5023]``) is only a hint: matching on it also requires that the sender
belongs to the ticket.

All Message-IDs are handled without angle brackets (``normalise_message_id``).
"""

from __future__ import annotations

import hashlib
import re

_OWN_ID = re.compile(
    r"^tc\.(?P<key>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
    r"\.(?P<part>[A-Za-z0-9._-]+)@(?P<domain>[^@\s>]+)$"
)
_TOKEN = re.compile(r"^[0-9a-f]{32}$")
_SUBJECT_TOKEN = re.compile(r"\[#(\d{1,12})\]")
_ANGLED = re.compile(r"<([^<>\s]+)>")


def normalise_message_id(value: str | None) -> str | None:
    """``" <abc@host> "`` -> ``"abc@host"``; empty or unusable values give None."""
    if not value:
        return None
    value = value.strip()
    found = _ANGLED.search(value)
    if found:
        value = found.group(1)
    value = value.strip().strip("<>").strip()
    if not value or any(c.isspace() for c in value) or len(value) > 900:
        return None
    return value


def message_ids_in(value: str | None) -> list[str]:
    """Every ``<id>`` in a References/In-Reply-To header, in order, without duplicates."""
    if not value:
        return []
    found = _ANGLED.findall(value)
    if not found:
        single = normalise_message_id(value)
        return [single] if single else []
    seen: dict[str, None] = {}
    for item in found:
        norm = normalise_message_id(item)
        if norm:
            seen.setdefault(norm, None)
    return list(seen)


def own_message_id(ticket_key: str, part: str, domain: str) -> str:
    """Our Message-ID (without brackets) for one outbound message of a ticket.

    ``part`` distinguishes the messages of a ticket (``"e42"`` for entry 42, ``"ack"`` for the
    acknowledgement) and must be stable across retries so a resent mail keeps its id.
    """
    safe = re.sub(r"[^A-Za-z0-9._-]", "-", part) or "m"
    return f"tc.{ticket_key}.{safe}@{domain}"


def ticket_key_of(message_id: str | None, domains: frozenset[str] | None = None) -> str | None:
    """The ticket key named by one of our Message-IDs, or None when it is not ours.

    With ``domains``, only ids under those domains count as ours.
    """
    norm = normalise_message_id(message_id)
    if not norm:
        return None
    found = _OWN_ID.match(norm)
    if not found:
        return None
    if domains is not None and found.group("domain").lower() not in domains:
        return None
    return found.group("key")


def reply_token(ticket_key: str) -> str:
    """The ``+token`` of a ticket's reply address: its key without dashes."""
    return ticket_key.replace("-", "")


def reply_address(base_address: str, ticket_key: str) -> str:
    """``support@example.org`` -> ``support+<token>@example.org`` for one ticket."""
    local, _, domain = base_address.partition("@")
    return f"{local}+{reply_token(ticket_key)}@{domain}"


def ticket_key_from_address(address: str) -> str | None:
    """The ticket key in a ``local+token@domain`` reply address, or None."""
    local = address.partition("@")[0]
    if "+" not in local:
        return None
    token = local.rsplit("+", 1)[1].lower()
    if not _TOKEN.match(token):
        return None
    return f"{token[:8]}-{token[8:12]}-{token[12:16]}-{token[16:20]}-{token[20:]}"


def base_address(address: str) -> str:
    """``support+token@Example.org`` -> ``support@example.org`` (lower-cased)."""
    local, _, domain = address.strip().lower().partition("@")
    return f"{local.split('+', 1)[0]}@{domain}"


def subject_ticket_number(subject: str) -> int | None:
    """The ticket number in a ``[#5023]`` subject token, or None."""
    found = _SUBJECT_TOKEN.search(subject or "")
    return int(found.group(1)) if found else None


def subject_with_token(subject: str, number: int) -> str:
    """Add ``[#<number>]`` to a subject once."""
    token = f"[#{number}]"
    return subject if token in subject else f"{subject} {token}".strip()


def content_key(raw: bytes) -> str:
    """The idempotency key of a message without a Message-ID: a hash of its bytes."""
    return "sha256:" + hashlib.sha256(raw).hexdigest()
