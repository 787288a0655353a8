"""Header values of inbound mail to text: RFC 2047 encoded words, raw 8-bit, folded lines,
address lists (groups such as ``unlisted-recipients:;`` included), dates. Never raises."""

from __future__ import annotations

import binascii
import email.utils
import re
from datetime import UTC, datetime
from email.message import Message

from .charsets import decode_bytes, detect_charset

HEADER_VALUE_CAP = 4096  # per value kept in ParsedMail.headers
HEADER_RAW_CAP = 65536  # what is decoded at all (References chains can be long)

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([BbQq])\?([^?]*)\?=")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_NEWLINES = re.compile(r"[\r\n]+")
_SURROGATES = re.compile("[\udc80-\udcff]")


def _raw_to_text(value: str, hint: str | None = None) -> str:
    """Undo the surrogate-escaping of raw 8-bit header bytes, guessing their charset."""
    if _SURROGATES.search(value):
        data = value.encode("utf-8", "surrogateescape")
        try:
            return data.decode("utf-8")  # RFC 6532: raw 8-bit headers are UTF-8
        except UnicodeDecodeError:
            return decode_bytes(data, hint)
    if "\x1b" in value:
        try:
            return value.encode("ascii").decode("iso2022_jp_ext")
        except Exception:
            return value
    return value


def _decode_word(kind: str, text: str) -> bytes:
    if kind in "Qq":
        return binascii.a2b_qp(text.encode("ascii", "replace"), header=True)
    raw = text.encode("ascii", "replace")
    raw = re.sub(rb"[^A-Za-z0-9+/]", b"", raw)  # mailers put stray "=" and spaces in B words
    raw = raw[: len(raw) - len(raw) % 4] if len(raw) % 4 == 1 else raw
    try:
        return binascii.a2b_base64(raw + b"=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        return b""


def decode_header_value(value: str | None, hint: str | None = None) -> str:
    """A raw header value as readable text: unfolded, raw 8-bit and RFC 2047 words decoded.

    Adjacent encoded words of one charset are decoded together, since broken mailers split
    multi-byte characters across words. ``hint`` is a charset to try for raw 8-bit bytes
    that are not UTF-8. Never raises.
    """
    if not value:
        return ""
    text = _raw_to_text(value, hint)
    text = _FOLD.sub("", text)
    if "=?" not in text:
        return _NEWLINES.sub(" ", text).replace("\x00", "").strip()
    pieces: list[str] = []
    pending = b""
    pending_charset: str | None = None
    pos = 0
    for match in _ENCODED_WORD.finditer(text):
        between = text[pos : match.start()]
        if between and not (pending_charset is not None and between.isspace()):
            if pending_charset is not None:
                pieces.append(decode_bytes(pending, pending_charset))
                pending, pending_charset = b"", None
            pieces.append(between)
        charset = match.group(1).split("*", 1)[0].lower()
        if pending_charset is not None and charset != pending_charset:
            pieces.append(decode_bytes(pending, pending_charset))
            pending = b""
        pending += _decode_word(match.group(2), match.group(3))
        pending_charset = charset
        pos = match.end()
    if pending_charset is not None:
        pieces.append(decode_bytes(pending, pending_charset))
    pieces.append(text[pos:])
    return _NEWLINES.sub(" ", "".join(pieces)).replace("\x00", "").strip()


_WHITESPACE = re.compile(r"\s")
_ADDR = r"[^\s<>\",;:@()\[\]\\]+@[^\s<>\",;:@()\\]+"
# The shapes nearly every real header has: "addr", "Name <addr>", "\"Name\" <addr>".
_SIMPLE_ADDRESS = re.compile(
    rf"\s*(?:(?P<bare>{_ADDR})|(?:\"(?P<quoted>[^\"\\]*)\"|(?P<name>[^\"<>,;:@()\\]*?))"
    rf"\s*<(?P<addr>{_ADDR})>)\s*"
)


def _clean_address(addr: str) -> str | None:
    addr = addr.strip().strip("<>").strip()
    if not addr or "@" not in addr or len(addr) > 320 or _WHITESPACE.search(addr):
        return None
    local, _, domain = addr.rpartition("@")
    if not local or not domain:
        return None
    return addr.lower()


_GROUP_NAME = re.compile(r"(?:^|(?<=,))[^,:\"<>@()]*:")


def _split_addresses(text: str) -> list[tuple[str, str]]:
    if ":" in text and '"' not in text:
        # RFC 5322 groups ("Team: a@x, b@x;", "unlisted-recipients:;"): drop the group syntax.
        text = _GROUP_NAME.sub("", text).replace(";", ",")
    # Fast path: the stdlib address parser costs ~25 µs per header; simple lists need none of it.
    if '"' not in text and "(" not in text and ":" not in text:
        pairs: list[tuple[str, str]] = []
        for item in text.split(","):
            if not item.strip():
                continue
            match = _SIMPLE_ADDRESS.fullmatch(item)
            if match is None:
                if "@" not in item:
                    continue  # junk such as "undisclosed" never yields an address
                if "<" not in item:
                    # "user@example.org www.example.org": keep the tokens that are addresses.
                    pairs.extend(("", token) for token in item.split() if "@" in token)
                    continue
                break
            if match.group("bare"):
                pairs.append(("", match.group("bare")))
            else:
                pairs.append((match.group("name") or "", match.group("addr")))
        else:
            return pairs
    elif text.count(",") == 0:
        match = _SIMPLE_ADDRESS.fullmatch(text)
        if match is not None and not match.group("bare"):
            return [(match.group("quoted") or match.group("name") or "", match.group("addr"))]
    try:
        return email.utils.getaddresses([text])
    except Exception:  # the stdlib address parser has raised on hostile input before
        return [("", part) for part in text.split(",")]


def addresses(raw_values: list[str], hint: str | None) -> list[tuple[str, str]]:
    """(display name, lower-cased address) pairs from raw header values; junk dropped."""
    found: list[tuple[str, str]] = []
    for raw in raw_values:
        text = _FOLD.sub("", _raw_to_text(raw[:HEADER_RAW_CAP], hint))
        for name, addr in _split_addresses(text):
            clean = _clean_address(decode_header_value(addr) if "=?" in addr else addr)
            if clean:
                name = decode_header_value(name, hint) if name else ""
                found.append((name.strip("\"' "), clean))
    return found


def unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def header_charset(msg: Message) -> str | None:
    """One charset guess for all raw 8-bit, non-UTF-8 headers of a message (rarely needed).

    Detection on a single short header is slow (~1 ms) and unreliable; all such headers
    together give charset_normalizer more to go on, and it runs once per message.
    """
    legacy: list[bytes] = []
    for _name, value in msg.raw_items():
        if _SURROGATES.search(value):
            data = value.encode("utf-8", "surrogateescape")
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                legacy.append(data)
    return detect_charset(b"\n".join(legacy)) if legacy else None


def header_dict(msg: Message, hint: str | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in msg.raw_items():
        key = str(name).strip().lower()
        if key and key not in headers:
            decoded = decode_header_value(str(value)[:HEADER_RAW_CAP], hint)
            headers[key] = decoded[:HEADER_VALUE_CAP]
    return headers


def first_raw(msg: Message, name: str) -> str | None:
    for key, value in msg.raw_items():
        if key.lower() == name:
            return str(value)
    return None


def all_raw(msg: Message, names: tuple[str, ...]) -> list[str]:
    return [str(value) for key, value in msg.raw_items() if key.lower() in names]


def parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except Exception:  # ValueError, TypeError, OverflowError on junk dates
        return None
    if parsed is None:
        return None
    # "-0000" means "zone unknown": UTC is the only honest aware reading.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
