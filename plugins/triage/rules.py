"""Triage rules: set a new ticket's category, priority and tags from what it says and where
it comes from.

Each rule has conditions and actions::

    [[plugin.plugins.triage_rules.rules]]
    name = "payments"
    keywords = ["payment failed", "carte bancaire"]
    category = "billing"
    priority = "high"
    tags = ["payments"]

Conditions (a rule needs at least one; with ``match = "any"``, the default, one matching
condition is enough, with ``match = "all"`` every kind given must match):

- ``keywords``: words or phrases found as whole words in the subject or the body, in any
  language and any case (Unicode case folding: "ÉCHOUE" matches "échoue", "STRASSE" matches
  "straße"); spaces in a phrase match any run of white space, so a phrase broken across
  lines of an e-mail still matches. With ``fold_accents = true`` accents are ignored too
  ("echoue" matches "échoue").
- ``patterns``: regular expressions (Python syntax, case-insensitive) searched in the subject
  and the body.
- ``sender_domains``: the requester's e-mail domain, or a subdomain of it.
- ``channels``: the channel the ticket came in on (``email``, ``api``, ``web`` ...).
- ``custom_fields``: every field given must equal the ticket's custom field.

Actions: ``category``, ``priority`` and ``tags`` (a rule needs at least one). Rules are tried
in order and the first match wins; with ``first_match = false`` every matching rule applies,
earlier rules winning on category and priority and tags adding up. The answer's reason names
each rule and what matched: ``rule 'payments': keyword 'payment failed'``.

The rules are compiled once when the plugin is created: an invalid regular expression or a
rule without condition or action stops start-up with the rule's name.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Literal

import msgspec

from ticketcore import Classification, Priority, Ticket, hookimpl


class Rule(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One triage rule: conditions, then what to set when they match."""

    name: str
    keywords: list[str] = []
    patterns: list[str] = []
    sender_domains: list[str] = []
    channels: list[str] = []
    custom_fields: dict[str, Any] = {}
    #: ``any``: one matching condition is enough; ``all``: every kind given must match.
    match: Literal["any", "all"] = "any"
    category: str | None = None
    priority: Priority | None = None
    tags: list[str] = []


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Settings of ``[plugin.plugins.triage_rules]``."""

    rules: list[Rule] = []
    #: Stop at the first matching rule (default), or apply every matching rule.
    first_match: bool = True
    #: Ignore accents in keywords and text ("echoue" matches "échoue").
    fold_accents: bool = False


def normalise(text: str, fold_accents: bool) -> str:
    """Text as keywords are matched against: NFC, case-folded, optionally without accents."""
    if fold_accents:
        decomposed = unicodedata.normalize("NFD", text)
        text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", text).casefold()


def keyword_pattern(keyword: str, fold_accents: bool) -> re.Pattern[str]:
    """A whole-word pattern for a keyword or phrase, to search in normalised text."""
    words = normalise(keyword, fold_accents).split()
    return re.compile(r"(?<!\w)" + r"\s+".join(re.escape(w) for w in words) + r"(?!\w)")


class _Compiled(msgspec.Struct, frozen=True, kw_only=True):
    rule: Rule
    keywords: list[tuple[str, re.Pattern[str]]]
    patterns: list[tuple[str, re.Pattern[str]]]
    domains: list[str]
    tags: list[str]


class _Matched(msgspec.Struct, frozen=True, kw_only=True):
    rule: Rule
    why: str
    tags: list[str]


class TriageRules:
    """Classifies new tickets by the configured rules."""

    def __init__(self, config: Config) -> None:
        self.config = config
        problems: list[str] = []
        self.rules: list[_Compiled] = []
        names: set[str] = set()
        for i, rule in enumerate(config.rules):
            where = f"rules[{i}] ({rule.name!r})"
            if rule.name in names:
                problems.append(f"{where}: another rule has this name")
            names.add(rule.name)
            if not (
                rule.keywords
                or rule.patterns
                or rule.sender_domains
                or rule.channels
                or rule.custom_fields
            ):
                problems.append(f"{where}: no condition (keywords, patterns, sender_domains, ...)")
            if rule.category is None and rule.priority is None and not rule.tags:
                problems.append(f"{where}: no action (category, priority or tags)")
            if any(not k.strip() for k in rule.keywords):
                problems.append(f"{where}: an empty keyword")
            patterns: list[tuple[str, re.Pattern[str]]] = []
            for source in rule.patterns:
                try:
                    patterns.append((source, re.compile(source, re.IGNORECASE)))
                except re.error as exc:
                    problems.append(f"{where}: invalid regular expression {source!r}: {exc}")
            self.rules.append(
                _Compiled(
                    rule=rule,
                    keywords=[
                        (k, keyword_pattern(k, config.fold_accents))
                        for k in rule.keywords
                        if k.strip()
                    ],
                    patterns=patterns,
                    domains=[d.strip().lower().lstrip("@") for d in rule.sender_domains],
                    tags=list(dict.fromkeys(t.strip().lower() for t in rule.tags if t.strip())),
                )
            )
        if problems:
            raise ValueError("; ".join(problems))

    def _checks(self, compiled: _Compiled, ticket: Ticket, folded: str, raw: str) -> list[str]:
        """For each kind of condition the rule has, what matched ("" when nothing did)."""
        rule = compiled.rule
        results: list[str] = []
        if compiled.keywords:
            hit = next((k for k, p in compiled.keywords if p.search(folded)), None)
            results.append(f"keyword {hit!r}" if hit is not None else "")
        if compiled.patterns:
            hit = next((s for s, p in compiled.patterns if p.search(raw)), None)
            results.append(f"pattern {hit!r}" if hit is not None else "")
        if compiled.domains:
            email = ticket.requester.email or ""
            domain = email.rpartition("@")[2].lower() if "@" in email else ""
            hit = next(
                (d for d in compiled.domains if domain == d or domain.endswith("." + d)), None
            )
            results.append(f"sender domain {hit!r}" if hit is not None else "")
        if rule.channels:
            results.append(f"channel {ticket.channel!r}" if ticket.channel in rule.channels else "")
        if rule.custom_fields:
            fields = ticket.custom_fields
            equal = all(
                name in fields and fields[name] == value
                for name, value in rule.custom_fields.items()
            )
            shown = ", ".join(f"{k} = {v!r}" for k, v in rule.custom_fields.items())
            results.append(f"custom fields {shown}" if equal else "")
        return results

    def matches(self, ticket: Ticket) -> list[_Matched]:
        """The matching rules, in order (only the first unless ``first_match`` is off)."""
        raw = unicodedata.normalize("NFC", f"{ticket.subject}\n{ticket.description}")
        folded = normalise(raw, self.config.fold_accents)
        found: list[_Matched] = []
        for compiled in self.rules:
            checks = self._checks(compiled, ticket, folded, raw)
            hits = [c for c in checks if c]
            ok = all(checks) if compiled.rule.match == "all" else bool(hits)
            if not ok:
                continue
            found.append(_Matched(rule=compiled.rule, why=" and ".join(hits), tags=compiled.tags))
            if self.config.first_match:
                break
        return found

    @hookimpl
    def classify_ticket(self, ticket: Ticket, context: dict[str, Any]) -> Classification | None:
        """Category, priority and tags of the matching rule(s), with the reason."""
        found = self.matches(ticket)
        if not found:
            return None
        category = next((m.rule.category for m in found if m.rule.category is not None), None)
        priority = next((m.rule.priority for m in found if m.rule.priority is not None), None)
        tags = list(dict.fromkeys(t for m in found for t in m.tags))
        reason = "; ".join(f"rule {m.rule.name!r}: {m.why}" for m in found)
        return Classification(reason=reason, category=category, priority=priority, tags=tags)


def create(config: Config) -> TriageRules:
    """Entry point factory: compile the rules (errors stop start-up)."""
    return TriageRules(config)
