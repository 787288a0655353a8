"""Message catalogues of the web pages (English and French) and the choice of language.

Catalogues are plain dicts: a message id to its text, with ``{name}`` placeholders. A missing
French text falls back to English, and a missing id shows the id itself (a test checks that
both catalogues have the same ids).
"""

from __future__ import annotations

from collections.abc import Callable

from ticketcore.web.ui.messages_en import MESSAGES as EN
from ticketcore.web.ui.messages_fr import MESSAGES as FR

CATALOGUES: dict[str, dict[str, str]] = {"en": EN, "fr": FR}
LANGUAGES: dict[str, str] = {"en": "English", "fr": "Français"}

Translate = Callable[..., str]


def translator(language: str) -> Translate:
    """A function ``t(message_id, **values)`` for ``language``."""
    catalogue = CATALOGUES.get(language, EN)

    def t(message_id: str, **values: object) -> str:
        text = catalogue.get(message_id) or EN.get(message_id) or message_id
        return text.format(**values) if values else text

    return t


def parse_accept_language(header: str) -> list[str]:
    """Primary language tags of an ``Accept-Language`` header, best first."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary and quality > 0:
            ranked.append((-quality, index, primary))
    return [tag for _, _, tag in sorted(ranked)]


def choose_language(preference: str | None, accept_language: str, default: str = "en") -> str:
    """The user's own choice if we have it, else the browser's best supported language."""
    if preference in CATALOGUES:
        return str(preference)
    for tag in parse_accept_language(accept_language):
        if tag in CATALOGUES:
            return tag
    return default if default in CATALOGUES else "en"
