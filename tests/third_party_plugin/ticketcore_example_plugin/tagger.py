"""``example_tagger``: tags a new ticket when its subject or description mentions a keyword."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from ticketcore import Classification, Ticket, hookimpl


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Settings of ``[plugin.plugins.example_tagger]``."""

    #: The word to look for (whole word, any case).
    keyword: str
    #: The tag given to matching tickets.
    tag: str = "example"


class ExampleTagger:
    """Tags tickets that mention the configured keyword."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.pattern = re.compile(rf"(?<!\w){re.escape(config.keyword)}(?!\w)", re.IGNORECASE)

    @hookimpl
    def classify_ticket(self, ticket: Ticket, context: dict[str, Any]) -> Classification | None:
        """Suggest the tag when the keyword appears; None otherwise (sync and pure)."""
        if self.pattern.search(f"{ticket.subject}\n{ticket.description}"):
            return Classification(
                reason=f"mentions {self.config.keyword!r}", tags=[self.config.tag]
            )
        return None


def create(config: Config) -> ExampleTagger:
    """Entry point factory: TicketCore passes the validated settings."""
    return ExampleTagger(config)
