"""CSV CRM: enrich new tickets with customer data from a CSV export of a CRM.

The file has a header row with an ``email`` column, a ``domain`` column, or both (each data
row fills at least one), and optionally ``tier`` and ``vip``; every other column is copied
into the ticket's custom fields under its header name (prefixed with ``field_prefix``).
``tier`` and ``vip`` are copied too (``vip`` as a boolean: true, yes, y, 1 or x). A row
matches a requester by exact e-mail first, then by domain: the requester's domain or a
parent domain of it (``support.acme.example`` matches a row for ``acme.example``).

A VIP row raises the priority to at least ``vip_priority``; ``tier_priority`` maps tiers to a
priority the same way (``{ gold = "high" }``); priority is never lowered.

The file is read once, when the plugin is created at start-up (never at import), and kept in
memory: lookups are then pure and cheap. A missing or malformed file stops start-up with the
path and the problem. Restart to pick up a new export.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import msgspec

from ticketcore import Priority, Ticket, hookimpl

from ._priority import raise_priority

_TRUE = {"true", "yes", "y", "1", "x"}
_FALSE = {"false", "no", "n", "0", ""}


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Settings of ``[plugin.plugins.csv_crm]``."""

    #: The CSV file (UTF-8, a BOM is fine).
    path: str
    delimiter: str = ","
    #: Prefix of the custom fields the columns are copied into.
    field_prefix: str = ""
    #: Priority a VIP's ticket gets at least; None leaves priority alone.
    vip_priority: Priority | None = Priority.HIGH
    #: Priority per tier, e.g. ``{ gold = "high", platinum = "critical" }``.
    tier_priority: dict[str, Priority] = {}


class Customer(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the CRM export."""

    key: str
    line: int
    tier: str | None
    vip: bool
    fields: dict[str, Any]


def _parse_bool(value: str, where: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{where}: vip must be true or false, got {value!r}")


def load_customers(
    path: Path, delimiter: str = ","
) -> tuple[dict[str, Customer], dict[str, Customer]]:
    """Read the export: customers by e-mail and by domain. Raises ValueError naming the
    file (and the line of each problem, at most ten shown) when it is missing, unreadable
    or malformed."""
    if not path.is_file():
        raise ValueError(f"CRM file {str(path)!r} does not exist or is not a file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"CRM file {str(path)!r} cannot be read: {exc}") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if "email" not in header and "domain" not in header:
        raise ValueError(f"CRM file {str(path)!r}: the header needs an email or a domain column")
    if len(set(header)) != len(header):
        raise ValueError(f"CRM file {str(path)!r}: a column name appears twice")
    reader.fieldnames = header
    by_email: dict[str, Customer] = {}
    by_domain: dict[str, Customer] = {}
    problems: list[str] = []
    for row in reader:
        line = reader.line_num
        where = f"{path}:{line}"
        if None in row:
            problems.append(f"{where}: more values than columns")
            continue
        values = {k: (v or "").strip() for k, v in row.items()}
        email = values.pop("email", "").lower()
        domain = values.pop("domain", "").lower().lstrip("@")
        tier = values.pop("tier", "") or None
        try:
            vip = _parse_bool(values.pop("vip", ""), where)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if not email and not domain:
            problems.append(f"{where}: neither email nor domain is given")
            continue
        fields: dict[str, Any] = {k: v for k, v in values.items() if v}
        if "tier" in header:
            fields["tier"] = tier
        if "vip" in header:
            fields["vip"] = vip
        for key, index in ((email, by_email), (domain, by_domain)):
            if not key:
                continue
            if key in index:
                problems.append(f"{where}: {key!r} is already on line {index[key].line}")
                continue
            index[key] = Customer(key=key, line=line, tier=tier, vip=vip, fields=fields)
    if problems:
        shown = "; ".join(problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise ValueError(f"CRM file {str(path)!r} has errors: {shown}{more}")
    return by_email, by_domain


class CsvCrm:
    """Looks requesters up in a CSV export held in memory."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.path = Path(config.path).expanduser()
        self.by_email, self.by_domain = load_customers(self.path, config.delimiter)

    def find(self, email: str | None) -> tuple[Customer, str] | None:
        """The row for this address (by e-mail, then domain), with how it matched."""
        if not email or "@" not in email:
            return None
        address = email.strip().lower()
        if address in self.by_email:
            return self.by_email[address], f"e-mail {address!r}"
        labels = address.rpartition("@")[2].split(".")
        for i in range(len(labels) - 1):
            domain = ".".join(labels[i:])
            if domain in self.by_domain:
                return self.by_domain[domain], f"domain {domain!r}"
        return None

    @hookimpl
    def enrich_ticket(self, ticket: Ticket) -> dict[str, Any] | None:
        """The CRM's fields for the requester, and a raised priority for VIPs and tiers."""
        found = self.find(ticket.requester.email)
        if found is None:
            return None
        customer, how = found
        prefix = self.config.field_prefix
        result: dict[str, Any] = {f"{prefix}{k}": v for k, v in customer.fields.items()}
        wanted: list[Priority] = []
        notes: list[str] = []
        if customer.tier:
            notes.append(f"tier {customer.tier!r}")
            if customer.tier in self.config.tier_priority:
                wanted.append(self.config.tier_priority[customer.tier])
        if customer.vip:
            notes.append("VIP")
            if self.config.vip_priority is not None:
                wanted.append(self.config.vip_priority)
        detail = f" ({', '.join(notes)})" if notes else ""
        return raise_priority(ticket, wanted, f"CRM {self.path.name}: {how}{detail}", result)


def create(config: Config) -> CsvCrm:
    """Entry point factory: read the CSV file now (a missing file stops start-up)."""
    return CsvCrm(config)
