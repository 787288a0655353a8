"""HTTP CRM: enrich new tickets with customer data fetched from a CRM's HTTP API.

For each new ticket the plugin GETs ``url`` with ``{email}`` and ``{domain}`` replaced by the
requester's address and domain (URL-encoded), e.g.
``https://crm.example/api/customers?email={email}``. The answer is a JSON object:

- ``200`` with ``{"tier": "gold", "vip": true, "account_manager": "Ann", ...}``: the keys
  listed in ``fields`` (every key when ``fields`` is empty) are copied into the ticket's custom
  fields (prefixed with ``field_prefix``); ``vip`` and ``tier`` raise the priority as in
  ``csv_crm`` (``vip_priority``, ``tier_priority``), never lowering it;
- ``404``: the customer is unknown, nothing changes;
- anything else, a timeout or a connection error: the lookup fails. Enrichment is isolated:
  the ticket is still created, and the failure is recorded as ``enrichment_failed``.

Answers (found or not) are cached in memory for ``cache_seconds`` per address. Secrets such
as an API token go in ``headers`` and are read from the environment::

    [plugin.plugins.http_crm]
    url = "https://crm.example/api/customers?email={email}"
    headers = { Authorization = { env = "CRM_AUTHORIZATION" } }

The HTTP client is opened by ``startup`` and closed by ``shutdown``; importing or creating
the plugin does no I/O.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import msgspec

from ticketcore import Priority, Ticket, hookimpl

from ._priority import raise_priority

if TYPE_CHECKING:
    from ticketcore import App


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Settings of ``[plugin.plugins.http_crm]``."""

    #: The lookup URL, with ``{email}`` and/or ``{domain}`` placeholders.
    url: str
    #: Extra request headers (e.g. ``Authorization``, read from the environment).
    headers: dict[str, str] = {}
    timeout_seconds: float = 2.0
    #: How long an answer (found or not) is reused; 0 disables the cache.
    cache_seconds: float = 300.0
    #: Most addresses kept in the cache (the oldest answer is dropped first).
    cache_size: int = 10_000
    #: Keys of the answer copied into custom fields; empty copies every key.
    fields: list[str] = []
    field_prefix: str = ""
    #: Priority a VIP's ticket gets at least; None leaves priority alone.
    vip_priority: Priority | None = Priority.HIGH
    #: Priority per tier, e.g. ``{ gold = "high" }``.
    tier_priority: dict[str, Priority] = {}

    def __post_init__(self) -> None:
        if "{email}" not in self.url and "{domain}" not in self.url:
            raise ValueError("url needs an {email} or a {domain} placeholder")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        if self.timeout_seconds <= 0 or self.cache_seconds < 0 or self.cache_size < 1:
            raise ValueError("timeout_seconds must be positive, cache settings not negative")


class HttpCrm:
    """Looks requesters up in a CRM over HTTP, with a small time-limited cache."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.client: httpx.AsyncClient | None = None
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}
        #: Requests sent (for monitoring and tests).
        self.requests = 0

    @hookimpl
    async def startup(self, app: App) -> None:
        """Open the HTTP client (connection pool)."""
        self.client = httpx.AsyncClient(
            headers=self.config.headers, timeout=self.config.timeout_seconds
        )

    @hookimpl
    async def shutdown(self, app: App) -> None:
        """Close the HTTP client."""
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    def url_for(self, email: str) -> str:
        """The lookup URL for one address."""
        domain = email.rpartition("@")[2]
        return self.config.url.replace("{email}", quote(email, safe="@")).replace(
            "{domain}", quote(domain, safe="")
        )

    async def lookup(self, email: str) -> dict[str, Any] | None:
        """The CRM's record for ``email`` (None when unknown); cached."""
        now = time.monotonic()
        cached = self._cache.get(email)
        if cached is not None and cached[0] > now:
            return cached[1]
        if self.client is None:
            raise RuntimeError("http_crm is not started (no HTTP client)")
        self.requests += 1
        response = await self.client.get(self.url_for(email))
        if response.status_code == 404:
            record = None
        else:
            response.raise_for_status()
            body = response.json()
            if not isinstance(body, dict):
                raise ValueError(f"CRM answered {type(body).__name__}, expected a JSON object")
            record = body
        if self.config.cache_seconds > 0:
            self._cache.pop(email, None)
            self._cache[email] = (now + self.config.cache_seconds, record)
            while len(self._cache) > self.config.cache_size:
                self._cache.pop(next(iter(self._cache)))
        return record

    @hookimpl
    async def enrich_ticket(self, ticket: Ticket) -> dict[str, Any] | None:
        """The CRM's fields for the requester, and a raised priority for VIPs and tiers."""
        email = (ticket.requester.email or "").strip().lower()
        if "@" not in email:
            return None
        record = await self.lookup(email)
        if record is None:
            return None
        keep = self.config.fields or list(record)
        prefix = self.config.field_prefix
        result: dict[str, Any] = {
            f"{prefix}{key}": record[key]
            for key in keep
            if key in record and key not in ("priority", "reason")
        }
        tier = record.get("tier")
        vip = record.get("vip") is True
        wanted: list[Priority] = []
        notes: list[str] = []
        if isinstance(tier, str) and tier:
            notes.append(f"tier {tier!r}")
            if tier in self.config.tier_priority:
                wanted.append(self.config.tier_priority[tier])
        if vip:
            notes.append("VIP")
            if self.config.vip_priority is not None:
                wanted.append(self.config.vip_priority)
        reason = f"CRM lookup of {email!r}" + (f" ({', '.join(notes)})" if notes else "")
        return raise_priority(ticket, wanted, reason, result)


def create(config: Config) -> HttpCrm:
    """Entry point factory: no I/O until ``startup``."""
    return HttpCrm(config)
