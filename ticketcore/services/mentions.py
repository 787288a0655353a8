"""@mentions of staff in a conversation entry: pure parsing, no I/O.

A mention is ``@`` at the start of the text or after a character that cannot be part of an
e-mail address (so ``alice@example.org`` is not a mention of "example.org"), followed by a
handle. A handle names a staff member when it equals, ignoring case:

- the local part of their e-mail address (``@alex`` for ``alex@example.org``), or
- their name with its spaces written as nothing, ``.``, ``_`` or ``-`` (``@AlexAgent``,
  ``@alex.agent``), or
- their full name, spaces included, when the text has it right after the ``@``
  (``@Alex Agent``).

A handle that fits nobody is ignored; one that fits several people mentions each of them
(two agents sharing a local part on different domains are both told).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import msgspec

_HANDLE = re.compile(r"(?<![\w.+-])@([\w][\w.+-]*)", re.UNICODE)


class StaffMember(msgspec.Struct, frozen=True, kw_only=True):
    """Who can be mentioned: an active admin or agent."""

    id: int
    name: str
    email: str


def handles(text: str) -> list[str]:
    """The handles written after ``@`` in ``text``, lower-cased, in order, without repeats
    (a trailing full stop or comma is punctuation, not part of the handle)."""
    found = [m.group(1).rstrip(".-+").lower() for m in _HANDLE.finditer(text)]
    return [h for h in dict.fromkeys(found) if h]


def _aliases(member: StaffMember) -> set[str]:
    names = {member.email.partition("@")[0].lower()}
    parts = member.name.lower().split()
    if parts:
        names.update(sep.join(parts) for sep in ("", ".", "_", "-"))
    return {n for n in names if n}


def mentioned(text: str, staff: Iterable[StaffMember]) -> list[StaffMember]:
    """The staff members ``text`` mentions, in the order of the staff given."""
    wanted = set(handles(text))
    found: list[StaffMember] = []
    for member in staff:
        parts = member.name.split()
        full_name = len(parts) > 1 and re.search(
            r"(?<![\w.+-])@" + r"\s+".join(map(re.escape, parts)) + r"(?!\w)",
            text,
            re.IGNORECASE,
        )
        if _aliases(member) & wanted or full_name:
            found.append(member)
    return found
